/* safetensors writer: tensors are recorded (data referenced, not copied), then the header is built
 * in memory and the file is written atomically in one pass. */
#include "shardlab/safetensors.h"

#include "common/fileio.h"
#include "common/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *name;
    sl_dtype dtype; /* as stored in the file */
    int64_t *shape;
    int ndim;
    size_t numel;
    const void *data; /* bytes of `dtype`, or NULL when converting from f32_src */
    const float *f32_src;
} entry;

struct sl_safetensors_writer {
    entry *entries;
    size_t n, cap;
    char **meta_keys, **meta_values;
    size_t n_meta, cap_meta;
};

static char *copy_string(const char *s) {
    char *c = malloc(strlen(s) + 1);
    if (c) strcpy(c, s);
    return c;
}

static bool valid_utf8(const char *s) {
    const size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        const size_t n = sl_utf8_sequence_length((const unsigned char *)s + i, len - i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

sl_status sl_safetensors_writer_create(sl_safetensors_writer **out) {
    *out = calloc(1, sizeof **out);
    return *out ? SL_OK : sl_error_set(SL_ERR_OOM, "out of memory creating a safetensors writer");
}

void sl_safetensors_writer_destroy(sl_safetensors_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->entries[i].name);
        free(w->entries[i].shape);
    }
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->entries);
    free(w->meta_keys);
    free(w->meta_values);
    free(w);
}

static sl_status add_entry(sl_safetensors_writer *w, const char *name, sl_dtype dtype,
                           const int64_t *shape, int ndim, const void *data, const float *src) {
    if ((unsigned)dtype >= SL_DTYPE_COUNT)
        return sl_error_set(SL_ERR_INVALID_ARG, "safetensors tensor \"%s\": unsupported dtype %d",
                            name, (int)dtype);
    if (strcmp(name, "__metadata__") == 0 || !valid_utf8(name))
        return sl_error_set(SL_ERR_INVALID_ARG, "safetensors tensor name \"%.200s\" is %s", name,
                            name[0] == '_' ? "reserved for metadata" : "not valid UTF-8");
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->entries[i].name, name) == 0)
            return sl_error_set(SL_ERR_INVALID_ARG,
                                "safetensors tensor \"%s\" added twice; "
                                "tensor names must be unique",
                                name);
    if (ndim < 0)
        return sl_error_set(SL_ERR_INVALID_ARG, "safetensors tensor \"%s\": ndim %d is negative",
                            name, ndim);
    /* numel and its byte count must fit in size_t. */
    size_t numel = 1;
    const size_t limit = SIZE_MAX / sl_dtype_size(dtype);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return sl_error_set(SL_ERR_INVALID_ARG,
                                "safetensors tensor \"%s\": shape[%d] = %lld "
                                "is negative",
                                name, d, (long long)shape[d]);
        if (shape[d] != 0 && numel > limit / (uint64_t)shape[d])
            return sl_error_set(SL_ERR_INVALID_ARG,
                                "safetensors tensor \"%s\": shape is too "
                                "large to address",
                                name);
        numel *= (size_t)shape[d];
    }
    if (numel && !data && !src)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "safetensors tensor \"%s\": data is NULL for %zu "
                            "elements",
                            name, numel);
    if (w->n == w->cap) {
        const size_t cap = w->cap ? 2 * w->cap : 16;
        entry *grown = realloc(w->entries, cap * sizeof *grown);
        if (!grown) return sl_error_set(SL_ERR_OOM, "out of memory adding tensor \"%s\"", name);
        w->entries = grown;
        w->cap = cap;
    }
    entry e = {.dtype = dtype, .ndim = ndim, .numel = numel, .data = data, .f32_src = src};
    e.name = copy_string(name);
    e.shape = malloc((ndim ? (size_t)ndim : 1) * sizeof *e.shape);
    if (!e.name || !e.shape) {
        free(e.name);
        free(e.shape);
        return sl_error_set(SL_ERR_OOM, "out of memory adding tensor \"%s\"", name);
    }
    if (ndim) memcpy(e.shape, shape, (size_t)ndim * sizeof *e.shape);
    w->entries[w->n++] = e;
    return SL_OK;
}

sl_status sl_safetensors_writer_add(sl_safetensors_writer *w, const char *name, sl_dtype dtype,
                                    const int64_t *shape, int ndim, const void *data) {
    return add_entry(w, name, dtype, shape, ndim, data, NULL);
}

sl_status sl_safetensors_writer_add_f32(sl_safetensors_writer *w, const char *name,
                                        sl_dtype storage, const int64_t *shape, int ndim,
                                        const float *src) {
    if (!sl_dtype_is_float(storage))
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "safetensors tensor \"%s\": cannot store f32 "
                            "values as %s; expected F32, BF16, F16 or F64",
                            name, sl_dtype_safetensors_name(storage));
    return add_entry(w, name, storage, shape, ndim, NULL, src);
}

