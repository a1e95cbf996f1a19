/* Matrix products: Hugging Face Conv1D (weight (IC, OC)) and the LM head tied to wte
 * (weight (V, C)).
 *
 * Loops are ordered so the innermost one runs over contiguous memory with independent outputs
 * (the compiler may vectorise it without reassociating any sum), and rows are processed in small
 * blocks so a weight row is reused while it is in cache. Neither changes the order in which any
 * single output's terms are added. */
#include "ref/ops.h"

#include <string.h>

#define SL_REF_ROW_BLOCK 8

static int64_t sl_ref_min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

void sl_ref_conv1d_forward(float *out, const float *inp, const float *weight, const float *bias,
                           int64_t N, int IC, int OC, sl_dtype cd) {
    memset(out, 0, (size_t)(N * OC) * sizeof *out);
    for (int64_t n0 = 0; n0 < N; n0 += SL_REF_ROW_BLOCK) {
        const int64_t n1 = sl_ref_min64(N, n0 + SL_REF_ROW_BLOCK);
        for (int i = 0; i < IC; i++) {
            const float *w_i = weight + (int64_t)i * OC; // (OC)
            for (int64_t n = n0; n < n1; n++) {
                const float x = inp[n * IC + i];
                float *out_n = out + n * OC; // (OC)
                for (int o = 0; o < OC; o++)
                    out_n[o] += x * w_i[o];
            }
        }
    }
    // The bias joins after the product, as addmm(bias, x, W) computes it.
    for (int64_t n = 0; n < N; n++) {
        float *out_n = out + n * OC;
        for (int o = 0; o < OC; o++)
            out_n[o] = sl_ref_round_value(out_n[o] + bias[o], cd);
    }
}

void sl_ref_conv1d_backward(float *dinp, float *dweight, float *dbias, float *scratch,
                            const float *dout, const float *inp, const float *weight, int64_t N,
                            int IC, int OC, sl_dtype cd) {
    // dinp[n,i] = Σ_o dout[n,o] * weight[i,o], through the transpose wt (OC, IC).
    float *wt = scratch;
    for (int i = 0; i < IC; i++) {
        for (int o = 0; o < OC; o++)
            wt[(int64_t)o * IC + i] = weight[(int64_t)i * OC + o];
    }
    memset(dinp, 0, (size_t)(N * IC) * sizeof *dinp);
    for (int64_t n0 = 0; n0 < N; n0 += SL_REF_ROW_BLOCK) {
        const int64_t n1 = sl_ref_min64(N, n0 + SL_REF_ROW_BLOCK);
        for (int o = 0; o < OC; o++) {
            const float *wt_o = wt + (int64_t)o * IC; // (IC)
            for (int64_t n = n0; n < n1; n++) {
                const float d = dout[n * OC + o];
                float *dinp_n = dinp + n * IC; // (IC)
                for (int i = 0; i < IC; i++)
                    dinp_n[i] += d * wt_o[i];
            }
        }
    }
    sl_ref_round_buffer(dinp, N * IC, cd);

    // dweight[i,o] += Σ_n inp[n,i] * dout[n,o], in blocks of rows i.
    float *dw = scratch; // (IC, OC)
    memset(dw, 0, (size_t)IC * (size_t)OC * sizeof *dw);
    for (int i0 = 0; i0 < IC; i0 += SL_REF_ROW_BLOCK) {
        const int i1 = (int)sl_ref_min64(IC, i0 + SL_REF_ROW_BLOCK);
        for (int64_t n = 0; n < N; n++) {
            const float *dout_n = dout + n * OC; // (OC)
            for (int i = i0; i < i1; i++) {
                const float x = inp[n * IC + i];
                float *dw_i = dw + (int64_t)i * OC; // (OC)
                for (int o = 0; o < OC; o++)
                    dw_i[o] += x * dout_n[o];
            }
        }
    }
    sl_ref_grad_add(dweight, dw, (int64_t)IC * OC, cd);

    // dbias[o] += Σ_n dout[n,o]
    float *db = scratch; // (OC)
    memset(db, 0, (size_t)OC * sizeof *db);
    for (int64_t n = 0; n < N; n++) {
        const float *dout_n = dout + n * OC;
        for (int o = 0; o < OC; o++)
            db[o] += dout_n[o];
    }
    sl_ref_grad_add(dbias, db, OC, cd);
}

void sl_ref_logits_forward(float *logits, const float *inp, const float *wte, int64_t N, int C,
                           int V, sl_dtype cd) {
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C;              // (C)
        float *logits_n = logits + n * (int64_t)V; // (V)
        for (int v = 0; v < V; v++) {
            const float *wte_v = wte + (int64_t)v * C; // (C)
            float sum = 0.0f;
            for (int c = 0; c < C; c++)
                sum += x[c] * wte_v[c];
            logits_n[v] = sl_ref_round_value(sum, cd);
        }
    }
}

void sl_ref_logits_backward(float *dinp, float *dwte, float *row, const float *dlogits,
                            const float *inp, const float *wte, int64_t N, int C, int V,
                            sl_dtype cd) {
    // dinp[n,c] = Σ_v dlogits[n,v] * wte[v,c]
    memset(dinp, 0, (size_t)(N * C) * sizeof *dinp);
    for (int64_t n = 0; n < N; n++) {
        const float *dlogits_n = dlogits + n * (int64_t)V; // (V)
        float *dinp_n = dinp + n * C;                      // (C)
        for (int v = 0; v < V; v++) {
            const float d = dlogits_n[v];
            const float *wte_v = wte + (int64_t)v * C;
            for (int c = 0; c < C; c++)
                dinp_n[c] += d * wte_v[c];
        }
    }
    sl_ref_round_buffer(dinp, N * C, cd);

    // dwte[v,c] += Σ_n dlogits[n,v] * inp[n,c], one row v at a time
    for (int v = 0; v < V; v++) {
        for (int c = 0; c < C; c++)
            row[c] = 0.0f;
        for (int64_t n = 0; n < N; n++) {
            const float d = dlogits[n * V + v];
            const float *x = inp + n * C;
            for (int c = 0; c < C; c++)
                row[c] += d * x[c];
        }
        sl_ref_grad_add(dwte + (int64_t)v * C, row, C, cd);
    }
}
