/* One transformer block of the per-unit GPT-2 (Hugging Face GPT2Block, pre-LN), op for op as
 * ref/gpt2_block.c, so the rounding points are the reference's:
 *     residual2 = x + c_proj(attn(c_attn(ln_1(x))))
 *     residual3 = residual2 + mlp.c_proj(gelu(mlp.c_fc(ln_2(residual2))))
 * attproj and fcproj live only in the `proj` scratch until their residual join. Between ops the
 * context's progress function runs (communication in flight advances). */
#include "impl/cpu/gpt2_impl.h"

static sl_status sl_gpt2_block_check(const sl_impl_gpt2 *g, int l, const char *fn) {
    if (l >= 0 && l < g->L) return SL_OK;
    return sl_error_set(SL_ERR_INVALID_ARG, "%s: block %d does not exist; the model has %lld", fn,
                        l, (long long)g->L);
}

/* The views of block l's twelve parameters (or gradients). */
static sl_status sl_gpt2_block_views(const sl_impl_gpt2 *g, int l, const sl_tensor *tensors,
                                     const char *what, sl_tensor *out) {
    for (int k = 0; k < SL_GPT2_BLOCK_PARAMS; k++)
        SL_TRY(sl_impl_gpt2_param_view(g, tensors, g->block[l * SL_GPT2_BLOCK_PARAMS + k], what,
                                       &out[k]));
    return SL_OK;
}

/* The residual stream entering block l: (B, T, C). */
static sl_tensor sl_gpt2_block_input(const sl_impl_gpt2 *g, int l) {
    return l == 0 ? sl_impl_gpt2_act_view(g, g->encoded, 0, g->C)
                  : sl_impl_gpt2_act_view(g, g->residual3, l - 1, g->C);
}

sl_status sl_impl_gpt2_block_forward(sl_impl_gpt2 *g, int l, const sl_tensor *params) {
    SL_TRY(sl_gpt2_block_check(g, l, "sl_impl_gpt2_block_forward"));
    sl_tensor P[SL_GPT2_BLOCK_PARAMS];
    SL_TRY(sl_gpt2_block_views(g, l, params, "parameter", P));
    const sl_kernels *k = g->k;
    sl_kctx *ctx = g->ctx;
    const sl_dtype cd = g->cd;
    const int64_t C = g->C;
    const sl_tensor x = sl_gpt2_block_input(g, l);
    const sl_tensor ln1 = sl_impl_gpt2_act_view(g, g->ln1, l, C);
    const sl_tensor ln1_mean = sl_impl_gpt2_stat_view(g, g->ln1_mean, l);
    const sl_tensor ln1_rstd = sl_impl_gpt2_stat_view(g, g->ln1_rstd, l);
    const sl_tensor qkv = sl_impl_gpt2_act_view(g, g->qkv, l, 3 * C);
    const sl_tensor atty = sl_impl_gpt2_act_view(g, g->atty, l, C);
    const int64_t BHTT = g->B * g->H * g->T * g->T;
    const sl_tensor att = sl_tensor_4d((char *)g->att + (size_t)(l * BHTT) * sl_dtype_size(g->act),
                                       g->act, g->B, g->H, g->T, g->T);
    const sl_tensor proj = sl_impl_gpt2_act_view(g, g->proj, 0, C);
    const sl_tensor residual2 = sl_impl_gpt2_act_view(g, g->residual2, l, C);
    const sl_tensor ln2 = sl_impl_gpt2_act_view(g, g->ln2, l, C);
    const sl_tensor ln2_mean = sl_impl_gpt2_stat_view(g, g->ln2_mean, l);
    const sl_tensor ln2_rstd = sl_impl_gpt2_stat_view(g, g->ln2_rstd, l);
    const sl_tensor fch = sl_impl_gpt2_act_view(g, g->fch, l, 4 * C);
    const sl_tensor fch_gelu = sl_impl_gpt2_act_view(g, g->fch_gelu, l, 4 * C);
    const sl_tensor residual3 = sl_impl_gpt2_act_view(g, g->residual3, l, C);

    SL_TRY(k->layernorm_forward(ctx, cd, &ln1, &ln1_mean, &ln1_rstd, &x, &P[SL_GPT2_LN1_W],
                                &P[SL_GPT2_LN1_B]));
    sl_kctx_progress(ctx);
    SL_TRY(k->matmul_forward(ctx, cd, &qkv, &ln1, &P[SL_GPT2_ATTN_W], SL_WEIGHT_IN_OUT,
                             &P[SL_GPT2_ATTN_B]));
    sl_kctx_progress(ctx);
    SL_TRY(k->attention_forward(ctx, cd, &atty, NULL, &att, &qkv));
    sl_kctx_progress(ctx);
    SL_TRY(k->matmul_forward(ctx, cd, &proj, &atty, &P[SL_GPT2_ATTNPROJ_W], SL_WEIGHT_IN_OUT,
                             &P[SL_GPT2_ATTNPROJ_B]));
    sl_kctx_progress(ctx);
    SL_TRY(k->residual_forward(ctx, cd, &residual2, &x, &proj));
    sl_kctx_progress(ctx);
    SL_TRY(k->layernorm_forward(ctx, cd, &ln2, &ln2_mean, &ln2_rstd, &residual2, &P[SL_GPT2_LN2_W],
                                &P[SL_GPT2_LN2_B]));
    sl_kctx_progress(ctx);
    SL_TRY(k->matmul_forward(ctx, cd, &fch, &ln2, &P[SL_GPT2_FC_W], SL_WEIGHT_IN_OUT,
                             &P[SL_GPT2_FC_B]));
    sl_kctx_progress(ctx);
    SL_TRY(k->gelu_forward(ctx, cd, &fch_gelu, &fch));
    sl_kctx_progress(ctx);
    SL_TRY(k->matmul_forward(ctx, cd, &proj, &fch_gelu, &P[SL_GPT2_FCPROJ_W], SL_WEIGHT_IN_OUT,
                             &P[SL_GPT2_FCPROJ_B]));
    sl_kctx_progress(ctx);
    return k->residual_forward(ctx, cd, &residual3, &residual2, &proj);
}

