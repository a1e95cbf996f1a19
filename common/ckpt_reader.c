/* Reading a checkpoint's tensors by global element range, whatever layout wrote them
 * (include/shardlab/checkpoint.h). Files are opened on first use and verified then: size,
 * checksum, and every entry the manifest lists. */
#include <stdlib.h>
#include <string.h>

#include "common/ckpt_format.h"
#include "common/fileio.h"
#include "shardlab/safetensors.h"

struct sl_ckpt_reader {
    char dir[4096];
    const sl_model_desc *model;
    sl_ckpt_manifest m;
    sl_safetensors **files; /* [n_files], NULL until needed */
};

sl_status sl_ckpt_reader_open(const char *dir, const sl_model_desc *model, sl_ckpt_reader **out) {
    *out = NULL;
    if (strlen(dir) >= 4000)
        return sl_error_set(SL_ERR_INVALID_ARG, "checkpoint path '%.64s...' is too long", dir);
    sl_ckpt_reader *r = calloc(1, sizeof *r);
    if (!r) return sl_error_set(SL_ERR_OOM, "out of memory opening checkpoint %s", dir);
    strcpy(r->dir, dir);
    r->model = model;
    sl_status st = sl_ckpt_manifest_read(dir, model, &r->m);
    if (st == SL_OK) {
        r->files = calloc((size_t)r->m.n_files + 1, sizeof *r->files);
        if (!r->files) st = sl_error_set(SL_ERR_OOM, "out of memory opening checkpoint %s", dir);
    }
    if (st != SL_OK) {
        sl_ckpt_reader_close(r);
        return st;
    }
    *out = r;
    return SL_OK;
}

const sl_ckpt_manifest *sl_ckpt_reader_manifest(const sl_ckpt_reader *r) {
    return &r->m;
}

void sl_ckpt_reader_close(sl_ckpt_reader *r) {
    if (!r) return;
    for (int i = 0; r->files && i < r->m.n_files; i++)
        sl_safetensors_close(r->files[i]);
    free(r->files);
    sl_ckpt_manifest_free(&r->m);
    free(r);
}

/* Every entry the manifest lists for file i is in it, of its range's length, floating; 1-D in a
 * SHARDED checkpoint, of the parameter's shape in a FULL one. */
static sl_status sl_ckpt_check_entries(const sl_ckpt_reader *r, int i, const sl_safetensors *st,
                                       const char *path) {
    const sl_ckpt_file *f = &r->m.files[i];
    const bool full = r->m.type == SL_STATE_DICT_FULL;
    for (int k = 0; k < f->n_ranges; k++) {
        const sl_ckpt_range *rg = &f->ranges[k];
        const int ndim = full ? r->model->params[rg->param].ndim : 1;
        for (int w = f->optim ? 1 : 0; w < (f->optim ? 3 : 1); w++) {
            char name[256];
            sl_ckpt_tensor_name((sl_ckpt_state)w, r->model->params[rg->param].name, rg->start,
                                rg->end, full, name, sizeof name);
            const sl_safetensors_tensor *t = NULL;
            SL_TRY(sl_safetensors_get(st, name, &t));
            if (t->ndim != ndim || (int64_t)t->numel != rg->end - rg->start ||
                !sl_dtype_is_float(t->dtype) || t->dtype == SL_DTYPE_F64) {
                return sl_error_set(SL_ERR_MISMATCH,
                                    "%s: tensor '%s' must be F32, BF16 or F16 with %d dims and "
                                    "%lld elements; found %d dims, %zu elements, %s",
                                    path, name, ndim, (long long)(rg->end - rg->start), t->ndim,
                                    t->numel, sl_dtype_safetensors_name(t->dtype));
            }
        }
    }
    return SL_OK;
}

static sl_status sl_ckpt_open_file(sl_ckpt_reader *r, int i) {
    if (r->files[i]) return SL_OK;
    const sl_ckpt_file *f = &r->m.files[i];
    char path[4352];
    snprintf(path, sizeof path, "%s/%s", r->dir, f->name);
    char *data = NULL;
    size_t len = 0;
    SL_TRY(sl_file_read_all(path, &data, &len));
    const uint64_t sum = sl_ckpt_fnv1a64(data, len);
    sl_status st = SL_OK;
    if ((int64_t)len != f->bytes || sum != f->fnv1a64) {
        st = sl_error_set(SL_ERR_MISMATCH,
                          "%s: checksum mismatch: the manifest lists %lld bytes with fnv1a64 "
                          "%016llx, the file has %zu bytes with %016llx; the file is corrupted: "
                          "resume from another checkpoint",
                          path, (long long)f->bytes, (unsigned long long)f->fnv1a64, len,
                          (unsigned long long)sum);
    }
    if (st == SL_OK) st = sl_safetensors_open_memory(data, len, path, &r->files[i]);
    free(data);
    if (st == SL_OK) st = sl_ckpt_check_entries(r, i, r->files[i], path);
    if (st != SL_OK) {
        sl_safetensors_close(r->files[i]);
        r->files[i] = NULL;
    }
    return st;
}

static float sl_ckpt_elem(const sl_safetensors_tensor *t, int64_t i) {
    switch (t->dtype) {
    case SL_DTYPE_BF16:
    case SL_DTYPE_F16: {
        uint16_t h;
        memcpy(&h, (const char *)t->data + 2 * i, 2);
        return t->dtype == SL_DTYPE_BF16 ? sl_bf16_to_f32(h) : sl_f16_to_f32(h);
    }
    default: {
        float x;
        memcpy(&x, (const char *)t->data + 4 * i, 4);
        return x;
    }
    }
}

sl_status sl_ckpt_reader_read(sl_ckpt_reader *r, sl_ckpt_state which, int param, int64_t start,
                              int64_t end, float *out) {
    const sl_param_desc *pd = &r->model->params[param];
    if (start < 0 || end > pd->numel || start > end) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "checkpoint read of '%s' [%lld, %lld): outside "
                            "its %lld elements",
                            pd->name, (long long)start, (long long)end, (long long)pd->numel);
    }
    const bool optim = which != SL_CKPT_PARAMS;
    for (int i = 0; i < r->m.n_files; i++) {
        const sl_ckpt_file *f = &r->m.files[i];
        if (f->optim != optim) continue;
        for (int k = 0; k < f->n_ranges; k++) {
            const sl_ckpt_range *rg = &f->ranges[k];
            const int64_t lo = rg->start > start ? rg->start : start;
            const int64_t hi = rg->end < end ? rg->end : end;
            if (rg->param != param || lo >= hi) continue;
            SL_TRY(sl_ckpt_open_file(r, i));
            char name[256];
            sl_ckpt_tensor_name(which, pd->name, rg->start, rg->end,
                                r->m.type == SL_STATE_DICT_FULL, name, sizeof name);
            const sl_safetensors_tensor *t = sl_safetensors_find(r->files[i], name);
            for (int64_t j = lo; j < hi; j++)
                out[j - start] = sl_ckpt_elem(t, j - rg->start);
        }
    }
    return SL_OK;
}
