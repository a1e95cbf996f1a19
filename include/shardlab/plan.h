/* sl_plan: everything DESIGN.md §4–§6 decide, as data. sl_plan_compile() is the ONLY place where
 * FSDP / DeepSpeed / Accelerate vocabulary is translated; it is pure and deterministic. ref/ and
 * impl/ execute a plan; neither re-reads the config. */
#ifndef SHARDLAB_PLAN_H
#define SHARDLAB_PLAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "shardlab/config.h"
#include "shardlab/data.h"
#include "shardlab/dtype.h"
#include "shardlab/model.h"
#include "shardlab/observe.h"
#include "shardlab/status.h"

typedef enum sl_dialect {
    SL_DIALECT_DDP, /* neither --use_fsdp nor --use_deepspeed: Accelerate MULTI_CPU/GPU */
    SL_DIALECT_FSDP1,
    SL_DIALECT_FSDP2,
    SL_DIALECT_DEEPSPEED
} sl_dialect;
const char *sl_dialect_name(sl_dialect d); /* "ddp", "fsdp1", "fsdp2", "deepspeed" */

typedef enum sl_strategy {
    SL_STRATEGY_NO_SHARD,      /* DDP, FSDP NO_SHARD, ZeRO-0 */
    SL_STRATEGY_SHARD_OPTIM,   /* ZeRO-1: optimizer states (+ masters) sharded */
    SL_STRATEGY_SHARD_GRAD_OP, /* FSDP SHARD_GRAD_OP, FSDP2 reshard_after_forward=false, ZeRO-2 */
    SL_STRATEGY_FULL_SHARD,    /* FSDP FULL_SHARD, FSDP2 reshard_after_forward=true, ZeRO-3 */
    SL_STRATEGY_HYBRID_SHARD,  /* FULL_SHARD within a group of G ranks, replicated across */
    SL_STRATEGY_HYBRID_SHARD_ZERO2 /* SHARD_GRAD_OP within a group, replicated across */
} sl_strategy;
const char *sl_strategy_name(sl_strategy s);

typedef enum sl_master_init { SL_MASTER_EXACT, SL_MASTER_ROUNDED } sl_master_init;
typedef enum sl_grad_divide {
    SL_DIVIDE_PRE_POST_POW2, /* ÷pre, SUM, ÷post (FSDP1; FSDP2 fp16) */
    SL_DIVIDE_AVG,           /* SUM then ÷W (FSDP2 fp32/bf16: ReduceOp.AVG) */
    SL_DIVIDE_PRE,           /* ÷W then SUM (DeepSpeed ZeRO-1/2/3, DDP) */
    SL_DIVIDE_POST           /* SUM then ×(1/W) (DeepSpeed stage 0, reduce_scatter=false) */
} sl_grad_divide;
typedef enum sl_norm_precision { SL_NORM_F32, SL_NORM_F64 } sl_norm_precision;
typedef enum sl_clip_rule { SL_CLIP_TORCH, SL_CLIP_DS } sl_clip_rule;
typedef enum sl_adam_variant { SL_ADAM_TORCH, SL_ADAM_DS_FUSED } sl_adam_variant;
typedef enum sl_loss_scaler_kind {
    SL_SCALER_NONE,
    SL_SCALER_STATIC,           /* DeepSpeed fp16 with loss_scale > 0 */
    SL_SCALER_ZERO_DYNAMIC,     /* DeepSpeed ZeRO 1-3 DynamicLossScaler (hysteresis) */
    SL_SCALER_FP16_OPT_DYNAMIC, /* DeepSpeed stage-0 FP16_Optimizer (no hysteresis) */
    SL_SCALER_TORCH_GRADSCALER  /* torch.amp.GradScaler / FSDP ShardedGradScaler */
} sl_loss_scaler_kind;

typedef enum sl_accum_mode {
    SL_ACCUM_LOCAL_UNSHARDED, /* no_sync: full local grads accumulate in accum_dtype; one
                                 reduction at the last micro-step (FSDP, DDP, ZeRO-0/1) */
    SL_ACCUM_REDUCED_SHARD    /* every micro-step reduces; the reduced shard accumulates in
                                 accum_dtype (ZeRO-2/3) */
} sl_accum_mode;

typedef enum sl_loss_norm {
    SL_LOSS_NORM_GLOBAL_TOKENS,      /* Σ token losses of the global batch ÷ its token count */
    SL_LOSS_NORM_PER_MICROBATCH_MEAN /* each micro-step's local mean × 1/k (Accelerate) */
} sl_loss_norm;

typedef enum sl_lr_schedule {
    SL_LR_CONSTANT,
    SL_LR_WARMUP_COSINE, /* linear warmup then cosine to min_lr_ratio·lr */
    SL_LR_WARMUP_LINEAR  /* linear warmup then linear decay to min_lr_ratio·lr */
} sl_lr_schedule;

