/* Causal multi-head attention, one (batch, head) pair per task, the pairs shared among threads.
 * The products q k^T, att v and their backward counterparts are single-threaded sgemm calls on
 * f32 copies of the head's (T, hs) slices, restricted to the causal triangle by row blocks of
 * SL_ATTN_BLOCK: a block of rows [r0, r1) only meets columns < r1. Entries above the diagonal
 * are exact zeros, so the full-width products add nothing to any sum.
 *
 * Rounding points, as ref/attention.c:
 *   forward   preatt = round_cd(q·k * scale)        (dot in f32, then one multiply)
 *             att    = round_cd(exp(preatt - max) / Σ exp)   exp, Σ and max in f32, in order
 *             out    = round_cd(Σ_t2 att * v)
 *   backward  datt   = round_cd(dout · v)
 *             dpre   = round_cd(att * (datt - Σ att * datt))  Σ in f32, in order
 *             dq = round_cd(Σ dpre*scale * k), dk = round_cd(Σ dpre*scale * q),
 *             dv = round_cd(Σ att * dout)          each a complete f32 sum
 * The softmax and its backward are the reference's loops, so given the same dot products they
 * give the same bits. */
#include "impl/cpu/cpu.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>

#define SL_ATTN_BLOCK 64

typedef struct sl_attn_dims {
    int64_t B, T, C, H, hs;
} sl_attn_dims;

static sl_status sl_attn_check(const char *op, const sl_tensor *qkv, const sl_tensor *att,
                               const sl_tensor *y, const char *y_role, sl_attn_dims *d) {
    SL_TRY(sl_cpu_check_float(op, "qkv", qkv));
    SL_TRY(sl_cpu_check_float(op, "att", att));
    if (qkv->ndim != 3 || qkv->shape[2] % 3 != 0) {
        return sl_error_set(
            SL_ERR_MISMATCH, "%s: tensor '%s' must be (B, T, 3C); found %d dimensions, last %lld",
            op, qkv->name ? qkv->name : "qkv", qkv->ndim, (long long)qkv->shape[qkv->ndim - 1]);
    }
    if (att->ndim != 4) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: tensor '%s' must be (B, H, T, T); found %d "
                            "dimensions",
                            op, att->name ? att->name : "att", att->ndim);
    }
    d->B = qkv->shape[0];
    d->T = qkv->shape[1];
    d->C = qkv->shape[2] / 3;
    d->H = att->shape[1];
    if (d->H <= 0 || d->C % d->H != 0) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: %lld heads (dim 1 of '%s') do not divide C = %lld", op,
                            (long long)d->H, att->name ? att->name : "att", (long long)d->C);
    }
    d->hs = d->C / d->H;
    const int64_t att_shape[4] = {d->B, d->H, d->T, d->T};
    const int64_t y_shape[3] = {d->B, d->T, d->C};
    SL_TRY(sl_cpu_check_shape(op, "att", att, 4, att_shape));
    return sl_cpu_check_shape(op, y_role, y, 3, y_shape);
}

/* rows t of the head's q, k or v (part 0, 1, 2) of qkv as an f32 (T, hs) matrix */
static void sl_attn_gather(float *dst, const sl_tensor *qkv, const sl_attn_dims *d, int64_t b,
                           int64_t h, int part) {
    for (int64_t t = 0; t < d->T; t++) {
        const int64_t i = (b * d->T + t) * 3 * d->C + part * d->C + h * d->hs;
        sl_cpu_to_f32(dst + t * d->hs, sl_cpu_at(qkv, i), qkv->dtype, d->hs);
    }
}

/* the inverse, rounding: rows t of (T, hs) src into part `part` of a (B, T, parts*C) tensor */
static void sl_attn_scatter(const sl_tensor *dst, const float *src, const sl_attn_dims *d,
                            int64_t b, int64_t h, int parts, int part, sl_dtype cd) {
    for (int64_t t = 0; t < d->T; t++) {
        const int64_t i = (b * d->T + t) * parts * d->C + part * d->C + h * d->hs;
        sl_cpu_from_f32(sl_cpu_at(dst, i), dst->dtype, src + t * d->hs, d->hs, cd);
    }
}

