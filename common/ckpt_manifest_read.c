/* manifest.json of a checkpoint: the reader and its validation against a model
 * (include/shardlab/checkpoint.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/ckpt_format.h"
#include "common/json.h"
#include "shardlab/lr_schedule.h"

typedef struct sl_mf_reader {
    const char *path; /* of manifest.json */
    const sl_json *root;
} sl_mf_reader;

static sl_status sl_mf_member(const sl_mf_reader *rd, const sl_json *obj, const char *key,
                              sl_json_type t, const sl_json **out) {
    const sl_json *v = sl_json_get(obj, key);
    if (!v) {
        return sl_error_set(SL_ERR_FORMAT,
                            "%s:%d:%d: key '%s' is missing (expected a %s); the manifest is "
                            "damaged or was not written by shardlab",
                            rd->path, sl_json_line(obj), sl_json_column(obj), key,
                            sl_json_type_name(t));
    }
    SL_TRY(sl_json_expect(v, t, key));
    *out = v;
    return SL_OK;
}

static sl_status sl_mf_i64(const sl_mf_reader *rd, const sl_json *obj, const char *key, int64_t lo,
                           int64_t *out) {
    const sl_json *v = NULL;
    SL_TRY(sl_mf_member(rd, obj, key, SL_JSON_NUMBER, &v));
    if (!sl_json_int64(v, out) || *out < lo) {
        return sl_error_set(
            SL_ERR_FORMAT, "%s:%d:%d: key '%s': expected an integer >= %lld, found %s", rd->path,
            sl_json_line(v), sl_json_column(v), key, (long long)lo, sl_json_number_text(v));
    }
    return SL_OK;
}

static sl_status sl_mf_int(const sl_mf_reader *rd, const sl_json *obj, const char *key, int lo,
                           int *out) {
    int64_t v = 0;
    SL_TRY(sl_mf_i64(rd, obj, key, lo, &v));
    if (v > 1000000000) {
        return sl_error_set(SL_ERR_FORMAT, "%s: key '%s' = %lld is out of range", rd->path, key,
                            (long long)v);
    }
    *out = (int)v;
    return SL_OK;
}

static sl_status sl_mf_num(const sl_mf_reader *rd, const sl_json *obj, const char *key,
                           double *out) {
    const sl_json *v = NULL;
    SL_TRY(sl_mf_member(rd, obj, key, SL_JSON_NUMBER, &v));
    *out = sl_json_number(v);
    return SL_OK;
}

static sl_status sl_mf_str(const sl_mf_reader *rd, const sl_json *obj, const char *key, char *buf,
                           size_t cap) {
    const sl_json *v = NULL;
    SL_TRY(sl_mf_member(rd, obj, key, SL_JSON_STRING, &v));
    if (sl_json_string_length(v) >= cap) {
        return sl_error_set(SL_ERR_FORMAT, "%s:%d:%d: key '%s': value longer than %zu bytes",
                            rd->path, sl_json_line(v), sl_json_column(v), key, cap - 1);
    }
    strcpy(buf, sl_json_string(v));
    return SL_OK;
}

static sl_status sl_mf_u64(const sl_mf_reader *rd, const sl_json *obj, const char *key,
                           uint64_t *out) {
    const sl_json *v = NULL;
    SL_TRY(sl_mf_member(rd, obj, key, SL_JSON_NUMBER, &v));
    char *end = NULL;
    errno = 0;
    *out = strtoull(sl_json_number_text(v), &end, 10);
    if (*end || errno || sl_json_number_text(v)[0] == '-') {
        return sl_error_set(SL_ERR_FORMAT,
                            "%s:%d:%d: key '%s': expected an unsigned integer, found %s", rd->path,
                            sl_json_line(v), sl_json_column(v), key, sl_json_number_text(v));
    }
    return SL_OK;
}

