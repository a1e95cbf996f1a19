/* ref/shards.h — the W logical ranks' sharded state: what each rank owns of every flat buffer of
 * the plan (DESIGN.md §5), held in f32 arrays whose values are those of the plan's dtypes. */
#ifndef SHARDLAB_REF_SHARDS_H
#define SHARDLAB_REF_SHARDS_H

#include <stdbool.h>
#include <stdint.h>

#include "shardlab/model.h"
#include "shardlab/observe.h"
#include "shardlab/plan.h"

typedef struct sl_ref_rank_shard {
    int n_pieces;
    sl_shard_piece *pieces; /* the parameter elements in the shard (padding holds zeros) */
    float *master;          /* (shard_numel,) master_dtype */
    float *m, *v;           /* (shard_numel,) optim_dtype */
    float *grad; /* (shard_numel,) accum_dtype while accumulating reduced shards; master_dtype
                    once the step's reduction is complete */
} sl_ref_rank_shard;

typedef struct sl_ref_shards {
    const sl_plan *plan;
    const sl_model_desc *model;
    int world;
    bool reverse_reduction_order; /* see sl_ref_reduce_element */
    sl_ref_rank_shard **rank;     /* rank[r][b] for r < W, b < plan->n_buffers */
} sl_ref_shards;

/* Creates every rank's shards, initialises masters from `full` (per-parameter f32 arrays of
 * the loaded values), following the plan's master_init rule, and accounts the memory. */
sl_status sl_ref_shards_create(const sl_plan *plan, const sl_model_desc *model, float *const *full,
                               sl_observation *obs, sl_ref_shards **out);
void sl_ref_shards_destroy(sl_ref_shards *s);

/* All-gather: writes the masters of parameters `params[0..n)` into full[p] rounded to the
 * plan's param_dtype, reading the shard group of replica 0 (replicas are identical). */
void sl_ref_shards_gather(const sl_ref_shards *s, const int *params, int n, float **full);

/* The full master value of every parameter (for final.safetensors). */
void sl_ref_shards_masters(const sl_ref_shards *s, float **full);
/* The full step gradient of every parameter as the shard owners hold it (grads_step1). */
void sl_ref_shards_grads(const sl_ref_shards *s, float **full);

#endif