static void sl_attn_forward_head(const sl_attn_dims *d, int64_t b, int64_t h, float *buf,
                                 sl_dtype cd, const sl_tensor *out, const sl_tensor *preatt,
                                 const sl_tensor *att, const sl_tensor *qkv) {
    const int64_t T = d->T, hs = d->hs;
    const float scale = 1.0f / sqrtf((float)hs);
    float *q = buf, *k = q + T * hs, *v = k + T * hs, *y = v + T * hs; /* (T, hs) each */
    float *s = y + T * hs, *p = s + T * T;                             /* (T, T) each */
    sl_attn_gather(q, qkv, d, b, h, 0);
    sl_attn_gather(k, qkv, d, b, h, 1);
    sl_attn_gather(v, qkv, d, b, h, 2);
    const int64_t head = (b * d->H + h) * T; /* first row of this head in (B, H, T, T) */
    for (int64_t r0 = 0; r0 < T; r0 += SL_ATTN_BLOCK) {
        const int64_t r1 = r0 + SL_ATTN_BLOCK < T ? r0 + SL_ATTN_BLOCK : T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)r1, (int)hs, 1.0f,
                    q + r0 * hs, (int)hs, k, (int)hs, 0.0f, s + r0 * T, (int)T);
        for (int64_t t = r0; t < r1; t++) {
            float *srow = s + t * T, *prow = p + t * T;
            for (int64_t t2 = 0; t2 <= t; t2++)
                srow[t2] = srow[t2] * scale;
            sl_cpu_round_f32(srow, srow, t + 1, cd);
            float maxval = -INFINITY;
            for (int64_t t2 = 0; t2 <= t; t2++) {
                if (srow[t2] > maxval) maxval = srow[t2];
            }
            float expsum = 0.0f;
            for (int64_t t2 = 0; t2 <= t; t2++) {
                const float e = expf(srow[t2] - maxval);
                prow[t2] = e;
                expsum += e;
            }
            for (int64_t t2 = 0; t2 <= t; t2++)
                prow[t2] = prow[t2] / expsum;
            sl_cpu_round_f32(prow, prow, t + 1, cd);
            for (int64_t t2 = t + 1; t2 < T; t2++) {
                srow[t2] = 0.0f;
                prow[t2] = 0.0f;
            }
            if (preatt) {
                sl_cpu_from_f32(sl_cpu_at(preatt, (head + t) * T), preatt->dtype, srow, T, cd);
            }
            sl_cpu_from_f32(sl_cpu_at(att, (head + t) * T), att->dtype, prow, T, cd);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), (int)hs, (int)r1,
                    1.0f, p + r0 * T, (int)T, v, (int)hs, 0.0f, y + r0 * hs, (int)hs);
    }
    for (int64_t t = 0; t < T; t++) {
        const int64_t i = (b * T + t) * d->C + h * hs;
        sl_cpu_from_f32(sl_cpu_at(out, i), out->dtype, y + t * hs, hs, cd);
    }
}

sl_status sl_cpu_attention_forward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                   const sl_tensor *preatt, const sl_tensor *att,
                                   const sl_tensor *qkv) {
    static const char op[] = "attention_forward";
    SL_TRY(sl_cpu_check_cd(op, cd));
    SL_TRY(sl_cpu_check_out(op, "out", out, cd));
    SL_TRY(sl_cpu_check_out(op, "att", att, cd));
    sl_attn_dims d;
    SL_TRY(sl_attn_check(op, qkv, att, out, "out", &d));
    if (preatt) {
        SL_TRY(sl_cpu_check_out(op, "preatt", preatt, cd));
        SL_TRY(sl_cpu_check_shape(op, "preatt", preatt, 4, att->shape));
    }
    const int nthr = sl_cpu_threads();
    const size_t per_thread =
        sl_cpu_align((size_t)(4 * d.T * d.hs + 2 * d.T * d.T) * sizeof(float));
    char *ws = sl_cpu_workspace(ctx, per_thread * (size_t)nthr, op);
    if (!ws) return SL_ERR_OOM;
    const int64_t pairs = d.B * d.H;
#pragma omp parallel num_threads(nthr)
    {
        float *buf = sl_cpu_ws_floats(ws, per_thread * (size_t)omp_get_thread_num());
#pragma omp for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < pairs; bh++)
            sl_attn_forward_head(&d, bh / d.H, bh % d.H, buf, cd, out, preatt, att, qkv);
    }
    return SL_OK;
}