static sl_status sl_mf_header(const sl_mf_reader *rd, sl_ckpt_manifest *m) {
    char text[64];
    SL_TRY(sl_mf_str(rd, rd->root, "format", text, sizeof text));
    if (strcmp(text, "shardlab-checkpoint") != 0) {
        return sl_error_set(SL_ERR_FORMAT,
                            "%s: format is '%s', expected 'shardlab-checkpoint': not a shardlab "
                            "checkpoint",
                            rd->path, text);
    }
    SL_TRY(sl_mf_int(rd, rd->root, "format_version", 1, &m->format_version));
    if (m->format_version > SL_CKPT_FORMAT_VERSION) {
        return sl_error_set(SL_ERR_FORMAT,
                            "%s: format_version %d is newer than this shardlab reads (%d); load "
                            "it with the newer shardlab that wrote it",
                            rd->path, m->format_version, SL_CKPT_FORMAT_VERSION);
    }
    SL_TRY(sl_mf_str(rd, rd->root, "state_dict_type", text, sizeof text));
    if (sl_state_dict_type_parse(text, &m->type) != SL_OK)
        return sl_error_prefix(SL_ERR_FORMAT, "%s: key state_dict_type: ", rd->path);
    SL_TRY(sl_mf_i64(rd, rd->root, "step", 0, &m->step));
    SL_TRY(sl_mf_int(rd, rd->root, "world_size", 1, &m->world_size));
    const sl_json *plan = NULL;
    SL_TRY(sl_mf_member(rd, rd->root, "plan", SL_JSON_OBJECT, &plan));
    SL_TRY(sl_mf_str(rd, plan, "dialect", m->dialect, sizeof m->dialect));
    SL_TRY(sl_mf_str(rd, plan, "strategy", m->strategy, sizeof m->strategy));
    SL_TRY(sl_mf_str(rd, plan, "layout", m->layout, sizeof m->layout));
    SL_TRY(sl_mf_int(rd, plan, "shard_group_size", 1, &m->shard_group_size));
    SL_TRY(sl_mf_int(rd, plan, "grad_accum_steps", 1, &m->grad_accum_steps));
    SL_TRY(sl_mf_int(rd, plan, "micro_batch_size", 1, &m->micro_batch_size));
    SL_TRY(sl_mf_int(rd, plan, "seq_len", 1, &m->seq_len));
    SL_TRY(sl_mf_int(rd, plan, "max_steps", 0, &m->total_steps));
    SL_TRY(sl_mf_u64(rd, plan, "seed", &m->seed));
    const sl_json *det = NULL;
    SL_TRY(sl_mf_member(rd, plan, "deterministic", SL_JSON_BOOL, &det));
    m->deterministic = sl_json_bool(det);
    SL_TRY(sl_mf_str(rd, plan, "master_dtype", text, sizeof text));
    SL_TRY(sl_dtype_parse(text, "manifest plan.master_dtype", &m->master_dtype));
    SL_TRY(sl_mf_str(rd, plan, "optim_dtype", text, sizeof text));
    return sl_dtype_parse(text, "manifest plan.optim_dtype", &m->optim_dtype);
}

/* The manifest's parameters must be the model's, in order, with the same shapes. */
static sl_status sl_mf_model(const sl_mf_reader *rd, const sl_model_desc *model,
                             sl_ckpt_manifest *m) {
    const sl_json *mo = NULL, *params = NULL;
    SL_TRY(sl_mf_member(rd, rd->root, "model", SL_JSON_OBJECT, &mo));
    SL_TRY(sl_mf_str(rd, mo, "kind", m->model_kind, sizeof m->model_kind));
    SL_TRY(sl_mf_int(rd, mo, "n_layer", 0, &m->gpt2.n_layer));
    SL_TRY(sl_mf_int(rd, mo, "n_embd", 0, &m->gpt2.n_embd));
    SL_TRY(sl_mf_int(rd, mo, "n_head", 0, &m->gpt2.n_head));
    SL_TRY(sl_mf_int(rd, mo, "block_size", 0, &m->gpt2.block_size));
    SL_TRY(sl_mf_int(rd, mo, "vocab_size", 0, &m->gpt2.vocab_size));
    SL_TRY(sl_mf_member(rd, mo, "params", SL_JSON_ARRAY, &params));
    const sl_gpt2_config *g = &model->gpt2;
    if (strcmp(m->model_kind, model->kind) != 0 || m->gpt2.n_layer != g->n_layer ||
        m->gpt2.n_embd != g->n_embd || m->gpt2.n_head != g->n_head ||
        m->gpt2.block_size != g->block_size || m->gpt2.vocab_size != g->vocab_size) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: the checkpoint is of model %s L%d C%d H%d T%d V%d but this run's "
                            "is %s L%d C%d H%d T%d V%d; pass the model flags the checkpoint was "
                            "saved with",
                            rd->path, m->model_kind, m->gpt2.n_layer, m->gpt2.n_embd,
                            m->gpt2.n_head, m->gpt2.block_size, m->gpt2.vocab_size, model->kind,
                            g->n_layer, g->n_embd, g->n_head, g->block_size, g->vocab_size);
    }
    if ((int)sl_json_count(params) != model->n_params) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: the checkpoint's model has %zu parameters, this run's %d; pass "
                            "the model the checkpoint was saved with",
                            rd->path, sl_json_count(params), model->n_params);
    }
    for (int p = 0; p < model->n_params; p++) {
        const sl_param_desc *pd = &model->params[p];
        const sl_json *e = sl_json_at(params, (size_t)p), *shape = NULL;
        char name[SL_MAX_NAME];
        SL_TRY(sl_mf_str(rd, e, "name", name, sizeof name));
        SL_TRY(sl_mf_member(rd, e, "shape", SL_JSON_ARRAY, &shape));
        bool same = !strcmp(name, pd->name) && (int)sl_json_count(shape) == pd->ndim;
        for (int d = 0; same && d < pd->ndim; d++) {
            int64_t n = -1;
            same = sl_json_int64(sl_json_at(shape, (size_t)d), &n) && n == pd->shape[d];
        }
        if (!same) {
            return sl_error_set(SL_ERR_MISMATCH,
                                "%s:%d: parameter %d of the checkpoint is '%s' with %zu dims, the "
                                "model's is '%s' (%d dims, dim 0 = %lld); the checkpoint was "
                                "saved for another model",
                                rd->path, sl_json_line(e), p, name, sl_json_count(shape), pd->name,
                                pd->ndim, (long long)pd->shape[0]);
        }
    }
    return SL_OK;
}

