/* Reading the Hugging Face layout (hf_model.h): one file, an index and its shards, or a
 * directory holding either; everything checked against the model description before any value
 * is read. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/hf_model.h"
#include "common/json.h"
#include "shardlab/safetensors.h"

#define SL_HF_PREFIX "transformer."

struct sl_hf_model {
    const sl_model_desc *desc;
    char *origin; /* the index or the single file: what messages name for the export */
    int n_files;
    sl_safetensors **files;
    sl_json *index;       /* NULL for a single file */
    int *file_of;         /* (n_params,) index into files */
    const char **name_of; /* (n_params,) the tensor's name in its file */
};

static bool sl_hf_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool sl_hf_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static bool sl_hf_ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* dir of `path` ("." when it has none) into buf. */
static void sl_hf_dirname(const char *path, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(buf, cap, ".");
    } else if (slash == path) {
        snprintf(buf, cap, "/");
    } else {
        snprintf(buf, cap, "%.*s", (int)(slash - path), path);
    }
}

static sl_status sl_hf_add_file(sl_hf_model *m, const char *path) {
    sl_safetensors **grown = realloc(m->files, (size_t)(m->n_files + 1) * sizeof *grown);
    if (!grown) return sl_error_set(SL_ERR_OOM, "out of memory opening %s", path);
    m->files = grown;
    m->files[m->n_files] = NULL;
    SL_TRY(sl_safetensors_open(path, &m->files[m->n_files]));
    m->n_files++;
    return SL_OK;
}

static int sl_hf_file_index(const sl_hf_model *m, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    for (int i = 0; i < m->n_files; i++) {
        if (!strcmp(sl_safetensors_path(m->files[i]), path)) return i;
    }
    return -1;
}

/* Opens every shard the index names and checks that each holds the tensors mapped to it. */
static sl_status sl_hf_open_index(sl_hf_model *m, const char *dir) {
    SL_TRY(sl_json_parse_file(m->origin, &m->index));
    SL_TRY(sl_json_expect(m->index, SL_JSON_OBJECT, "the index"));
    const sl_json *map = sl_json_get(m->index, "weight_map");
    if (!map) {
        return sl_error_set(SL_ERR_FORMAT,
                            "%s: no \"weight_map\"; expected {\"metadata\": {...}, "
                            "\"weight_map\": {tensor: file}} as transformers writes it",
                            m->origin);
    }
    SL_TRY(sl_json_expect(map, SL_JSON_OBJECT, "weight_map"));
    for (size_t i = 0; i < sl_json_count(map); i++) {
        const sl_json *v = sl_json_at(map, i);
        const char *tensor = sl_json_key_at(map, i);
        SL_TRY(sl_json_expect(v, SL_JSON_STRING, tensor));
        const char *file = sl_json_string(v);
        if (!*file || strchr(file, '/') || !strcmp(file, "..") ||
            strlen(file) != sl_json_string_length(v)) {
            return sl_error_set(SL_ERR_FORMAT,
                                "%s:%d: weight_map[\"%s\"] = \"%s\": expected a file name in the "
                                "index's own directory",
                                m->origin, sl_json_line(v), tensor, file);
        }
        int f = sl_hf_file_index(m, dir, file);
        if (f < 0) {
            char path[4096];
            SL_TRY(sl_hf_path_join(path, sizeof path, dir, file));
            if (!sl_hf_exists(path)) {
                return sl_error_set(SL_ERR_IO,
                                    "%s:%d: tensor '%s' is mapped to %s, which does not exist; "
                                    "the export is incomplete",
                                    m->origin, sl_json_line(v), tensor, path);
            }
            SL_TRY(sl_hf_add_file(m, path));
            f = m->n_files - 1;
        }
        if (!sl_safetensors_find(m->files[f], tensor)) {
            return sl_error_set(
                SL_ERR_MISMATCH, "%s:%d: tensor '%s' is mapped to %s, which does not hold it",
                m->origin, sl_json_line(v), tensor, sl_safetensors_path(m->files[f]));
        }
    }
    return SL_OK;
}

/* The file holding tensor `name` (exactly so called), or -1. */
static int sl_hf_locate(const sl_hf_model *m, const char *name) {
    if (!m->index) return sl_safetensors_find(m->files[0], name) ? 0 : -1;
    const sl_json *v = sl_json_get(sl_json_get(m->index, "weight_map"), name);
    if (!v) return -1;
    char dir[4096];
    sl_hf_dirname(m->origin, dir, sizeof dir);
    return sl_hf_file_index(m, dir, sl_json_string(v));
}

