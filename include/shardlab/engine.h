/* The sharded training engine (DESIGN.md §5, §6, §8): one process per rank executing a plan the
 * way the reference executes it for that rank — the same units gathered and released in the same
 * order, the same collectives (through sl_comm), the same accumulation, clipping, loss scaling
 * and AdamW rules — with every buffer in its plan dtype and every allocation accounted.
 *
 * Typical use (examples/custom_model shows a whole program):
 *
 *     sl_session *s;   sl_session_create_from_env(&s);          // comm world + launch config
 *     sl_plan *plan;   sl_session_compile_plan(s, desc, &plan);  // the config the launcher sent
 *     sl_engine *e;    sl_engine_create(s, plan, &model, NULL, &e);
 *     for each step:   sl_engine_step_begin(e, global_tokens);
 *                      for m < k: sl_engine_micro_step(e, m, inputs, targets, &loss_sum);
 *                      sl_engine_optimizer_step(e, &record);
 *     sl_engine_save_model(e, "model.safetensors");
 *
 * Several engines may live in one process, each with its own plan (a ZeRO-3 bf16 teacher used
 * for forward only beside a ZeRO-2 fp32-master student): each has its own communicators, split
 * from the session's world, its own state and its own accounting.
 *
 * Every call is collective over the plan's world: all ranks make the same calls in the same
 * order. */
#ifndef SHARDLAB_ENGINE_H
#define SHARDLAB_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "shardlab/comm.h"
#include "shardlab/config.h"
#include "shardlab/kernels.h"
#include "shardlab/model.h"
#include "shardlab/observe.h"
#include "shardlab/plan.h"
#include "shardlab/status.h"
#include "shardlab/trajectory.h"

/* ---- session: the process's place in the job ---------------------------------------------- */

typedef struct sl_session sl_session;

/* The world communicator of the launch environment (sl_comm_create_from_env: MPI under
 * `shardlab launch`, one local rank otherwise) and the configuration the launcher resolved
 * (sl_config_load_env). */
sl_status sl_session_create_from_env(sl_session **out);
void sl_session_destroy(sl_session *s);
int sl_session_rank(const sl_session *s);
int sl_session_world_size(const sl_session *s);
sl_comm *sl_session_comm(sl_session *s);
/* The session's configuration; a program may add its own flags with sl_config_set before
 * compiling a plan. */
sl_config *sl_session_config(sl_session *s);
/* Compiles the session's configuration for `model`. SL_ERR_CONFIG when the plan's
 * num_processes differs from the number of processes actually running (the message names both
 * and the launch command that fixes it). */
sl_status sl_session_compile_plan(sl_session *s, const sl_model_desc *model, sl_plan **out);
/* vals[i] = Σ over ranks of vals[i], summed in rank order in f64 (the same bits on every
 * rank): for metrics, outside every engine's recorded schedule. */
sl_status sl_session_sum_f64(sl_session *s, double *vals, int n);

/* ---- models: per-unit callbacks on gathered parameter views -------------------------------- */

/* One rank's micro-batch: token ids (B, T); a target < 0 is padding (no loss, no gradient). */
typedef struct sl_batch {
    const int32_t *inputs;
    const int32_t *targets;
    int B, T;
} sl_batch;

/* A model the engine can train: its description (parameters, units; units[0] is the root,
 * which owns the model's two ends) and callbacks that compute on views of gathered parameters.
 * params[p] / grads[p] (indexed like desc->params) are valid for the parameters of the unit
 * being run (the root's also during every other unit); params hold values of the plan's
 * param_dtype in that storage, grads are param_dtype storage (or f32 storage holding
 * param_dtype values: each tensor's dtype says which) the callbacks ACCUMULATE into
 * (g = round(g + round(contribution)); the engine zeroes them). The order of calls in one
 * micro-step:
 *     forward(0), forward(1), ..., forward(n-1), loss_forward,
 *     loss_backward, backward(n-1), ..., backward(1), backward(0)
 * so unit 0's forward is the model's input end and loss_forward/loss_backward its output end. */