static sl_status sl_mf_kind(const sl_mf_reader *rd, const sl_json *obj, sl_loss_scaler_kind *out) {
    char text[64];
    SL_TRY(sl_mf_str(rd, obj, "kind", text, sizeof text));
    for (int k = SL_SCALER_NONE; k <= SL_SCALER_TORCH_GRADSCALER; k++) {
        if (!strcmp(text, sl_loss_scaler_kind_name((sl_loss_scaler_kind)k))) {
            *out = (sl_loss_scaler_kind)k;
            return SL_OK;
        }
    }
    return sl_error_set(SL_ERR_FORMAT, "%s: loss_scaler.kind '%s' is not a loss scaler", rd->path,
                        text);
}

static sl_status sl_mf_state(const sl_mf_reader *rd, sl_ckpt_manifest *m) {
    const sl_json *o = NULL, *lr = NULL, *ls = NULL, *data = NULL;
    SL_TRY(sl_mf_member(rd, rd->root, "optimizer", SL_JSON_OBJECT, &o));
    SL_TRY(sl_mf_i64(rd, o, "applied_steps", 0, &m->applied_steps));
    SL_TRY(sl_mf_num(rd, o, "lr", &m->optim.lr));
    SL_TRY(sl_mf_num(rd, o, "beta1", &m->optim.beta1));
    SL_TRY(sl_mf_num(rd, o, "beta2", &m->optim.beta2));
    SL_TRY(sl_mf_num(rd, o, "eps", &m->optim.eps));
    SL_TRY(sl_mf_num(rd, o, "weight_decay", &m->optim.weight_decay));
    SL_TRY(sl_mf_num(rd, o, "max_grad_norm", &m->optim.max_grad_norm));
    SL_TRY(sl_mf_member(rd, rd->root, "lr_schedule", SL_JSON_OBJECT, &lr));
    char text[64];
    SL_TRY(sl_mf_str(rd, lr, "schedule", text, sizeof text));
    for (int s = SL_LR_CONSTANT; s <= SL_LR_WARMUP_LINEAR; s++) {
        if (!strcmp(text, sl_lr_schedule_name((sl_lr_schedule)s)))
            m->optim.schedule = (sl_lr_schedule)s;
    }
    SL_TRY(sl_mf_int(rd, lr, "warmup_steps", 0, &m->optim.warmup_steps));
    SL_TRY(sl_mf_num(rd, lr, "min_lr_ratio", &m->optim.min_lr_ratio));
    SL_TRY(sl_mf_member(rd, rd->root, "loss_scaler", SL_JSON_OBJECT, &ls));
    SL_TRY(sl_mf_kind(rd, ls, &m->scaler.kind));
    SL_TRY(sl_mf_num(rd, ls, "scale", &m->scaler.scale));
    SL_TRY(sl_mf_i64(rd, ls, "cur_iter", 0, &m->scaler.cur_iter));
    SL_TRY(sl_mf_i64(rd, ls, "last_overflow_iter", -1, &m->scaler.last_overflow_iter));
    SL_TRY(sl_mf_int(rd, ls, "cur_hysteresis", 0, &m->scaler.cur_hysteresis));
    SL_TRY(sl_mf_int(rd, ls, "growth_tracker", 0, &m->scaler.growth_tracker));
    data = sl_json_get(rd->root, "data");
    m->has_data = data && sl_json_type_of(data) != SL_JSON_NULL;
    if (!m->has_data) return SL_OK;
    SL_TRY(sl_json_expect(data, SL_JSON_OBJECT, "data"));
    SL_TRY(sl_mf_i64(rd, data, "epoch", 0, &m->data.epoch));
    SL_TRY(sl_mf_i64(rd, data, "sample_in_epoch", 0, &m->data.sample_in_epoch));
    SL_TRY(sl_mf_i64(rd, data, "batch_in_epoch", 0, &m->data.batch_in_epoch));
    return sl_mf_i64(rd, data, "consumed_samples", 0, &m->consumed_samples);
}

