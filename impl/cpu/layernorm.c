/* LayerNorm over the last axis, eps 1e-5, biased variance (torch.nn.LayerNorm), fused: one pass
 * of a row through cache computes its mean, variance, normalisation and affine map.
 *
 * Every sum runs in the reference's order (ref/layernorm.c) and every expression is the
 * reference's, term for term, so the outputs are bit-identical to it:
 *   forward   out = round_cd((x - mean) * rstd * weight + bias); mean, rstd f32, unrounded
 *   backward  dinp = round_cd((dnorm - mean(dnorm) - norm * mean(dnorm * norm)) * rstd)
 *             dweight, dbias: Σ over rows in row order, then round_cd(g + round_cd(Σ))
 * Rows are shared among threads for the forward and for dinp; the parameter-gradient sums are
 * shared by columns, so that each keeps its row order. */
#include "impl/cpu/cpu.h"

#include <math.h>
#include <omp.h>

#define SL_CPU_LN_EPS 1e-5f
#define SL_CPU_LN_COLS 256

static sl_status sl_ln_check_stats(const char *op, const sl_tensor *mean, const sl_tensor *rstd,
                                   int64_t N) {
    SL_TRY(sl_cpu_check_dtype(op, "mean", mean, SL_DTYPE_F32));
    SL_TRY(sl_cpu_check_dtype(op, "rstd", rstd, SL_DTYPE_F32));
    SL_TRY(sl_cpu_check_numel(op, "mean", mean, N));
    return sl_cpu_check_numel(op, "rstd", rstd, N);
}

sl_status sl_cpu_layernorm_forward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                   const sl_tensor *mean, const sl_tensor *rstd,
                                   const sl_tensor *inp, const sl_tensor *weight,
                                   const sl_tensor *bias) {
    static const char op[] = "layernorm_forward";
    SL_TRY(sl_cpu_check_cd(op, cd));
    SL_TRY(sl_cpu_check_out(op, "out", out, cd));
    SL_TRY(sl_cpu_check_float(op, "inp", inp));
    SL_TRY(sl_cpu_check_float(op, "weight", weight));
    SL_TRY(sl_cpu_check_float(op, "bias", bias));
    const int64_t C = inp->shape[inp->ndim - 1];
    int64_t N;
    SL_TRY(sl_cpu_check_rows(op, "inp", inp, C, &N));
    SL_TRY(sl_cpu_check_shape(op, "weight", weight, 1, &C));
    SL_TRY(sl_cpu_check_shape(op, "bias", bias, 1, &C));
    SL_TRY(sl_cpu_check_numel(op, "out", out, N * C));
    SL_TRY(sl_ln_check_stats(op, mean, rstd, N));
    const int nthr = sl_cpu_threads();
    const size_t row = sl_cpu_align((size_t)C * sizeof(float));
    char *ws = sl_cpu_workspace(ctx, (2 + (size_t)nthr) * row, op);
    if (!ws) return SL_ERR_OOM;
    float *w = sl_cpu_ws_floats(ws, 0), *b = sl_cpu_ws_floats(ws, row);
    sl_cpu_to_f32(w, weight->data, weight->dtype, C);
    sl_cpu_to_f32(b, bias->data, bias->dtype, C);
    float *means = mean->data, *rstds = rstd->data;

#pragma omp parallel num_threads(nthr)
    {
        float *x = sl_cpu_ws_floats(ws, (2 + (size_t)omp_get_thread_num()) * row); /* (C) */
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            sl_cpu_to_f32(x, sl_cpu_at(inp, n * C), inp->dtype, C);
            float sum = 0.0f;
            for (int64_t i = 0; i < C; i++)
                sum += x[i];
            const float m = sum / (float)C;
            float sq = 0.0f;
            for (int64_t i = 0; i < C; i++) {
                const float xshift = x[i] - m;
                sq += xshift * xshift;
            }
            const float s = 1.0f / sqrtf(sq / (float)C + SL_CPU_LN_EPS);
            for (int64_t i = 0; i < C; i++) {
                const float norm = (x[i] - m) * s;
                x[i] = norm * w[i] + b[i];
            }
            sl_cpu_from_f32(sl_cpu_at(out, n * C), out->dtype, x, C, cd);
            means[n] = m;
            rstds[n] = s;
        }
    }
    return SL_OK;
}

/* dinp rows: with norm = (x - mean) * rstd and dnorm = dout * weight,
 * dx = (dnorm - mean(dnorm) - norm * mean(dnorm * norm)) * rstd. */
