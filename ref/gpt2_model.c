/* The root unit's two ends of the reference GPT-2: the embedding (wte, wpe) and the head (ln_f,
 * LM head tied to wte, cross-entropy). The blocks are in gpt2_block.c. */
#include "ref/gpt2_acts.h"
#include "ref/ops.h"

/* The residual stream entering ln_f: the last block's output, or the embedding when L = 0. */
static float *sl_ref_final_residual(sl_ref_gpt2_acts *a) {
    const int64_t BTC = (int64_t)a->B * a->T * a->C;
    return a->L > 0 ? a->residual3 + (a->L - 1) * BTC : a->encoded;
}

void sl_ref_gpt2_embed_forward(const sl_model_desc *model, float *const *params,
                               const int32_t *inputs, sl_dtype cd, sl_ref_gpt2_acts *acts) {
    (void)model;
    sl_ref_encoder_forward(acts->encoded, inputs, params[acts->wte], params[acts->wpe], acts->B,
                           acts->T, acts->C, cd);
}

void sl_ref_gpt2_head_forward(const sl_model_desc *model, float *const *params,
                              const int32_t *targets, sl_dtype cd, sl_ref_gpt2_acts *acts,
                              float *losses) {
    (void)model;
    sl_ref_gpt2_acts *a = acts;
    const int64_t BT = (int64_t)a->B * a->T;
    sl_ref_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, sl_ref_final_residual(a),
                             params[a->lnf_w], params[a->lnf_b], BT, a->C, cd);
    sl_ref_logits_forward(a->logits, a->lnf, params[a->wte], BT, a->C, a->V, cd);
    sl_ref_crossentropy_forward(a->losses, a->probs, a->logits, targets, BT, a->V);
    for (int64_t bt = 0; bt < BT; bt++)
        losses[bt] = a->losses[bt];
}

/* Undoes sl_ref_gpt2_head_forward; leaves d(final residual) in acts->dresidual. wte receives
 * its LM-head contribution here, before the embedding's. */
void sl_ref_gpt2_head_backward(const sl_model_desc *model, float *const *params, float **grads,
                               const int32_t *targets, const float *dlosses, sl_dtype cd,
                               sl_ref_gpt2_acts *acts) {
    (void)model;
    sl_ref_gpt2_acts *a = acts;
    const int64_t BT = (int64_t)a->B * a->T;
    float *dlogits = a->probs; // (B, T, V): the probabilities are read for the last time here
    sl_ref_crossentropy_backward(dlogits, a->probs, targets, dlosses, BT, a->V, cd);
    sl_ref_logits_backward(a->dln, grads[a->wte], a->scratch, dlogits, a->lnf, params[a->wte], BT,
                           a->C, a->V, cd);
    sl_ref_layernorm_backward(a->dresidual, grads[a->lnf_w], grads[a->lnf_b], a->scratch, a->dln,
                              sl_ref_final_residual(a), params[a->lnf_w], a->lnf_mean, a->lnf_rstd,
                              BT, a->C, cd);
}

/* Undoes sl_ref_gpt2_embed_forward from d(encoded) in acts->dresidual. */
void sl_ref_gpt2_embed_backward(const sl_model_desc *model, float **grads, const int32_t *inputs,
                                sl_dtype cd, sl_ref_gpt2_acts *acts) {
    (void)model;
    sl_ref_encoder_backward(grads[acts->wte], grads[acts->wpe], acts->scratch, acts->done,
                            acts->dresidual, inputs, acts->B, acts->T, acts->C, cd);
}
