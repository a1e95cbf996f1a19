/* impl/cpu/gpt2_impl.h — the per-unit GPT-2 of the kernel interface (private to impl/cpu): its
 * activation buffers and the views the units hand to the ops. */
#ifndef SHARDLAB_IMPL_GPT2_IMPL_H
#define SHARDLAB_IMPL_GPT2_IMPL_H

#include <stdint.h>

#include "shardlab/kernels.h"

/* A block's parameters, in the model description's order within its unit. */
typedef enum sl_gpt2_block_param {
    SL_GPT2_LN1_W,
    SL_GPT2_LN1_B,
    SL_GPT2_ATTN_W,
    SL_GPT2_ATTN_B,
    SL_GPT2_ATTNPROJ_W,
    SL_GPT2_ATTNPROJ_B,
    SL_GPT2_LN2_W,
    SL_GPT2_LN2_B,
    SL_GPT2_FC_W,
    SL_GPT2_FC_B,
    SL_GPT2_FCPROJ_W,
    SL_GPT2_FCPROJ_B,
    SL_GPT2_BLOCK_PARAMS
} sl_gpt2_block_param;

struct sl_impl_gpt2 {
    const sl_kernels *k;
    sl_kctx *ctx;
    const sl_model_desc *model;
    sl_dtype cd;  /* compute (rounding) dtype */
    sl_dtype act; /* storage of every activation and activation gradient except the F32 stats */
    int64_t B, T, C, H, V, L;

    /* parameter indices into the model description */
    int wte, wpe, lnf_w, lnf_b;
    int *block; /* (L, SL_GPT2_BLOCK_PARAMS) */

    void *memory; /* every buffer below, from k->alloc */
    int64_t activation_bytes, gradient_bytes;

    /* kept from forward to backward; per-layer buffers are stacked (L, ...) */
    void *encoded;   // (B, T, C)
    void *ln1;       // (L, B, T, C)
    float *ln1_mean; // (L, B, T) f32
    float *ln1_rstd; // (L, B, T) f32
    void *qkv;       // (L, B, T, 3C)
    void *atty;      // (L, B, T, C)
    void *att;       // (L, B, H, T, T)
    void *residual2; // (L, B, T, C)
    void *ln2;       // (L, B, T, C)
    float *ln2_mean; // (L, B, T) f32
    float *ln2_rstd; // (L, B, T) f32
    void *fch;       // (L, B, T, 4C)
    void *fch_gelu;  // (L, B, T, 4C)
    void *residual3; // (L, B, T, C)
    void *lnf;       // (B, T, C)
    float *lnf_mean; // (B, T) f32
    float *lnf_rstd; // (B, T) f32
    void *logits;    // (B, T, V); head backward overwrites it with dlogits
    float *ce_stats; // (B, T, 2) f32: the classifier's row max and Σ exp

    /* one layer's worth, live during backward (proj also during forward) */
    void *proj;       // (B, T, C) attproj or fcproj before its residual join
    void *dresidual;  // (B, T, C) gradient of the residual stream where backward has reached
    void *dresidual2; // (B, T, C)
    void *dln;        // (B, T, C) gradient of a LayerNorm's output
    void *dx;         // (B, T, C) gradient of a LayerNorm's input, before joining the stream
    void *datty;      // (B, T, C)
    void *dqkv;       // (B, T, 3C)
    void *dfch;       // (B, T, 4C) gradient of fch_gelu, then (in place) of fch
};

/* (B, T, width) slice `layer` of a stacked buffer in the activation dtype. */
sl_tensor sl_impl_gpt2_act_view(const sl_impl_gpt2 *g, void *base, int64_t layer, int64_t width);
/* (B, T) slice `layer` of a stacked f32 statistic. */
sl_tensor sl_impl_gpt2_stat_view(const sl_impl_gpt2 *g, float *base, int64_t layer);
/* The view of parameter (or gradient) p from the caller's array, named after the parameter and
 * checked against the model description's shape. */
sl_status sl_impl_gpt2_param_view(const sl_impl_gpt2 *g, const sl_tensor *tensors, int p,
                                  const char *what, sl_tensor *out);
/* The residual stream entering ln_f: the last block's output, or the embedding when L = 0. */
sl_tensor sl_impl_gpt2_final_residual(const sl_impl_gpt2 *g);

#endif
