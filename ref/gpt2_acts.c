/* Allocation of the reference's activation buffers. */
#include "ref/gpt2_acts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sl_ref_block_param_names[SL_REF_BLOCK_PARAMS] = {
    "ln_1.weight",        "ln_1.bias",        "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight",        "ln_2.bias",
    "mlp.c_fc.weight",    "mlp.c_fc.bias",    "mlp.c_proj.weight",  "mlp.c_proj.bias"};

static sl_status sl_ref_param_index(const sl_model_desc *model, const char *name, int64_t d0,
                                    int64_t d1, int *out) {
    const int p = sl_model_find_param(model, name);
    if (p < 0) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "reference GPT-2: the model description has no parameter '%s'; "
                            "build it with sl_model_desc_create_gpt2",
                            name);
    }
    const sl_param_desc *pd = &model->params[p];
    const int64_t want = d1 > 0 ? d0 * d1 : d0;
    if (pd->shape[0] != d0 || pd->numel != want) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "reference GPT-2: parameter '%s' has shape [%lld, %lld] (%lld "
                            "elements); the config implies [%lld, %lld]",
                            name, (long long)pd->shape[0], (long long)pd->shape[1],
                            (long long)pd->numel, (long long)d0, (long long)d1);
    }
    *out = p;
    return SL_OK;
}

static sl_status sl_ref_acts_find_params(const sl_model_desc *model, sl_ref_gpt2_acts *a) {
    const int64_t C = a->C, V = a->V, Tmax = model->gpt2.block_size;
    SL_TRY(sl_ref_param_index(model, "transformer.wte.weight", V, C, &a->wte));
    SL_TRY(sl_ref_param_index(model, "transformer.wpe.weight", Tmax, C, &a->wpe));
    SL_TRY(sl_ref_param_index(model, "transformer.ln_f.weight", C, 0, &a->lnf_w));
    SL_TRY(sl_ref_param_index(model, "transformer.ln_f.bias", C, 0, &a->lnf_b));
    const int64_t shapes[SL_REF_BLOCK_PARAMS][2] = {{C, 0},     {C, 0},     {C, 3 * C}, {3 * C, 0},
                                                    {C, C},     {C, 0},     {C, 0},     {C, 0},
                                                    {C, 4 * C}, {4 * C, 0}, {4 * C, C}, {C, 0}};
    for (int l = 0; l < a->L; l++) {
        for (int k = 0; k < SL_REF_BLOCK_PARAMS; k++) {
            char name[SL_MAX_NAME];
            snprintf(name, sizeof name, "transformer.h.%d.%s", l, sl_ref_block_param_names[k]);
            SL_TRY(sl_ref_param_index(model, name, shapes[k][0], shapes[k][1],
                                      &a->block[l * SL_REF_BLOCK_PARAMS + k]));
        }
    }
    return SL_OK;
}

/* Hands out consecutive buffers of `memory` (or, with memory NULL, only counts them). */
static float *sl_ref_carve(float *memory, int64_t *offset, int64_t n) {
    float *p = memory ? memory + *offset : NULL;
    *offset += n;
    return p;
}

/* Points every buffer into a->memory; returns the number of floats used. With a->memory NULL it
 * only counts (the pointers stay NULL). */
static int64_t sl_ref_acts_layout(sl_ref_gpt2_acts *a) {
    const int64_t B = a->B, T = a->T, C = a->C, H = a->H, V = a->V, L = a->L;
    const int64_t BT = B * T, BHTT = B * H * T * T;
    float *m = a->memory;
    int64_t off = 0;
    a->encoded = sl_ref_carve(m, &off, BT * C);
    a->ln1 = sl_ref_carve(m, &off, L * BT * C);
    a->ln1_mean = sl_ref_carve(m, &off, L * BT);
    a->ln1_rstd = sl_ref_carve(m, &off, L * BT);
    a->qkv = sl_ref_carve(m, &off, L * BT * 3 * C);
    a->atty = sl_ref_carve(m, &off, L * BT * C);
    a->preatt = sl_ref_carve(m, &off, L * BHTT);
    a->att = sl_ref_carve(m, &off, L * BHTT);
    a->attproj = sl_ref_carve(m, &off, L * BT * C);
    a->residual2 = sl_ref_carve(m, &off, L * BT * C);
    a->ln2 = sl_ref_carve(m, &off, L * BT * C);
    a->ln2_mean = sl_ref_carve(m, &off, L * BT);
    a->ln2_rstd = sl_ref_carve(m, &off, L * BT);
    a->fch = sl_ref_carve(m, &off, L * BT * 4 * C);
    a->fch_gelu = sl_ref_carve(m, &off, L * BT * 4 * C);
    a->fcproj = sl_ref_carve(m, &off, L * BT * C);
    a->residual3 = sl_ref_carve(m, &off, L * BT * C);
    a->lnf = sl_ref_carve(m, &off, BT * C);
    a->lnf_mean = sl_ref_carve(m, &off, BT);
    a->lnf_rstd = sl_ref_carve(m, &off, BT);
    a->logits = sl_ref_carve(m, &off, BT * V);
    a->probs = sl_ref_carve(m, &off, BT * V);
    a->losses = sl_ref_carve(m, &off, BT);
    a->forward_numel = off;

    a->dresidual = sl_ref_carve(m, &off, BT * C);
    a->dresidual2 = sl_ref_carve(m, &off, BT * C);
    a->dln = sl_ref_carve(m, &off, BT * C);
    a->dx = sl_ref_carve(m, &off, BT * C);
    a->datty = sl_ref_carve(m, &off, BT * C);
    a->dqkv = sl_ref_carve(m, &off, BT * 3 * C);
    a->datt = sl_ref_carve(m, &off, BHTT);
    a->dfch = sl_ref_carve(m, &off, BT * 4 * C);
    a->scratch = sl_ref_carve(m, &off, 4 * C * C);
    return off;
}

