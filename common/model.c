#include "shardlab/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardlab/rng.h"

typedef struct sl_named_size {
    const char *name;
    sl_gpt2_config cfg;
} sl_named_size;

static const sl_named_size sl_named_sizes[] = {
    {"gpt-tiny", {.n_layer = 2, .n_embd = 64, .n_head = 4, .block_size = 64, .vocab_size = 256}},
    {"gpt-small", {.n_layer = 6, .n_embd = 384, .n_head = 6, .block_size = 256, .vocab_size = 256}},
    {"gpt2-124m",
     {.n_layer = 12, .n_embd = 768, .n_head = 12, .block_size = 1024, .vocab_size = 50257}},
};

sl_status sl_gpt2_config_from_name(const char *name, sl_gpt2_config *out) {
    size_t n = sizeof sl_named_sizes / sizeof sl_named_sizes[0];
    for (size_t i = 0; i < n; i++) {
        if (strcmp(name, sl_named_sizes[i].name) == 0) {
            *out = sl_named_sizes[i].cfg;
            return SL_OK;
        }
    }
    return sl_error_set(SL_ERR_CONFIG,
                        "--model: unknown model '%s'; expected one of gpt-tiny, gpt-small, "
                        "gpt2-124m, or give --n_layer --n_embd --n_head --block_size --vocab_size",
                        name);
}

sl_status sl_gpt2_config_validate(const sl_gpt2_config *cfg) {
    const struct {
        const char *flag;
        int value;
    } fields[] = {{"--n_layer", cfg->n_layer},
                  {"--n_embd", cfg->n_embd},
                  {"--n_head", cfg->n_head},
                  {"--block_size", cfg->block_size},
                  {"--vocab_size", cfg->vocab_size}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (fields[i].value <= 0) {
            return sl_error_set(SL_ERR_CONFIG, "%s: expected a positive integer, found %d",
                                fields[i].flag, fields[i].value);
        }
    }
    if (cfg->n_embd % cfg->n_head != 0) {
        return sl_error_set(SL_ERR_CONFIG,
                            "--n_embd %d is not divisible by --n_head %d; choose n_head dividing "
                            "n_embd (head size = n_embd / n_head)",
                            cfg->n_embd, cfg->n_head);
    }
    return SL_OK;
}

/* Appends one parameter; returns its index. */
static int sl_model_add_param(sl_model_desc *d, const char *name, int ndim, int64_t d0, int64_t d1,
                              sl_init_rule init, double std, int unit) {
    sl_param_desc *p = &d->params[d->n_params];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 0;
    p->numel = ndim > 1 ? d0 * d1 : d0;
    p->init = init;
    p->init_std = std;
    p->unit = unit;
    d->total_numel += p->numel;
    return d->n_params++;
}

static void sl_unit_add(sl_unit_desc *u, int param) {
    u->params[u->n_params++] = param;
}