/* DESIGN.md §4.1. */
typedef struct sl_precision {
    sl_dtype load_dtype;
    sl_dtype master_dtype;
    sl_master_init master_init;
    sl_dtype param_dtype;  /* gather + compute */
    sl_dtype reduce_dtype; /* gradient collectives */
    sl_grad_divide grad_divide;
    sl_dtype accum_dtype; /* un-synchronised micro-step gradients */
    sl_dtype optim_dtype; /* Adam moments (= master_dtype) */
    sl_norm_precision norm;
    sl_clip_rule clip;
    sl_adam_variant adam;
    sl_loss_scaler_kind loss_scale;
    bool upcast_sharded_params; /* FSDP1 under Accelerate >= 0.30 (resolved from auto) */
} sl_precision;

/* The fields of sl_precision in DESIGN.md §4.1 order, for printing and provenance. */
typedef enum sl_precision_field {
    SL_PREC_LOAD_DTYPE,
    SL_PREC_MASTER_DTYPE,
    SL_PREC_MASTER_INIT,
    SL_PREC_PARAM_DTYPE,
    SL_PREC_REDUCE_DTYPE,
    SL_PREC_GRAD_DIVIDE,
    SL_PREC_ACCUM_DTYPE,
    SL_PREC_OPTIM_DTYPE,
    SL_PREC_NORM,
    SL_PREC_CLIP,
    SL_PREC_ADAM,
    SL_PREC_LOSS_SCALE,
    SL_PREC_UPCAST_SHARDED_PARAMS,
    SL_PREC_FIELD_COUNT
} sl_precision_field;
const char *sl_precision_field_name(sl_precision_field f); /* "load_dtype", ... */
/* The field's value as DESIGN.md spells it: "bf16", "ROUNDED", "PRE_POST_POW2", "DS_FUSED", "on".
 */
const char *sl_precision_field_value(const sl_precision *p, sl_precision_field f);

typedef struct sl_loss_scaler_config {
    double init_scale;     /* 2^16 (GradScaler), 2^initial_scale_power (DeepSpeed) */
    double growth_factor;  /* 2 */
    double backoff_factor; /* 0.5 */
    int growth_interval;   /* GradScaler 2000; DeepSpeed loss_scale_window 1000 */
    int hysteresis;        /* DeepSpeed delayed_shift, 2 */
    bool consecutive_hysteresis;
    double min_scale; /* DeepSpeed min_loss_scale, 1 */
} sl_loss_scaler_config;

typedef struct sl_optim_config {
    double lr;
    double beta1, beta2, eps;
    double weight_decay;  /* torch AdamW default 0.01; DeepSpeed 0 */
    double max_grad_norm; /* 0: no clipping */
    sl_lr_schedule schedule;
    int warmup_steps;
    double min_lr_ratio;
} sl_optim_config;

/* A contiguous piece of a flat buffer: elements [param_offset, param_offset + numel) of
 * parameter `param` (row-major, export layout) sit at [flat_offset, flat_offset + numel) of the
 * buffer. param == -1 marks padding (zeros). Segments tile the buffer in order. */
typedef struct sl_segment {
    int param;
    int64_t param_offset;
    int64_t flat_offset;
    int64_t numel;
} sl_segment;

/* A flat buffer sharded over the shard group: rank r (its index within the group) owns flat
 * elements [r·shard_numel, (r+1)·shard_numel). NO_SHARD plans have one buffer per unit with
 * shard_numel == numel_padded (every rank owns everything). */
typedef struct sl_flat_buffer {
    int unit; /* the unit whose gather brings it in; -1 for FLAT_GLOBAL (whole model) */
    int64_t numel_padded;
    int64_t shard_numel;
    int n_segments;
    sl_segment *segments;
    bool persistent; /* ZeRO-3 params at or below the persistence threshold: kept gathered */
} sl_flat_buffer;

/* Elements [start, end) of parameter `param`, held by one shard rank at [shard_offset,
 * shard_offset + end - start) of its shard. */
typedef struct sl_shard_piece {
    int param;
    int64_t start, end;
    int64_t shard_offset;
} sl_shard_piece;
/* The param pieces (returned count; `pieces` has room for b->n_segments) and the padding
 * elements (*pad) that shard rank `shard_rank` owns of buffer b, in flat order. */
int sl_plan_shard_pieces(const sl_flat_buffer *b, int shard_rank, sl_shard_piece *pieces,
                         int64_t *pad);

