/* Observations (observe.h): what a plan predicts and a run records, and their JSON form. */
#include <stdlib.h>

#include "common/observe_json.h"
#include "shardlab/log.h"

const char *sl_stage_key(sl_stage s) {
    static const char *const keys[SL_STAGE_COUNT] = {"preparation", "optimizer_states", "training",
                                                     "gradient_reduction", "optimizer_step"};
    return (unsigned)s < SL_STAGE_COUNT ? keys[s] : "?";
}

const char *sl_coll_op_name(sl_coll_op op) {
    static const char *const names[SL_COLL_OP_COUNT] = {"all_gather", "reduce_scatter",
                                                        "all_reduce", "broadcast"};
    return (unsigned)op < SL_COLL_OP_COUNT ? names[op] : "?";
}

const char *sl_coll_group_name(sl_coll_group g) {
    switch (g) {
    case SL_GROUP_WORLD: return "world";
    case SL_GROUP_SHARD: return "shard";
    case SL_GROUP_REPLICA: return "replica";
    }
    return "?";
}

const char *sl_phase_name(sl_phase p) {
    switch (p) {
    case SL_PHASE_FORWARD: return "forward";
    case SL_PHASE_BACKWARD: return "backward";
    case SL_PHASE_STEP: return "step";
    }
    return "?";
}

const char *sl_mem_category_name(sl_mem_category c) {
    static const char *const names[SL_MEM_CATEGORY_COUNT] = {
        "params_master", "params_gathered", "grads_sharded", "grads_unsharded",
        "optim_states",  "activations",     "comm_buffers",  "workspace"};
    return (unsigned)c < SL_MEM_CATEGORY_COUNT ? names[c] : "?";
}

const char *sl_mem_space_name(sl_mem_space s) {
    return s == SL_SPACE_HOST ? "host" : s == SL_SPACE_DEVICE ? "device" : "?";
}

/* nccl-tests' ring volumes (doc/PERFORMANCE.md): a rank sends (n-1)/n of the buffer for
 * all-gather and reduce-scatter, 2(n-1)/n for all-reduce; a broadcast root sends it all. Bytes
 * round down. */
int64_t sl_collective_bytes_sent(sl_coll_op op, int group_size, int64_t elements, sl_dtype dt) {
    const int64_t n = group_size, bytes = elements * (int64_t)sl_dtype_size(dt);
    if (n <= 1) return 0;
    switch (op) {
    case SL_COLL_ALL_GATHER:
    case SL_COLL_REDUCE_SCATTER: return (n - 1) * bytes / n;
    case SL_COLL_ALL_REDUCE: return 2 * (n - 1) * bytes / n;
    case SL_COLL_BROADCAST: return bytes;
    case SL_COLL_OP_COUNT: break;
    }
    return 0;
}

sl_status sl_observation_init(sl_observation *obs, int world_size) {
    *obs = (sl_observation){.world_size = world_size};
    for (int s = 0; s < SL_STAGE_COUNT; s++)
        obs->dtype_table[s] = SL_DTYPE_F32;
    if (world_size < 1) {
        return sl_error_set(SL_ERR_INVALID_ARG, "observation: world_size must be >= 1, found %d",
                            world_size);
    }
    obs->memory = calloc((size_t)world_size, sizeof *obs->memory);
    if (!obs->memory)
        return sl_error_set(SL_ERR_OOM,
                            "out of memory for %d ranks' memory "
                            "accounting",
                            world_size);
    return SL_OK;
}

void sl_observation_free(sl_observation *obs) {
    free(obs->collectives);
    free(obs->memory);
    *obs = (sl_observation){0};
}

sl_status sl_observation_add_collective(sl_observation *obs, const sl_collective_record *rec) {
    if (obs->n_collectives == obs->cap_collectives) {
        const int cap = obs->cap_collectives ? 2 * obs->cap_collectives : 64;
        sl_collective_record *grown = realloc(obs->collectives, (size_t)cap * sizeof *grown);
        if (!grown) return sl_error_set(SL_ERR_OOM, "out of memory recording a collective");
        obs->collectives = grown;
        obs->cap_collectives = cap;
    }
    obs->collectives[obs->n_collectives++] = *rec;
    return SL_OK;
}

