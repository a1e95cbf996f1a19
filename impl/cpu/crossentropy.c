/* The classifier: softmax cross-entropy over the vocabulary, fused so that the (N, V)
 * probabilities need not be kept. Forward keeps each row's max and Σ exp(l - max) (f32);
 * backward recomputes the probabilities from the logits with the same two numbers and the
 * reference's expressions, so it reproduces ref/crossentropy.c bit for bit:
 *   forward   probs = exp(l - max) / Σ, losses = log Σ - (l[target] - max)   f32, unrounded
 *   backward  dlogits = round_cd((probs - onehot(target)) * dloss), 0 on padding rows
 * Rows are shared among threads; every sum runs over v in order. */
#include "impl/cpu/cpu.h"

#include <math.h>
#include <omp.h>

typedef struct sl_ce_dims {
    int64_t N, V;
} sl_ce_dims;

static sl_status sl_ce_check(const char *op, const sl_tensor *logits, const sl_tensor *stats,
                             const sl_tensor *targets, sl_ce_dims *d) {
    SL_TRY(sl_cpu_check_float(op, "logits", logits));
    SL_TRY(sl_cpu_check_dtype(op, "stats", stats, SL_DTYPE_F32));
    SL_TRY(sl_cpu_check_dtype(op, "targets", targets, SL_DTYPE_I32));
    d->V = logits->shape[logits->ndim - 1];
    SL_TRY(sl_cpu_check_rows(op, "logits", logits, d->V, &d->N));
    SL_TRY(sl_cpu_check_numel(op, "targets", targets, d->N));
    SL_TRY(sl_cpu_check_numel(op, "stats", stats, 2 * d->N));
    const int32_t *tg = targets->data;
    for (int64_t n = 0; n < d->N; n++) {
        if (tg[n] >= d->V) {
            return sl_error_set(SL_ERR_INVALID_ARG,
                                "%s: target %d at row %lld of '%s' is outside the vocabulary "
                                "[0, %lld) (negative targets mark padding)",
                                op, (int)tg[n], (long long)n,
                                targets->name ? targets->name : "targets", (long long)d->V);
        }
    }
    return SL_OK;
}

static sl_status sl_ce_rows_ws(sl_kctx *ctx, int64_t V, const char *op, char **ws, size_t *row) {
    *row = sl_cpu_align((size_t)V * sizeof(float));
    *ws = sl_cpu_workspace(ctx, *row * (size_t)sl_cpu_threads(), op);
    return *ws ? SL_OK : SL_ERR_OOM;
}

sl_status sl_cpu_crossentropy_forward(sl_kctx *ctx, const sl_tensor *losses, const sl_tensor *stats,
                                      const sl_tensor *probs, const sl_tensor *logits,
                                      const sl_tensor *targets) {
    static const char op[] = "crossentropy_forward";
    sl_ce_dims d;
    SL_TRY(sl_ce_check(op, logits, stats, targets, &d));
    SL_TRY(sl_cpu_check_dtype(op, "losses", losses, SL_DTYPE_F32));
    SL_TRY(sl_cpu_check_numel(op, "losses", losses, d.N));
    if (probs) {
        SL_TRY(sl_cpu_check_dtype(op, "probs", probs, SL_DTYPE_F32));
        SL_TRY(sl_cpu_check_numel(op, "probs", probs, d.N * d.V));
    }
    char *ws;
    size_t row;
    SL_TRY(sl_ce_rows_ws(ctx, d.V, op, &ws, &row));
    const int32_t *tg = targets->data;
    float *loss = losses->data, *st = stats->data;
#pragma omp parallel num_threads(sl_cpu_threads())
    {
        float *l = sl_cpu_ws_floats(ws, row * (size_t)omp_get_thread_num()); /* (V) */
#pragma omp for schedule(static)
        for (int64_t n = 0; n < d.N; n++) {
            sl_cpu_to_f32(l, sl_cpu_at(logits, n * d.V), logits->dtype, d.V);
            float maxval = -INFINITY;
            for (int64_t v = 0; v < d.V; v++) {
                if (l[v] > maxval) maxval = l[v];
            }
            const float target_logit = tg[n] < 0 ? 0.0f : l[tg[n]];
            float sum = 0.0f;
            for (int64_t v = 0; v < d.V; v++) {
                l[v] = expf(l[v] - maxval);
                sum += l[v];
            }
            if (probs) {
                float *p = (float *)probs->data + n * d.V;
                for (int64_t v = 0; v < d.V; v++)
                    p[v] = l[v] / sum;
            }
            loss[n] = tg[n] < 0 ? 0.0f : logf(sum) - (target_logit - maxval);
            st[2 * n] = maxval;
            st[2 * n + 1] = sum;
        }
    }
    return SL_OK;
}

sl_status sl_cpu_crossentropy_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dlogits,
                                       const sl_tensor *logits, const sl_tensor *stats,
                                       const sl_tensor *targets, const sl_tensor *dlosses) {
    static const char op[] = "crossentropy_backward";
    SL_TRY(sl_cpu_check_cd(op, cd));
    SL_TRY(sl_cpu_check_out(op, "dlogits", dlogits, cd));
    sl_ce_dims d;
    SL_TRY(sl_ce_check(op, logits, stats, targets, &d));
    SL_TRY(sl_cpu_check_numel(op, "dlogits", dlogits, d.N * d.V));
    SL_TRY(sl_cpu_check_dtype(op, "dlosses", dlosses, SL_DTYPE_F32));
    SL_TRY(sl_cpu_check_numel(op, "dlosses", dlosses, d.N));
    char *ws;
    size_t row;
    SL_TRY(sl_ce_rows_ws(ctx, d.V, op, &ws, &row));
    const int32_t *tg = targets->data;
    const float *st = stats->data, *dl = dlosses->data;
#pragma omp parallel num_threads(sl_cpu_threads())
    {
        float *l = sl_cpu_ws_floats(ws, row * (size_t)omp_get_thread_num()); /* (V) */
#pragma omp for schedule(static)
        for (int64_t n = 0; n < d.N; n++) {
            const int32_t target = tg[n];
            if (target < 0) {
                for (int64_t v = 0; v < d.V; v++)
                    l[v] = 0.0f;
            } else {
                sl_cpu_to_f32(l, sl_cpu_at(logits, n * d.V), logits->dtype, d.V);
                const float maxval = st[2 * n], sum = st[2 * n + 1], dloss = dl[n];
                for (int64_t v = 0; v < d.V; v++) {
                    const float prob = expf(l[v] - maxval) / sum;
                    const float indicator = v == target ? 1.0f : 0.0f;
                    l[v] = (prob - indicator) * dloss;
                }
            }
            sl_cpu_from_f32(sl_cpu_at(dlogits, n * d.V), dlogits->dtype, l, d.V, cd);
        }
    }
    return SL_OK;
}
