/* Matrix products of GPT-2: Conv1D layers (weight (IC,OC)) and the LM head tied to wte (weight
 * (V,C)), forward and backward, on the tiled sgemm driver (gemm.c).
 *
 * Rounding points, as ref/matmul.c:
 *   forward   out = round_cd(sum + bias)            the bias joins after the complete f32 sum
 *   backward  dinp = round_cd(sum)
 *             dW = round_cd(dW + round_cd(sum))     sum over all N rows, in f32
 *             db = round_cd(db + round_cd(Σ_n dout)) the column sum in row order, as ref */
#include "impl/cpu/cpu.h"

#include <omp.h>

typedef struct sl_matmul_dims {
    int64_t N, IC, OC;
} sl_matmul_dims;

/* Shapes of a product: weight 2-D in `layout`, inp (N,IC), y (N,OC) — y is out or dout. */
static sl_status sl_matmul_check(const char *op, const sl_tensor *x, const char *x_role,
                                 const sl_tensor *y, const char *y_role, const sl_tensor *weight,
                                 sl_weight_layout layout, sl_matmul_dims *d) {
    SL_TRY(sl_cpu_check_float(op, "weight", weight));
    if (weight->ndim != 2) {
        return sl_error_set(SL_ERR_MISMATCH, "%s: weight '%s' has %d dimensions; expected 2", op,
                            weight->name ? weight->name : "weight", weight->ndim);
    }
    if (layout != SL_WEIGHT_IN_OUT && layout != SL_WEIGHT_OUT_IN) {
        return sl_error_set(SL_ERR_INVALID_ARG, "%s: unknown weight layout %d", op, (int)layout);
    }
    d->IC = layout == SL_WEIGHT_IN_OUT ? weight->shape[0] : weight->shape[1];
    d->OC = layout == SL_WEIGHT_IN_OUT ? weight->shape[1] : weight->shape[0];
    SL_TRY(sl_cpu_check_rows(op, x_role, x, d->IC, &d->N));
    int64_t rows;
    SL_TRY(sl_cpu_check_rows(op, y_role, y, d->OC, &rows));
    if (rows != d->N) {
        return sl_error_set(SL_ERR_MISMATCH, "%s: tensor '%s' has %lld rows but '%s' has %lld", op,
                            y->name ? y->name : y_role, (long long)rows, x->name ? x->name : x_role,
                            (long long)d->N);
    }
    return SL_OK;
}

/* op(W) as the right operand of inp @ op(W) (forward) or of dout @ op(W)^T (backward). */
static sl_cpu_mat sl_matmul_weight(const sl_tensor *w, sl_weight_layout layout, int backward) {
    const int stored_in_out = layout == SL_WEIGHT_IN_OUT;
    return (sl_cpu_mat){.data = w->data,
                        .dtype = w->dtype,
                        .ld = w->shape[1],
                        .trans = backward ? stored_in_out : !stored_in_out};
}

typedef struct sl_matmul_store {
    const sl_tensor *out;
    int64_t ld;        /* elements per row of out */
    const float *bias; /* (OC) f32, or NULL */
    sl_dtype cd;
} sl_matmul_store;

/* An fp32-stored output takes the sums directly and is rounded in place; others go through a
 * workspace tile. */
static sl_cpu_dest sl_matmul_dest(const sl_tensor *out, int64_t ld) {
    return (sl_cpu_dest){.data = out->dtype == SL_DTYPE_F32 ? out->data : NULL, .ld = ld};
}

static void sl_matmul_store_rows(void *arg, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                                 float *c, int64_t ldc) {
    const sl_matmul_store *s = arg;
    for (int64_t m = m0; m < m1; m++) {
        float *row = c + (m - m0) * ldc;
        if (s->bias) {
            for (int64_t n = n0; n < n1; n++)
                row[n - n0] = row[n - n0] + s->bias[n];
        }
        sl_cpu_from_f32(sl_cpu_at(s->out, m * s->ld + n0), s->out->dtype, row, n1 - n0, s->cd);
    }
}

static void sl_matmul_accumulate_rows(void *arg, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                                      float *c, int64_t ldc) {
    const sl_matmul_store *s = arg;
    for (int64_t m = m0; m < m1; m++) {
        sl_cpu_grad_add(sl_cpu_at(s->out, m * s->ld + n0), s->out->dtype, c + (m - m0) * ldc,
                        n1 - n0, s->cd);
    }
}

sl_status sl_cpu_matmul_forward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                const sl_tensor *inp, const sl_tensor *weight,
                                sl_weight_layout layout, const sl_tensor *bias) {
    static const char op[] = "matmul_forward";
    SL_TRY(sl_cpu_check_cd(op, cd));
    SL_TRY(sl_cpu_check_out(op, "out", out, cd));
    SL_TRY(sl_cpu_check_float(op, "inp", inp));
    sl_matmul_dims d;
    SL_TRY(sl_matmul_check(op, inp, "inp", out, "out", weight, layout, &d));
    if (bias) {
        SL_TRY(sl_cpu_check_float(op, "bias", bias));
        SL_TRY(sl_cpu_check_shape(op, "bias", bias, 1, &d.OC));
    }
    const sl_cpu_mat A = {.data = inp->data, .dtype = inp->dtype, .ld = d.IC, .trans = false};
    const sl_cpu_mat B = sl_matmul_weight(weight, layout, 0);
    const sl_cpu_dest dest = sl_matmul_dest(out, d.OC);
    const size_t gemm_bytes = sl_cpu_gemm_workspace(d.N, d.OC, d.IC, &A, &B, &dest);
    char *ws = sl_cpu_workspace(ctx, gemm_bytes + sl_cpu_align((size_t)d.OC * sizeof(float)), op);
    if (!ws) return SL_ERR_OOM;
    float *bias_f32 = NULL;
    if (bias) {
        bias_f32 = sl_cpu_ws_floats(ws, gemm_bytes);
        sl_cpu_to_f32(bias_f32, bias->data, bias->dtype, d.OC);
    }
    sl_matmul_store s = {.out = out, .ld = d.OC, .bias = bias_f32, .cd = cd};
    sl_cpu_gemm(d.N, d.OC, d.IC, &A, &B, &dest, ws, sl_matmul_store_rows, &s);
    return SL_OK;
}

