/* The schema shared by prediction and observation (DESIGN.md §3, §6, §9 T1): the dtype table, the
 * collective schedule of one optimizer step and bytes per memory category per rank. The plan
 * compiler predicts an sl_observation; ref/ and impl/ record one while they run; a test holds one
 * against the other. `explain --json` and run reports print it with sl_observation_write_json. */
#ifndef SHARDLAB_OBSERVE_H
#define SHARDLAB_OBSERVE_H

#include <stdint.h>
#include <stdio.h>

#include "shardlab/dtype.h"
#include "shardlab/status.h"

/* The rows of the Accelerate "Moving between FSDP and DeepSpeed" table (DESIGN.md §4.3). */
typedef enum sl_stage {
    SL_STAGE_PREPARATION,        /* flat / master params */
    SL_STAGE_OPTIMIZER_STATES,   /* Adam moments */
    SL_STAGE_TRAINING,           /* forward / backward compute */
    SL_STAGE_GRADIENT_REDUCTION, /* gradient collectives */
    SL_STAGE_OPTIMIZER_STEP,     /* the parameters the optimizer updates */
    SL_STAGE_COUNT
} sl_stage;

/* JSON keys: "preparation", "optimizer_states", "training", "gradient_reduction", "optimizer_step".
 */
const char *sl_stage_key(sl_stage s);

typedef enum sl_coll_op {
    SL_COLL_ALL_GATHER,
    SL_COLL_REDUCE_SCATTER,
    SL_COLL_ALL_REDUCE,
    SL_COLL_BROADCAST,
    SL_COLL_OP_COUNT
} sl_coll_op;
const char *sl_coll_op_name(sl_coll_op op); /* "all_gather", ... */

typedef enum sl_coll_group {
    SL_GROUP_WORLD,  /* all W ranks */
    SL_GROUP_SHARD,  /* the G ranks of one shard group (= world without hybrid sharding) */
    SL_GROUP_REPLICA /* the W/G ranks holding the same shard (hybrid sharding) */
} sl_coll_group;
const char *sl_coll_group_name(sl_coll_group g);

typedef enum sl_phase { SL_PHASE_FORWARD, SL_PHASE_BACKWARD, SL_PHASE_STEP } sl_phase;
const char *sl_phase_name(sl_phase p);

/* One collective call. `elements` is nccl-tests' count: the full (gathered / unreduced) buffer,
 * i.e. group_size × shard elements for all_gather and reduce_scatter, the buffer for all_reduce.
 * `bytes_sent_per_rank` is what a ring algorithm sends from each rank:
 * (n-1)/n · elements · size for all_gather and reduce_scatter, 2(n-1)/n · elements · size for
 * all_reduce, elements · size / n... for broadcast the root sends elements · size (others 0; we
 * record the root's). n is the group size. */
typedef struct sl_collective_record {
    sl_coll_op op;
    sl_coll_group group;
    int group_size;
    sl_phase phase;
    int micro_step; /* 0-based within the optimizer step */
    int unit;       /* model unit, or -1 for a whole-model buffer */
    sl_dtype dtype;
    int64_t elements;
    int64_t bytes_sent_per_rank;
} sl_collective_record;

int64_t sl_collective_bytes_sent(sl_coll_op op, int group_size, int64_t elements, sl_dtype dt);

typedef enum sl_mem_category {
    SL_MEM_PARAMS_MASTER,
    SL_MEM_PARAMS_GATHERED,
    SL_MEM_GRADS_SHARDED,
    SL_MEM_GRADS_UNSHARDED,
    SL_MEM_OPTIM_STATES,
    SL_MEM_ACTIVATIONS,
    SL_MEM_COMM_BUFFERS,
    SL_MEM_WORKSPACE,
    SL_MEM_CATEGORY_COUNT
} sl_mem_category;
const char *sl_mem_category_name(sl_mem_category c); /* "params_master", ... */

typedef enum sl_mem_space { SL_SPACE_DEVICE, SL_SPACE_HOST, SL_SPACE_COUNT } sl_mem_space;
const char *sl_mem_space_name(sl_mem_space s);

typedef struct sl_mem_usage {
    int64_t current[SL_SPACE_COUNT][SL_MEM_CATEGORY_COUNT];
    int64_t peak[SL_SPACE_COUNT][SL_MEM_CATEGORY_COUNT];
} sl_mem_usage;

typedef struct sl_observation {
    sl_dtype dtype_table[SL_STAGE_COUNT];
    int n_collectives;
    int cap_collectives;
    sl_collective_record *collectives; /* one optimizer step, in issue order */
    int world_size;
    sl_mem_usage *memory; /* [world_size]; bytes are logical: numel × the buffer's dtype size */
} sl_observation;

sl_status sl_observation_init(sl_observation *obs, int world_size);
void sl_observation_free(sl_observation *obs);
sl_status sl_observation_add_collective(sl_observation *obs, const sl_collective_record *rec);
/* Accounting: allocate / free `bytes` of category c in space s for rank r; peaks follow. */
void sl_observation_mem_alloc(sl_observation *obs, int rank, sl_mem_space s, sl_mem_category c,
                              int64_t bytes);
void sl_observation_mem_free(sl_observation *obs, int rank, sl_mem_space s, sl_mem_category c,
                             int64_t bytes);

/* {"dtype_table": {...}, "collectives": [...], "memory": [{"rank":0, "device": {...peak...},
 *  "host": {...}}, ...]} — written as the value of a JSON member (no trailing newline). */
void sl_observation_write_json(const sl_observation *obs, FILE *f, int indent);

#endif