static void sl_hf_shape_text(int ndim, const int64_t *shape, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "(");
    for (int d = 0; d < ndim && n > 0 && (size_t)n < cap; d++)
        n += snprintf(buf + n, cap - (size_t)n, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, ")");
}

static sl_status sl_hf_resolve_param(sl_hf_model *m, int p) {
    const sl_param_desc *pd = &m->desc->params[p];
    const char *name = pd->name;
    int f = sl_hf_locate(m, name);
    if (f < 0 && !strncmp(name, SL_HF_PREFIX, strlen(SL_HF_PREFIX))) {
        name += strlen(SL_HF_PREFIX); /* GPT2Model's own files have no "transformer." */
        f = sl_hf_locate(m, name);
    }
    if (f < 0) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: tensor '%s' is missing (the model has %d parameters); check "
                            "that the model flags (--model, --n_layer, ...) match the export",
                            m->origin, pd->name, m->desc->n_params);
    }
    const sl_safetensors_tensor *t = sl_safetensors_find(m->files[f], name);
    bool same = t->ndim == pd->ndim;
    for (int d = 0; same && d < pd->ndim; d++)
        same = t->shape[d] == pd->shape[d];
    if (!same) {
        char got[128], want[128];
        sl_hf_shape_text(t->ndim, t->shape, got, sizeof got);
        sl_hf_shape_text(pd->ndim, pd->shape, want, sizeof want);
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: tensor '%s' has shape %s but the model expects %s; check that "
                            "the model flags (--model, --n_layer, ...) match the export",
                            sl_safetensors_path(m->files[f]), t->name, got, want);
    }
    if (!sl_dtype_is_float(t->dtype)) {
        return sl_error_set(
            SL_ERR_MISMATCH, "%s: tensor '%s' has dtype %s; expected F32, BF16, F16 or F64",
            sl_safetensors_path(m->files[f]), t->name, sl_dtype_safetensors_name(t->dtype));
    }
    m->file_of[p] = f;
    m->name_of[p] = t->name;
    return SL_OK;
}

/* lm_head.weight may be present when it is the tied embedding itself. */
static sl_status sl_hf_check_tied_head(const sl_hf_model *m, int f, const char *head) {
    const int wte = sl_model_find_param(m->desc, SL_HF_PREFIX "wte.weight");
    const char *file = sl_safetensors_path(m->files[f]);
    const sl_safetensors_tensor *t = sl_safetensors_find(m->files[f], head);
    if (wte < 0 || t->numel != (size_t)m->desc->params[wte].numel) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: tensor '%s' is not the tied embedding transformer.wte.weight; "
                            "shardlab's GPT-2 ties the LM head to it",
                            file, head);
    }
    float *a = malloc(t->numel * sizeof *a), *b = malloc(t->numel * sizeof *b);
    sl_status st = a && b ? SL_OK : sl_error_set(SL_ERR_OOM, "out of memory reading %s", file);
    if (st == SL_OK) st = sl_safetensors_read_f32(m->files[f], head, a, t->numel);
    if (st == SL_OK) st = sl_hf_model_read(m, wte, b);
    for (size_t i = 0; st == SL_OK && i < t->numel; i++) {
        if (memcmp(&a[i], &b[i], sizeof a[i]) == 0) continue;
        st = sl_error_set(SL_ERR_MISMATCH,
                          "%s: tensor '%s' differs from transformer.wte.weight at element %zu "
                          "(%g vs %g); shardlab's GPT-2 ties the LM head to the embedding, so an "
                          "untied head cannot be loaded",
                          file, head, i, (double)a[i], (double)b[i]);
    }
    free(a);
    free(b);
    return st;
}

/* Every tensor of the export must be a parameter, a causal-mask buffer or the tied head. */
static sl_status sl_hf_check_extra(const sl_hf_model *m, int f, const char *name) {
    if (sl_model_find_param(m->desc, name) >= 0) return SL_OK;
    char full[SL_MAX_NAME + 16];
    snprintf(full, sizeof full, SL_HF_PREFIX "%s", name);
    if (sl_model_find_param(m->desc, full) >= 0) return SL_OK;
    if (sl_hf_ends_with(name, ".attn.bias") || sl_hf_ends_with(name, ".attn.masked_bias"))
        return SL_OK; /* GPT2Attention's causal mask, a buffer in older transformers files */
    if (!strcmp(name, "lm_head.weight")) return sl_hf_check_tied_head(m, f, name);
    return sl_error_set(SL_ERR_MISMATCH,
                        "%s: tensor '%s' is not a parameter of the model (%s, %d parameters); "
                        "check that the model flags match the export",
                        sl_safetensors_path(m->files[f]), name, m->desc->kind, m->desc->n_params);
}

