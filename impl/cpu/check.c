/* Argument checks of the CPU ops: every message names the op, the tensor (its name, else its
 * role in the op), what was expected and what was found. */
#include "impl/cpu/cpu.h"

#include <stdio.h>

static const char *sl_cpu_tname(const sl_tensor *t, const char *role) {
    return t && t->name ? t->name : role;
}

static void sl_cpu_shape_text(const sl_tensor *t, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && used < size; i++) {
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "",
                                 (long long)t->shape[i]);
    }
    if (used < size) snprintf(buf + used, size - used, "]");
}

sl_status sl_cpu_check_cd(const char *op, sl_dtype cd) {
    if (cd == SL_DTYPE_F32 || cd == SL_DTYPE_BF16 || cd == SL_DTYPE_F16) return SL_OK;
    return sl_error_set(SL_ERR_INVALID_ARG,
                        "%s: compute dtype %s is not supported; expected fp32, bf16 or fp16", op,
                        sl_dtype_name(cd));
}

static sl_status sl_cpu_check_view(const char *op, const char *role, const sl_tensor *t) {
    if (!t || !t->data) {
        return sl_error_set(SL_ERR_INVALID_ARG, "%s: tensor '%s' is missing (NULL %s)", op,
                            sl_cpu_tname(t, role), t ? "data" : "view");
    }
    if (t->ndim < 1 || t->ndim > SL_MAX_DIMS) {
        return sl_error_set(SL_ERR_INVALID_ARG, "%s: tensor '%s' has %d dimensions; expected 1..%d",
                            op, sl_cpu_tname(t, role), t->ndim, SL_MAX_DIMS);
    }
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0) {
            return sl_error_set(SL_ERR_INVALID_ARG,
                                "%s: tensor '%s' has a negative dimension %d (%lld)", op,
                                sl_cpu_tname(t, role), i, (long long)t->shape[i]);
        }
    }
    return SL_OK;
}

sl_status sl_cpu_check_float(const char *op, const char *role, const sl_tensor *t) {
    SL_TRY(sl_cpu_check_view(op, role, t));
    if (t->dtype == SL_DTYPE_F32 || t->dtype == SL_DTYPE_BF16 || t->dtype == SL_DTYPE_F16) {
        return SL_OK;
    }
    return sl_error_set(SL_ERR_INVALID_ARG,
                        "%s: tensor '%s' is stored as %s; expected fp32, bf16 or fp16", op,
                        sl_cpu_tname(t, role), sl_dtype_name(t->dtype));
}

sl_status sl_cpu_check_out(const char *op, const char *role, const sl_tensor *t, sl_dtype cd) {
    SL_TRY(sl_cpu_check_float(op, role, t));
    if (t->dtype == SL_DTYPE_F32 || t->dtype == cd) return SL_OK;
    return sl_error_set(SL_ERR_INVALID_ARG,
                        "%s: output '%s' is stored as %s but the compute dtype is %s; store "
                        "outputs as fp32 or as the compute dtype, so that writing them rounds once",
                        op, sl_cpu_tname(t, role), sl_dtype_name(t->dtype), sl_dtype_name(cd));
}

sl_status sl_cpu_check_dtype(const char *op, const char *role, const sl_tensor *t, sl_dtype dt) {
    SL_TRY(sl_cpu_check_view(op, role, t));
    if (t->dtype == dt) return SL_OK;
    return sl_error_set(SL_ERR_INVALID_ARG, "%s: tensor '%s' is stored as %s; expected %s", op,
                        sl_cpu_tname(t, role), sl_dtype_name(t->dtype), sl_dtype_name(dt));
}

sl_status sl_cpu_check_shape(const char *op, const char *role, const sl_tensor *t, int ndim,
                             const int64_t *shape) {
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (same) return SL_OK;
    const sl_tensor want = {.ndim = ndim,
                            .shape = {shape[0], ndim > 1 ? shape[1] : 0, ndim > 2 ? shape[2] : 0,
                                      ndim > 3 ? shape[3] : 0}};
    char found[96], expected[96];
    sl_cpu_shape_text(t, found, sizeof found);
    sl_cpu_shape_text(&want, expected, sizeof expected);
    return sl_error_set(SL_ERR_MISMATCH, "%s: tensor '%s' has shape %s; expected %s", op,
                        sl_cpu_tname(t, role), found, expected);
}

sl_status sl_cpu_check_rows(const char *op, const char *role, const sl_tensor *t, int64_t cols,
                            int64_t *rows) {
    if (t->shape[t->ndim - 1] == cols && cols > 0) {
        *rows = sl_tensor_numel(t) / cols;
        return SL_OK;
    }
    char found[96];
    sl_cpu_shape_text(t, found, sizeof found);
    return sl_error_set(SL_ERR_MISMATCH,
                        "%s: tensor '%s' has shape %s; expected a last dimension of %lld", op,
                        sl_cpu_tname(t, role), found, (long long)cols);
}

sl_status sl_cpu_check_numel(const char *op, const char *role, const sl_tensor *t, int64_t numel) {
    if (sl_tensor_numel(t) == numel) return SL_OK;
    char found[96];
    sl_cpu_shape_text(t, found, sizeof found);
    return sl_error_set(SL_ERR_MISMATCH,
                        "%s: tensor '%s' has shape %s (%lld elements); expected "
                        "%lld elements",
                        op, sl_cpu_tname(t, role), found, (long long)sl_tensor_numel(t),
                        (long long)numel);
}
