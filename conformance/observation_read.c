/* The observation JSON read back into an sl_observation (observation_read.h). */
#include "conformance/observation_read.h"

#include <stdlib.h>
#include <string.h>

/* An unrecorded stage is written as "unknown" (sl_dtype_name of SL_DTYPE_COUNT). */
static sl_status sl_conf_read_dtype(const sl_json *v, const char *what, sl_dtype *out) {
    SL_TRY(sl_json_expect(v, SL_JSON_STRING, what));
    if (!strcmp(sl_json_string(v), "unknown")) {
        *out = SL_DTYPE_COUNT;
        return SL_OK;
    }
    if (sl_dtype_parse(sl_json_string(v), what, out) != SL_OK) {
        return sl_error_set(SL_ERR_FORMAT, "%s:%d: %s: expected a dtype name, found '%s'",
                            sl_json_file(v), sl_json_line(v), what, sl_json_string(v));
    }
    return SL_OK;
}

typedef const char *(*sl_conf_name_fn)(int value);

static const char *sl_conf_op_name(int v) {
    return sl_coll_op_name((sl_coll_op)v);
}
static const char *sl_conf_group_name(int v) {
    return sl_coll_group_name((sl_coll_group)v);
}
static const char *sl_conf_phase_name(int v) {
    return sl_phase_name((sl_phase)v);
}

/* The enum value whose name is the string member `key` of obj. */
static sl_status sl_conf_read_enum(const sl_json *obj, const char *key, sl_conf_name_fn name,
                                   int count, int *out) {
    const sl_json *v = sl_json_get(obj, key);
    if (!v) {
        return sl_error_set(SL_ERR_FORMAT, "%s:%d: a collective has no \"%s\" member",
                            sl_json_file(obj), sl_json_line(obj), key);
    }
    SL_TRY(sl_json_expect(v, SL_JSON_STRING, key));
    for (int i = 0; i < count; i++) {
        if (!strcmp(sl_json_string(v), name(i))) {
            *out = i;
            return SL_OK;
        }
    }
    return sl_error_set(SL_ERR_FORMAT, "%s:%d: %s: unknown value '%s'", sl_json_file(v),
                        sl_json_line(v), key, sl_json_string(v));
}

static sl_status sl_conf_read_int(const sl_json *obj, const char *key, int64_t *out) {
    const sl_json *v = sl_json_get(obj, key);
    if (!v || !sl_json_int64(v, out)) {
        return sl_error_set(SL_ERR_FORMAT, "%s:%d: \"%s\": expected an integer%s",
                            sl_json_file(obj), sl_json_line(obj), key, v ? "" : ", found none");
    }
    return SL_OK;
}

static sl_status sl_conf_read_collective(const sl_json *c, sl_collective_record *r) {
    int op = 0, group = 0, phase = 0;
    int64_t group_size = 0, micro = 0, unit = 0;
    SL_TRY(sl_json_expect(c, SL_JSON_OBJECT, "collective"));
    SL_TRY(sl_conf_read_enum(c, "op", sl_conf_op_name, SL_COLL_OP_COUNT, &op));
    SL_TRY(sl_conf_read_enum(c, "group", sl_conf_group_name, 3, &group));
    SL_TRY(sl_conf_read_enum(c, "phase", sl_conf_phase_name, 3, &phase));
    SL_TRY(sl_conf_read_int(c, "group_size", &group_size));
    SL_TRY(sl_conf_read_int(c, "micro_step", &micro));
    SL_TRY(sl_conf_read_int(c, "unit", &unit));
    SL_TRY(sl_conf_read_int(c, "elements", &r->elements));
    SL_TRY(sl_conf_read_int(c, "bytes_sent_per_rank", &r->bytes_sent_per_rank));
    const sl_json *dt = sl_json_get(c, "dtype");
    if (!dt) {
        return sl_error_set(SL_ERR_FORMAT, "%s:%d: a collective has no \"dtype\" member",
                            sl_json_file(c), sl_json_line(c));
    }
    SL_TRY(sl_conf_read_dtype(dt, "dtype", &r->dtype));
    r->op = (sl_coll_op)op;
    r->group = (sl_coll_group)group;
    r->phase = (sl_phase)phase;
    r->group_size = (int)group_size;
    r->micro_step = (int)micro;
    r->unit = (int)unit;
    return SL_OK;
}

