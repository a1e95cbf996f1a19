/* One transformer block of the reference GPT-2 (Hugging Face GPT2Block, pre-LN):
 *     residual2 = x + c_proj(attn(c_attn(ln_1(x))))
 *     residual3 = residual2 + mlp.c_proj(gelu(mlp.c_fc(ln_2(residual2)))) */
#include "ref/gpt2_acts.h"
#include "ref/ops.h"

/* out (n) = a + b, one rounding: a residual join, or the sum of two gradients. */
static void sl_ref_add(float *out, const float *a, const float *b, int64_t n, sl_dtype cd) {
    for (int64_t i = 0; i < n; i++)
        out[i] = sl_ref_round_value(a[i] + b[i], cd);
}

/* A block's parameter (or gradient) k. */
static float *sl_ref_block_tensor(float *const *tensors, const sl_ref_gpt2_acts *a, int l,
                                  sl_ref_block_param k) {
    return tensors[a->block[l * SL_REF_BLOCK_PARAMS + k]];
}

/* The residual stream entering block l: (B, T, C). */
static float *sl_ref_block_input(sl_ref_gpt2_acts *a, int l) {
    const int64_t BTC = (int64_t)a->B * a->T * a->C;
    return l == 0 ? a->encoded : a->residual3 + (l - 1) * BTC;
}

void sl_ref_gpt2_block_forward(const sl_model_desc *model, int l, float *const *params, sl_dtype cd,
                               sl_ref_gpt2_acts *acts) {
    (void)model;
    sl_ref_gpt2_acts *a = acts;
    const int B = a->B, T = a->T, C = a->C, H = a->H;
    const int64_t BT = (int64_t)B * T, BTC = BT * C, BHTT = (int64_t)B * H * T * T;
    const float *residual = sl_ref_block_input(a, l); // (B, T, C)
    float *ln1 = a->ln1 + l * BTC;                    // (B, T, C)
    float *ln1_mean = a->ln1_mean + l * BT;           // (B, T)
    float *ln1_rstd = a->ln1_rstd + l * BT;           // (B, T)
    float *qkv = a->qkv + l * BTC * 3;                // (B, T, 3C)
    float *atty = a->atty + l * BTC;                  // (B, T, C)
    float *preatt = a->preatt + l * BHTT;             // (B, H, T, T)
    float *att = a->att + l * BHTT;                   // (B, H, T, T)
    float *attproj = a->attproj + l * BTC;            // (B, T, C)
    float *residual2 = a->residual2 + l * BTC;        // (B, T, C)
    float *ln2 = a->ln2 + l * BTC;                    // (B, T, C)
    float *ln2_mean = a->ln2_mean + l * BT;           // (B, T)
    float *ln2_rstd = a->ln2_rstd + l * BT;           // (B, T)
    float *fch = a->fch + l * BTC * 4;                // (B, T, 4C)
    float *fch_gelu = a->fch_gelu + l * BTC * 4;      // (B, T, 4C)
    float *fcproj = a->fcproj + l * BTC;              // (B, T, C)
    float *residual3 = a->residual3 + l * BTC;        // (B, T, C)

    sl_ref_layernorm_forward(ln1, ln1_mean, ln1_rstd, residual,
                             sl_ref_block_tensor(params, a, l, SL_REF_LN1_W),
                             sl_ref_block_tensor(params, a, l, SL_REF_LN1_B), BT, C, cd);
    sl_ref_conv1d_forward(qkv, ln1, sl_ref_block_tensor(params, a, l, SL_REF_ATTN_W),
                          sl_ref_block_tensor(params, a, l, SL_REF_ATTN_B), BT, C, 3 * C, cd);
    sl_ref_attention_forward(atty, preatt, att, qkv, B, T, C, H, cd);
    sl_ref_conv1d_forward(attproj, atty, sl_ref_block_tensor(params, a, l, SL_REF_ATTNPROJ_W),
                          sl_ref_block_tensor(params, a, l, SL_REF_ATTNPROJ_B), BT, C, C, cd);
    sl_ref_add(residual2, residual, attproj, BTC, cd);
    sl_ref_layernorm_forward(ln2, ln2_mean, ln2_rstd, residual2,
                             sl_ref_block_tensor(params, a, l, SL_REF_LN2_W),
                             sl_ref_block_tensor(params, a, l, SL_REF_LN2_B), BT, C, cd);
    sl_ref_conv1d_forward(fch, ln2, sl_ref_block_tensor(params, a, l, SL_REF_FC_W),
                          sl_ref_block_tensor(params, a, l, SL_REF_FC_B), BT, C, 4 * C, cd);
    sl_ref_gelu_forward(fch_gelu, fch, BTC * 4, cd);
    sl_ref_conv1d_forward(fcproj, fch_gelu, sl_ref_block_tensor(params, a, l, SL_REF_FCPROJ_W),
                          sl_ref_block_tensor(params, a, l, SL_REF_FCPROJ_B), BT, 4 * C, C, cd);
    sl_ref_add(residual3, residual2, fcproj, BTC, cd);
}

