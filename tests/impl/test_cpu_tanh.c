/* The vector tanhf of the CPU kernels (impl/cpu/tanh.c), which GELU uses, against libm's tanhf:
 * the same bits on every instruction-set path the CPU has, for a sweep of the whole float bit
 * range, the boundaries of the branches of fdlibm's tanhf/expm1f, and lengths that leave a tail
 * shorter than one vector. NaN results must be NaN (their payload is not compared: GELU rounds
 * a NaN to the dtype's canonical NaN). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "impl/cpu/cpu.h"

static uint32_t tt_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float tt_float(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Number of elements of x (n) whose vector tanh differs from libm's; prints the first few. */
static int64_t tt_mismatches(const float *x, int64_t n, sl_cpu_isa isa) {
    float *y = malloc((size_t)n * sizeof *y);
    assert_non_null(y);
    memcpy(y, x, (size_t)n * sizeof *y);
    sl_cpu_tanhf_n(y, n, isa);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const float want = tanhf(x[i]);
        if (isnan(want) && isnan(y[i])) continue;
        if (tt_bits(want) == tt_bits(y[i])) continue;
        if (bad++ < 5) {
            printf("%s: tanhf(%a) [bits %08x]: libm %a, vector %a\n", sl_cpu_isa_name(isa), x[i],
                   (unsigned)tt_bits(x[i]), want, y[i]);
        }
    }
    free(y);
    return bad;
}

static void test_vector_tanhf_equals_libm_on_a_sweep_of_all_bit_patterns(void **state) {
    (void)state;
    /* every 97th pattern: 44 million values, both signs, every exponent, NaNs and infinities */
    enum { STRIDE = 97, BLOCK = 1 << 16 };
    float *x = malloc(BLOCK * sizeof *x);
    assert_non_null(x);
    for (int isa = SL_CPU_ISA_PORTABLE; isa <= (int)sl_cpu_isa_best(); isa++) {
        int64_t bad = 0;
        uint64_t u = 0;
        while (u < (UINT64_C(1) << 32)) {
            int64_t n = 0;
            for (; n < BLOCK && u < (UINT64_C(1) << 32); n++, u += STRIDE)
                x[n] = tt_float((uint32_t)u);
            bad += tt_mismatches(x, n, (sl_cpu_isa)isa);
        }
        if (bad)
            printf("%s: %lld patterns differ from libm\n", sl_cpu_isa_name(isa), (long long)bad);
        assert_int_equal(bad, 0);
    }
    free(x);
}

static void test_vector_tanhf_equals_libm_at_branch_boundaries(void **state) {
    (void)state;
    /* the thresholds of s_tanhf.c (2^-55, 1, 22) and of s_expm1f.c on the arguments tanhf
     * passes (2^-25, 0.5 ln2, 1.5 ln2, 27 ln2, k = 23 and 56), with neighbours on each side */
    static const uint32_t edges[] = {0x00000000, 0x00000001, 0x007fffff, 0x00800000, 0x24000000,
                                     0x33000000, 0x32800000, 0x3e317218, 0x3e851592, 0x3f800000,
                                     0x3f000000, 0x4195b844, 0x41000000, 0x41200000, 0x41980000,
                                     0x41b00000, 0x7f7fffff, 0x7f800000, 0x7fc00000, 0x7f800001};
    enum { SPREAD = 40 };
    float x[2 * (sizeof edges / sizeof *edges) * (2 * SPREAD + 1)];
    int64_t n = 0;
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        for (int d = -SPREAD; d <= SPREAD; d++) {
            const uint32_t u = edges[i] + (uint32_t)d;
            x[n++] = tt_float(u);
            x[n++] = tt_float(u ^ 0x80000000u);
        }
    }
    for (int isa = SL_CPU_ISA_PORTABLE; isa <= (int)sl_cpu_isa_best(); isa++)
        assert_int_equal(tt_mismatches(x, n, (sl_cpu_isa)isa), 0);
}

static void test_vector_tanhf_handles_every_tail_length(void **state) {
    (void)state;
    float x[67];
    for (int64_t n = 0; n <= 67; n++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)(i - 30) * 0.37f;
        for (int isa = SL_CPU_ISA_PORTABLE; isa <= (int)sl_cpu_isa_best(); isa++)
            assert_int_equal(tt_mismatches(x, n, (sl_cpu_isa)isa), 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_tanhf_equals_libm_on_a_sweep_of_all_bit_patterns),
        cmocka_unit_test(test_vector_tanhf_equals_libm_at_branch_boundaries),
        cmocka_unit_test(test_vector_tanhf_handles_every_tail_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
