/* The root unit's two ends of the per-unit GPT-2, op for op as ref/gpt2_model.c: the embedding
 * (wte, wpe) and the head (ln_f, LM head tied to wte, fused softmax cross-entropy). */
#include "impl/cpu/gpt2_impl.h"

static sl_tensor sl_gpt2_tokens(const sl_impl_gpt2 *g, const int32_t *ids, const char *name) {
    sl_tensor t = sl_tensor_2d((void *)ids, SL_DTYPE_I32, g->B, g->T);
    t.name = name;
    return t;
}

static sl_status sl_gpt2_host_array(const void *p, const char *what, const char *fn) {
    if (p) return SL_OK;
    return sl_error_set(SL_ERR_INVALID_ARG, "%s: %s is NULL; pass an array of B*T elements", fn,
                        what);
}

sl_status sl_impl_gpt2_embed_forward(sl_impl_gpt2 *g, const sl_tensor *params,
                                     const int32_t *inputs) {
    SL_TRY(sl_gpt2_host_array(inputs, "inputs", "sl_impl_gpt2_embed_forward"));
    sl_tensor wte, wpe;
    SL_TRY(sl_impl_gpt2_param_view(g, params, g->wte, "parameter", &wte));
    SL_TRY(sl_impl_gpt2_param_view(g, params, g->wpe, "parameter", &wpe));
    const sl_tensor tokens = sl_gpt2_tokens(g, inputs, "inputs");
    const sl_tensor encoded = sl_impl_gpt2_act_view(g, g->encoded, 0, g->C);
    return g->k->encoder_forward(g->ctx, g->cd, &encoded, &tokens, &wte, &wpe);
}

sl_status sl_impl_gpt2_head_forward(sl_impl_gpt2 *g, const sl_tensor *params,
                                    const int32_t *targets, float *losses) {
    SL_TRY(sl_gpt2_host_array(targets, "targets", "sl_impl_gpt2_head_forward"));
    SL_TRY(sl_gpt2_host_array(losses, "losses", "sl_impl_gpt2_head_forward"));
    sl_tensor wte, lnf_w, lnf_b;
    SL_TRY(sl_impl_gpt2_param_view(g, params, g->wte, "parameter", &wte));
    SL_TRY(sl_impl_gpt2_param_view(g, params, g->lnf_w, "parameter", &lnf_w));
    SL_TRY(sl_impl_gpt2_param_view(g, params, g->lnf_b, "parameter", &lnf_b));
    const sl_kernels *k = g->k;
    const sl_tensor x = sl_impl_gpt2_final_residual(g);
    const sl_tensor lnf = sl_impl_gpt2_act_view(g, g->lnf, 0, g->C);
    const sl_tensor mean = sl_impl_gpt2_stat_view(g, g->lnf_mean, 0);
    const sl_tensor rstd = sl_impl_gpt2_stat_view(g, g->lnf_rstd, 0);
    const sl_tensor logits = sl_impl_gpt2_act_view(g, g->logits, 0, g->V);
    const sl_tensor stats = sl_tensor_3d(g->ce_stats, SL_DTYPE_F32, g->B, g->T, 2);
    const sl_tensor tg = sl_gpt2_tokens(g, targets, "targets");
    const sl_tensor loss = sl_tensor_2d(losses, SL_DTYPE_F32, g->B, g->T);
    SL_TRY(k->layernorm_forward(g->ctx, g->cd, &lnf, &mean, &rstd, &x, &lnf_w, &lnf_b));
    sl_kctx_progress(g->ctx);
    SL_TRY(k->matmul_forward(g->ctx, g->cd, &logits, &lnf, &wte, SL_WEIGHT_OUT_IN, NULL));
    sl_kctx_progress(g->ctx);
    return k->crossentropy_forward(g->ctx, &loss, &stats, NULL, &logits, &tg);
}

