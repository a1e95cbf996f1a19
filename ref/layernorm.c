/* LayerNorm over the last axis (C), eps 1e-5, biased variance, as torch.nn.LayerNorm. */
#include "ref/ops.h"

#include <math.h>

#define SL_REF_LN_EPS 1e-5f

void sl_ref_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int64_t N, int C,
                              sl_dtype cd) {
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C; // (C)
        float *o = out + n * C;       // (C)
        float sum = 0.0f;
        for (int i = 0; i < C; i++)
            sum += x[i];
        const float m = sum / (float)C;
        float sq = 0.0f;
        for (int i = 0; i < C; i++) {
            const float xshift = x[i] - m;
            sq += xshift * xshift;
        }
        const float s = 1.0f / sqrtf(sq / (float)C + SL_REF_LN_EPS);
        for (int i = 0; i < C; i++) {
            const float norm = (x[i] - m) * s;
            o[i] = sl_ref_round_value(norm * weight[i] + bias[i], cd);
        }
        mean[n] = m;
        rstd[n] = s;
    }
}

/* With norm = (x - mean) * rstd and dnorm = dout * weight:
 * dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)). */
void sl_ref_layernorm_backward(float *dinp, float *dweight, float *dbias, float *scratch,
                               const float *dout, const float *inp, const float *weight,
                               const float *mean, const float *rstd, int64_t N, int C,
                               sl_dtype cd) {
    float *dw = scratch;     // (C) contribution to dweight, summed over n
    float *db = scratch + C; // (C) contribution to dbias, summed over n
    for (int i = 0; i < C; i++) {
        dw[i] = 0.0f;
        db[i] = 0.0f;
    }
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C;   // (C)
        const float *dy = dout + n * C; // (C)
        float *dx = dinp + n * C;       // (C)
        const float m = mean[n], s = rstd[n];
        float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
        for (int i = 0; i < C; i++) {
            const float norm = (x[i] - m) * s;
            const float dnorm = weight[i] * dy[i];
            dnorm_sum += dnorm;
            dnorm_norm_sum += dnorm * norm;
        }
        const float dnorm_mean = dnorm_sum / (float)C;
        const float dnorm_norm_mean = dnorm_norm_sum / (float)C;
        for (int i = 0; i < C; i++) {
            const float norm = (x[i] - m) * s;
            const float dnorm = weight[i] * dy[i];
            dx[i] = sl_ref_round_value((dnorm - dnorm_mean - norm * dnorm_norm_mean) * s, cd);
            dw[i] += norm * dy[i];
            db[i] += dy[i];
        }
    }
    sl_ref_grad_add(dweight, dw, C, cd);
    sl_ref_grad_add(dbias, db, C, cd);
}
