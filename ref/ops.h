/* ref/ops.h — the reference's layer kernels (private to ref/): plain loops, f32 arithmetic, every
 * produced tensor rounded to the compute dtype `cd` once, when written.
 *
 * Shape letters: N = B*T rows, C channels, H heads, hs = C/H, V vocabulary, IC/OC a Conv1D's in
 * and out features. Every sum is an f32 accumulation that starts from 0 and adds its terms in
 * increasing order of the summed index, so a result is a pure function of its inputs.
 * Backward functions overwrite their input-gradient outputs and ADD their parameter-gradient
 * contributions with sl_ref_grad_add. */
#ifndef SHARDLAB_REF_OPS_H
#define SHARDLAB_REF_OPS_H

#include <stdint.h>

#include "shardlab/dtype.h"

/* x as a `cd` buffer would hold it. */
static inline float sl_ref_round_value(float x, sl_dtype cd) {
    return cd == SL_DTYPE_F32 ? x : sl_round_to(x, cd);
}
void sl_ref_round_buffer(float *x, int64_t n, sl_dtype cd);
/* grad[i] = round_cd(grad[i] + round_cd(contrib[i])); contrib is rounded in place. */
void sl_ref_grad_add(float *grad, float *contrib, int64_t n, sl_dtype cd);

/* out (B,T,C) = wte[inp[b,t]] + wpe[t]. */
void sl_ref_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                            int B, int T, int C, sl_dtype cd);
/* Undoes sl_ref_encoder_forward: dwte[v] += Σ_{bt: inp[bt]=v} dout[bt] and dwpe[t] += Σ_b
 * dout[b,t], each sum in index order. row (C) and done (B*T) are scratch. */
void sl_ref_encoder_backward(float *dwte, float *dwpe, float *row, int32_t *done, const float *dout,
                             const int32_t *inp, int B, int T, int C, sl_dtype cd);

/* out (N,C) = (inp - mean) * rstd * weight + bias, eps 1e-5, biased variance; mean and rstd
 * (N) stay f32. */
void sl_ref_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int64_t N, int C,
                              sl_dtype cd);
/* Undoes sl_ref_layernorm_forward: dinp (N,C) overwritten; dweight, dbias (C) accumulated.
 * scratch holds 2C floats. */
void sl_ref_layernorm_backward(float *dinp, float *dweight, float *dbias, float *scratch,
                               const float *dout, const float *inp, const float *weight,
                               const float *mean, const float *rstd, int64_t N, int C, sl_dtype cd);

/* Hugging Face Conv1D: out[n,o] = (Σ_i inp[n,i] * weight[i,o]) + bias[o], weight (IC,OC). */
void sl_ref_conv1d_forward(float *out, const float *inp, const float *weight, const float *bias,
                           int64_t N, int IC, int OC, sl_dtype cd);
/* Undoes sl_ref_conv1d_forward: dinp (N,IC) overwritten; dweight (IC,OC) and dbias (OC)
 * accumulated. scratch holds IC*OC floats. */
void sl_ref_conv1d_backward(float *dinp, float *dweight, float *dbias, float *scratch,
                            const float *dout, const float *inp, const float *weight, int64_t N,
                            int IC, int OC, sl_dtype cd);

/* LM head tied to wte: logits[n,v] = Σ_c inp[n,c] * wte[v,c], wte (V,C), no bias. */
void sl_ref_logits_forward(float *logits, const float *inp, const float *wte, int64_t N, int C,
                           int V, sl_dtype cd);
/* Undoes sl_ref_logits_forward: dinp (N,C) overwritten; dwte (V,C) accumulated row by row.
 * row holds C floats. */
void sl_ref_logits_backward(float *dinp, float *dwte, float *row, const float *dlogits,
                            const float *inp, const float *wte, int64_t N, int C, int V,
                            sl_dtype cd);

/* Causal multi-head attention on qkv (B,T,3C) laid out [q | k | v], heads contiguous in each:
 * preatt (B,H,T,T) = q·k / sqrt(hs), att (B,H,T,T) = softmax over t2 <= t (0 above the
 * diagonal), out (B,T,C) = att @ v. */
void sl_ref_attention_forward(float *out, float *preatt, float *att, const float *qkv, int B, int T,
                              int C, int H, sl_dtype cd);
/* Undoes sl_ref_attention_forward: dqkv (B,T,3C) overwritten; datt (B,H,T,T) is scratch. */
void sl_ref_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int H, sl_dtype cd);

/* out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), elementwise over n values. */
void sl_ref_gelu_forward(float *out, const float *inp, int64_t n, sl_dtype cd);
/* Undoes sl_ref_gelu_forward; dinp may alias dout. */
void sl_ref_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n, sl_dtype cd);

/* probs (N,V) = softmax(logits) in f32; losses (N) = logsumexp(logits) - logits[target] in f32,
 * 0 where target < 0 (padding). */
void sl_ref_crossentropy_forward(float *losses, float *probs, const float *logits,
                                 const int32_t *targets, int64_t N, int V);
/* Undoes sl_ref_crossentropy_forward: dlogits (N,V) = dlosses * (probs - onehot(target)), 0 for
 * padding rows whatever dlosses says. dlogits may alias probs. */
void sl_ref_crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets,
                                  const float *dlosses, int64_t N, int V, sl_dtype cd);

#endif
