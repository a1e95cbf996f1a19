/* Helpers of the CPU kernel tests: seeded random inputs, storage-typed copies, the tolerance
 * arithmetic of the derivations in test_cpu_kernels.c, and comparisons that fail with the
 * element, both values, the tolerance and the seed. */
#ifndef SHARDLAB_TESTS_KERNEL_CHECK_H
#define SHARDLAB_TESTS_KERNEL_CHECK_H

#include <stdint.h>

#include "shardlab/kernels.h"

/* Fails the test with the error message when a shardlab call does not return SL_OK. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        const sl_status st_ = (expr);                                                              \
        if (st_ != SL_OK) fail_msg("%s failed: %s", #expr, sl_error_message());                    \
    } while (0)

/* Seed of every random input (SL_TEST_SEED overrides); printed by every failure. */
extern uint64_t kc_seed;
void kc_seed_from_env(void);

/* x[i] = scale * N(0,1) from stream `stream`, rounded to cd. */
void kc_fill_normal(float *x, int64_t n, uint64_t stream, double scale, sl_dtype cd);
/* x[i] = k * step with k uniform in [-kmax, kmax] (step a power of two): few bits, so sums of
 * products of them can be exact. */
void kc_fill_grid(float *x, int64_t n, uint64_t stream, int kmax, float step);

void *kc_alloc(int64_t n, sl_dtype dt); /* zeroed; fails the test when out of memory */
/* A storage-typed copy of the f32 values x (which must hold `dt` values), viewed with `shape`. */
sl_tensor kc_tensor(const float *x, sl_dtype dt, int ndim, const int64_t *shape);
/* t's values widened to f32 into out (n = numel). */
void kc_read(float *out, const sl_tensor *t);

/* Unit roundoff of f32 and gamma_k = k u / (1 - k u), the bound of any ordering of a k-term f32
 * sum relative to Σ|terms| (with or without FMA). */
#define KC_U 0x1p-24
double kc_gamma(int64_t k);
/* The spacing of cd values at magnitude |x| (subnormal spacing below the normal range). */
double kc_ulp(double x, sl_dtype cd);
/* Bound on |rc(z1) - rc(z2)| where z1, z2 are the f32 results of one f32 operation on operands
 * whose exact results differ by at most `delta`, rc rounds to cd, and ref = rc(z1):
 * delta + 2u |z| (the f32 rounding on each side) + one ulp of cd at |z| (half an ulp on each side
 * when cd is narrower than f32), with |z| <= |ref| + ulp_cd(ref) + delta. */
double kc_round_tol(double ref, double delta, sl_dtype cd);

/* Fails unless |impl[i] - ref[i]| <= tol[i] for every i. */
void kc_expect_close(const char *what, const float *impl, const float *ref, const double *tol,
                     int64_t n);
/* Fails unless the bit patterns are equal. */
void kc_expect_bits(const char *what, const float *impl, const float *ref, int64_t n);
/* Fails unless every value is a cd value. */
void kc_expect_representable(const char *what, const float *x, int64_t n, sl_dtype cd);

#endif
