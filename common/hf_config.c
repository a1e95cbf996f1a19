/* config.json of the Hugging Face layout (hf_model.h): GPT2Config written for an export, and a
 * config.json read back and held against the model description. The keys and defaults are
 * transformers' GPT2Config (models/gpt2/configuration_gpt2.py). */
#include <stdio.h>
#include <string.h>

#include "common/fileio.h"
#include "common/hf_model.h"
#include "common/json.h"

/* ---- writing -------------------------------------------------------------------------------- */

typedef struct sl_hf_config_ctx {
    const sl_gpt2_config *g;
    sl_dtype dtype;
} sl_hf_config_ctx;

static const char *sl_hf_torch_dtype(sl_dtype dt) {
    switch (dt) {
    case SL_DTYPE_BF16: return "bfloat16";
    case SL_DTYPE_F16: return "float16";
    default: return "float32";
    }
}

/* GPT-2's tokenizer puts <|endoftext|> (50256) at both ends; a model with another vocabulary has
 * no such token as far as shardlab knows, so the ids stay null. */
static void sl_hf_token_id(sl_json_writer *jw, const sl_gpt2_config *g) {
    if (g->vocab_size == 50257) {
        sl_json_writer_int64(jw, 50256);
    } else {
        sl_json_writer_null(jw);
    }
}

static sl_status sl_hf_config_emit(FILE *f, void *vctx) {
    const sl_hf_config_ctx *c = vctx;
    const sl_gpt2_config *g = c->g;
    sl_json_writer jw;
    sl_json_writer_init(&jw, f, 2);
    sl_json_writer_begin_object(&jw);
    sl_json_writer_key(&jw, "activation_function");
    sl_json_writer_string(&jw, "gelu_new"); /* the tanh approximation the kernels compute */
    sl_json_writer_key(&jw, "architectures");
    sl_json_writer_begin_array(&jw);
    sl_json_writer_string(&jw, "GPT2LMHeadModel");
    sl_json_writer_end_array(&jw);
    sl_json_writer_key(&jw, "attn_pdrop");
    sl_json_writer_double(&jw, 0.0);
    sl_json_writer_key(&jw, "bos_token_id");
    sl_hf_token_id(&jw, g);
    sl_json_writer_key(&jw, "embd_pdrop");
    sl_json_writer_double(&jw, 0.0);
    sl_json_writer_key(&jw, "eos_token_id");
    sl_hf_token_id(&jw, g);
    sl_json_writer_key(&jw, "initializer_range");
    sl_json_writer_double(&jw, 0.02);
    sl_json_writer_key(&jw, "layer_norm_epsilon");
    sl_json_writer_double(&jw, 1e-5);
    sl_json_writer_key(&jw, "model_type");
    sl_json_writer_string(&jw, "gpt2");
    sl_json_writer_key(&jw, "n_ctx"); /* read by older transformers releases */
    sl_json_writer_int64(&jw, g->block_size);
    sl_json_writer_key(&jw, "n_embd");
    sl_json_writer_int64(&jw, g->n_embd);
    sl_json_writer_key(&jw, "n_head");
    sl_json_writer_int64(&jw, g->n_head);
    sl_json_writer_key(&jw, "n_inner");
    sl_json_writer_null(&jw); /* 4 · n_embd */
    sl_json_writer_key(&jw, "n_layer");
    sl_json_writer_int64(&jw, g->n_layer);
    sl_json_writer_key(&jw, "n_positions");
    sl_json_writer_int64(&jw, g->block_size);
    sl_json_writer_key(&jw, "reorder_and_upcast_attn");
    sl_json_writer_bool(&jw, false);
    sl_json_writer_key(&jw, "resid_pdrop");
    sl_json_writer_double(&jw, 0.0);
    sl_json_writer_key(&jw, "scale_attn_by_inverse_layer_idx");
    sl_json_writer_bool(&jw, false);
    sl_json_writer_key(&jw, "scale_attn_weights");
    sl_json_writer_bool(&jw, true);
    sl_json_writer_key(&jw, "tie_word_embeddings");
    sl_json_writer_bool(&jw, true);
    sl_json_writer_key(&jw, "torch_dtype");
    sl_json_writer_string(&jw, sl_hf_torch_dtype(c->dtype));
    sl_json_writer_key(&jw, "use_cache");
    sl_json_writer_bool(&jw, true);
    sl_json_writer_key(&jw, "vocab_size");
    sl_json_writer_int64(&jw, g->vocab_size);
    sl_json_writer_end_object(&jw);
    return sl_json_writer_finish(&jw);
}