sl_status sl_model_desc_create_gpt2(const sl_gpt2_config *cfg, sl_model_desc **out) {
    SL_TRY(sl_gpt2_config_validate(cfg));
    const int L = cfg->n_layer;
    const int64_t C = cfg->n_embd, V = cfg->vocab_size, T = cfg->block_size;
    const int params_per_block = 12;

    sl_model_desc *d = calloc(1, sizeof *d);
    if (!d) return sl_error_set(SL_ERR_OOM, "out of memory creating the model description");
    snprintf(d->kind, sizeof d->kind, "gpt2");
    d->gpt2 = *cfg;
    d->params = calloc((size_t)(4 + params_per_block * L), sizeof *d->params);
    d->units = calloc((size_t)(1 + L), sizeof *d->units);
    d->n_units = 1 + L;
    int ok = d->params && d->units;
    for (int u = 0; ok && u < d->n_units; u++) {
        d->units[u].params = calloc((size_t)params_per_block, sizeof(int));
        ok = d->units[u].params != NULL;
    }
    if (!ok) {
        sl_model_desc_destroy(d);
        return sl_error_set(SL_ERR_OOM, "out of memory creating the model description");
    }

    /* Hugging Face GPT2Model._init_weights: N(0, 0.02) for Linear/Conv1D/Embedding weights,
     * zero biases, LayerNorm (1, 0); c_proj weights of every block N(0, 0.02/sqrt(2L)). */
    const double std = 0.02, proj_std = 0.02 / sqrt(2.0 * L);
    sl_unit_desc *root = &d->units[0];
    snprintf(root->name, sizeof root->name, "root");
    root->is_root = 1;
    sl_unit_add(root,
                sl_model_add_param(d, "transformer.wte.weight", 2, V, C, SL_INIT_NORMAL, std, 0));
    sl_unit_add(root,
                sl_model_add_param(d, "transformer.wpe.weight", 2, T, C, SL_INIT_NORMAL, std, 0));
    for (int l = 0; l < L; l++) {
        sl_unit_desc *u = &d->units[1 + l];
        snprintf(u->name, sizeof u->name, "transformer.h.%d", l);
        const struct {
            const char *suffix;
            int ndim;
            int64_t d0, d1;
            sl_init_rule init;
            double std;
        } block[] = {
            {"ln_1.weight", 1, C, 0, SL_INIT_ONES, 0},
            {"ln_1.bias", 1, C, 0, SL_INIT_ZEROS, 0},
            {"attn.c_attn.weight", 2, C, 3 * C, SL_INIT_NORMAL, std},
            {"attn.c_attn.bias", 1, 3 * C, 0, SL_INIT_ZEROS, 0},
            {"attn.c_proj.weight", 2, C, C, SL_INIT_NORMAL, proj_std},
            {"attn.c_proj.bias", 1, C, 0, SL_INIT_ZEROS, 0},
            {"ln_2.weight", 1, C, 0, SL_INIT_ONES, 0},
            {"ln_2.bias", 1, C, 0, SL_INIT_ZEROS, 0},
            {"mlp.c_fc.weight", 2, C, 4 * C, SL_INIT_NORMAL, std},
            {"mlp.c_fc.bias", 1, 4 * C, 0, SL_INIT_ZEROS, 0},
            {"mlp.c_proj.weight", 2, 4 * C, C, SL_INIT_NORMAL, proj_std},
            {"mlp.c_proj.bias", 1, C, 0, SL_INIT_ZEROS, 0},
        };
        for (int i = 0; i < params_per_block; i++) {
            char name[SL_MAX_NAME];
            snprintf(name, sizeof name, "transformer.h.%d.%s", l, block[i].suffix);
            sl_unit_add(u, sl_model_add_param(d, name, block[i].ndim, block[i].d0, block[i].d1,
                                              block[i].init, block[i].std, 1 + l));
        }
    }
    sl_unit_add(root,
                sl_model_add_param(d, "transformer.ln_f.weight", 1, C, 0, SL_INIT_ONES, 0, 0));
    sl_unit_add(root, sl_model_add_param(d, "transformer.ln_f.bias", 1, C, 0, SL_INIT_ZEROS, 0, 0));
    *out = d;
    return SL_OK;
}

void sl_model_desc_destroy(sl_model_desc *d) {
    if (!d) return;
    if (d->units) {
        for (int u = 0; u < d->n_units; u++)
            free(d->units[u].params);
    }
    free(d->units);
    free(d->params);
    free(d);
}

int sl_model_find_param(const sl_model_desc *d, const char *name) {
    for (int p = 0; p < d->n_params; p++) {
        if (strcmp(d->params[p].name, name) == 0) return p;
    }
    return -1;
}

float sl_model_init_value(const sl_model_desc *d, int p, uint64_t seed, int64_t index) {
    const sl_param_desc *pd = &d->params[p];
    switch (pd->init) {
    case SL_INIT_ZEROS: return 0.0f;
    case SL_INIT_ONES: return 1.0f;
    case SL_INIT_NORMAL: break;
    }
    uint64_t stream = sl_rng_stream_from_name(pd->name);
    return (float)(pd->init_std * sl_rng_normal(seed, stream, (uint64_t)index));
}

void sl_model_init_range(const sl_model_desc *d, int p, uint64_t seed, int64_t start, int64_t n,
                         float *out) {
    for (int64_t i = 0; i < n; i++)
        out[i] = sl_model_init_value(d, p, seed, start + i);
}

int64_t sl_gpt2_activation_numel(const sl_gpt2_config *cfg, int B, int T) {
    /* The buffers llm.c's train_gpt2.c keeps (its ActivationTensors), which ref/ allocates too:
     * encoded (B,T,C); per layer ln1, atty, attproj, residual2, ln2, fcproj, residual3 (B,T,C),
     * ln1/ln2 mean and rstd (B,T), qkv (B,T,3C), preatt and att (B,H,T,T), fch and fch_gelu
     * (B,T,4C); then lnf (B,T,C), lnf mean/rstd (B,T), logits and probs (B,T,V), losses (B,T). */
    const int64_t BT = (int64_t)B * T, C = cfg->n_embd, H = cfg->n_head, V = cfg->vocab_size;
    const int64_t per_layer =
        7 * BT * C + 4 * BT + 3 * BT * C + 2 * (int64_t)B * H * T * T + 2 * BT * 4 * C;
    return BT * C + cfg->n_layer * per_layer + BT * C + 2 * BT + 2 * BT * V + BT;
}