typedef struct sl_engine_model {
    const sl_model_desc *desc;
    void *self;
    sl_status (*forward)(void *self, int unit, const sl_tensor *params, const sl_batch *batch);
    /* losses (B·T, f32) = per-token loss, 0 where the target is padding */
    sl_status (*loss_forward)(void *self, const sl_tensor *params, const sl_batch *batch,
                              float *losses);
    /* dlosses (B·T, f32) = d objective / d losses */
    sl_status (*loss_backward)(void *self, const sl_tensor *params, const sl_tensor *grads,
                               const sl_batch *batch, const float *dlosses);
    sl_status (*backward)(void *self, int unit, const sl_tensor *params, const sl_tensor *grads,
                          const sl_batch *batch);
    int64_t activation_bytes;    /* kept from forward to backward (category `activations`) */
    int64_t workspace_bytes;     /* the model's scratch, live during a micro-step (`workspace`) */
    void (*destroy)(void *self); /* may be NULL */
} sl_engine_model;

/* The built-in GPT-2 on a kernel table: activations stored in the plan's param_dtype. The
 * kernels' context is the engine's (sl_engine_kernel_context), so create the engine with
 * sl_engine_create_gpt2 below, which wires both. */
sl_status sl_engine_gpt2_model(const sl_kernels *k, sl_kctx *ctx, const sl_model_desc *desc,
                               const sl_plan *plan, sl_engine_model *out);

/* ---- the engine ------------------------------------------------------------------------------ */

typedef struct sl_engine sl_engine;

typedef struct sl_engine_options {
    /* weights to start from, under the model's parameter names: a safetensors file, or the
     * Hugging Face layout (an export directory or its index; see sl_engine_save_model_hf);
     * NULL: the description's init rules with plan->seed (the reference's initial values, bit
     * for bit) */
    const char *init_from;
    /* reductions in rank order (DESIGN.md §4.5); default: plan->deterministic */
    int deterministic; /* -1 plan, 0 native, 1 deterministic */
    /* forward-only engine (a teacher): no gradients, no optimizer state */
    bool inference_only;
    /* keep the step-1 gradients for sl_engine_gather_full (an owned-size f32 copy) */
    bool keep_step1_grads;
} sl_engine_options;

sl_engine_options sl_engine_options_default(void);

/* Shards the initial parameters of `model` per the plan and allocates the rank's state. The
 * plan and model->desc must outlive the engine; the engine takes ownership of model->self
 * (model->destroy is called by sl_engine_destroy, or here when creation fails). */
sl_status sl_engine_create(sl_session *s, const sl_plan *plan, const sl_engine_model *model,
                           const sl_engine_options *opt, sl_engine **out);
/* sl_engine_create with the built-in GPT-2 on the CPU kernels. */
sl_status sl_engine_create_gpt2(sl_session *s, const sl_plan *plan, const sl_model_desc *desc,
                                const sl_engine_options *opt, sl_engine **out);
void sl_engine_destroy(sl_engine *e);

sl_kctx *sl_engine_kernel_context(sl_engine *e);
const sl_plan *sl_engine_plan(const sl_engine *e);

/* Starts an optimizer step. global_tokens: the valid targets of the whole global batch (all
 * ranks, all micro-steps), which the loss normalisation of DESIGN.md §5 needs; every rank
 * passes the same number (the sampler is a pure function, so each rank can count it). */
sl_status sl_engine_step_begin(sl_engine *e, int64_t global_tokens);

/* Forward and backward of micro-step `micro` (0..k-1) on this rank's batch; *loss_sum receives
 * Σ of this rank's token losses (f64, unscaled). */
sl_status sl_engine_micro_step(sl_engine *e, int micro, const sl_batch *batch, double *loss_sum);