sl_status sl_hf_config_write(const sl_model_desc *desc, sl_dtype dtype, const char *path) {
    if (strcmp(desc->kind, "gpt2") != 0) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "%s: config.json describes GPT-2 models only; this model is '%s'", path,
                            desc->kind);
    }
    sl_hf_config_ctx ctx = {.g = &desc->gpt2, .dtype = dtype};
    return sl_file_write_atomic(path, sl_hf_config_emit, &ctx);
}

/* ---- checking ------------------------------------------------------------------------------- */

static sl_status sl_hf_config_bad(const sl_json *v, const char *key, const char *expected,
                                  const char *fix) {
    return sl_error_set(SL_ERR_MISMATCH, "%s:%d:%d: %s: expected %s; %s", sl_json_file(v),
                        sl_json_line(v), sl_json_column(v), key, expected, fix);
}

static sl_status sl_hf_config_check_sizes(const sl_json *root, const sl_gpt2_config *g) {
    const struct {
        const char *key;
        int64_t dflt; /* GPT2Config's default, used by transformers when the key is absent */
        int64_t model;
        const char *flag;
    } sizes[] = {
        {"n_layer", 12, g->n_layer, "--n_layer"},
        {"n_embd", 768, g->n_embd, "--n_embd"},
        {"n_head", 12, g->n_head, "--n_head"},
        {"n_positions", 1024, g->block_size, "--block_size"},
        {"vocab_size", 50257, g->vocab_size, "--vocab_size"},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const sl_json *v = sl_json_get(root, sizes[i].key);
        int64_t have = sizes[i].dflt;
        if (v && !sl_json_int64(v, &have)) {
            return sl_error_set(SL_ERR_FORMAT, "%s:%d:%d: %s: expected an integer, found %s",
                                sl_json_file(v), sl_json_line(v), sl_json_column(v), sizes[i].key,
                                sl_json_type_name(sl_json_type_of(v)));
        }
        if (have == sizes[i].model) continue;
        const char *file = v ? sl_json_file(v) : sl_json_file(root);
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s:%d: %s is %lld%s but the model has %lld; train with %s %lld (or "
                            "the --model the export was made with)",
                            file, v ? sl_json_line(v) : 1, sizes[i].key, (long long)have,
                            v ? "" : " (absent: GPT2Config's default)", (long long)sizes[i].model,
                            sizes[i].flag, (long long)have);
    }
    return SL_OK;
}

static sl_status sl_hf_config_check_rules(const sl_json *root, const sl_gpt2_config *g) {
    const char *const unsupported = "shardlab's GPT-2 cannot represent this model";
    const sl_json *v = sl_json_get(root, "model_type");
    if (v && (sl_json_type_of(v) != SL_JSON_STRING || strcmp(sl_json_string(v), "gpt2") != 0))
        return sl_hf_config_bad(v, "model_type", "\"gpt2\"", unsupported);
    v = sl_json_get(root, "n_inner");
    int64_t inner = 0;
    if (v && sl_json_type_of(v) != SL_JSON_NULL &&
        !(sl_json_int64(v, &inner) && inner == 4 * (int64_t)g->n_embd))
        return sl_hf_config_bad(v, "n_inner", "null or 4 * n_embd", unsupported);
    v = sl_json_get(root, "activation_function");
    if (v && (sl_json_type_of(v) != SL_JSON_STRING ||
              (strcmp(sl_json_string(v), "gelu_new") != 0 &&
               strcmp(sl_json_string(v), "gelu_pytorch_tanh") != 0)))
        return sl_hf_config_bad(v, "activation_function", "\"gelu_new\" (tanh GELU)", unsupported);
    v = sl_json_get(root, "layer_norm_epsilon");
    if (v && !(sl_json_type_of(v) == SL_JSON_NUMBER && sl_json_number(v) == 1e-5))
        return sl_hf_config_bad(v, "layer_norm_epsilon", "1e-05", unsupported);
    const struct {
        const char *key;
        bool want;
    } flags[] = {{"tie_word_embeddings", true},
                 {"scale_attn_weights", true},
                 {"scale_attn_by_inverse_layer_idx", false},
                 {"add_cross_attention", false}};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        v = sl_json_get(root, flags[i].key);
        if (v && !(sl_json_type_of(v) == SL_JSON_BOOL && sl_json_bool(v) == flags[i].want))
            return sl_hf_config_bad(v, flags[i].key, flags[i].want ? "true" : "false", unsupported);
    }
    return SL_OK;
}

sl_status sl_hf_config_check(const char *path, const sl_model_desc *desc) {
    sl_json *root = NULL;
    SL_TRY(sl_json_parse_file(path, &root));
    sl_status st = sl_json_expect(root, SL_JSON_OBJECT, "config.json");
    if (st == SL_OK) st = sl_hf_config_check_sizes(root, &desc->gpt2);
    if (st == SL_OK) st = sl_hf_config_check_rules(root, &desc->gpt2);
    sl_json_free(root);
    return st;
}
