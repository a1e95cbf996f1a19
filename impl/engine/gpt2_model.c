/* The built-in GPT-2 as an engine model: the kernels' per-unit GPT-2 (kernels.h) behind the
 * unit callbacks — unit 0 (the root) is the embedding at the input end and ln_f + the tied LM
 * head at the output end; unit l + 1 is block l. Activations are stored in param_dtype. */
#include <stdlib.h>

#include "shardlab/engine.h"

static sl_status sl_gpt2m_forward(void *self, int unit, const sl_tensor *params,
                                  const sl_batch *batch) {
    sl_impl_gpt2 *g = self;
    if (unit == 0) return sl_impl_gpt2_embed_forward(g, params, batch->inputs);
    return sl_impl_gpt2_block_forward(g, unit - 1, params);
}

static sl_status sl_gpt2m_loss_forward(void *self, const sl_tensor *params, const sl_batch *batch,
                                       float *losses) {
    return sl_impl_gpt2_head_forward(self, params, batch->targets, losses);
}

static sl_status sl_gpt2m_loss_backward(void *self, const sl_tensor *params, const sl_tensor *grads,
                                        const sl_batch *batch, const float *dlosses) {
    return sl_impl_gpt2_head_backward(self, params, grads, batch->targets, dlosses);
}

static sl_status sl_gpt2m_backward(void *self, int unit, const sl_tensor *params,
                                   const sl_tensor *grads, const sl_batch *batch) {
    sl_impl_gpt2 *g = self;
    if (unit == 0) return sl_impl_gpt2_embed_backward(g, grads, batch->inputs);
    return sl_impl_gpt2_block_backward(g, unit - 1, params, grads);
}

static void sl_gpt2m_destroy(void *self) {
    sl_impl_gpt2_destroy(self);
}

sl_status sl_engine_gpt2_model(const sl_kernels *k, sl_kctx *ctx, const sl_model_desc *desc,
                               const sl_plan *plan, sl_engine_model *out) {
    const sl_dtype cd = plan->precision.param_dtype;
    const int B = plan->micro_batch_size, T = plan->seq_len;
    sl_impl_gpt2 *g = NULL;
    SL_TRY(sl_impl_gpt2_create(k, ctx, desc, B, T, cd, cd, &g));
    *out = (sl_engine_model){
        .desc = desc,
        .self = g,
        .forward = sl_gpt2m_forward,
        .loss_forward = sl_gpt2m_loss_forward,
        .loss_backward = sl_gpt2m_loss_backward,
        .backward = sl_gpt2m_backward,
        .activation_bytes = sl_impl_gpt2_activation_bytes(&desc->gpt2, B, T, cd),
        .workspace_bytes = sl_impl_gpt2_gradient_bytes(&desc->gpt2, B, T, cd),
        .destroy = sl_gpt2m_destroy,
    };
    return SL_OK;
}