/* dbias[o] += Σ_n dout[n,o] with n ascending, as the reference sums; threads own columns. */
static void sl_matmul_bias_grad(const sl_tensor *dbias, const sl_tensor *dout, int64_t N,
                                int64_t OC, sl_dtype cd) {
    enum { COLS = 256 };
    const int64_t chunks = (OC + COLS - 1) / COLS;
#pragma omp parallel for num_threads(sl_cpu_threads()) schedule(static)
    for (int64_t ch = 0; ch < chunks; ch++) {
        const int64_t o0 = ch * COLS, len = OC - o0 < COLS ? OC - o0 : COLS;
        float sum[COLS] = {0}, row[COLS];
        for (int64_t n = 0; n < N; n++) {
            sl_cpu_to_f32(row, sl_cpu_at(dout, n * OC + o0), dout->dtype, len);
            for (int64_t o = 0; o < len; o++)
                sum[o] += row[o];
        }
        sl_cpu_grad_add(sl_cpu_at(dbias, o0), dbias->dtype, sum, len, cd);
    }
}

sl_status sl_cpu_matmul_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dinp,
                                 const sl_tensor *dweight, const sl_tensor *dbias,
                                 const sl_tensor *dout, const sl_tensor *inp,
                                 const sl_tensor *weight, sl_weight_layout layout) {
    static const char op[] = "matmul_backward";
    SL_TRY(sl_cpu_check_cd(op, cd));
    SL_TRY(sl_cpu_check_out(op, "dinp", dinp, cd));
    SL_TRY(sl_cpu_check_out(op, "dweight", dweight, cd));
    SL_TRY(sl_cpu_check_float(op, "dout", dout));
    SL_TRY(sl_cpu_check_float(op, "inp", inp));
    sl_matmul_dims d;
    SL_TRY(sl_matmul_check(op, inp, "inp", dout, "dout", weight, layout, &d));
    SL_TRY(sl_cpu_check_rows(op, "dinp", dinp, d.IC, &(int64_t){0}));
    SL_TRY(sl_cpu_check_numel(op, "dinp", dinp, d.N * d.IC));
    SL_TRY(sl_cpu_check_shape(op, "dweight", dweight, 2, weight->shape));
    if (dbias) {
        SL_TRY(sl_cpu_check_out(op, "dbias", dbias, cd));
        SL_TRY(sl_cpu_check_shape(op, "dbias", dbias, 1, &d.OC));
    }

    /* dinp (N,IC) = dout (N,OC) @ op(W)^T */
    const sl_cpu_mat Dout = {.data = dout->data, .dtype = dout->dtype, .ld = d.OC, .trans = false};
    const sl_cpu_mat Wt = sl_matmul_weight(weight, layout, 1);
    /* dW in its layout: (IC,OC) = inp^T @ dout, or (OC,IC) = dout^T @ inp */
    const int in_out = layout == SL_WEIGHT_IN_OUT;
    const sl_cpu_mat X = {.data = inp->data, .dtype = inp->dtype, .ld = d.IC, .trans = in_out};
    const sl_cpu_mat Y = {.data = dout->data, .dtype = dout->dtype, .ld = d.OC, .trans = !in_out};
    const int64_t wm = in_out ? d.IC : d.OC, wn = in_out ? d.OC : d.IC;
    const sl_cpu_mat *WA = in_out ? &X : &Y, *WB = in_out ? &Y : &X;

    const sl_cpu_dest to_dinp = sl_matmul_dest(dinp, d.IC), to_tile = {NULL, 0};
    size_t bytes = sl_cpu_gemm_workspace(d.N, d.IC, d.OC, &Dout, &Wt, &to_dinp);
    const size_t wbytes = sl_cpu_gemm_workspace(wm, wn, d.N, WA, WB, &to_tile);
    if (wbytes > bytes) bytes = wbytes;
    void *ws = sl_cpu_workspace(ctx, bytes, op);
    if (!ws) return SL_ERR_OOM;

    sl_matmul_store sx = {.out = dinp, .ld = d.IC, .bias = NULL, .cd = cd};
    sl_cpu_gemm(d.N, d.IC, d.OC, &Dout, &Wt, &to_dinp, ws, sl_matmul_store_rows, &sx);
    sl_matmul_store sw = {.out = dweight, .ld = wn, .bias = NULL, .cd = cd};
    sl_cpu_gemm(wm, wn, d.N, WA, WB, &to_tile, ws, sl_matmul_accumulate_rows, &sw);
    if (dbias) sl_matmul_bias_grad(dbias, dout, d.N, d.OC, cd);
    return SL_OK;
}
