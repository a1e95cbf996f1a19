/* The residual MLP of mlp.h on the CPU kernel table (shardlab/kernels.h). */
#include "mlp.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mlp {
    const sl_kernels *k;
    sl_kctx *ctx;
    sl_dtype cd;
    int64_t B, T, C, V, L;
    int wte, wpe, out_w, out_b; /* parameter indices */
    void *memory;
    void *h;              /* (L+1, B, T, C) layer inputs, then the last layer's output */
    void *pre;            /* (L, B, T, C) pre-activations */
    void *logits;         /* (B, T, V), dlogits in place during backward */
    float *stats;         /* (B, T, 2) */
    void *dh, *dpre, *dx; /* (B, T, C) each */
} mlp;

static void mlp_param(sl_model_desc *d, const char *name, int64_t d0, int64_t d1, sl_init_rule init,
                      double std, int unit) {
    sl_param_desc *p = &d->params[d->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = d1 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->numel = d1 ? d0 * d1 : d0;
    p->init = init;
    p->init_std = std;
    p->unit = unit;
    sl_unit_desc *u = &d->units[unit];
    u->params[u->n_params++] = d->n_params++;
    d->total_numel += p->numel;
}

sl_status mlp_desc_create(int L, int C, int V, int T, sl_model_desc **out) {
    sl_model_desc *d = calloc(1, sizeof *d);
    if (!d) return sl_error_set(SL_ERR_OOM, "mlp: out of memory");
    snprintf(d->kind, sizeof d->kind, "mlp");
    /* The plan compiler reads the GPT-2 shape for seq_len checks and activation estimates. */
    d->gpt2 =
        (sl_gpt2_config){.n_layer = L, .n_embd = C, .n_head = 1, .block_size = T, .vocab_size = V};
    d->params = calloc((size_t)(2 * L + 4), sizeof *d->params);
    d->units = calloc((size_t)L + 1, sizeof *d->units);
    bool ok = d->params && d->units;
    if (ok) d->n_units = L + 1;
    for (int u = 0; ok && u <= L; u++)
        ok = (d->units[u].params = calloc(4, sizeof(int))) != NULL;
    if (!ok) {
        sl_model_desc_destroy(d);
        return sl_error_set(SL_ERR_OOM, "mlp: out of memory");
    }
    snprintf(d->units[0].name, sizeof d->units[0].name, "root");
    d->units[0].is_root = 1;
    mlp_param(d, "emb.wte", V, C, SL_INIT_NORMAL, 0.02, 0);
    mlp_param(d, "emb.wpe", T, C, SL_INIT_NORMAL, 0.02, 0);
    for (int l = 0; l < L; l++) {
        char name[64];
        snprintf(d->units[l + 1].name, sizeof d->units[l + 1].name, "layers.%d", l);
        snprintf(name, sizeof name, "layers.%d.weight", l);
        mlp_param(d, name, C, C, SL_INIT_NORMAL, 0.02 / sqrt(2.0 * L), l + 1);
        snprintf(name, sizeof name, "layers.%d.bias", l);
        mlp_param(d, name, C, 0, SL_INIT_ZEROS, 0.0, l + 1);
    }
    mlp_param(d, "out.weight", C, V, SL_INIT_NORMAL, 0.02, 0);
    mlp_param(d, "out.bias", V, 0, SL_INIT_ZEROS, 0.0, 0);
    *out = d;
    return SL_OK;
}

static sl_tensor mlp_act(const mlp *m, void *base, int64_t layer, int64_t width) {
    char *p = (char *)base + (size_t)(layer * m->B * m->T * width) * sl_dtype_size(m->cd);
    return sl_tensor_3d(p, m->cd, m->B, m->T, width);
}

static sl_tensor mlp_tokens(const mlp *m, const int32_t *ids) {
    return sl_tensor_2d((void *)ids, SL_DTYPE_I32, m->B, m->T);
}

static sl_status mlp_forward(void *self, int unit, const sl_tensor *params, const sl_batch *b) {
    mlp *m = self;
    if (unit == 0) {
        const sl_tensor h0 = mlp_act(m, m->h, 0, m->C), tok = mlp_tokens(m, b->inputs);
        return m->k->encoder_forward(m->ctx, m->cd, &h0, &tok, &params[m->wte], &params[m->wpe]);
    }
    const int l = unit - 1, w = 2 + 2 * l;
    const sl_tensor x = mlp_act(m, m->h, l, m->C), y = mlp_act(m, m->h, l + 1, m->C);
    const sl_tensor pre = mlp_act(m, m->pre, l, m->C), act = mlp_act(m, m->dx, 0, m->C);
    SL_TRY(m->k->matmul_forward(m->ctx, m->cd, &pre, &x, &params[w], SL_WEIGHT_IN_OUT,
                                &params[w + 1]));
    SL_TRY(m->k->gelu_forward(m->ctx, m->cd, &act, &pre));
    return m->k->residual_forward(m->ctx, m->cd, &y, &x, &act);
}

static sl_status mlp_loss_forward(void *self, const sl_tensor *params, const sl_batch *b,
                                  float *losses) {
    mlp *m = self;
    const sl_tensor x = mlp_act(m, m->h, m->L, m->C), logits = mlp_act(m, m->logits, 0, m->V);
    const sl_tensor stats = sl_tensor_3d(m->stats, SL_DTYPE_F32, m->B, m->T, 2);
    const sl_tensor loss = sl_tensor_2d(losses, SL_DTYPE_F32, m->B, m->T),
                    tg = mlp_tokens(m, b->targets);
    SL_TRY(m->k->matmul_forward(m->ctx, m->cd, &logits, &x, &params[m->out_w], SL_WEIGHT_IN_OUT,
                                &params[m->out_b]));
    return m->k->crossentropy_forward(m->ctx, &loss, &stats, NULL, &logits, &tg);
}

static sl_status mlp_loss_backward(void *self, const sl_tensor *params, const sl_tensor *grads,
                                   const sl_batch *b, const float *dlosses) {
    mlp *m = self;
    const sl_tensor x = mlp_act(m, m->h, m->L, m->C), logits = mlp_act(m, m->logits, 0, m->V);
    const sl_tensor stats = sl_tensor_3d(m->stats, SL_DTYPE_F32, m->B, m->T, 2);
    const sl_tensor dl = sl_tensor_2d((void *)dlosses, SL_DTYPE_F32, m->B, m->T);
    const sl_tensor tg = mlp_tokens(m, b->targets), dh = mlp_act(m, m->dh, 0, m->C);
    SL_TRY(m->k->crossentropy_backward(m->ctx, m->cd, &logits, &logits, &stats, &tg, &dl));
    return m->k->matmul_backward(m->ctx, m->cd, &dh, &grads[m->out_w], &grads[m->out_b], &logits,
                                 &x, &params[m->out_w], SL_WEIGHT_IN_OUT);
}

static sl_status mlp_backward(void *self, int unit, const sl_tensor *params, const sl_tensor *grads,
                              const sl_batch *b) {
    mlp *m = self;
    const sl_tensor dh = mlp_act(m, m->dh, 0, m->C);
    if (unit == 0) {
        const sl_tensor tok = mlp_tokens(m, b->inputs);
        return m->k->encoder_backward(m->ctx, m->cd, &grads[m->wte], &grads[m->wpe], &dh, &tok);
    }
    const int l = unit - 1, w = 2 + 2 * l;
    const sl_tensor x = mlp_act(m, m->h, l, m->C), pre = mlp_act(m, m->pre, l, m->C);
    const sl_tensor dpre = mlp_act(m, m->dpre, 0, m->C), dx = mlp_act(m, m->dx, 0, m->C);
    SL_TRY(m->k->gelu_backward(m->ctx, m->cd, &dpre, &pre, &dh));
    SL_TRY(m->k->matmul_backward(m->ctx, m->cd, &dx, &grads[w], &grads[w + 1], &dpre, &x,
                                 &params[w], SL_WEIGHT_IN_OUT));
    return m->k->residual_forward(m->ctx, m->cd, &dh, &dh, &dx); /* the two paths join */
}

static void mlp_destroy(void *self) {
    mlp *m = self;
    if (!m) return;
    m->k->release(m->ctx, m->memory);
    m->k->context_destroy(m->ctx);
    free(m);
}

sl_status mlp_model_create(const sl_model_desc *desc, const sl_plan *plan, sl_engine_model *out) {
    mlp *m = calloc(1, sizeof *m);
    if (!m) return sl_error_set(SL_ERR_OOM, "mlp: out of memory");
    m->k = sl_kernels_cpu();
    m->cd = plan->precision.param_dtype;
    m->B = plan->micro_batch_size;
    m->T = plan->seq_len;
    m->C = desc->gpt2.n_embd;
    m->V = desc->gpt2.vocab_size;
    m->L = desc->gpt2.n_layer;
    m->wte = 0;
    m->wpe = 1;
    m->out_w = 2 + 2 * (int)m->L;
    m->out_b = m->out_w + 1;
    const int64_t btc = m->B * m->T * m->C, es = (int64_t)sl_dtype_size(m->cd);
    const int64_t acts =
        ((m->L + 1) * btc + m->L * btc + m->B * m->T * m->V) * es + 2 * m->B * m->T * 4;
    const int64_t scratch = 3 * btc * es;
    sl_status st = m->k->context_create(&m->ctx);
    if (st == SL_OK) st = m->k->alloc(m->ctx, (size_t)(acts + scratch), &m->memory);
    if (st != SL_OK) {
        mlp_destroy(m);
        return st;
    }
    char *p = m->memory;
    m->h = p;
    m->pre = p += (m->L + 1) * btc * es;
    m->logits = p += m->L * btc * es;
    m->stats = (float *)(p += m->B * m->T * m->V * es);
    m->dh = p += 2 * m->B * m->T * 4;
    m->dpre = p += btc * es;
    m->dx = p + btc * es;
    *out = (sl_engine_model){.desc = desc,
                             .self = m,
                             .forward = mlp_forward,
                             .loss_forward = mlp_loss_forward,
                             .loss_backward = mlp_loss_backward,
                             .backward = mlp_backward,
                             .activation_bytes = acts,
                             .workspace_bytes = scratch,
                             .destroy = mlp_destroy};
    return SL_OK;
}