static sl_mem_usage *sl_observation_rank(sl_observation *obs, int rank, sl_mem_space s,
                                         sl_mem_category c) {
    if (!obs->memory || rank < 0 || rank >= obs->world_size || (unsigned)s >= SL_SPACE_COUNT ||
        (unsigned)c >= SL_MEM_CATEGORY_COUNT) {
        return NULL;
    }
    return &obs->memory[rank];
}

void sl_observation_mem_alloc(sl_observation *obs, int rank, sl_mem_space s, sl_mem_category c,
                              int64_t bytes) {
    sl_mem_usage *m = sl_observation_rank(obs, rank, s, c);
    if (!m) return;
    m->current[s][c] += bytes;
    if (m->current[s][c] > m->peak[s][c]) m->peak[s][c] = m->current[s][c];
}

void sl_observation_mem_free(sl_observation *obs, int rank, sl_mem_space s, sl_mem_category c,
                             int64_t bytes) {
    sl_mem_usage *m = sl_observation_rank(obs, rank, s, c);
    if (m) m->current[s][c] -= bytes;
}

void sl_observation_json_dtype_table(sl_json_writer *w, const sl_dtype table[SL_STAGE_COUNT]) {
    sl_json_writer_begin_object(w);
    for (int s = 0; s < SL_STAGE_COUNT; s++) {
        sl_json_writer_key(w, sl_stage_key((sl_stage)s));
        sl_json_writer_string(w, sl_dtype_name(table[s]));
    }
    sl_json_writer_end_object(w);
}

void sl_observation_json_collectives(sl_json_writer *w, const sl_observation *obs) {
    sl_json_writer_begin_array(w);
    for (int i = 0; i < obs->n_collectives; i++) {
        const sl_collective_record *c = &obs->collectives[i];
        sl_json_writer_begin_object(w);
        sl_json_writer_key(w, "op");
        sl_json_writer_string(w, sl_coll_op_name(c->op));
        sl_json_writer_key(w, "group");
        sl_json_writer_string(w, sl_coll_group_name(c->group));
        sl_json_writer_key(w, "group_size");
        sl_json_writer_int64(w, c->group_size);
        sl_json_writer_key(w, "phase");
        sl_json_writer_string(w, sl_phase_name(c->phase));
        sl_json_writer_key(w, "micro_step");
        sl_json_writer_int64(w, c->micro_step);
        sl_json_writer_key(w, "unit");
        sl_json_writer_int64(w, c->unit);
        sl_json_writer_key(w, "dtype");
        sl_json_writer_string(w, sl_dtype_name(c->dtype));
        sl_json_writer_key(w, "elements");
        sl_json_writer_int64(w, c->elements);
        sl_json_writer_key(w, "bytes_sent_per_rank");
        sl_json_writer_int64(w, c->bytes_sent_per_rank);
        sl_json_writer_end_object(w);
    }
    sl_json_writer_end_array(w);
}

void sl_observation_json_memory(sl_json_writer *w, const sl_observation *obs) {
    sl_json_writer_begin_array(w);
    for (int r = 0; obs->memory && r < obs->world_size; r++) {
        sl_json_writer_begin_object(w);
        sl_json_writer_key(w, "rank");
        sl_json_writer_int64(w, r);
        for (int s = 0; s < SL_SPACE_COUNT; s++) {
            sl_json_writer_key(w, sl_mem_space_name((sl_mem_space)s));
            sl_json_writer_begin_object(w);
            for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++) {
                sl_json_writer_key(w, sl_mem_category_name((sl_mem_category)c));
                sl_json_writer_int64(w, obs->memory[r].peak[s][c]);
            }
            sl_json_writer_end_object(w);
        }
        sl_json_writer_end_object(w);
    }
    sl_json_writer_end_array(w);
}

/* `indent` is the nesting level the value sits at (sl_json_writer_external_value's result);
 * members are indented two spaces per level. */
void sl_observation_write_json(const sl_observation *obs, FILE *f, int indent) {
    sl_json_writer w;
    sl_json_writer_init_at(&w, f, 2, indent);
    sl_json_writer_begin_object(&w);
    sl_json_writer_key(&w, "dtype_table");
    sl_observation_json_dtype_table(&w, obs->dtype_table);
    sl_json_writer_key(&w, "collectives");
    sl_observation_json_collectives(&w, obs);
    sl_json_writer_key(&w, "memory");
    sl_observation_json_memory(&w, obs);
    sl_json_writer_end_object(&w);
    if (sl_json_writer_finish(&w) != SL_OK) SL_LOG_WARN("%s", sl_error_message());
}