static sl_status sl_mf_file(const sl_mf_reader *rd, const char *dir, const sl_model_desc *model,
                            const sl_json *e, sl_ckpt_file *f) {
    char kind[16], hex[32];
    const sl_json *tensors = NULL;
    SL_TRY(sl_mf_str(rd, e, "name", f->name, sizeof f->name));
    if (strchr(f->name, '/') || f->name[0] == '.' || !f->name[0]) {
        return sl_error_set(SL_ERR_FORMAT, "%s:%d: file name '%s' must name a file beside it",
                            rd->path, sl_json_line(e), f->name);
    }
    SL_TRY(sl_mf_int(rd, e, "rank", 0, &f->rank));
    SL_TRY(sl_mf_str(rd, e, "kind", kind, sizeof kind));
    f->optim = !strcmp(kind, "optim");
    if (!f->optim && strcmp(kind, "params") != 0) {
        return sl_error_set(SL_ERR_FORMAT, "%s:%d: file %s: kind '%s', expected params or optim",
                            rd->path, sl_json_line(e), f->name, kind);
    }
    SL_TRY(sl_mf_i64(rd, e, "bytes", 0, &f->bytes));
    SL_TRY(sl_mf_str(rd, e, "fnv1a64", hex, sizeof hex));
    char *end = NULL;
    f->fnv1a64 = strtoull(hex, &end, 16);
    if (strlen(hex) != 16 || *end) {
        return sl_error_set(SL_ERR_FORMAT, "%s:%d: file %s: fnv1a64 '%s' is not 16 hex digits",
                            rd->path, sl_json_line(e), f->name, hex);
    }
    SL_TRY(sl_mf_member(rd, e, "tensors", SL_JSON_ARRAY, &tensors));
    f->n_ranges = (int)sl_json_count(tensors);
    f->ranges = calloc((size_t)f->n_ranges + 1, sizeof *f->ranges);
    if (!f->ranges) return sl_error_set(SL_ERR_OOM, "out of memory reading %s", rd->path);
    for (int i = 0; i < f->n_ranges; i++) {
        const sl_json *t = sl_json_at(tensors, (size_t)i);
        const sl_json *n = sl_json_at(t, 0);
        int64_t s = -1, x = -1;
        const int p = n ? sl_model_find_param(model, sl_json_string(n)) : -1;
        if (sl_json_type_of(t) != SL_JSON_ARRAY || sl_json_count(t) != 3 || p < 0 ||
            !sl_json_int64(sl_json_at(t, 1), &s) || !sl_json_int64(sl_json_at(t, 2), &x) || s < 0 ||
            x <= s || x > model->params[p].numel) {
            return sl_error_set(SL_ERR_FORMAT,
                                "%s:%d: file %s: tensor entry %d must be [parameter of the model, "
                                "start, end] with 0 <= start < end <= numel; found %s '%s' [%lld, "
                                "%lld)",
                                rd->path, sl_json_line(t), f->name, i, p < 0 ? "unknown" : "",
                                n ? sl_json_string(n) : "?", (long long)s, (long long)x);
        }
        f->ranges[i] = (sl_ckpt_range){.param = p, .start = s, .end = x};
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, f->name);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: file of rank %d listed in %s is missing (%s); the checkpoint is "
                            "incomplete: resume from another one",
                            path, f->rank, rd->path, strerror(errno));
    }
    if ((int64_t)sb.st_size != f->bytes) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: %lld bytes, but %s lists %lld: the file is truncated or was "
                            "changed; resume from another checkpoint",
                            path, (long long)sb.st_size, rd->path, (long long)f->bytes);
    }
    return SL_OK;
}

