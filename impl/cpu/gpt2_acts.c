/* The per-unit GPT-2's activation buffers: layout, allocation, byte counts, parameter lookup. */
#include "impl/cpu/gpt2_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sl_gpt2_block_param_names[SL_GPT2_BLOCK_PARAMS] = {
    "ln_1.weight",        "ln_1.bias",        "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight",        "ln_2.bias",
    "mlp.c_fc.weight",    "mlp.c_fc.bias",    "mlp.c_proj.weight",  "mlp.c_proj.bias"};

/* Points every buffer of g into `memory` (NULL: only counts) in the order and with the sizes of
 * model.h's sl_gpt2_buf list, so that what is allocated is what the plan predicts; sets the
 * two byte counts. */
static void sl_gpt2_layout(sl_impl_gpt2 *g, char *memory) {
    const sl_gpt2_config cfg = {.n_layer = (int)g->L,
                                .n_embd = (int)g->C,
                                .n_head = (int)g->H,
                                .block_size = (int)g->T,
                                .vocab_size = (int)g->V};
    char *at[SL_GPT2_BUF_COUNT];
    int64_t off = 0;
    for (int b = 0; b < SL_GPT2_BUF_COUNT; b++) {
        if (b == SL_GPT2_BUF_FIRST_SCRATCH) g->activation_bytes = off;
        at[b] = memory ? memory + off : NULL;
        off += sl_gpt2_buf_bytes(&cfg, (int)g->B, (int)g->T, (sl_gpt2_buf)b, g->act);
    }
    g->gradient_bytes = off - g->activation_bytes;
    g->encoded = at[SL_GPT2_BUF_ENCODED];
    g->ln1 = at[SL_GPT2_BUF_LN1];
    g->ln1_mean = (float *)(void *)at[SL_GPT2_BUF_LN1_MEAN];
    g->ln1_rstd = (float *)(void *)at[SL_GPT2_BUF_LN1_RSTD];
    g->qkv = at[SL_GPT2_BUF_QKV];
    g->atty = at[SL_GPT2_BUF_ATTY];
    g->att = at[SL_GPT2_BUF_ATT];
    g->residual2 = at[SL_GPT2_BUF_RESIDUAL2];
    g->ln2 = at[SL_GPT2_BUF_LN2];
    g->ln2_mean = (float *)(void *)at[SL_GPT2_BUF_LN2_MEAN];
    g->ln2_rstd = (float *)(void *)at[SL_GPT2_BUF_LN2_RSTD];
    g->fch = at[SL_GPT2_BUF_FCH];
    g->fch_gelu = at[SL_GPT2_BUF_FCH_GELU];
    g->residual3 = at[SL_GPT2_BUF_RESIDUAL3];
    g->lnf = at[SL_GPT2_BUF_LNF];
    g->lnf_mean = (float *)(void *)at[SL_GPT2_BUF_LNF_MEAN];
    g->lnf_rstd = (float *)(void *)at[SL_GPT2_BUF_LNF_RSTD];
    g->logits = at[SL_GPT2_BUF_LOGITS];
    g->ce_stats = (float *)(void *)at[SL_GPT2_BUF_CE_STATS];
    g->proj = at[SL_GPT2_BUF_PROJ];
    g->dresidual = at[SL_GPT2_BUF_DRESIDUAL];
    g->dresidual2 = at[SL_GPT2_BUF_DRESIDUAL2];
    g->dln = at[SL_GPT2_BUF_DLN];
    g->dx = at[SL_GPT2_BUF_DX];
    g->datty = at[SL_GPT2_BUF_DATTY];
    g->dqkv = at[SL_GPT2_BUF_DQKV];
    g->dfch = at[SL_GPT2_BUF_DFCH];
}

