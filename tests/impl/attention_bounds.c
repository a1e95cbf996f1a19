/* Element-wise bounds on |impl - ref| for attention (attention_bounds.h); the derivation is next
 * to test_attention_matches_ref_within_the_summation_order_bound in test_cpu_kernels.c. */
#include "attention_bounds.h"

#include <math.h>
#include <stdlib.h>

#include "kernel_check.h"

void attention_forward_tolerance(const attn_case *a, sl_dtype cd, const float *qkv,
                                 const float *preatt, const float *att, const float *out,
                                 double *tol_pre, double *tol_att, double *tol_out) {
    const int T = a->T, C = a->C, H = a->H, hs = C / H;
    const double scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < a->B; b++) {
        for (int h = 0; h < H; h++) {
            for (int t = 0; t < T; t++) {
                const int64_t row = (((int64_t)b * H + h) * T + t) * T;
                const float *q = qkv + ((int64_t)b * T + t) * 3 * C + h * hs;
                double m = 0.0, maxp = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = qkv + ((int64_t)b * T + t2) * 3 * C + C + h * hs;
                    double A = 0.0;
                    for (int i = 0; i < hs; i++)
                        A += fabs((double)q[i] * k[i]);
                    tol_pre[row + t2] =
                        kc_round_tol(preatt[row + t2], 2.0 * kc_gamma(hs) * scale * A, cd);
                    m = fmax(m, tol_pre[row + t2]);
                    maxp = fmax(maxp, preatt[row + t2]);
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    const double theta = KC_U * (T + 4 + fabs(preatt[row + t2] - maxp) + 2 * m);
                    const double d = att[row + t2] * (expm1(tol_pre[row + t2] + m) + 2.0 * theta);
                    tol_att[row + t2] = kc_round_tol(att[row + t2], d, cd);
                }
                for (int t2 = t + 1; t2 < T; t2++)
                    tol_pre[row + t2] = tol_att[row + t2] = 0.0; /* exact zeros */
                for (int i = 0; i < hs; i++) {
                    double d = 0.0, A = 0.0;
                    for (int t2 = 0; t2 <= t; t2++) {
                        const double v =
                            fabs(qkv[((int64_t)b * T + t2) * 3 * C + 2 * C + h * hs + i]);
                        d += tol_att[row + t2] * v;
                        A += att[row + t2] * v;
                    }
                    const int64_t e = ((int64_t)b * T + t) * C + h * hs + i;
                    tol_out[e] = kc_round_tol(out[e], d + 2.0 * kc_gamma(T) * A, cd);
                }
            }
        }
    }
}

void attention_backward_tolerance(const attn_case *a, sl_dtype cd, const float *qkv,
                                  const float *att, const float *dout, const float *dqkv,
                                  double *tol) {
    const int T = a->T, C = a->C, H = a->H, hs = C / H;
    const double scale = 1.0f / sqrtf((float)hs);
    double *ds = calloc((size_t)T * T, sizeof *ds), *dds = calloc((size_t)T * T, sizeof *dds);
    double *da = calloc((size_t)T, sizeof *da), *dda = calloc((size_t)T, sizeof *dda);
    for (int b = 0; b < a->B; b++) {
        for (int h = 0; h < H; h++) {
#define Q(t, i) qkv[((int64_t)b * T + (t)) * 3 * C + h * hs + (i)]
#define K(t, i) qkv[((int64_t)b * T + (t)) * 3 * C + C + h * hs + (i)]
#define V(t, i) qkv[((int64_t)b * T + (t)) * 3 * C + 2 * C + h * hs + (i)]
#define DY(t, i) dout[((int64_t)b * T + (t)) * C + h * hs + (i)]
            const float *p = att + ((int64_t)b * H + h) * T * T;
            for (int t = 0; t < T; t++) {
                double dot = 0.0, ddot = 0.0, A = 0.0;
                for (int t2 = 0; t2 <= t; t2++) {
                    double s = 0.0, sa = 0.0;
                    for (int i = 0; i < hs; i++) {
                        s += (double)DY(t, i) * V(t2, i);
                        sa += fabs((double)DY(t, i) * V(t2, i));
                    }
                    da[t2] = s;
                    dda[t2] = kc_round_tol(s, 2.0 * kc_gamma(hs) * sa, cd);
                    dot += p[t * T + t2] * s;
                    ddot += p[t * T + t2] * dda[t2];
                    A += p[t * T + t2] * (fabs(s) + dda[t2]);
                }
                ddot += 2.0 * kc_gamma(T) * A;
                for (int t2 = 0; t2 < T; t2++) {
                    ds[t * T + t2] = dds[t * T + t2] = 0.0;
                    if (t2 > t) continue;
                    const double at = p[t * T + t2];
                    const double dpre = at * fabs(da[t2] - dot);
                    const double d = at * (dda[t2] + ddot) +
                                     4.0 * KC_U * at * (fabs(da[t2]) + fabs(dot) + dda[t2] + ddot);
                    const double ddpre = kc_round_tol(dpre, d, cd);
                    ds[t * T + t2] = scale * (dpre + ddpre);
                    dds[t * T + t2] = scale * ddpre + 2.0 * KC_U * ds[t * T + t2];
                }
            }
            for (int t = 0; t < T; t++) {
                for (int i = 0; i < hs; i++) {
                    double dq = 0.0, aq = 0.0, dk = 0.0, ak = 0.0, av = 0.0;
                    for (int t2 = 0; t2 < T; t2++) {
                        /* dq[t] sums over t2 <= t; dk[t], dv[t] over rows t2 >= t */
                        dq += dds[t * T + t2] * fabs(K(t2, i));
                        aq += (ds[t * T + t2] + dds[t * T + t2]) * fabs(K(t2, i));
                        dk += dds[t2 * T + t] * fabs(Q(t2, i));
                        ak += (ds[t2 * T + t] + dds[t2 * T + t]) * fabs(Q(t2, i));
                        av += p[t2 * T + t] * fabs(DY(t2, i));
                    }
                    const int64_t e = ((int64_t)b * T + t) * 3 * C + h * hs + i;
                    tol[e] = kc_round_tol(dqkv[e], dq + 2.0 * kc_gamma(T) * aq, cd);
                    tol[e + C] = kc_round_tol(dqkv[e + C], dk + 2.0 * kc_gamma(T) * ak, cd);
                    tol[e + 2 * C] = kc_round_tol(dqkv[e + 2 * C], 2.0 * kc_gamma(T) * av, cd);
                }
            }
#undef Q
#undef K
#undef V
#undef DY
        }
    }
    free(ds), free(dds), free(da), free(dda);
}
