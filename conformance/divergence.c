/* Divergence measures, bit equality and the noise-floor perturbation (divergence.h). */
#include "conformance/divergence.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shardlab/safetensors.h"

const char *sl_conf_quantity_name(sl_conf_quantity q) {
    static const char *const names[SL_CONF_Q_COUNT] = {"loss", "grad_norm", "grads_step1", "final"};
    return (unsigned)q < SL_CONF_Q_COUNT ? names[q] : "?";
}

/* |a - b| / |b| (|b| = 0: / 1); equal values, infinities included, diverge by 0; NaN by NaN. */
static double sl_conf_rel(double a, double b) {
    if (a == b) return 0.0;
    return fabs(a - b) / (fabs(b) > 0.0 ? fabs(b) : 1.0);
}

double sl_conf_series_divergence(const double *a, const double *b, int n) {
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        const double d = sl_conf_rel(a[i], b[i]);
        if (!(d <= worst)) worst = d; /* a NaN wins */
    }
    return worst;
}

static int sl_conf_find(const sl_conf_tensors *t, const char *name) {
    for (int i = 0; i < t->n; i++) {
        if (!strcmp(t->names[i], name)) return i;
    }
    return -1;
}

sl_status sl_conf_tensors_divergence(const sl_conf_tensors *a, const sl_conf_tensors *b,
                                     double *out) {
    double diff = 0.0, scale = 0.0; /* f64: exact for differences of f32 values */
    for (int j = 0; j < b->n; j++) {
        const int i = sl_conf_find(a, b->names[j]);
        if (i < 0 || a->numel[i] != b->numel[j]) {
            return sl_error_set(
                SL_ERR_MISMATCH, "tensor '%s': expected %zu elements in both runs, found %s",
                b->names[j], b->numel[j], i < 0 ? "it missing in one" : "another count");
        }
        for (size_t e = 0; e < b->numel[j]; e++) {
            const double x = a->data[i][e], y = b->data[j][e];
            const double d = fabs(x - y);
            if (!(d <= diff)) diff = d;
            if (fabs(y) > scale) scale = fabs(y);
        }
    }
    *out = scale > 0.0 ? diff / scale : diff;
    return SL_OK;
}

sl_status sl_conf_run_divergence(const sl_conf_result *a, const sl_conf_result *b,
                                 sl_conf_divergence *out) {
    if (a->n_steps != b->n_steps) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "runs to compare have %d and %d steps (logs %s and %s); they must "
                            "train the same number of steps",
                            a->n_steps, b->n_steps, a->log_path, b->log_path);
    }
    out->q[SL_CONF_Q_LOSS] = out->q[SL_CONF_Q_GRAD_NORM] = 0.0;
    for (int i = 0; i < a->n_steps; i++) {
        const double dl = sl_conf_rel(a->steps[i].loss, b->steps[i].loss);
        const double dn = sl_conf_rel(a->steps[i].grad_norm, b->steps[i].grad_norm);
        if (!(dl <= out->q[SL_CONF_Q_LOSS])) out->q[SL_CONF_Q_LOSS] = dl;
        if (!(dn <= out->q[SL_CONF_Q_GRAD_NORM])) out->q[SL_CONF_Q_GRAD_NORM] = dn;
    }
    SL_TRY(sl_conf_tensors_divergence(&a->grads, &b->grads, &out->q[SL_CONF_Q_GRADS]));
    return sl_conf_tensors_divergence(&a->final, &b->final, &out->q[SL_CONF_Q_FINAL]);
}

static bool sl_conf_same_double(double x, double y) {
    return memcmp(&x, &y, sizeof x) == 0;
}