/* Whether micro-step `micro` ends with a gradient reduction (DESIGN.md §4.2: no_sync
 * accumulation reduces at the last micro-step only). */
bool sl_engine_syncs(const sl_engine *e, int micro);

/* The loss scale the current step's backward uses. */
double sl_engine_loss_scale(const sl_engine *e);

/* Overflow check, unscaling, global norm, clipping, AdamW on this rank's shard, loss scaler and
 * LR schedule. Fills rec (step, loss over the global batch, grad_norm, loss_scale, skipped, lr,
 * tokens; eval_loss NaN). */
sl_status sl_engine_optimizer_step(sl_engine *e, sl_trajectory_step *rec);

/* Forward only on this rank's batch with the current parameters: per-token losses (B·T). */
sl_status sl_engine_forward(sl_engine *e, const sl_batch *batch, float *losses);

/* The full value of every parameter (f32 arrays indexed like desc->params): the masters
 * (which = SL_ENGINE_MASTERS), the gradient the step-1 optimizer read, unscaled
 * (SL_ENGINE_STEP1_GRADS, available after the first optimizer step; the reference's
 * grads_step1), or AdamW's first and second moments (SL_ENGINE_EXP_AVG, SL_ENGINE_EXP_AVG_SQ;
 * not for an inference-only engine). Written on rank `root` only; arrays may be NULL
 * elsewhere. */
typedef enum sl_engine_state {
    SL_ENGINE_MASTERS,
    SL_ENGINE_STEP1_GRADS,
    SL_ENGINE_EXP_AVG,
    SL_ENGINE_EXP_AVG_SQ
} sl_engine_state;
sl_status sl_engine_gather_full(sl_engine *e, sl_engine_state which, int root, float **arrays);

/* The loaded initial value of every parameter (load_dtype values in f32; the reference's
 * init.safetensors): computed locally, no communication. */
sl_status sl_engine_initial_values(sl_engine *e, float **arrays);

/* Full masters in Hugging Face layout (f32 safetensors), written by rank 0. */
sl_status sl_engine_save_model(sl_engine *e, const char *path);

/* The model export of DESIGN.md §7, written by rank 0: the directory `dir` with config.json
 * (GPT-2 models) and model.safetensors, or shards model-0000k-of-0000N.safetensors of at most
 * max_shard_size bytes with model.safetensors.index.json — what transformers'
 * GPT2LMHeadModel.from_pretrained loads. The directory appears whole or not at all. */
typedef struct sl_engine_export_options {
    int64_t max_shard_size; /* bytes of tensor data per file; <= 0: 5 GB (transformers' "5GB") */
    /* 16-bit weights (DeepSpeed's zero3_save_16bit_model): the masters rounded to nearest even
     * into the plan's param_dtype when it is 16-bit, else into bf16; otherwise f32 masters */
    bool save_16bit;
} sl_engine_export_options;
sl_status sl_engine_save_model_hf(sl_engine *e, const char *dir,
                                  const sl_engine_export_options *opt);

/* What this engine observed (DESIGN.md §9 T1), in the schema of the plan's prediction: the
 * dtype table, the collectives of the first optimizer step, and every rank's peak bytes per
 * category (gathered: collective). */
sl_status sl_engine_observation(sl_engine *e, sl_observation *out);

/* Bytes the comm layer staged internally (not part of the plan's categories). */
int64_t sl_engine_comm_scratch_peak(const sl_engine *e);

/* Bytes the kernel backend's context holds for its own scratch (matmul tiles, per-thread
 * attention rows): they grow with the backend's thread count, which no plan knows, so they are
 * reported beside the plan's categories rather than inside `workspace`. */
int64_t sl_engine_kernel_scratch_bytes(const sl_engine *e);

/* Seconds this rank has spent blocked waiting for the engine's collectives since the engine was
 * created: the communication that compute did not hide (exposed communication). */
double sl_engine_comm_wait_seconds(const sl_engine *e);

#endif
