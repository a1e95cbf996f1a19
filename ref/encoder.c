/* Token + position embedding. */
#include "ref/ops.h"

#include <string.h>

void sl_ref_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                            int B, int T, int C, sl_dtype cd) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *out_bt = out + ((int64_t)b * T + t) * C;          // (C)
            const float *wte_ix = wte + (int64_t)inp[b * T + t] * C; // (C)
            const float *wpe_t = wpe + (int64_t)t * C;               // (C)
            for (int c = 0; c < C; c++)
                out_bt[c] = sl_ref_round_value(wte_ix[c] + wpe_t[c], cd);
        }
    }
}

void sl_ref_encoder_backward(float *dwte, float *dwpe, float *row, int32_t *done, const float *dout,
                             const int32_t *inp, int B, int T, int C, sl_dtype cd) {
    const int64_t BT = (int64_t)B * T;
    // dwpe[t] += Σ_b dout[b,t]
    for (int t = 0; t < T; t++) {
        for (int c = 0; c < C; c++)
            row[c] = 0.0f;
        for (int b = 0; b < B; b++) {
            const float *dout_bt = dout + ((int64_t)b * T + t) * C;
            for (int c = 0; c < C; c++)
                row[c] += dout_bt[c];
        }
        sl_ref_grad_add(dwpe + (int64_t)t * C, row, C, cd);
    }
    // dwte[v] += Σ over the positions holding token v, in index order. Each distinct token is
    // summed once, starting at its first occurrence; `done` marks positions already summed.
    memset(done, 0, (size_t)BT * sizeof *done);
    for (int64_t bt = 0; bt < BT; bt++) {
        if (done[bt]) continue;
        const int32_t ix = inp[bt];
        for (int c = 0; c < C; c++)
            row[c] = 0.0f;
        for (int64_t bt2 = bt; bt2 < BT; bt2++) {
            if (inp[bt2] != ix) continue;
            done[bt2] = 1;
            const float *dout_bt2 = dout + bt2 * C;
            for (int c = 0; c < C; c++)
                row[c] += dout_bt2[c];
        }
        sl_ref_grad_add(dwte + (int64_t)ix * C, row, C, cd);
    }
}