static sl_impl_gpt2 sl_gpt2_counted(const sl_gpt2_config *cfg, int B, int T, sl_dtype act_dtype) {
    sl_impl_gpt2 g = {.act = act_dtype,
                      .B = B,
                      .T = T,
                      .C = cfg->n_embd,
                      .H = cfg->n_head,
                      .V = cfg->vocab_size,
                      .L = cfg->n_layer};
    sl_gpt2_layout(&g, NULL);
    return g;
}

int64_t sl_impl_gpt2_activation_bytes(const sl_gpt2_config *cfg, int B, int T, sl_dtype act_dtype) {
    return sl_gpt2_counted(cfg, B, T, act_dtype).activation_bytes;
}

int64_t sl_impl_gpt2_gradient_bytes(const sl_gpt2_config *cfg, int B, int T, sl_dtype act_dtype) {
    return sl_gpt2_counted(cfg, B, T, act_dtype).gradient_bytes;
}

int64_t sl_impl_gpt2_bytes(const sl_impl_gpt2 *g) {
    return g->activation_bytes + g->gradient_bytes;
}

static sl_status sl_gpt2_find(const sl_model_desc *model, const char *name, int *out) {
    *out = sl_model_find_param(model, name);
    if (*out >= 0) return SL_OK;
    return sl_error_set(SL_ERR_MISMATCH,
                        "GPT-2 kernels: the model description has no parameter '%s'; build it "
                        "with sl_model_desc_create_gpt2",
                        name);
}

static sl_status sl_gpt2_find_params(sl_impl_gpt2 *g) {
    SL_TRY(sl_gpt2_find(g->model, "transformer.wte.weight", &g->wte));
    SL_TRY(sl_gpt2_find(g->model, "transformer.wpe.weight", &g->wpe));
    SL_TRY(sl_gpt2_find(g->model, "transformer.ln_f.weight", &g->lnf_w));
    SL_TRY(sl_gpt2_find(g->model, "transformer.ln_f.bias", &g->lnf_b));
    for (int64_t l = 0; l < g->L; l++) {
        for (int k = 0; k < SL_GPT2_BLOCK_PARAMS; k++) {
            char name[SL_MAX_NAME];
            snprintf(name, sizeof name, "transformer.h.%lld.%s", (long long)l,
                     sl_gpt2_block_param_names[k]);
            SL_TRY(sl_gpt2_find(g->model, name, &g->block[l * SL_GPT2_BLOCK_PARAMS + k]));
        }
    }
    return SL_OK;
}

static sl_status sl_gpt2_check_args(const sl_kernels *k, sl_kctx *ctx, const sl_model_desc *model,
                                    int B, int T, sl_dtype cd, sl_dtype act_dtype) {
    if (!k || !ctx || !model) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sl_impl_gpt2_create: kernels, context and model must not be NULL");
    }
    if (strcmp(model->kind, "gpt2") != 0) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sl_impl_gpt2_create: model kind is '%s', expected 'gpt2'",
                            model->kind);
    }
    SL_TRY(sl_gpt2_config_validate(&model->gpt2));
    if (B <= 0) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sl_impl_gpt2_create: micro-batch size B = %d, expected >= 1", B);
    }
    if (T <= 0 || T > model->gpt2.block_size) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sl_impl_gpt2_create: sequence length T = %d, expected 1..block_size "
                            "(%d); shorten the sequence or raise block_size",
                            T, model->gpt2.block_size);
    }
    if (cd != SL_DTYPE_F32 && cd != SL_DTYPE_BF16 && cd != SL_DTYPE_F16) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sl_impl_gpt2_create: compute dtype %s; expected fp32, bf16 or fp16",
                            sl_dtype_name(cd));
    }
    if (act_dtype != SL_DTYPE_F32 && act_dtype != cd) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sl_impl_gpt2_create: activation dtype %s with compute dtype %s; "
                            "store activations as fp32 or as the compute dtype",
                            sl_dtype_name(act_dtype), sl_dtype_name(cd));
    }
    return SL_OK;
}

