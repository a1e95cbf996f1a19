/* Helpers of the CPU kernel tests (kernel_check.h). */
#include "kernel_check.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shardlab/rng.h"

uint64_t kc_seed = 20240717;

void kc_seed_from_env(void) {
    const char *env = getenv("SL_TEST_SEED");
    if (env && *env) kc_seed = strtoull(env, NULL, 10);
}

void kc_fill_normal(float *x, int64_t n, uint64_t stream, double scale, sl_dtype cd) {
    for (int64_t i = 0; i < n; i++)
        x[i] = sl_round_to((float)(scale * sl_rng_normal(kc_seed, stream, (uint64_t)i)), cd);
}

void kc_fill_grid(float *x, int64_t n, uint64_t stream, int kmax, float step) {
    const uint64_t range = 2 * (uint64_t)kmax + 1;
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)((int)(sl_rng_bits(kc_seed, stream, (uint64_t)i) % range) - kmax) * step;
}

void *kc_alloc(int64_t n, sl_dtype dt) {
    void *p = calloc((size_t)(n > 0 ? n : 1), sl_dtype_size(dt));
    if (!p) fail_msg("out of memory allocating %lld elements", (long long)n);
    return p;
}

sl_tensor kc_tensor(const float *x, sl_dtype dt, int ndim, const int64_t *shape) {
    sl_tensor t = {.dtype = dt, .ndim = ndim};
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        t.shape[i] = shape[i];
        n *= shape[i];
    }
    t.data = kc_alloc(n, dt);
    if (x) sl_convert_from_f32(t.data, dt, x, (size_t)n);
    return t;
}

void kc_read(float *out, const sl_tensor *t) {
    sl_convert_to_f32(out, t->data, t->dtype, (size_t)sl_tensor_numel(t));
}

double kc_gamma(int64_t k) {
    return (double)k * KC_U / (1.0 - (double)k * KC_U);
}

double kc_ulp(double x, sl_dtype cd) {
    const int mant = cd == SL_DTYPE_BF16 ? 8 : cd == SL_DTYPE_F16 ? 11 : 24;
    const int emin = cd == SL_DTYPE_F16 ? -14 : -126;
    int e;
    frexp(fabs(x), &e); /* |x| in [2^(e-1), 2^e) */
    if (x == 0.0 || e - 1 < emin) e = emin + 1;
    return ldexp(1.0, e - mant);
}

double kc_round_tol(double ref, double delta, sl_dtype cd) {
    const double z = fabs(ref) + kc_ulp(ref, cd) + delta;
    double tol = delta + 2.0 * KC_U * z;
    if (cd != SL_DTYPE_F32) tol += kc_ulp(z, cd);
    return tol;
}

void kc_expect_close(const char *what, const float *impl, const float *ref, const double *tol,
                     int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const double diff = fabs((double)impl[i] - (double)ref[i]);
        if (!(diff <= tol[i])) {
            fail_msg("%s: element %lld: impl %.9g, ref %.9g, |diff| %.3g > tolerance %.3g "
                     "(seed %llu)",
                     what, (long long)i, (double)impl[i], (double)ref[i], diff, tol[i],
                     (unsigned long long)kc_seed);
        }
    }
}

void kc_expect_bits(const char *what, const float *impl, const float *ref, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t a, b;
        memcpy(&a, &impl[i], 4);
        memcpy(&b, &ref[i], 4);
        if (a != b) {
            fail_msg("%s: element %lld differs: impl %.9g (0x%08x), ref %.9g (0x%08x) (seed %llu)",
                     what, (long long)i, (double)impl[i], (unsigned)a, (double)ref[i], (unsigned)b,
                     (unsigned long long)kc_seed);
        }
    }
}

void kc_expect_representable(const char *what, const float *x, int64_t n, sl_dtype cd) {
    for (int64_t i = 0; i < n; i++) {
        const float r = sl_round_to(x[i], cd);
        if (memcmp(&r, &x[i], 4) != 0) {
            fail_msg("%s: element %lld = %.9g is not a %s value (seed %llu)", what, (long long)i,
                     (double)x[i], sl_dtype_name(cd), (unsigned long long)kc_seed);
        }
    }
}
