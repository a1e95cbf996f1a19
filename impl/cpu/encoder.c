/* Token + position embedding, forward and backward, bit-identical to ref/encoder.c:
 *   forward   out[b,t] = round_cd(wte[tokens[b,t]] + wpe[t])
 *   backward  dwpe[t] = round_cd(dwpe[t] + round_cd(Σ_b dout[b,t]))         b ascending
 *             dwte[v] = round_cd(dwte[v] + round_cd(Σ dout at positions of v)) positions ascending
 * The backward buckets positions by token with a stable counting sort, so each token's sum keeps
 * position order and the tokens can be summed in parallel. */
#include "impl/cpu/cpu.h"

#include <omp.h>
#include <string.h>

typedef struct sl_enc_dims {
    int64_t B, T, C, V, Tmax;
} sl_enc_dims;

static sl_status sl_enc_check(const char *op, const sl_tensor *tokens, const sl_tensor *x,
                              const char *x_role, const sl_tensor *wte, const char *wte_role,
                              const sl_tensor *wpe, const char *wpe_role, sl_enc_dims *d) {
    SL_TRY(sl_cpu_check_dtype(op, "tokens", tokens, SL_DTYPE_I32));
    if (tokens->ndim != 2) {
        return sl_error_set(SL_ERR_MISMATCH, "%s: tensor '%s' must be (B, T); found %d dimensions",
                            op, tokens->name ? tokens->name : "tokens", tokens->ndim);
    }
    if (wte->ndim != 2 || wpe->ndim != 2) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: '%s' and '%s' must be 2-D; found %d and %d "
                            "dimensions",
                            op, wte->name ? wte->name : wte_role, wpe->name ? wpe->name : wpe_role,
                            wte->ndim, wpe->ndim);
    }
    d->B = tokens->shape[0];
    d->T = tokens->shape[1];
    d->V = wte->shape[0];
    d->C = wte->shape[1];
    d->Tmax = wpe->shape[0];
    const int64_t x_shape[3] = {d->B, d->T, d->C};
    SL_TRY(sl_cpu_check_shape(op, x_role, x, 3, x_shape));
    const int64_t wpe_shape[2] = {d->Tmax, d->C};
    SL_TRY(sl_cpu_check_shape(op, wpe_role, wpe, 2, wpe_shape));
    if (d->T > d->Tmax) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: sequence length T = %lld exceeds the %lld positions of '%s'; "
                            "shorten the sequence or raise block_size",
                            op, (long long)d->T, (long long)d->Tmax,
                            wpe->name ? wpe->name : wpe_role);
    }
    const int32_t *ids = tokens->data;
    for (int64_t bt = 0; bt < d->B * d->T; bt++) {
        if (ids[bt] < 0 || ids[bt] >= d->V) {
            return sl_error_set(SL_ERR_INVALID_ARG,
                                "%s: token id %d at (b=%lld, t=%lld) of '%s' is outside the "
                                "vocabulary [0, %lld) of '%s'",
                                op, (int)ids[bt], (long long)(bt / d->T), (long long)(bt % d->T),
                                tokens->name ? tokens->name : "tokens", (long long)d->V,
                                wte->name ? wte->name : wte_role);
        }
    }
    return SL_OK;
}

sl_status sl_cpu_encoder_forward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                 const sl_tensor *tokens, const sl_tensor *wte,
                                 const sl_tensor *wpe) {
    static const char op[] = "encoder_forward";
    SL_TRY(sl_cpu_check_cd(op, cd));
    SL_TRY(sl_cpu_check_out(op, "out", out, cd));
    SL_TRY(sl_cpu_check_float(op, "wte", wte));
    SL_TRY(sl_cpu_check_float(op, "wpe", wpe));
    sl_enc_dims d;
    SL_TRY(sl_enc_check(op, tokens, out, "out", wte, "wte", wpe, "wpe", &d));
    const int nthr = sl_cpu_threads();
    const size_t row = sl_cpu_align((size_t)d.C * sizeof(float));
    char *ws = sl_cpu_workspace(ctx, 2 * row * (size_t)nthr, op);
    if (!ws) return SL_ERR_OOM;
    const int32_t *ids = tokens->data;
#pragma omp parallel num_threads(nthr)
    {
        float *x = sl_cpu_ws_floats(ws, 2 * row * (size_t)omp_get_thread_num());       /* (C) */
        float *p = sl_cpu_ws_floats(ws, (2 * (size_t)omp_get_thread_num() + 1) * row); /* (C) */
#pragma omp for schedule(static)
        for (int64_t bt = 0; bt < d.B * d.T; bt++) {
            sl_cpu_to_f32(x, sl_cpu_at(wte, ids[bt] * d.C), wte->dtype, d.C);
            sl_cpu_to_f32(p, sl_cpu_at(wpe, (bt % d.T) * d.C), wpe->dtype, d.C);
            for (int64_t c = 0; c < d.C; c++)
                x[c] = x[c] + p[c];
            sl_cpu_from_f32(sl_cpu_at(out, bt * d.C), out->dtype, x, d.C, cd);
        }
    }
    return SL_OK;
}