/* Undoes sl_impl_gpt2_head_forward; leaves d(final residual) in g->dresidual. wte receives its
 * LM-head contribution here, before the embedding's. */
sl_status sl_impl_gpt2_head_backward(sl_impl_gpt2 *g, const sl_tensor *params,
                                     const sl_tensor *grads, const int32_t *targets,
                                     const float *dlosses) {
    SL_TRY(sl_gpt2_host_array(targets, "targets", "sl_impl_gpt2_head_backward"));
    SL_TRY(sl_gpt2_host_array(dlosses, "dlosses", "sl_impl_gpt2_head_backward"));
    sl_tensor wte, lnf_w, dwte, dlnf_w, dlnf_b;
    SL_TRY(sl_impl_gpt2_param_view(g, params, g->wte, "parameter", &wte));
    SL_TRY(sl_impl_gpt2_param_view(g, params, g->lnf_w, "parameter", &lnf_w));
    SL_TRY(sl_impl_gpt2_param_view(g, grads, g->wte, "gradient", &dwte));
    SL_TRY(sl_impl_gpt2_param_view(g, grads, g->lnf_w, "gradient", &dlnf_w));
    SL_TRY(sl_impl_gpt2_param_view(g, grads, g->lnf_b, "gradient", &dlnf_b));
    const sl_kernels *k = g->k;
    const sl_tensor x = sl_impl_gpt2_final_residual(g);
    const sl_tensor lnf = sl_impl_gpt2_act_view(g, g->lnf, 0, g->C);
    const sl_tensor mean = sl_impl_gpt2_stat_view(g, g->lnf_mean, 0);
    const sl_tensor rstd = sl_impl_gpt2_stat_view(g, g->lnf_rstd, 0);
    const sl_tensor logits =
        sl_impl_gpt2_act_view(g, g->logits, 0, g->V); /* becomes dlogits in place */
    const sl_tensor stats = sl_tensor_3d(g->ce_stats, SL_DTYPE_F32, g->B, g->T, 2);
    const sl_tensor tg = sl_gpt2_tokens(g, targets, "targets");
    const sl_tensor dloss = sl_tensor_2d((void *)dlosses, SL_DTYPE_F32, g->B, g->T);
    const sl_tensor dln = sl_impl_gpt2_act_view(g, g->dln, 0, g->C);
    const sl_tensor dresidual = sl_impl_gpt2_act_view(g, g->dresidual, 0, g->C);
    SL_TRY(k->crossentropy_backward(g->ctx, g->cd, &logits, &logits, &stats, &tg, &dloss));
    sl_kctx_progress(g->ctx);
    SL_TRY(k->matmul_backward(g->ctx, g->cd, &dln, &dwte, NULL, &logits, &lnf, &wte,
                              SL_WEIGHT_OUT_IN));
    sl_kctx_progress(g->ctx);
    return k->layernorm_backward(g->ctx, g->cd, &dresidual, &dlnf_w, &dlnf_b, &dln, &x, &lnf_w,
                                 &mean, &rstd);
}

/* Undoes sl_impl_gpt2_embed_forward from d(encoded) in g->dresidual. */
sl_status sl_impl_gpt2_embed_backward(sl_impl_gpt2 *g, const sl_tensor *grads,
                                      const int32_t *inputs) {
    SL_TRY(sl_gpt2_host_array(inputs, "inputs", "sl_impl_gpt2_embed_backward"));
    sl_tensor dwte, dwpe;
    SL_TRY(sl_impl_gpt2_param_view(g, grads, g->wte, "gradient", &dwte));
    SL_TRY(sl_impl_gpt2_param_view(g, grads, g->wpe, "gradient", &dwpe));
    const sl_tensor tokens = sl_gpt2_tokens(g, inputs, "inputs");
    const sl_tensor dresidual = sl_impl_gpt2_act_view(g, g->dresidual, 0, g->C);
    return g->k->encoder_backward(g->ctx, g->cd, &dwte, &dwpe, &dresidual, &tokens);
}