static void sl_ln_backward_rows(char *ws, size_t row, const float *w, sl_dtype cd,
                                const sl_tensor *dinp, const sl_tensor *dout, const sl_tensor *inp,
                                const float *means, const float *rstds, int64_t N, int64_t C) {
#pragma omp parallel num_threads(sl_cpu_threads())
    {
        float *x = sl_cpu_ws_floats(ws, (1 + 2 * (size_t)omp_get_thread_num()) * row);  /* (C) */
        float *dy = sl_cpu_ws_floats(ws, (2 + 2 * (size_t)omp_get_thread_num()) * row); /* (C) */
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            sl_cpu_to_f32(x, sl_cpu_at(inp, n * C), inp->dtype, C);
            sl_cpu_to_f32(dy, sl_cpu_at(dout, n * C), dout->dtype, C);
            const float m = means[n], s = rstds[n];
            float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
            for (int64_t i = 0; i < C; i++) {
                const float norm = (x[i] - m) * s;
                const float dnorm = w[i] * dy[i];
                dnorm_sum += dnorm;
                dnorm_norm_sum += dnorm * norm;
            }
            const float dnorm_mean = dnorm_sum / (float)C;
            const float dnorm_norm_mean = dnorm_norm_sum / (float)C;
            for (int64_t i = 0; i < C; i++) {
                const float norm = (x[i] - m) * s;
                const float dnorm = w[i] * dy[i];
                x[i] = (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
            }
            sl_cpu_from_f32(sl_cpu_at(dinp, n * C), dinp->dtype, x, C, cd);
        }
    }
}

/* dweight[i] += Σ_n norm[n,i] * dout[n,i], dbias[i] += Σ_n dout[n,i], n ascending. */
static void sl_ln_backward_params(sl_dtype cd, const sl_tensor *dweight, const sl_tensor *dbias,
                                  const sl_tensor *dout, const sl_tensor *inp, const float *means,
                                  const float *rstds, int64_t N, int64_t C) {
    const int64_t chunks = (C + SL_CPU_LN_COLS - 1) / SL_CPU_LN_COLS;
#pragma omp parallel for num_threads(sl_cpu_threads()) schedule(static)
    for (int64_t ch = 0; ch < chunks; ch++) {
        const int64_t c0 = ch * SL_CPU_LN_COLS;
        const int64_t len = C - c0 < SL_CPU_LN_COLS ? C - c0 : SL_CPU_LN_COLS;
        float dw[SL_CPU_LN_COLS] = {0}, db[SL_CPU_LN_COLS] = {0};
        float x[SL_CPU_LN_COLS], dy[SL_CPU_LN_COLS];
        for (int64_t n = 0; n < N; n++) {
            sl_cpu_to_f32(x, sl_cpu_at(inp, n * C + c0), inp->dtype, len);
            sl_cpu_to_f32(dy, sl_cpu_at(dout, n * C + c0), dout->dtype, len);
            const float m = means[n], s = rstds[n];
            for (int64_t i = 0; i < len; i++) {
                const float norm = (x[i] - m) * s;
                dw[i] += norm * dy[i];
                db[i] += dy[i];
            }
        }
        sl_cpu_grad_add(sl_cpu_at(dweight, c0), dweight->dtype, dw, len, cd);
        sl_cpu_grad_add(sl_cpu_at(dbias, c0), dbias->dtype, db, len, cd);
    }
}

sl_status sl_cpu_layernorm_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dinp,
                                    const sl_tensor *dweight, const sl_tensor *dbias,
                                    const sl_tensor *dout, const sl_tensor *inp,
                                    const sl_tensor *weight, const sl_tensor *mean,
                                    const sl_tensor *rstd) {
    static const char op[] = "layernorm_backward";
    SL_TRY(sl_cpu_check_cd(op, cd));
    SL_TRY(sl_cpu_check_out(op, "dinp", dinp, cd));
    SL_TRY(sl_cpu_check_out(op, "dweight", dweight, cd));
    SL_TRY(sl_cpu_check_out(op, "dbias", dbias, cd));
    SL_TRY(sl_cpu_check_float(op, "dout", dout));
    SL_TRY(sl_cpu_check_float(op, "inp", inp));
    SL_TRY(sl_cpu_check_float(op, "weight", weight));
    const int64_t C = inp->shape[inp->ndim - 1];
    int64_t N;
    SL_TRY(sl_cpu_check_rows(op, "inp", inp, C, &N));
    SL_TRY(sl_cpu_check_shape(op, "weight", weight, 1, &C));
    SL_TRY(sl_cpu_check_shape(op, "dweight", dweight, 1, &C));
    SL_TRY(sl_cpu_check_shape(op, "dbias", dbias, 1, &C));
    SL_TRY(sl_cpu_check_numel(op, "dout", dout, N * C));
    SL_TRY(sl_cpu_check_numel(op, "dinp", dinp, N * C));
    SL_TRY(sl_ln_check_stats(op, mean, rstd, N));
    const size_t row = sl_cpu_align((size_t)C * sizeof(float));
    char *ws = sl_cpu_workspace(ctx, (1 + 2 * (size_t)sl_cpu_threads()) * row, op);
    if (!ws) return SL_ERR_OOM;
    float *w = sl_cpu_ws_floats(ws, 0);
    sl_cpu_to_f32(w, weight->data, weight->dtype, C);
    /* the parameter sums read dout before dinp overwrites it, should the two be one buffer */
    sl_ln_backward_params(cd, dweight, dbias, dout, inp, mean->data, rstd->data, N, C);
    sl_ln_backward_rows(ws, row, w, cd, dinp, dout, inp, mean->data, rstd->data, N, C);
    return SL_OK;
}
