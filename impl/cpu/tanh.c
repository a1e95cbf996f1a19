/* tanhf on arrays, bit for bit the C library's, 8 lanes at a time.
 *
 * GELU must stay bit-identical to the reference, which calls libm tanhf; called one element at
 * a time, tanhf (and the expm1f inside it) was 20-30% of a GPT-2 step. glibc's tanhf and
 * expm1f are fdlibm's float versions (s_tanhf.c, s_expm1f.c; Sun Microsystems 1993, "permission
 * to use, copy, modify, and distribute this software is freely granted"), built without FMA, so
 * every step is one IEEE operation that a vector lane computes identically. The lanes below
 * evaluate every branch of those two functions and select per lane, with the same operations in
 * the same order. tests/impl checks them against tanhf on every 97th bit pattern of the float
 * range; the whole range was compared once (bench/NOTES.md). The portable path calls tanhf. */
#include "impl/cpu/cpu.h"

#include <math.h>
#include <string.h>

/* 8 lanes: the width at which GCC keeps the lane masks in vector registers on AVX2 (16 lanes
 * of int compares were split into scalar code, measured); the AVX-512 path runs the same. */
#define SL_TANH_LANES 8

typedef float sl_vf __attribute__((vector_size(SL_TANH_LANES * 4)));
typedef int32_t sl_vi __attribute__((vector_size(SL_TANH_LANES * 4)));
typedef uint32_t sl_vu __attribute__((vector_size(SL_TANH_LANES * 4)));

/* m ? a : b for lane masks m (all ones or zero), on float lanes */
#define SL_SEL(m, a, b) ((sl_vf)(((sl_vi)(m) & (sl_vi)(a)) | (~(sl_vi)(m) & (sl_vi)(b))))
#define SL_SELI(m, a, b) (((m) & (a)) | (~(m) & (b)))
#define SL_SPLAT(x) ((sl_vf){0} + (x))
#define SL_SPLAT_I(x) ((sl_vi){0} + (x))

/* expm1f of each lane of a (fdlibm s_expm1f.c) for a in (-2, 0) or [2, 44): the arguments
 * tanhf passes for 2^-55 <= |x| < 22. The branches of the other ranges are not evaluated. */
__attribute__((always_inline)) static inline void sl_expm1f_lanes(const sl_vf *in, sl_vf *out) {
    const float one = 1.0f, ln2_hi = 6.9313812256e-01f, ln2_lo = 9.0580006145e-06f,
                invln2 = 1.4426950216e+00f, Q1 = -3.3333335072e-02f, Q2 = 1.5873016091e-03f,
                Q3 = -7.9365076090e-05f, Q4 = 4.0082177293e-06f, Q5 = -2.0109921195e-07f;
    const sl_vf a = *in;
    const sl_vi hx = (sl_vi)a & 0x7fffffff;
    const sl_vi neg = (sl_vi)a < 0;
    const sl_vi reduce = hx > 0x3eb17218;          /* |a| > 0.5 ln2 */
    const sl_vi near = reduce & (hx < 0x3F851592); /* and |a| < 1.5 ln2: k = +-1 */
    const sl_vi tiny = hx < 0x33000000;            /* |a| < 2^-25: expm1f(a) = a */

    /* argument reduction: a = k ln2 + x + c */
    const sl_vf kf_far = a * invln2 + SL_SEL(neg, SL_SPLAT(-0.5f), SL_SPLAT(0.5f));
    /* lanes outside the arguments above (NaN, infinities: their results are selected away)
     * convert 0, so that no conversion or exponent arithmetic leaves the int range */
    const sl_vi in_range = (kf_far >= -256.0f) & (kf_far <= 256.0f);
    sl_vi k = __builtin_convertvector(SL_SEL(in_range, kf_far, SL_SPLAT(0.0f)),
                                      sl_vi); /* truncation, as the C conversion */
    const sl_vf tk = __builtin_convertvector(k, sl_vf);
    sl_vf hi = a - tk * ln2_hi;
    sl_vf lo = tk * ln2_lo;
    hi = SL_SEL(near, SL_SEL(neg, a + ln2_hi, a - ln2_hi), hi);
    lo = SL_SEL(near, SL_SEL(neg, SL_SPLAT(-ln2_lo), SL_SPLAT(ln2_lo)), lo);
    k = SL_SELI(near, SL_SELI(neg, SL_SPLAT_I(-1), SL_SPLAT_I(1)), k);
    const sl_vf xr = hi - lo;
    const sl_vf c = (hi - xr) - lo;
    const sl_vf x = SL_SEL(reduce, xr, a);
    k = SL_SELI(reduce, k, SL_SPLAT_I(0));

    /* x is in the primary range */
    const sl_vf hfx = 0.5f * x;
    const sl_vf hxs = x * hfx;
    const sl_vf r1 = one + hxs * (Q1 + hxs * (Q2 + hxs * (Q3 + hxs * (Q4 + hxs * Q5))));
    const sl_vf t = 3.0f - r1 * hfx;
    sl_vf e = hxs * ((r1 - t) / (6.0f - x * t));
    const sl_vf res_k0 = x - (x * e - hxs);
    e = (x * (e - c) - c);
    e -= hxs;
    const sl_vf res_km1 = 0.5f * (x - e) - 0.5f;
    const sl_vf res_k1 = SL_SEL(x < -0.25f, -2.0f * (e - (x + 0.5f)), one + 2.0f * (x - e));
    const sl_vu kexp = (sl_vu)k << 23; /* k added to an exponent */
    const sl_vf y_far = (sl_vf)((sl_vu)(one - (e - x)) + kexp);
    const sl_vf res_far = y_far - one; /* k <= -2 or k > 56 */
    /* 2 <= k < 23: t = 1 - 2^-k; k clamped so that lanes of other cases shift in range */
    const sl_vi kc = SL_SELI(k < 2, SL_SPLAT_I(2), SL_SELI(k > 22, SL_SPLAT_I(22), k));
    const sl_vf t_lo = (sl_vf)(0x3f800000 - (SL_SPLAT_I(0x1000000) >> kc));
    const sl_vf res_mid = (sl_vf)((sl_vu)(t_lo - (e - x)) + kexp);
    /* 23 <= k <= 56: t = 2^-k */
    const sl_vf t_hi = (sl_vf)((sl_vu)(0x7f - k) << 23);
    sl_vf y_hi = x - (e + t_hi);
    y_hi += one;
    const sl_vf res_hi = (sl_vf)((sl_vu)y_hi + kexp);

    sl_vf r = SL_SEL((k <= -2) | (k > 56), res_far, SL_SEL(k < 23, res_mid, res_hi));
    r = SL_SEL(k == 1, res_k1, r);
    r = SL_SEL(k == -1, res_km1, r);
    r = SL_SEL(k == 0, res_k0, r);
    *out = SL_SEL(tiny, a, r);
}