sl_status sl_cpu_encoder_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dwte,
                                  const sl_tensor *dwpe, const sl_tensor *dout,
                                  const sl_tensor *tokens) {
    static const char op[] = "encoder_backward";
    SL_TRY(sl_cpu_check_cd(op, cd));
    SL_TRY(sl_cpu_check_out(op, "dwte", dwte, cd));
    SL_TRY(sl_cpu_check_out(op, "dwpe", dwpe, cd));
    SL_TRY(sl_cpu_check_float(op, "dout", dout));
    sl_enc_dims d;
    SL_TRY(sl_enc_check(op, tokens, dout, "dout", dwte, "dwte", dwpe, "dwpe", &d));
    const int64_t BT = d.B * d.T;
    const int nthr = sl_cpu_threads();
    const size_t row = sl_cpu_align((size_t)d.C * sizeof(float));
    const size_t index_bytes = sl_cpu_align((size_t)(d.V + 1 + BT) * sizeof(int64_t));
    char *ws = sl_cpu_workspace(ctx, index_bytes + 2 * row * (size_t)nthr, op);
    if (!ws) return SL_ERR_OOM;
    const int32_t *ids = tokens->data;
    int64_t *start =
        (int64_t *)ws; /* (V+1): positions of token v are order[start[v]..start[v+1]) */
    int64_t *order = start + d.V + 1; /* (BT) */
    memset(start, 0, (size_t)(d.V + 1) * sizeof *start);
    for (int64_t bt = 0; bt < BT; bt++)
        start[ids[bt] + 1]++;
    for (int64_t v = 0; v < d.V; v++)
        start[v + 1] += start[v];
    /* stable placement: start[v] advances past each position of v, ending where v+1 starts;
     * shifting by one slot then restores the starts */
    for (int64_t bt = 0; bt < BT; bt++)
        order[start[ids[bt]]++] = bt;
    for (int64_t v = d.V; v > 0; v--)
        start[v] = start[v - 1];
    start[0] = 0;

#pragma omp parallel num_threads(nthr)
    {
        const size_t mine = index_bytes + 2 * row * (size_t)omp_get_thread_num();
        float *sum = sl_cpu_ws_floats(ws, mine);
        float *x = sl_cpu_ws_floats(ws, mine + row);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < d.T; t++) {
            memset(sum, 0, (size_t)d.C * sizeof *sum);
            for (int64_t b = 0; b < d.B; b++) {
                sl_cpu_to_f32(x, sl_cpu_at(dout, (b * d.T + t) * d.C), dout->dtype, d.C);
                for (int64_t c = 0; c < d.C; c++)
                    sum[c] += x[c];
            }
            sl_cpu_grad_add(sl_cpu_at(dwpe, t * d.C), dwpe->dtype, sum, d.C, cd);
        }
#pragma omp for schedule(dynamic, 16)
        for (int64_t v = 0; v < d.V; v++) {
            if (start[v] == start[v + 1]) continue;
            memset(sum, 0, (size_t)d.C * sizeof *sum);
            for (int64_t i = start[v]; i < start[v + 1]; i++) {
                sl_cpu_to_f32(x, sl_cpu_at(dout, order[i] * d.C), dout->dtype, d.C);
                for (int64_t c = 0; c < d.C; c++)
                    sum[c] += x[c];
            }
            sl_cpu_grad_add(sl_cpu_at(dwte, v * d.C), dwte->dtype, sum, d.C, cd);
        }
    }
    return SL_OK;
}