sl_status sl_ref_gpt2_acts_create(const sl_model_desc *model, int B, int T,
                                  sl_ref_gpt2_acts **out) {
    *out = NULL;
    const sl_gpt2_config *cfg = &model->gpt2;
    if (strcmp(model->kind, "gpt2") != 0) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "reference GPT-2 activations: model kind is '%s', expected 'gpt2'",
                            model->kind);
    }
    SL_TRY(sl_gpt2_config_validate(cfg));
    if (B <= 0) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "reference GPT-2 activations: micro-batch size B = %d, expected >= 1",
                            B);
    }
    if (T <= 0 || T > cfg->block_size) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "reference GPT-2 activations: sequence length T = %d, expected 1.."
                            "block_size (%d); shorten the sequence or raise block_size",
                            T, cfg->block_size);
    }
    sl_ref_gpt2_acts *a = calloc(1, sizeof *a);
    if (!a) return sl_error_set(SL_ERR_OOM, "reference GPT-2 activations: out of memory");
    a->B = B;
    a->T = T;
    a->C = cfg->n_embd;
    a->H = cfg->n_head;
    a->V = cfg->vocab_size;
    a->L = cfg->n_layer;
    a->block = calloc((size_t)a->L * SL_REF_BLOCK_PARAMS, sizeof *a->block);
    a->done = calloc((size_t)B * (size_t)T, sizeof *a->done);
    if (!a->block || !a->done) {
        sl_ref_gpt2_acts_destroy(a);
        return sl_error_set(SL_ERR_OOM, "reference GPT-2 activations: out of memory");
    }
    sl_status st = sl_ref_acts_find_params(model, a);
    if (st != SL_OK) {
        sl_ref_gpt2_acts_destroy(a);
        return st;
    }
    a->numel = sl_ref_acts_layout(a);
    if (a->forward_numel != sl_gpt2_activation_numel(cfg, B, T)) {
        const int64_t predicted = sl_gpt2_activation_numel(cfg, B, T);
        const int64_t carved = a->forward_numel;
        sl_ref_gpt2_acts_destroy(a);
        return sl_error_set(SL_ERR_INTERNAL,
                            "reference GPT-2 activations: forward buffers hold %lld floats but "
                            "sl_gpt2_activation_numel predicts %lld; the two layouts disagree",
                            (long long)carved, (long long)predicted);
    }
    a->memory = calloc((size_t)a->numel, sizeof *a->memory);
    if (!a->memory) {
        const double mib = (double)a->numel * sizeof(float) / (1024.0 * 1024.0);
        sl_ref_gpt2_acts_destroy(a);
        return sl_error_set(SL_ERR_OOM,
                            "reference GPT-2 activations: cannot allocate %.1f MiB for B=%d "
                            "T=%d; reduce the micro-batch or the sequence length",
                            mib, B, T);
    }
    sl_ref_acts_layout(a);
    *out = a;
    return SL_OK;
}

void sl_ref_gpt2_acts_destroy(sl_ref_gpt2_acts *acts) {
    if (!acts) return;
    free(acts->memory);
    free(acts->block);
    free(acts->done);
    free(acts);
}

int64_t sl_ref_gpt2_acts_numel(const sl_ref_gpt2_acts *acts) {
    return acts->numel;
}