bool sl_conf_runs_bit_equal(const sl_conf_result *a, const sl_conf_result *b, char *where,
                            size_t cap) {
    char dummy[8];
    if (!where) {
        where = dummy;
        cap = sizeof dummy;
    }
    if (a->n_steps != b->n_steps) {
        snprintf(where, cap, "step count (%d vs %d)", a->n_steps, b->n_steps);
        return false;
    }
    for (int i = 0; i < a->n_steps; i++) {
        const sl_trajectory_step *x = &a->steps[i], *y = &b->steps[i];
        const char *what = !sl_conf_same_double(x->loss, y->loss)               ? "loss"
                           : !sl_conf_same_double(x->grad_norm, y->grad_norm)   ? "grad_norm"
                           : !sl_conf_same_double(x->loss_scale, y->loss_scale) ? "loss_scale"
                           : x->skipped != y->skipped                           ? "skipped"
                                                                                : NULL;
        if (what) {
            snprintf(where, cap, "step %d %s", x->step, what);
            return false;
        }
    }
    if (a->final.n != b->final.n) {
        snprintf(where, cap, "final: %d vs %d tensors", a->final.n, b->final.n);
        return false;
    }
    for (int t = 0; t < a->final.n; t++) {
        if (strcmp(a->final.names[t], b->final.names[t]) ||
            a->final.numel[t] != b->final.numel[t]) {
            snprintf(where, cap, "final: tensor %d is '%s' vs '%s'", t, a->final.names[t],
                     b->final.names[t]);
            return false;
        }
        for (size_t e = 0; e < a->final.numel[t]; e++) {
            if (memcmp(&a->final.data[t][e], &b->final.data[t][e], sizeof(float))) {
                snprintf(where, cap, "final %s[%zu]", a->final.names[t], e);
                return false;
            }
        }
    }
    return true;
}

void sl_conf_floor_combine(const sl_conf_divergence *reversed, const sl_conf_divergence *ulp,
                           sl_conf_divergence *floor) {
    for (int q = 0; q < SL_CONF_Q_COUNT; q++) {
        const double r = reversed ? reversed->q[q] : 0.0, u = ulp ? ulp->q[q] : 0.0;
        floor->q[q] = r > u || isnan(r) ? r : u;
    }
}

/* One ulp of dt above x's dt value (away from zero), widened. */
static float sl_conf_ulp_step(float x, sl_dtype dt) {
    const float u = sl_round_to(x, dt);
    switch (dt) {
    case SL_DTYPE_BF16: return sl_bf16_to_f32((uint16_t)(sl_f32_to_bf16(u) + 1));
    case SL_DTYPE_F16: return sl_f16_to_f32((uint16_t)(sl_f32_to_f16(u) + 1));
    default: return nextafterf(u, u >= 0.0f ? INFINITY : -INFINITY);
    }
}

sl_status sl_conf_write_ulp_init(const char *run_dir, sl_dtype dt, const char *path) {
    char src[SL_CONF_PATH_MAX + 32];
    snprintf(src, sizeof src, "%s/init.safetensors", run_dir);
    sl_conf_tensors t;
    SL_TRY(sl_conf_tensors_read(src, &t));
    sl_safetensors *st = NULL;
    sl_status status = sl_safetensors_open(src, &st);
    sl_safetensors_writer *w = NULL;
    if (status == SL_OK) status = sl_safetensors_writer_create(&w);
    for (int i = 0; status == SL_OK && i < t.n; i++) {
        for (size_t e = 0; e < t.numel[i]; e++)
            t.data[i][e] = sl_conf_ulp_step(t.data[i][e], dt);
        const sl_safetensors_tensor *info = sl_safetensors_find(st, t.names[i]);
        status = sl_safetensors_writer_add_f32(w, t.names[i], SL_DTYPE_F32, info->shape, info->ndim,
                                               t.data[i]);
    }
    if (status == SL_OK) status = sl_safetensors_writer_set_metadata(w, "producer", "conformance");
    if (status == SL_OK) status = sl_safetensors_writer_write(w, path);
    sl_safetensors_writer_destroy(w);
    sl_safetensors_close(st);
    sl_conf_tensors_free(&t);
    return status;
}