typedef enum sl_layout_kind {
    SL_LAYOUT_REPLICATED,     /* NO_SHARD / ZeRO-0 / DDP */
    SL_LAYOUT_FLAT_PER_UNIT,  /* FSDP1 */
    SL_LAYOUT_PER_PARAM_DIM0, /* FSDP2 */
    SL_LAYOUT_FLAT_GLOBAL,    /* ZeRO-1/2 */
    SL_LAYOUT_PER_PARAM_FLAT  /* ZeRO-3 */
} sl_layout_kind;
const char *sl_layout_name(sl_layout_kind k);

/* The predicted observation (sl_plan.predicted), as ref/ and impl/ must reproduce it.
 *
 * Schedule: the collectives of one optimizer step of k micro-steps, in issue order. A collective
 * over a group of one rank is not issued and not recorded (so W = 1 records nothing). Groups:
 * parameter all-gathers and gradient reduce-scatters run in SL_GROUP_SHARD (G ranks); gradient
 * all-reduces of replicated layouts (DDP, NO_SHARD, ZeRO-0/1/2) in SL_GROUP_WORLD; hybrid
 * sharding's cross-machine all-reduce of the reduced shard in SL_GROUP_REPLICA (W/G ranks).
 * A micro-step reduces gradients when it is the last (LOCAL_UNSHARDED) or always
 * (REDUCED_SHARD). Units are visited in forward order, then in reverse in backward.
 *   per-unit layouts (FSDP1, FSDP2, ZeRO-3): forward: all-gather each unit (param_dtype, the
 *     unit's non-persistent buffers, padded). FSDP1 SHARD_GRAD_OP / HYBRID_SHARD_ZERO2 keep
 *     parameters gathered after a no_sync backward, so micro-steps after the first gather
 *     nothing. Backward, FULL_SHARD / HYBRID_SHARD / ZeRO-3: all-gather each unit again except
 *     the root (never resharded after forward); with backward prefetch (FSDP1 BACKWARD_PRE /
 *     BACKWARD_POST, always in FSDP2) the next unit's all-gather is issued before the current
 *     unit's reduction. Reduction of a unit (reduce_dtype): NO_SHARD: one all-reduce of the
 *     unit; FSDP1/FSDP2: one reduce-scatter of the unit's buffers, then with hybrid sharding an
 *     all-reduce of the shard across replicas; ZeRO-3: one reduce-scatter per parameter buffer,
 *     the unit's parameters in reverse.
 *   ZeRO-1/2 (FLAT_GLOBAL): one all-reduce of all gradients (model->total_numel elements,
 *     DeepSpeed's buckets taken as one) per reducing micro-step.
 *   step phase: when gradients are sharded (strategy != NO_SHARD), a 1-element f32 all-reduce
 *     of the overflow flag (loss_scale != NONE) and one of the squared grad norm, over the shard
 *     group; then ZeRO-1/2 all-gather the flat buffer (numel_padded, param_dtype) and ZeRO-3
 *     all-gathers its persistent buffers (Σ numel_padded).
 *
 * Memory: peak logical bytes (elements × dtype size) per rank; every rank the same. "Owned" is
 * Σ shard_numel over the buffers (padding included); "full" is Σ numel_padded.
 *   params_master    owned × master_dtype; host when offload_params.
 *   params_gathered  param_dtype × REPLICATED: full if param_dtype != master_dtype, else 0;
 *                    FLAT_GLOBAL: full (ZeRO-1/2 keep the compute params whole);
 *                    SHARD_GRAD_OP / HYBRID_SHARD_ZERO2: full; FULL_SHARD / HYBRID_SHARD /
 *                    ZeRO-3: the root's gather + the largest other unit's gather + Σ numel_padded
 *                    of persistent buffers; with backward or forward prefetch the largest other
 *                    unit becomes the largest pair of adjacent units (neither the root), which
 *                    are gathered together.
 *   grads_unsharded  one micro-step's gradient: REPLICATED / FLAT_GLOBAL: full, else the
 *                    root's plus the largest other unit's Σ numel_padded (the root's gradient is
 *                    produced first (tied head) and reduced last (embeddings), each block's lives
 *                    from its backward to its reduction); in accum_dtype for a whole-model
 *                    LOCAL_UNSHARDED gradient without accumulation, else in param_dtype. With
 *                    no_sync over k > 1 (LOCAL_UNSHARDED), plus the accumulator: full ×
 *                    accum_dtype, held from the first micro-step to the sync.
 *   grads_sharded    owned × (REDUCED_SHARD ? accum_dtype : master_dtype): the reduced gradient
 *                    the optimizer reads; host when offload_optimizer.
 *   optim_states     2 × owned × optim_dtype; host when offload_optimizer.
 *   activations      sl_gpt2_kept_activation_bytes(model, b, T, param_dtype) (model.h).
 *   comm_buffers     the largest staging buffer of the step's collectives: an all-gather's
 *                    send shard (elements / n), a reduce-scatter's or all-reduce's whole input
 *                    (elements), in the collective's dtype.
 *   workspace        sl_gpt2_scratch_bytes(model, b, T, param_dtype) through each micro-step,
 *                    plus the largest sl_plan_gather_map_bytes of an all-gather inside it (one
 *                    bit per element gathered when a gather spans several buffers); or the step
 *                    phase's re-gather map alone, if larger. A kernel backend's own scratch
 *                    (its context's workspace, sized by its threads) is not part of the plan. */