/* Undoes sl_impl_gpt2_block_forward, last line first. On entry g->dresidual holds
 * d(residual3); on return d(block input). Where the stream forks, the branch gradient is rounded,
 * then joined to the stream's gradient and rounded again (ref/gpt2_block.c). */
sl_status sl_impl_gpt2_block_backward(sl_impl_gpt2 *g, int l, const sl_tensor *params,
                                      const sl_tensor *grads) {
    SL_TRY(sl_gpt2_block_check(g, l, "sl_impl_gpt2_block_backward"));
    sl_tensor P[SL_GPT2_BLOCK_PARAMS], G[SL_GPT2_BLOCK_PARAMS];
    SL_TRY(sl_gpt2_block_views(g, l, params, "parameter", P));
    SL_TRY(sl_gpt2_block_views(g, l, grads, "gradient", G));
    const sl_kernels *k = g->k;
    sl_kctx *ctx = g->ctx;
    const sl_dtype cd = g->cd;
    const int64_t C = g->C;
    const sl_tensor x = sl_gpt2_block_input(g, l);
    const sl_tensor ln1 = sl_impl_gpt2_act_view(g, g->ln1, l, C);
    const sl_tensor ln1_mean = sl_impl_gpt2_stat_view(g, g->ln1_mean, l);
    const sl_tensor ln1_rstd = sl_impl_gpt2_stat_view(g, g->ln1_rstd, l);
    const sl_tensor qkv = sl_impl_gpt2_act_view(g, g->qkv, l, 3 * C);
    const sl_tensor atty = sl_impl_gpt2_act_view(g, g->atty, l, C);
    const int64_t BHTT = g->B * g->H * g->T * g->T;
    const sl_tensor att = sl_tensor_4d((char *)g->att + (size_t)(l * BHTT) * sl_dtype_size(g->act),
                                       g->act, g->B, g->H, g->T, g->T);
    const sl_tensor residual2 = sl_impl_gpt2_act_view(g, g->residual2, l, C);
    const sl_tensor ln2 = sl_impl_gpt2_act_view(g, g->ln2, l, C);
    const sl_tensor ln2_mean = sl_impl_gpt2_stat_view(g, g->ln2_mean, l);
    const sl_tensor ln2_rstd = sl_impl_gpt2_stat_view(g, g->ln2_rstd, l);
    const sl_tensor fch = sl_impl_gpt2_act_view(g, g->fch, l, 4 * C);
    const sl_tensor fch_gelu = sl_impl_gpt2_act_view(g, g->fch_gelu, l, 4 * C);
    const sl_tensor dresidual =
        sl_impl_gpt2_act_view(g, g->dresidual, 0, C); /* d(residual3) on entry */
    const sl_tensor dresidual2 = sl_impl_gpt2_act_view(g, g->dresidual2, 0, C);
    const sl_tensor dln = sl_impl_gpt2_act_view(g, g->dln, 0, C);
    const sl_tensor dx = sl_impl_gpt2_act_view(g, g->dx, 0, C);
    const sl_tensor datty = sl_impl_gpt2_act_view(g, g->datty, 0, C);
    const sl_tensor dqkv = sl_impl_gpt2_act_view(g, g->dqkv, 0, 3 * C);
    const sl_tensor dfch = sl_impl_gpt2_act_view(g, g->dfch, 0, 4 * C);

    // residual3 = residual2 + fcproj: d(fcproj) = d(residual3)
    SL_TRY(k->matmul_backward(ctx, cd, &dfch, &G[SL_GPT2_FCPROJ_W], &G[SL_GPT2_FCPROJ_B],
                              &dresidual, &fch_gelu, &P[SL_GPT2_FCPROJ_W], SL_WEIGHT_IN_OUT));
    sl_kctx_progress(ctx);
    SL_TRY(k->gelu_backward(ctx, cd, &dfch, &fch, &dfch));
    sl_kctx_progress(ctx);
    SL_TRY(k->matmul_backward(ctx, cd, &dln, &G[SL_GPT2_FC_W], &G[SL_GPT2_FC_B], &dfch, &ln2,
                              &P[SL_GPT2_FC_W], SL_WEIGHT_IN_OUT));
    sl_kctx_progress(ctx);
    SL_TRY(k->layernorm_backward(ctx, cd, &dx, &G[SL_GPT2_LN2_W], &G[SL_GPT2_LN2_B], &dln,
                                 &residual2, &P[SL_GPT2_LN2_W], &ln2_mean, &ln2_rstd));
    sl_kctx_progress(ctx);
    // residual2 feeds both residual3 and ln_2
    SL_TRY(k->residual_forward(ctx, cd, &dresidual2, &dresidual, &dx));
    sl_kctx_progress(ctx);

    // residual2 = x + attproj: d(attproj) = d(residual2)
    SL_TRY(k->matmul_backward(ctx, cd, &datty, &G[SL_GPT2_ATTNPROJ_W], &G[SL_GPT2_ATTNPROJ_B],
                              &dresidual2, &atty, &P[SL_GPT2_ATTNPROJ_W], SL_WEIGHT_IN_OUT));
    sl_kctx_progress(ctx);
    SL_TRY(k->attention_backward(ctx, cd, &dqkv, &datty, &qkv, &att));
    sl_kctx_progress(ctx);
    SL_TRY(k->matmul_backward(ctx, cd, &dln, &G[SL_GPT2_ATTN_W], &G[SL_GPT2_ATTN_B], &dqkv, &ln1,
                              &P[SL_GPT2_ATTN_W], SL_WEIGHT_IN_OUT));
    sl_kctx_progress(ctx);
    SL_TRY(k->layernorm_backward(ctx, cd, &dx, &G[SL_GPT2_LN1_W], &G[SL_GPT2_LN1_B], &dln, &x,
                                 &P[SL_GPT2_LN1_W], &ln1_mean, &ln1_rstd));
    sl_kctx_progress(ctx);
    // the block input feeds both residual2 and ln_1
    return k->residual_forward(ctx, cd, &dresidual, &dresidual2, &dx);
}