sl_status sl_impl_gpt2_create(const sl_kernels *k, sl_kctx *ctx, const sl_model_desc *model, int B,
                              int T, sl_dtype cd, sl_dtype act_dtype, sl_impl_gpt2 **out) {
    *out = NULL;
    SL_TRY(sl_gpt2_check_args(k, ctx, model, B, T, cd, act_dtype));
    sl_impl_gpt2 *g = calloc(1, sizeof *g);
    if (!g) return sl_error_set(SL_ERR_OOM, "sl_impl_gpt2_create: out of memory");
    *g = sl_gpt2_counted(&model->gpt2, B, T, act_dtype);
    g->k = k;
    g->ctx = ctx;
    g->model = model;
    g->cd = cd;
    g->block = calloc((size_t)g->L * SL_GPT2_BLOCK_PARAMS + 1, sizeof *g->block);
    sl_status st = g->block ? sl_gpt2_find_params(g)
                            : sl_error_set(SL_ERR_OOM, "sl_impl_gpt2_create: out of memory");
    if (st == SL_OK) {
        st = k->alloc(ctx, (size_t)(g->activation_bytes + g->gradient_bytes), &g->memory);
        if (st != SL_OK) {
            sl_error_prefix(st, "GPT-2 activations for B=%d T=%d (%.1f MiB): ", B, T,
                            (double)(g->activation_bytes + g->gradient_bytes) / (1 << 20));
        }
    }
    if (st != SL_OK) {
        sl_impl_gpt2_destroy(g);
        return st;
    }
    sl_gpt2_layout(g, g->memory);
    *out = g;
    return SL_OK;
}

void sl_impl_gpt2_destroy(sl_impl_gpt2 *g) {
    if (!g) return;
    if (g->memory) g->k->release(g->ctx, g->memory);
    free(g->block);
    free(g);
}

sl_tensor sl_impl_gpt2_act_view(const sl_impl_gpt2 *g, void *base, int64_t layer, int64_t width) {
    const int64_t n = g->B * g->T * width;
    char *p = (char *)base + (size_t)(layer * n) * sl_dtype_size(g->act);
    return sl_tensor_3d(p, g->act, g->B, g->T, width);
}

sl_tensor sl_impl_gpt2_stat_view(const sl_impl_gpt2 *g, float *base, int64_t layer) {
    return sl_tensor_2d(base + layer * g->B * g->T, SL_DTYPE_F32, g->B, g->T);
}

sl_tensor sl_impl_gpt2_final_residual(const sl_impl_gpt2 *g) {
    return g->L > 0 ? sl_impl_gpt2_act_view(g, g->residual3, g->L - 1, g->C)
                    : sl_impl_gpt2_act_view(g, g->encoded, 0, g->C);
}

sl_status sl_impl_gpt2_param_view(const sl_impl_gpt2 *g, const sl_tensor *tensors, int p,
                                  const char *what, sl_tensor *out) {
    const sl_param_desc *pd = &g->model->params[p];
    if (!tensors) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "GPT-2 kernels: no %s array given (needed for '%s')", what, pd->name);
    }
    *out = tensors[p];
    if (!out->name) out->name = pd->name;
    int same = out->ndim == pd->ndim;
    for (int i = 0; same && i < pd->ndim; i++)
        same = out->shape[i] == pd->shape[i];
    if (same) return SL_OK;
    return sl_error_set(SL_ERR_MISMATCH,
                        "GPT-2 kernels: %s '%s' is viewed with %d dimensions [%lld, %lld, ...]; "
                        "the model description says %d [%lld, %lld, ...]",
                        what, pd->name, out->ndim, (long long)out->shape[0],
                        (long long)(out->ndim > 1 ? out->shape[1] : 0), pd->ndim,
                        (long long)pd->shape[0], (long long)(pd->ndim > 1 ? pd->shape[1] : 0));
}
