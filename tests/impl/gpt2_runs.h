/* One micro-step of GPT-2 (gpt-tiny) through the per-unit kernels API and through the reference,
 * and through the reference on a relabelled copy of the model that differs only in the order of
 * its f32 sums — the noise floor of DESIGN.md §9. */
#ifndef SHARDLAB_TESTS_GPT2_RUNS_H
#define SHARDLAB_TESTS_GPT2_RUNS_H

#include <stdint.h>

#include "shardlab/kernels.h"
#include "shardlab/model.h"

typedef struct gpt_inputs {
    sl_model_desc *desc;
    int B, T;
    float **params; /* [P] export layout, cd values */
    int32_t *inputs, *targets;
    float *dlosses;
} gpt_inputs;

typedef struct gpt_out {
    float **grads; /* [P] */
    float *losses; /* (B*T) */
} gpt_out;

/* gpt-tiny at a point away from initialisation, rounded to cd; random tokens, two padding
 * targets, dlosses in [-1, 1) / BT. */
void gpt_inputs_create(gpt_inputs *in, int B, int T, sl_dtype cd);
void gpt_inputs_destroy(gpt_inputs *in);
void gpt_out_create(gpt_out *o, const gpt_inputs *in);
void gpt_out_destroy(gpt_out *o, const gpt_inputs *in);

void gpt_ref_run(const gpt_inputs *in, sl_dtype cd, gpt_out *o);
/* The reference on the relabelled model (residual channels, heads, MLP units, vocabulary and
 * batch rows permuted), its losses and gradients mapped back to the original labels. */
void gpt_ref_run_permuted(const gpt_inputs *in, sl_dtype cd, gpt_out *o);
/* The per-unit API with parameters stored as param_dt, gradients as grad_dt, activations as
 * act_dt, on `threads` threads (the default thread count is restored afterwards). */
void gpt_impl_run(const sl_kernels *k, sl_kctx *ctx, const gpt_inputs *in, sl_dtype cd,
                  sl_dtype param_dt, sl_dtype grad_dt, sl_dtype act_dt, int threads, gpt_out *o);

/* ||a - b||_2 / ||b||_2 over n elements, in double. */
double rel_l2(const float *a, const float *b, int64_t n);

#endif