typedef struct sl_plan {
    sl_dialect dialect;
    sl_strategy strategy;
    int fsdp_version;    /* 1 or 2; 0 when not FSDP */
    int zero_stage;      /* 0..3; -1 when not DeepSpeed */
    const char *follows; /* framework versions whose behaviour the plan reproduces */

    int world_size;       /* W */
    int num_machines;     /* M */
    int shard_group_size; /* G: W without hybrid sharding, W/M with it */
    int n_replicas;       /* W / G */

    int grad_accum_steps; /* k */
    sl_loss_norm loss_norm;
    bool deterministic;
    bool reshard_after_forward;
    bool use_orig_params;
    bool forward_prefetch;
    int backward_prefetch; /* 0 none, 1 BACKWARD_PRE, 2 BACKWARD_POST */
    bool limit_all_gathers;
    bool offload_params;           /* params_master lives in host memory (FSDP fsdp_offload_params;
                                      DeepSpeed offload_optimizer_device or offload_param_device = cpu:
                                      DeepSpeed keeps the fp32 masters with the optimizer) */
    bool offload_optimizer;        /* optim_states and grads_sharded live in host memory (FSDP CPU
                                      offload steps on the host; DeepSpeed offload_optimizer_device) */
    int64_t persistence_threshold; /* ZeRO-3 stage3_param_persistence_threshold */

    sl_precision precision;
    sl_accum_mode accum_mode;
    sl_loss_scaler_config scaler;
    sl_optim_config optim;

    /* run shape */
    int micro_batch_size; /* b, per rank per micro-step */
    int seq_len;          /* T */
    int steps;            /* optimizer steps */
    uint64_t seed;

    sl_layout_kind layout;
    int n_buffers;
    sl_flat_buffer *buffers;

    sl_observation predicted; /* dtype table, one step's collectives, memory per rank (above) */

    sl_config *config; /* a copy of what the plan was compiled from, with provenance; every key
                          the compiler consulted and the user did not set is added with its
                          default value and an SL_SOURCE_DEFAULT source */

    /* Why each precision field has its value: the dialect rule and the config entries it used,
     * e.g. "= param_dtype: FSDP1 reduces in the compute dtype (mixed_precision = bf16 from
     * --mixed_precision)". */
    char precision_why[SL_PREC_FIELD_COUNT][256];
} sl_plan;

/* Compiles config + model into a plan. Every value is validated (unknown or incompatible values
 * are SL_ERR_CONFIG errors naming the key, its source and the allowed values). */
sl_status sl_plan_compile(const sl_config *cfg, const sl_model_desc *model, sl_plan **out);
void sl_plan_destroy(sl_plan *plan);

/* The training sampler's options for this plan: its seed, world size, micro-batch, accumulation
 * and sequence length; the rest (mode, shuffle, start position) at their defaults. */
sl_sampler_options sl_plan_sampler_options(const sl_plan *plan);

/* The dtype table rows of DESIGN.md §4.3 computed from the precision fields. */
void sl_plan_dtype_table(const sl_plan *plan, sl_dtype out[SL_STAGE_COUNT]);

/* FSDP1's pre/post divide factors for W (DESIGN.md §4.4), as torch's
 * _get_gradient_predivide_factor computes them: pre starts at 1 and doubles while W % pre == 0
 * and W / pre > pre (so W = 3 gives 2 and W = 6 gives 4: the final doubling need not divide W);
 * post = W / pre. */
void sl_divide_factors_pow2(int world, double *pre, double *post);

/* The shard-group index and the replica index of a global rank: rank = replica·G + shard_rank. */
int sl_plan_shard_rank(const sl_plan *plan, int rank);
int sl_plan_replica(const sl_plan *plan, int rank);

/* The plan's header lines, its dtype table and each precision field with its provenance. */
void sl_plan_explain_dtypes(const sl_plan *plan, const sl_model_desc *model, FILE *f);
/* Human-readable explanation (dtype table, layout, schedule, memory, field provenance). */
void sl_plan_explain_text(const sl_plan *plan, const sl_model_desc *model, FILE *f);
/* One JSON object with at least "dtype_table", "precision", "layout", "schedule", "memory". */
void sl_plan_explain_json(const sl_plan *plan, const sl_model_desc *model, FILE *f);

#endif
