/* ref/gpt2_acts.h — the reference's activation buffers (private to ref/ and its tests).
 *
 * The forward buffers are llm.c's ActivationTensors, carved in the order and sizes that
 * sl_gpt2_activation_numel counts. The backward buffers hold one layer's activation gradients
 * at a time: each block's backward consumes the gradient of its output and leaves the gradient
 * of its input in dresidual for the block before it. */
#ifndef SHARDLAB_REF_GPT2_ACTS_H
#define SHARDLAB_REF_GPT2_ACTS_H

#include <stdint.h>

#include "ref/gpt2.h"

/* A block's parameters, in the model description's order within the unit. */
typedef enum sl_ref_block_param {
    SL_REF_LN1_W,
    SL_REF_LN1_B,
    SL_REF_ATTN_W,
    SL_REF_ATTN_B,
    SL_REF_ATTNPROJ_W,
    SL_REF_ATTNPROJ_B,
    SL_REF_LN2_W,
    SL_REF_LN2_B,
    SL_REF_FC_W,
    SL_REF_FC_B,
    SL_REF_FCPROJ_W,
    SL_REF_FCPROJ_B,
    SL_REF_BLOCK_PARAMS
} sl_ref_block_param;

struct sl_ref_gpt2_acts {
    int B, T, C, H, V, L;

    /* Parameter indices into the model description, looked up by name once. */
    int wte, wpe, lnf_w, lnf_b;
    int *block; /* (L, SL_REF_BLOCK_PARAMS) */

    float *memory; /* every float buffer below, in one allocation */
    int64_t numel;
    int64_t forward_numel; /* = sl_gpt2_activation_numel */

    /* forward */
    float *encoded;   // (B, T, C)
    float *ln1;       // (L, B, T, C)
    float *ln1_mean;  // (L, B, T)
    float *ln1_rstd;  // (L, B, T)
    float *qkv;       // (L, B, T, 3C)
    float *atty;      // (L, B, T, C)
    float *preatt;    // (L, B, H, T, T)
    float *att;       // (L, B, H, T, T)
    float *attproj;   // (L, B, T, C)
    float *residual2; // (L, B, T, C)
    float *ln2;       // (L, B, T, C)
    float *ln2_mean;  // (L, B, T)
    float *ln2_rstd;  // (L, B, T)
    float *fch;       // (L, B, T, 4C)
    float *fch_gelu;  // (L, B, T, 4C)
    float *fcproj;    // (L, B, T, C)
    float *residual3; // (L, B, T, C)
    float *lnf;       // (B, T, C)
    float *lnf_mean;  // (B, T)
    float *lnf_rstd;  // (B, T)
    float *logits;    // (B, T, V)
    float *probs;     // (B, T, V) f32; head backward overwrites it with dlogits
    float *losses;    // (B, T) f32

    /* backward, one layer's worth */
    float *dresidual;  // (B, T, C) gradient of the residual stream where backward has reached
    float *dresidual2; // (B, T, C)
    float *dln;        // (B, T, C) gradient of a LayerNorm's output (ln_1, ln_2 or ln_f)
    float *dx;         // (B, T, C) gradient of a LayerNorm's input, before joining the stream
    float *datty;      // (B, T, C)
    float *dqkv;       // (B, T, 3C)
    float *datt;       // (B, H, T, T)
    float *dfch;       // (B, T, 4C) gradient of fch_gelu, then (in place) of fch
    float *scratch;    // (4C * C) weight-gradient sums and transposed weights
    int32_t *done;     // (B, T) token bookkeeping of the embedding backward
};

#endif
