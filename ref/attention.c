/* Causal multi-head self-attention with explicit (B, H, T, T) score buffers.
 *
 * q·k and its scaling by 1/sqrt(hs) count as one operation (one rounding), as in a fused
 * scaled-dot-product; for the named sizes hs is a power of 4, so the scaling is exact anyway.
 * Masked positions (t2 > t) take no part in the softmax; their att entries are 0. */
#include "ref/ops.h"

#include <math.h>
#include <string.h>

void sl_ref_attention_forward(float *out, float *preatt, float *att, const float *qkv, int B, int T,
                              int C, int H, sl_dtype cd) {
    const int C3 = 3 * C;
    const int hs = C / H;
    const float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < H; h++) {
                const float *q = qkv + ((int64_t)b * T + t) * C3 + h * hs;       // (hs)
                float *preatt_row = preatt + (((int64_t)b * H + h) * T + t) * T; // (T)
                float *att_row = att + (((int64_t)b * H + h) * T + t) * T;       // (T)

                // preatt[t2] = q · k[t2] * scale, and its maximum, over t2 <= t
                float maxval = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = qkv + ((int64_t)b * T + t2) * C3 + C + h * hs; // (hs)
                    float dot = 0.0f;
                    for (int i = 0; i < hs; i++)
                        dot += q[i] * k[i];
                    preatt_row[t2] = sl_ref_round_value(dot * scale, cd);
                    if (preatt_row[t2] > maxval) maxval = preatt_row[t2];
                }
                // att[t2] = exp(preatt[t2] - max) / Σ exp(preatt - max)
                float expsum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float e = expf(preatt_row[t2] - maxval);
                    att_row[t2] = e;
                    expsum += e;
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    att_row[t2] = sl_ref_round_value(att_row[t2] / expsum, cd);
                }
                for (int t2 = t + 1; t2 < T; t2++) {
                    preatt_row[t2] = 0.0f;
                    att_row[t2] = 0.0f;
                }

                // out[t] = Σ_t2 att[t2] * v[t2]
                float *out_bth = out + ((int64_t)b * T + t) * C + h * hs; // (hs)
                for (int i = 0; i < hs; i++)
                    out_bth[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = qkv + ((int64_t)b * T + t2) * C3 + 2 * C + h * hs; // (hs)
                    const float a = att_row[t2];
                    for (int i = 0; i < hs; i++)
                        out_bth[i] += a * v[i];
                }
                for (int i = 0; i < hs; i++)
                    out_bth[i] = sl_ref_round_value(out_bth[i], cd);
            }
        }
    }
}

/* dq, dk and dv gather terms from several (t, t2) pairs; t runs in increasing order and t2 in
 * increasing order within it, so each of their sums is in index order too. */
void sl_ref_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int H, sl_dtype cd) {
    const int C3 = 3 * C;
    const int hs = C / H;
    const float scale = 1.0f / sqrtf((float)hs);
    memset(dqkv, 0, (size_t)B * (size_t)T * (size_t)C3 * sizeof *dqkv);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < H; h++) {
                const float *att_row = att + (((int64_t)b * H + h) * T + t) * T;  // (T)
                float *datt_row = datt + (((int64_t)b * H + h) * T + t) * T;      // (T)
                const float *dout_bth = dout + ((int64_t)b * T + t) * C + h * hs; // (hs)
                const float *q = qkv + ((int64_t)b * T + t) * C3 + h * hs;        // (hs)
                float *dq = dqkv + ((int64_t)b * T + t) * C3 + h * hs;            // (hs)

                // undoes out = att @ v: datt[t2] = dout · v[t2], dv[t2] += att[t2] * dout
                for (int t2 = 0; t2 <= t; t2++) {
                    const int64_t row2 = ((int64_t)b * T + t2) * C3 + 2 * C + h * hs;
                    const float *v = qkv + row2; // (hs)
                    float *dv = dqkv + row2;     // (hs)
                    float dot = 0.0f;
                    for (int i = 0; i < hs; i++)
                        dot += dout_bth[i] * v[i];
                    datt_row[t2] = sl_ref_round_value(dot, cd);
                    for (int i = 0; i < hs; i++)
                        dv[i] += att_row[t2] * dout_bth[i];
                }

                // undoes the softmax: dpreatt = att * (datt - Σ att * datt), written over datt
                float dot = 0.0f;
                for (int t2 = 0; t2 <= t; t2++)
                    dot += att_row[t2] * datt_row[t2];
                for (int t2 = 0; t2 <= t; t2++) {
                    datt_row[t2] = sl_ref_round_value(att_row[t2] * (datt_row[t2] - dot), cd);
                }

                // undoes preatt = q·k * scale: dq += dpreatt*scale * k[t2], dk[t2] += ... * q
                for (int t2 = 0; t2 <= t; t2++) {
                    const int64_t row2 = ((int64_t)b * T + t2) * C3 + C + h * hs;
                    const float *k = qkv + row2; // (hs)
                    float *dk = dqkv + row2;     // (hs)
                    const float d = datt_row[t2] * scale;
                    for (int i = 0; i < hs; i++) {
                        dq[i] += d * k[i];
                        dk[i] += d * q[i];
                    }
                }
            }
        }
    }
    sl_ref_round_buffer(dqkv, (int64_t)B * T * C3, cd);
}