/* tanhf of each lane of v (fdlibm s_tanhf.c), in place. */
__attribute__((always_inline)) static inline void sl_tanhf_lanes(float *v) {
    const float one = 1.0f, two = 2.0f, tiny = 1.0e-30f;
    sl_vf x;
    memcpy(&x, v, sizeof x);
    const sl_vi jx = (sl_vi)x;
    const sl_vi ix = jx & 0x7fffffff;
    const sl_vf ax = (sl_vf)ix;
    const sl_vi big = ix >= 0x3f800000; /* |x| >= 1 */
    const sl_vf arg = SL_SEL(big, two * ax, -two * ax);
    sl_vf t;
    sl_expm1f_lanes(&arg, &t);
    sl_vf z = SL_SEL(big, one - two / (t + two), -t / (t + two));
    z = SL_SEL(ix >= 0x41b00000, SL_SPLAT(one - tiny), z); /* |x| >= 22 */
    z = SL_SEL(jx < 0, -z, z);
    z = SL_SEL(ix < 0x24000000, x * (one + x), z); /* |x| < 2^-55 */
    z = SL_SEL(ix >= 0x7f800000, SL_SEL(jx >= 0, one / x + one, one / x - one), z); /* inf, NaN */
    z = SL_SEL(ix == 0, x, z);
    memcpy(v, &z, sizeof z);
}

__attribute__((target("avx512f"))) static void sl_tanhf_avx512(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += SL_TANH_LANES)
        sl_tanhf_lanes(x + i);
}

__attribute__((target("avx2"))) static void sl_tanhf_avx2(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += SL_TANH_LANES)
        sl_tanhf_lanes(x + i);
}

void sl_cpu_tanhf_n(float *x, int64_t n, sl_cpu_isa isa) {
    const int64_t full = n - n % SL_TANH_LANES;
    switch (isa) {
    case SL_CPU_ISA_AVX512: sl_tanhf_avx512(x, full); break;
    case SL_CPU_ISA_AVX2: sl_tanhf_avx2(x, full); break;
    case SL_CPU_ISA_PORTABLE:
    default:
        for (int64_t i = 0; i < full; i++)
            x[i] = tanhf(x[i]);
    }
    for (int64_t i = full; i < n; i++)
        x[i] = tanhf(x[i]);
}