static sl_status sl_hf_check_all(sl_hf_model *m) {
    for (int p = 0; p < m->desc->n_params; p++)
        SL_TRY(sl_hf_resolve_param(m, p));
    for (int f = 0; f < m->n_files; f++) {
        for (size_t i = 0; i < sl_safetensors_count(m->files[f]); i++) {
            const char *name = sl_safetensors_at(m->files[f], i)->name;
            /* a shard's tensor the index does not list is not part of the export */
            if (m->index && sl_hf_locate(m, name) != f) continue;
            SL_TRY(sl_hf_check_extra(m, f, name));
        }
    }
    return SL_OK;
}

/* Where the weights are, and whether a config.json beside them describes them. */
static sl_status sl_hf_find_weights(const char *path, char *origin, size_t cap, bool *index,
                                    bool *has_config) {
    char dir[4096];
    if (sl_hf_is_dir(path)) {
        snprintf(dir, sizeof dir, "%s", path);
        snprintf(origin, cap, "%s/%s", path, SL_HF_INDEX_NAME);
        *index = sl_hf_exists(origin);
        if (!*index) snprintf(origin, cap, "%s/model.safetensors", path);
        if (!*index && !sl_hf_exists(origin)) {
            return sl_error_set(SL_ERR_IO,
                                "%s holds neither %s nor model.safetensors; expected a model "
                                "export (shardlab train --save_model, save_pretrained)",
                                path, SL_HF_INDEX_NAME);
        }
        *has_config = true;
    } else if (!sl_hf_exists(path)) {
        return sl_error_set(SL_ERR_IO,
                            "%s: %s; expected a .safetensors file, a %s or an export directory",
                            path, strerror(errno), SL_HF_INDEX_NAME);
    } else {
        snprintf(origin, cap, "%s", path);
        sl_hf_dirname(path, dir, sizeof dir);
        *index = sl_hf_ends_with(path, ".json");
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        *has_config = *index || !strncmp(base, "model", 5);
    }
    if (*has_config) {
        char config[4200];
        snprintf(config, sizeof config, "%s/config.json", dir);
        *has_config = sl_hf_exists(config);
    }
    return SL_OK;
}

sl_status sl_hf_model_open(const char *path, const sl_model_desc *desc, sl_hf_model **out) {
    *out = NULL;
    if (strlen(path) > 4000) return sl_error_set(SL_ERR_INVALID_ARG, "weights path is too long");
    char origin[4200], dir[4200];
    bool index = false, has_config = false;
    SL_TRY(sl_hf_find_weights(path, origin, sizeof origin, &index, &has_config));
    sl_hf_dirname(origin, dir, sizeof dir);
    if (has_config && !strcmp(desc->kind, "gpt2")) {
        char config[4300];
        snprintf(config, sizeof config, "%s/config.json", dir);
        SL_TRY(sl_hf_config_check(config, desc));
    }
    sl_hf_model *m = calloc(1, sizeof *m);
    if (!m) return sl_error_set(SL_ERR_OOM, "out of memory opening %s", path);
    m->desc = desc;
    m->origin = malloc(strlen(origin) + 1);
    m->file_of = calloc((size_t)desc->n_params, sizeof *m->file_of);
    m->name_of = calloc((size_t)desc->n_params, sizeof *m->name_of);
    sl_status st = m->origin && m->file_of && m->name_of
                       ? SL_OK
                       : sl_error_set(SL_ERR_OOM, "out of memory opening %s", path);
    if (st == SL_OK) {
        strcpy(m->origin, origin);
        st = index ? sl_hf_open_index(m, dir) : sl_hf_add_file(m, origin);
    }
    if (st == SL_OK && m->n_files == 0)
        st = sl_error_set(SL_ERR_FORMAT, "%s: the weight_map is empty", origin);
    if (st == SL_OK) st = sl_hf_check_all(m);
    if (st != SL_OK) {
        sl_hf_model_close(m);
        return st;
    }
    *out = m;
    return SL_OK;
}

void sl_hf_model_close(sl_hf_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_files; i++)
        sl_safetensors_close(m->files[i]);
    free(m->files);
    sl_json_free(m->index);
    free(m->origin);
    free(m->file_of);
    free(m->name_of);
    free(m);
}

sl_status sl_hf_model_read(const sl_hf_model *m, int p, float *out) {
    return sl_safetensors_read_f32(m->files[m->file_of[p]], m->name_of[p], out,
                                   (size_t)m->desc->params[p].numel);
}

const char *sl_hf_model_file_of(const sl_hf_model *m, int p) {
    return sl_safetensors_path(m->files[m->file_of[p]]);
}