sl_status sl_safetensors_writer_set_metadata(sl_safetensors_writer *w, const char *key,
                                             const char *value) {
    if (!valid_utf8(key) || !valid_utf8(value))
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "safetensors metadata \"%.200s\": key or value is "
                            "not valid UTF-8",
                            key);
    char *v = copy_string(value);
    if (!v) return sl_error_set(SL_ERR_OOM, "out of memory setting metadata \"%s\"", key);
    for (size_t i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_values[i]);
            w->meta_values[i] = v;
            return SL_OK;
        }
    }
    if (w->n_meta == w->cap_meta) {
        const size_t cap = w->cap_meta ? 2 * w->cap_meta : 8;
        char **keys = realloc(w->meta_keys, cap * sizeof *keys);
        if (keys) w->meta_keys = keys;
        char **values = keys ? realloc(w->meta_values, cap * sizeof *values) : NULL;
        if (values) w->meta_values = values;
        if (!keys || !values) {
            free(v);
            return sl_error_set(SL_ERR_OOM, "out of memory setting metadata \"%s\"", key);
        }
        w->cap_meta = cap;
    }
    char *k = copy_string(key);
    if (!k) {
        free(v);
        return sl_error_set(SL_ERR_OOM, "out of memory setting metadata \"%s\"", key);
    }
    w->meta_keys[w->n_meta] = k;
    w->meta_values[w->n_meta++] = v;
    return SL_OK;
}

/* The compact JSON header, metadata first, tensors at consecutive offsets in the order added. */
static sl_status build_header(const sl_safetensors_writer *w, char **text, size_t *len) {
    FILE *f = open_memstream(text, len);
    if (!f) return sl_error_set(SL_ERR_OOM, "out of memory building a safetensors header");
    sl_json_writer jw;
    sl_json_writer_init(&jw, f, 0);
    sl_json_writer_begin_object(&jw);
    if (w->n_meta) {
        sl_json_writer_key(&jw, "__metadata__");
        sl_json_writer_begin_object(&jw);
        for (size_t i = 0; i < w->n_meta; i++) {
            sl_json_writer_key(&jw, w->meta_keys[i]);
            sl_json_writer_string(&jw, w->meta_values[i]);
        }
        sl_json_writer_end_object(&jw);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n; i++) {
        const entry *e = &w->entries[i];
        const uint64_t nbytes = (uint64_t)e->numel * sl_dtype_size(e->dtype);
        sl_json_writer_key(&jw, e->name);
        sl_json_writer_begin_object(&jw);
        sl_json_writer_key(&jw, "dtype");
        sl_json_writer_string(&jw, sl_dtype_safetensors_name(e->dtype));
        sl_json_writer_key(&jw, "shape");
        sl_json_writer_begin_array(&jw);
        for (int d = 0; d < e->ndim; d++)
            sl_json_writer_int64(&jw, e->shape[d]);
        sl_json_writer_end_array(&jw);
        sl_json_writer_key(&jw, "data_offsets");
        sl_json_writer_begin_array(&jw);
        sl_json_writer_uint64(&jw, offset);
        sl_json_writer_uint64(&jw, offset + nbytes);
        sl_json_writer_end_array(&jw);
        sl_json_writer_end_object(&jw);
        offset += nbytes;
    }
    sl_json_writer_end_object(&jw);
    sl_status st = sl_json_writer_finish(&jw);
    if (fclose(f) != 0 && st == SL_OK)
        st = sl_error_set(SL_ERR_OOM, "out of memory building a safetensors header");
    if (st != SL_OK) {
        free(*text);
        *text = NULL;
    }
    return st;
}

typedef struct write_ctx {
    const sl_safetensors_writer *w;
    const char *header;
    size_t header_len, padded_len;
} write_ctx;

static sl_status write_file(FILE *f, void *arg) {
    const write_ctx *c = arg;
    unsigned char len_le[8];
    for (int i = 0; i < 8; i++)
        len_le[i] = (unsigned char)((uint64_t)c->padded_len >> (8 * i));
    fwrite(len_le, 1, 8, f);
    fwrite(c->header, 1, c->header_len, f);
    for (size_t i = c->header_len; i < c->padded_len; i++)
        fputc(' ', f);
    for (size_t i = 0; i < c->w->n; i++) {
        const entry *e = &c->w->entries[i];
        const size_t size = sl_dtype_size(e->dtype);
        if (!e->f32_src) {
            if (e->numel) fwrite(e->data, size, e->numel, f);
            continue;
        }
        unsigned char chunk[16384]; /* converted elements, at most 8 bytes each */
        const size_t per_chunk = sizeof chunk / size;
        for (size_t at = 0; at < e->numel; at += per_chunk) {
            const size_t k = e->numel - at < per_chunk ? e->numel - at : per_chunk;
            sl_convert_from_f32(chunk, e->dtype, e->f32_src + at, k);
            fwrite(chunk, size, k, f);
        }
    }
    return SL_OK;
}

sl_status sl_safetensors_writer_write(sl_safetensors_writer *w, const char *path) {
    char *header = NULL;
    size_t header_len = 0;
    SL_TRY(build_header(w, &header, &header_len));
    write_ctx c = {w, header, header_len, (header_len + 7) / 8 * 8};
    sl_status st = sl_file_write_atomic(path, write_file, &c);
    free(header);
    if (st != SL_OK) return sl_error_prefix(st, "writing safetensors file %s: ", path);
    return SL_OK;
}
