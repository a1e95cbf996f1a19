/* impl/engine/engine_internal.h — one rank's engine state and the operations a step is made of,
 * each mirroring the reference's operation of the same name (ref/units.c, ref/grads.c,
 * ref/step.c) for this rank only. */
#ifndef SHARDLAB_IMPL_ENGINE_INTERNAL_H
#define SHARDLAB_IMPL_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "shardlab/engine.h"
#include "shardlab/loss_scaler.h"

struct sl_session {
    sl_comm *world;
    sl_config *config;
};

/* Where parameter p lives: its buffer and its offset inside that buffer (one segment each). */
typedef struct sl_engine_param_loc {
    int buffer;
    int64_t flat;
} sl_engine_param_loc;

struct sl_engine {
    sl_session *session;
    const sl_plan *plan;
    const sl_model_desc *desc;
    sl_engine_model model;
    sl_engine_options opt;
    const sl_kernels *k;
    sl_kctx *ctx;
    bool owns_ctx;

    int rank, world, shard_rank;
    sl_comm *world_comm;      /* SL_GROUP_WORLD: replicated layouts' gradient all-reduce */
    sl_comm *shard_comm;      /* SL_GROUP_SHARD: gathers, reduce-scatters, step scalars */
    sl_comm *replica_comm;    /* SL_GROUP_REPLICA: hybrid sharding only, else NULL */
    sl_comm *aux_comm;        /* the shard group again, for unrecorded traffic (saving, metrics) */
    sl_comm_opts reduce_opts; /* deterministic flag + divide rule */
    sl_observation obs;       /* memory of this rank at obs.memory[rank]; collectives of step 1 */
    bool record;
    int64_t comm_scratch_peak;

    sl_dtype md, pd, rd, ad, od, gsd; /* master, param, reduce, accum, optim, grad shard */
    sl_dtype ugd; /* whole-model micro-step gradients: accum_dtype where they are the no_sync
                     gradient itself (k = 1; DDP keeps f32 .grad), else param_dtype */

    /* ---- this rank's shard of every buffer, concatenated in buffer order ---- */
    int64_t owned;           /* Σ shard_numel */
    int64_t *shard_off;      /* [n_buffers] */
    int *n_pieces;           /* [n_buffers] */
    sl_shard_piece **pieces; /* [n_buffers] the parameter elements owned */
    void *master, *m, *v;    /* (owned) md, od, od */
    void *grad_shard;        /* (owned) gsd */
    float *step1_grads;      /* (owned) f32, when keep_step1_grads */

    /* ---- layouts of full buffers ---- */
    sl_engine_param_loc *loc; /* [n_params] */
    int64_t *unit_off; /* [n_buffers] offset in its unit's full layout (every buffer of the unit) */
    int64_t *unit_numel;   /* [n_units] Σ numel_padded of the unit's buffers */
    int64_t *gather_off;   /* [n_buffers] offset in the unit's gathered storage (non-persistent) */
    int64_t *gather_numel; /* [n_units] Σ numel_padded of the unit's non-persistent buffers */
    int64_t *model_off;    /* [n_buffers] offset in the whole-model layout */
    int64_t model_numel;   /* Σ numel_padded */
    int64_t *resident_off; /* [n_buffers] offset in the resident copy, -1 when not resident */
    int64_t resident_numel;

    /* ---- parameters as compute sees them (param_dtype) ---- */
    bool per_unit;           /* FLAT_PER_UNIT, PER_PARAM_DIM0, PER_PARAM_FLAT */
    void *resident;          /* FLAT_GLOBAL, REPLICATED with pd != md, persistent buffers */
    bool resident_is_master; /* REPLICATED with pd == md: compute reads the masters */
    void **gathered;         /* [n_units] storage while unit u is gathered (per_unit) */
    bool *held;              /* [n_units] */
    sl_tensor *params;       /* [n_params] views */

    /* ---- gradients ---- */
    bool whole_model_grads; /* REPLICATED / FLAT_GLOBAL: one micro-step gradient of the model */
    bool accumulates;       /* no_sync over k > 1: a whole-model accumulator in accum_dtype */
    void *grads_model;      /* (model_numel) ugd, whole_model_grads */
    void **grads_unit;      /* [n_units] (unit_numel) pd, per-unit gradients */
    void *accum;            /* (model_numel) ad */
    sl_tensor *grads;       /* [n_params] views */