static sl_status sl_conf_read_memory(const sl_json *rank, sl_mem_usage *m) {
    SL_TRY(sl_json_expect(rank, SL_JSON_OBJECT, "memory[]"));
    for (int s = 0; s < SL_SPACE_COUNT; s++) {
        const sl_json *space = sl_json_get(rank, sl_mem_space_name((sl_mem_space)s));
        if (!space) continue; /* a space nothing was allocated in may be left out */
        SL_TRY(sl_json_expect(space, SL_JSON_OBJECT, sl_mem_space_name((sl_mem_space)s)));
        for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++) {
            const char *key = sl_mem_category_name((sl_mem_category)c);
            if (!sl_json_get(space, key)) continue;
            SL_TRY(sl_conf_read_int(space, key, &m->peak[s][c]));
        }
    }
    return SL_OK;
}

static sl_status sl_conf_observation_fill(const sl_json *obj, const char *collectives_key,
                                          sl_observation *out) {
    const sl_json *table = sl_json_get(obj, "dtype_table");
    const sl_json *colls = sl_json_get(obj, collectives_key);
    const sl_json *mem = sl_json_get(obj, "memory");
    if (!table || !colls || !mem) {
        return sl_error_set(SL_ERR_FORMAT,
                            "%s:%d: expected members \"dtype_table\", \"%s\" and \"memory\"; "
                            "%s is missing (was the file written by this shardlab?)",
                            sl_json_file(obj), sl_json_line(obj), collectives_key,
                            !table   ? "dtype_table"
                            : !colls ? collectives_key
                                     : "memory");
    }
    SL_TRY(sl_json_expect(table, SL_JSON_OBJECT, "dtype_table"));
    for (int s = 0; s < SL_STAGE_COUNT; s++) {
        const sl_json *v = sl_json_get(table, sl_stage_key((sl_stage)s));
        out->dtype_table[s] = SL_DTYPE_COUNT;
        if (v) SL_TRY(sl_conf_read_dtype(v, sl_stage_key((sl_stage)s), &out->dtype_table[s]));
    }
    SL_TRY(sl_json_expect(colls, SL_JSON_ARRAY, collectives_key));
    for (size_t i = 0; i < sl_json_count(colls); i++) {
        sl_collective_record r;
        SL_TRY(sl_conf_read_collective(sl_json_at(colls, i), &r));
        SL_TRY(sl_observation_add_collective(out, &r));
    }
    for (int r = 0; r < out->world_size; r++) {
        SL_TRY(sl_conf_read_memory(sl_json_at(mem, (size_t)r), &out->memory[r]));
    }
    return SL_OK;
}

sl_status sl_conf_observation_read(const sl_json *obj, const char *collectives_key,
                                   sl_observation *out) {
    memset(out, 0, sizeof *out);
    SL_TRY(sl_json_expect(obj, SL_JSON_OBJECT, "observation"));
    const sl_json *mem = sl_json_get(obj, "memory");
    if (!mem || sl_json_type_of(mem) != SL_JSON_ARRAY || sl_json_count(mem) == 0) {
        return sl_error_set(SL_ERR_FORMAT,
                            "%s:%d: expected \"memory\": an array with one entry per rank",
                            sl_json_file(obj), sl_json_line(obj));
    }
    SL_TRY(sl_observation_init(out, (int)sl_json_count(mem)));
    const sl_status st = sl_conf_observation_fill(obj, collectives_key, out);
    if (st != SL_OK) sl_observation_free(out);
    return st;
}

static void sl_conf_json_emit(sl_json_writer *w, const sl_json *v) {
    switch (sl_json_type_of(v)) {
    case SL_JSON_NULL: sl_json_writer_null(w); break;
    case SL_JSON_BOOL: sl_json_writer_bool(w, sl_json_bool(v)); break;
    case SL_JSON_NUMBER: sl_json_writer_double(w, sl_json_number(v)); break;
    case SL_JSON_STRING: sl_json_writer_string(w, sl_json_string(v)); break;
    case SL_JSON_ARRAY:
        sl_json_writer_begin_array(w);
        for (size_t i = 0; i < sl_json_count(v); i++)
            sl_conf_json_emit(w, sl_json_at(v, i));
        sl_json_writer_end_array(w);
        break;
    case SL_JSON_OBJECT:
        sl_json_writer_begin_object(w);
        for (size_t i = 0; i < sl_json_count(v); i++) {
            sl_json_writer_key(w, sl_json_key_at(v, i));
            sl_conf_json_emit(w, sl_json_at(v, i));
        }
        sl_json_writer_end_object(w);
        break;
    }
}

char *sl_conf_json_compact(const sl_json *v) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    sl_json_writer w;
    sl_json_writer_init(&w, f, 0);
    sl_conf_json_emit(&w, v);
    const sl_status st = sl_json_writer_finish(&w);
    fclose(f);
    if (st != SL_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}
