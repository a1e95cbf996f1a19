/* ref/gpt2.h — the reference GPT-2 forward and backward, in plain loops, per sharding unit.
 *
 * Math is Hugging Face GPT-2's: pre-LN blocks, LayerNorm eps 1e-5, tanh GELU, causal attention
 * scaled by 1/sqrt(head_dim), learned positions, LM head tied to wte, cross-entropy.
 *
 * Precision: every arithmetic operation runs in f32 (sums in f32, sequential, in index order,
 * unless a comment says otherwise). Every tensor an op produces — activations, activation
 * gradients and parameter-gradient contributions — is rounded to the compute dtype `cd` (the
 * plan's param_dtype) when written, as a framework computing in `cd` stores it. LayerNorm's
 * mean/rstd and the per-token losses stay f32. Parameters passed in must already hold values of
 * `cd` (the caller gathers and rounds them).
 *
 * Parameters and gradients are addressed by the model description's parameter index:
 * params[p] / grads[p] point to the full tensor of parameter p in export layout (Conv1D (in,out)).
 * Backward functions ADD their contribution into grads[p]: g = round_cd(g + round_cd(contrib)),
 * so the caller zeroes grads before a micro-step. */
#ifndef SHARDLAB_REF_GPT2_H
#define SHARDLAB_REF_GPT2_H

#include <stdint.h>

#include "shardlab/dtype.h"
#include "shardlab/model.h"
#include "shardlab/status.h"

typedef struct sl_ref_gpt2_acts sl_ref_gpt2_acts;

/* Activation buffers for a (B, T) micro-batch; T <= block_size. */
sl_status sl_ref_gpt2_acts_create(const sl_model_desc *model, int B, int T, sl_ref_gpt2_acts **out);
void sl_ref_gpt2_acts_destroy(sl_ref_gpt2_acts *acts);
/* f32 elements held, for memory accounting. */
int64_t sl_ref_gpt2_acts_numel(const sl_ref_gpt2_acts *acts);

/* encoded = wte[inputs] + wpe[0..T)                      (B, T, C) */
void sl_ref_gpt2_embed_forward(const sl_model_desc *model, float *const *params,
                               const int32_t *inputs, sl_dtype cd, sl_ref_gpt2_acts *acts);
/* block l: x += attn(ln_1(x)); x += mlp(ln_2(x))          (B, T, C) */
void sl_ref_gpt2_block_forward(const sl_model_desc *model, int l, float *const *params, sl_dtype cd,
                               sl_ref_gpt2_acts *acts);
/* logits = ln_f(x) @ wte^T (B, T, V); losses[b,t] = -log softmax(logits)[targets[b,t]] in f32.
 * A target < 0 marks padding: its loss is 0. */
void sl_ref_gpt2_head_forward(const sl_model_desc *model, float *const *params,
                              const int32_t *targets, sl_dtype cd, sl_ref_gpt2_acts *acts,
                              float *losses);

/* Seeds backward with dlosses (B, T) = d objective / d losses[b,t] (f32; 0 for padding). */
void sl_ref_gpt2_head_backward(const sl_model_desc *model, float *const *params, float **grads,
                               const int32_t *targets, const float *dlosses, sl_dtype cd,
                               sl_ref_gpt2_acts *acts);
void sl_ref_gpt2_block_backward(const sl_model_desc *model, int l, float *const *params,
                                float **grads, sl_dtype cd, sl_ref_gpt2_acts *acts);
void sl_ref_gpt2_embed_backward(const sl_model_desc *model, float **grads, const int32_t *inputs,
                                sl_dtype cd, sl_ref_gpt2_acts *acts);

#endif