static int sl_mf_cmp_range(const void *a, const void *b) {
    const sl_ckpt_range *x = a, *y = b;
    if (x->param != y->param) return x->param - y->param;
    return (x->start > y->start) - (x->start < y->start);
}

/* Every element of every parameter is in some file of the kind. */
static sl_status sl_mf_coverage(const sl_mf_reader *rd, const sl_model_desc *model,
                                const sl_ckpt_manifest *m, bool optim) {
    size_t n = 0;
    for (int i = 0; i < m->n_files; i++)
        n += m->files[i].optim == optim ? (size_t)m->files[i].n_ranges : 0;
    sl_ckpt_range *all = calloc(n + 1, sizeof *all);
    if (!all) return sl_error_set(SL_ERR_OOM, "out of memory checking %s", rd->path);
    n = 0;
    for (int i = 0; i < m->n_files; i++) {
        if (m->files[i].optim != optim) continue;
        memcpy(all + n, m->files[i].ranges, (size_t)m->files[i].n_ranges * sizeof *all);
        n += (size_t)m->files[i].n_ranges;
    }
    qsort(all, n, sizeof *all, sl_mf_cmp_range);
    sl_status st = SL_OK;
    size_t i = 0;
    for (int p = 0; st == SL_OK && p < model->n_params; p++) {
        int64_t covered = 0; /* [0, covered) of p is in some file */
        for (; i < n && all[i].param == p; i++) {
            if (all[i].start > covered) break;
            if (all[i].end > covered) covered = all[i].end;
        }
        while (i < n && all[i].param == p)
            i++;
        if (covered < model->params[p].numel) {
            st = sl_error_set(SL_ERR_MISMATCH,
                              "%s: elements from %lld of tensor '%s' (%lld elements) are in no "
                              "%s file; the checkpoint is incomplete",
                              rd->path, (long long)covered, model->params[p].name,
                              (long long)model->params[p].numel, optim ? "optim" : "params");
        }
    }
    free(all);
    return st;
}

sl_status sl_ckpt_manifest_read(const char *dir, const sl_model_desc *model,
                                sl_ckpt_manifest *out) {
    memset(out, 0, sizeof *out);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, SL_CKPT_MANIFEST);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return sl_error_set(SL_ERR_IO,
                            "checkpoint %s: not a directory (%s); pass a checkpoint_N "
                            "directory or `latest`",
                            dir, stat(dir, &sb) != 0 ? strerror(errno) : "a file");
    }
    if (stat(path, &sb) != 0) {
        return sl_error_set(SL_ERR_FORMAT,
                            "%s is not a checkpoint: it has no %s (a checkpoint directory holds "
                            "manifest.json beside its safetensors files); pass a checkpoint_N "
                            "directory",
                            dir, SL_CKPT_MANIFEST);
    }
    sl_json *root = NULL;
    SL_TRY(sl_json_parse_file(path, &root));
    const sl_mf_reader rd = {.path = path, .root = root};
    sl_status st = sl_json_expect(root, SL_JSON_OBJECT, "manifest");
    if (st == SL_OK) st = sl_mf_header(&rd, out);
    if (st == SL_OK) st = sl_mf_model(&rd, model, out);
    if (st == SL_OK) st = sl_mf_state(&rd, out);
    const sl_json *files = NULL;
    if (st == SL_OK) st = sl_mf_member(&rd, root, "files", SL_JSON_ARRAY, &files);
    if (st == SL_OK) {
        out->n_files = (int)sl_json_count(files);
        out->files = calloc((size_t)out->n_files + 1, sizeof *out->files);
        if (!out->files) st = sl_error_set(SL_ERR_OOM, "out of memory reading %s", path);
    }
    for (int i = 0; st == SL_OK && i < out->n_files; i++)
        st = sl_mf_file(&rd, dir, model, sl_json_at(files, (size_t)i), &out->files[i]);
    if (st == SL_OK) st = sl_mf_coverage(&rd, model, out, false);
    if (st == SL_OK) st = sl_mf_coverage(&rd, model, out, true);
    sl_json_free(root);
    if (st != SL_OK) sl_ckpt_manifest_free(out);
    return st;
}

void sl_ckpt_manifest_free(sl_ckpt_manifest *m) {
    for (int i = 0; m->files && i < m->n_files; i++)
        free(m->files[i].ranges);
    free(m->files);
    m->files = NULL;
    m->n_files = 0;
}