static void sl_attn_backward_head(const sl_attn_dims *d, int64_t b, int64_t h, float *buf,
                                  sl_dtype cd, const sl_tensor *dqkv, const sl_tensor *dout,
                                  const sl_tensor *qkv, const sl_tensor *att) {
    const int64_t T = d->T, hs = d->hs;
    const float scale = 1.0f / sqrtf((float)hs);
    float *q = buf, *k = q + T * hs, *v = k + T * hs, *dy = v + T * hs; /* (T, hs) each */
    float *dq = dy + T * hs, *dk = dq + T * hs, *dv = dk + T * hs;      /* (T, hs) each */
    float *p = dv + T * hs, *ds = p + T * T;                            /* (T, T) each */
    sl_attn_gather(q, qkv, d, b, h, 0);
    sl_attn_gather(k, qkv, d, b, h, 1);
    sl_attn_gather(v, qkv, d, b, h, 2);
    const int64_t head = (b * d->H + h) * T;
    for (int64_t t = 0; t < T; t++) {
        sl_cpu_to_f32(dy + t * hs, sl_cpu_at(dout, (b * T + t) * d->C + h * hs), dout->dtype, hs);
        sl_cpu_to_f32(p + t * T, sl_cpu_at(att, (head + t) * T), att->dtype, T);
        for (int64_t t2 = t + 1; t2 < T; t2++)
            p[t * T + t2] = 0.0f;
    }
    for (int64_t r0 = 0; r0 < T; r0 += SL_ATTN_BLOCK) {
        const int64_t r1 = r0 + SL_ATTN_BLOCK < T ? r0 + SL_ATTN_BLOCK : T;
        /* datt = dout v^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)r1, (int)hs, 1.0f,
                    dy + r0 * hs, (int)hs, v, (int)hs, 0.0f, ds + r0 * T, (int)T);
        for (int64_t t = r0; t < r1; t++) {
            float *drow = ds + t * T;
            const float *prow = p + t * T;
            sl_cpu_round_f32(drow, drow, t + 1, cd);
            float dot = 0.0f;
            for (int64_t t2 = 0; t2 <= t; t2++)
                dot += prow[t2] * drow[t2];
            for (int64_t t2 = 0; t2 <= t; t2++)
                drow[t2] = prow[t2] * (drow[t2] - dot);
            sl_cpu_round_f32(drow, drow, t + 1, cd);
            for (int64_t t2 = 0; t2 <= t; t2++)
                drow[t2] = drow[t2] * scale;
            for (int64_t t2 = t + 1; t2 < T; t2++)
                drow[t2] = 0.0f;
        }
        /* dq[t] = Σ_t2 ds[t,t2] k[t2] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), (int)hs, (int)r1,
                    1.0f, ds + r0 * T, (int)T, k, (int)hs, 0.0f, dq + r0 * hs, (int)hs);
    }
    /* dk[t2] = Σ_{t >= t2} ds[t,t2] q[t], dv[t2] = Σ_{t >= t2} att[t,t2] dout[t] */
    for (int64_t c0 = 0; c0 < T; c0 += SL_ATTN_BLOCK) {
        const int64_t c1 = c0 + SL_ATTN_BLOCK < T ? c0 + SL_ATTN_BLOCK : T;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(c1 - c0), (int)hs, (int)(T - c0),
                    1.0f, ds + c0 * T + c0, (int)T, q + c0 * hs, (int)hs, 0.0f, dk + c0 * hs,
                    (int)hs);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(c1 - c0), (int)hs, (int)(T - c0),
                    1.0f, p + c0 * T + c0, (int)T, dy + c0 * hs, (int)hs, 0.0f, dv + c0 * hs,
                    (int)hs);
    }
    sl_attn_scatter(dqkv, dq, d, b, h, 3, 0, cd);
    sl_attn_scatter(dqkv, dk, d, b, h, 3, 1, cd);
    sl_attn_scatter(dqkv, dv, d, b, h, 3, 2, cd);
}

sl_status sl_cpu_attention_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dqkv,
                                    const sl_tensor *dout, const sl_tensor *qkv,
                                    const sl_tensor *att) {
    static const char op[] = "attention_backward";
    SL_TRY(sl_cpu_check_cd(op, cd));
    SL_TRY(sl_cpu_check_out(op, "dqkv", dqkv, cd));
    SL_TRY(sl_cpu_check_float(op, "dout", dout));
    sl_attn_dims d;
    SL_TRY(sl_attn_check(op, qkv, att, dout, "dout", &d));
    SL_TRY(sl_cpu_check_shape(op, "dqkv", dqkv, 3, qkv->shape));
    const int nthr = sl_cpu_threads();
    const size_t per_thread =
        sl_cpu_align((size_t)(7 * d.T * d.hs + 2 * d.T * d.T) * sizeof(float));
    char *ws = sl_cpu_workspace(ctx, per_thread * (size_t)nthr, op);
    if (!ws) return SL_ERR_OOM;
    const int64_t pairs = d.B * d.H;
#pragma omp parallel num_threads(nthr)
    {
        float *buf = sl_cpu_ws_floats(ws, per_thread * (size_t)omp_get_thread_num());
#pragma omp for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < pairs; bh++)
            sl_attn_backward_head(&d, bh / d.H, bh % d.H, buf, cd, dqkv, dout, qkv, att);
    }
    return SL_OK;
}