/* Undoes sl_ref_gpt2_block_forward, last line first. On entry acts->dresidual holds
 * d(residual3); on return it holds d(block input). Where the residual stream forks, the branch
 * gradient is rounded, then added to the stream's gradient and rounded again, as autograd sums
 * two compute-dtype tensors. */
void sl_ref_gpt2_block_backward(const sl_model_desc *model, int l, float *const *params,
                                float **grads, sl_dtype cd, sl_ref_gpt2_acts *acts) {
    (void)model;
    sl_ref_gpt2_acts *a = acts;
    const int B = a->B, T = a->T, C = a->C, H = a->H;
    const int64_t BT = (int64_t)B * T, BTC = BT * C, BHTT = (int64_t)B * H * T * T;
    const float *residual = sl_ref_block_input(a, l);
    const float *ln1 = a->ln1 + l * BTC;
    const float *ln1_mean = a->ln1_mean + l * BT;
    const float *ln1_rstd = a->ln1_rstd + l * BT;
    const float *qkv = a->qkv + l * BTC * 3;
    const float *atty = a->atty + l * BTC;
    const float *att = a->att + l * BHTT;
    const float *residual2 = a->residual2 + l * BTC;
    const float *ln2 = a->ln2 + l * BTC;
    const float *ln2_mean = a->ln2_mean + l * BT;
    const float *ln2_rstd = a->ln2_rstd + l * BT;
    const float *fch = a->fch + l * BTC * 4;
    const float *fch_gelu = a->fch_gelu + l * BTC * 4;
    float *dresidual3 = a->dresidual; // (B, T, C) on entry
    float *dresidual2 = a->dresidual2;
    float *dresidual = a->dresidual; // (B, T, C) on return

    // residual3 = residual2 + fcproj: d(fcproj) = d(residual3)
    sl_ref_conv1d_backward(a->dfch, sl_ref_block_tensor(grads, a, l, SL_REF_FCPROJ_W),
                           sl_ref_block_tensor(grads, a, l, SL_REF_FCPROJ_B), a->scratch,
                           dresidual3, fch_gelu, sl_ref_block_tensor(params, a, l, SL_REF_FCPROJ_W),
                           BT, 4 * C, C, cd);
    sl_ref_gelu_backward(a->dfch, fch, a->dfch, BTC * 4, cd);
    sl_ref_conv1d_backward(a->dln, sl_ref_block_tensor(grads, a, l, SL_REF_FC_W),
                           sl_ref_block_tensor(grads, a, l, SL_REF_FC_B), a->scratch, a->dfch, ln2,
                           sl_ref_block_tensor(params, a, l, SL_REF_FC_W), BT, C, 4 * C, cd);
    sl_ref_layernorm_backward(a->dx, sl_ref_block_tensor(grads, a, l, SL_REF_LN2_W),
                              sl_ref_block_tensor(grads, a, l, SL_REF_LN2_B), a->scratch, a->dln,
                              residual2, sl_ref_block_tensor(params, a, l, SL_REF_LN2_W), ln2_mean,
                              ln2_rstd, BT, C, cd);
    // residual2 feeds both residual3 and ln_2
    sl_ref_add(dresidual2, dresidual3, a->dx, BTC, cd);

    // residual2 = x + attproj: d(attproj) = d(residual2)
    sl_ref_conv1d_backward(a->datty, sl_ref_block_tensor(grads, a, l, SL_REF_ATTNPROJ_W),
                           sl_ref_block_tensor(grads, a, l, SL_REF_ATTNPROJ_B), a->scratch,
                           dresidual2, atty, sl_ref_block_tensor(params, a, l, SL_REF_ATTNPROJ_W),
                           BT, C, C, cd);
    sl_ref_attention_backward(a->dqkv, a->datt, a->datty, qkv, att, B, T, C, H, cd);
    sl_ref_conv1d_backward(a->dln, sl_ref_block_tensor(grads, a, l, SL_REF_ATTN_W),
                           sl_ref_block_tensor(grads, a, l, SL_REF_ATTN_B), a->scratch, a->dqkv,
                           ln1, sl_ref_block_tensor(params, a, l, SL_REF_ATTN_W), BT, C, 3 * C, cd);
    sl_ref_layernorm_backward(a->dx, sl_ref_block_tensor(grads, a, l, SL_REF_LN1_W),
                              sl_ref_block_tensor(grads, a, l, SL_REF_LN1_B), a->scratch, a->dln,
                              residual, sl_ref_block_tensor(params, a, l, SL_REF_LN1_W), ln1_mean,
                              ln1_rstd, BT, C, cd);
    // the block input feeds both residual2 and ln_1
    sl_ref_add(dresidual, dresidual2, a->dx, BTC, cd);
}