    /* ---- the step ---- */
    sl_loss_scaler scaler;
    int applied_steps, steps_done;
    int64_t global_tokens;
    double loss_sum;         /* this rank's Σ token losses over the step's micro-steps */
    float *losses, *dlosses; /* (B·T) */
    /* engine_units.c: collectives in flight, time blocked in collectives */
    struct sl_engine_overlap *overlap;
};

/* engine_mem.c: the accounting allocator (observe.h categories; this rank's row) */
sl_status sl_engine_alloc(sl_engine *e, sl_mem_space sp, sl_mem_category c, int64_t bytes,
                          void **out);
void sl_engine_free(sl_engine *e, sl_mem_space sp, sl_mem_category c, int64_t bytes, void *p);
/* Charges or releases bytes that someone else holds (the model's activations). */
void sl_engine_charge(sl_engine *e, sl_mem_space sp, sl_mem_category c, int64_t bytes, bool on);
/* Appends the last collective of comm to the observation (first step, groups of >= 2 ranks),
 * and follows the comm layer's scratch peak. */
void sl_engine_note_collective(sl_engine *e, sl_comm *comm);

/* engine_layout.c: offsets, views, initial shards */
sl_status sl_engine_layout_create(sl_engine *e);
void sl_engine_layout_destroy(sl_engine *e);
sl_status sl_engine_init_shards(sl_engine *e);
void sl_engine_bind_views(sl_engine *e);
/* Element i of a storage buffer of dtype dt, widened; and its store (dt F32/BF16/F16). */
float sl_engine_get(const void *buf, sl_dtype dt, int64_t i);
void sl_engine_set(void *buf, sl_dtype dt, int64_t i, float x);

/* engine_units.c: gathering and releasing units */
sl_status sl_engine_gather(sl_engine *e, int unit, sl_phase phase, int micro);
void sl_engine_release(sl_engine *e, int unit);
void sl_engine_after_forward(sl_engine *e, int unit);
/* After the step: every unit released; with `gather` (the masters changed) the resident copies
 * are refreshed from the new masters (all-gathered where sharded). */
sl_status sl_engine_refresh_resident(sl_engine *e, bool gather);

/* engine_grads.c: gradients of one micro-step */
sl_status sl_engine_backward_begin(sl_engine *e, int micro);
sl_status sl_engine_unit_grads_alloc(sl_engine *e, int unit);
sl_status sl_engine_unit_backward_done(sl_engine *e, int unit, int micro);
sl_status sl_engine_backward_end(sl_engine *e, int micro);

/* engine_step.c */
sl_status sl_engine_step(sl_engine *e, sl_trajectory_step *rec);

/* engine_units.c: overlap. sl_engine_prefetch issues unit's all-gather without waiting
 * (forward_prefetch, backward_prefetch); sl_engine_gather completes it when the unit is needed.
 * Between kernels the kernel context's progress hook advances what is in flight. At most
 * two gathers are in flight (FSDP1's rate limiter); the engine prefetches one unit ahead. */
sl_status sl_engine_overlap_create(sl_engine *e);
void sl_engine_overlap_destroy(sl_engine *e);
sl_status sl_engine_prefetch(sl_engine *e, int unit, sl_phase phase, int micro);
/* A gradient reduce-scatter left in flight (engine_grads.c) with its staging buffer, and its
 * completion (then the staging is released); completing none is a no-op. */
void sl_engine_reduce_pending(sl_engine *e, sl_comm_request *req, void *stage, int64_t bytes);
sl_status sl_engine_reduce_finish(sl_engine *e);
/* Seconds on a monotonic clock; sl_engine_comm_blocked adds the time since `since` to what this
 * rank spent blocked in collectives (exposed communication), which
 * sl_engine_comm_wait_seconds (engine.h) reports. */
double sl_engine_now(void);
void sl_engine_comm_blocked(sl_engine *e, double since);
/* All-gathers issued ahead of their unit so far, and how many of them had compute (a kernel
 * boundary's progress call) run while they were in flight. */
void sl_engine_prefetch_counts(const sl_engine *e, int64_t *issued, int64_t *overlapped);
/* The same for gradient reduce-scatters left in flight (sl_engine_reduce_pending). */
void sl_engine_reduce_counts(const sl_engine *e, int64_t *issued, int64_t *overlapped);

#endif
