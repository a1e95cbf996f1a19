/* dtype.h: exhaustive widening, constructed ties, and a million random f32 values checked against
 * a deliberately simple reference rounding written here (nearest neighbour by distance in double,
 * ties to the even bit pattern). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shardlab/dtype.h"

static uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float float_of(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* ---- the independent reference ---- */

/* Value of a bf16 or f16 bit pattern from its fields (exp_bits, man_bits, bias). */
static double decode(uint32_t h, int exp_bits, int man_bits) {
    const uint32_t man = h & ((1u << man_bits) - 1);
    const uint32_t ex = (h >> man_bits) & ((1u << exp_bits) - 1);
    const double sign = (h >> (exp_bits + man_bits)) & 1 ? -1.0 : 1.0;
    const int bias = (1 << (exp_bits - 1)) - 1;
    if (ex == (1u << exp_bits) - 1) return man ? NAN : sign * INFINITY;
    if (ex == 0) return sign * ldexp((double)man, 1 - bias - man_bits);
    return sign * ldexp(1.0 + ldexp((double)man, -man_bits), (int)ex - bias);
}

/* Picks between neighbours lo <= a <= hi (bit patterns lo_bits, lo_bits + 1): the nearer, and on a
 * tie the even pattern. */
static uint32_t nearer(double a, double lo, double hi, uint32_t lo_bits) {
    const double dlo = a - lo, dhi = hi - a; /* exact: a, lo, hi share a binade or lo is 0 */
    if (dlo < dhi) return lo_bits;
    if (dhi < dlo) return lo_bits + 1;
    return (lo_bits & 1) ? lo_bits + 1 : lo_bits;
}

static double f16_values[0x7c01]; /* every non-negative f16 pattern up to Inf, increasing */

static void init_f16_values(void) {
    for (uint32_t h = 0; h < 0x7c00; h++)
        f16_values[h] = decode(h, 5, 10);
    /* With an unbounded exponent the value after 65504 would be 2^16; rounding there means Inf. */
    f16_values[0x7c00] = 65536.0;
}

static uint16_t ref_f32_to_f16(float x) {
    const uint16_t sign = signbit(x) ? 0x8000 : 0;
    const double a = fabs((double)x);
    if (isinf(a)) return sign | 0x7c00;
    if (a >= f16_values[0x7c00]) return sign | 0x7c00;
    uint32_t lo = 0, hi = 0x7c00; /* f16_values[lo] <= a < f16_values[hi] */
    while (hi - lo > 1) {
        const uint32_t mid = (lo + hi) / 2;
        if (f16_values[mid] <= a)
            lo = mid;
        else
            hi = mid;
    }
    return (uint16_t)(sign | nearer(a, f16_values[lo], f16_values[lo + 1], lo));
}

static uint16_t ref_f32_to_bf16(float x) {
    const uint32_t u = bits_of(x);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    const double a = fabs((double)x);
    if (isinf(a)) return sign | 0x7f80;
    const uint32_t lo = (u & 0x7fffffff) >> 16; /* the bf16 at or below |x| */
    const double hi_value = lo + 1 == 0x7f80 ? ldexp(1.0, 128) : decode(lo + 1, 8, 7);
    return (uint16_t)(sign | nearer(a, decode(lo, 8, 7), hi_value, lo));
}

static uint64_t test_seed(void) {
    const char *env = getenv("SHARDLAB_TEST_SEED");
    if (env) return strtoull(env, NULL, 0);
    return (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- exhaustive ---- */

static void test_every_bf16_widens_exactly_and_narrows_back(void **state) {
    (void)state;
    for (uint32_t h = 0; h <= 0xffff; h++) {
        const float x = sl_bf16_to_f32((uint16_t)h);
        const double want = decode(h, 8, 7);
        if (isnan(want)) {
            if (!isnan(x)) fail_msg("bf16 0x%04x is NaN but widened to %a", h, (double)x);
            if (sl_f32_to_bf16(x) != (h | 0x0040))
                fail_msg("bf16 NaN 0x%04x narrowed back to 0x%04x, expected quiet 0x%04x", h,
                         sl_f32_to_bf16(x), h | 0x0040);
            continue;
        }
        if ((double)x != want || !signbit(x) != !signbit(want))
            fail_msg("bf16 0x%04x widened to %a, expected %a", h, (double)x, want);
        if (sl_f32_to_bf16(x) != h)
            fail_msg("bf16 0x%04x did not survive widen+narrow: got 0x%04x", h, sl_f32_to_bf16(x));
    }
}

static void test_every_f16_widens_exactly_and_narrows_back(void **state) {
    (void)state;
    for (uint32_t h = 0; h <= 0xffff; h++) {
        const float x = sl_f16_to_f32((uint16_t)h);
        const double want = decode(h, 5, 10);
        if (isnan(want)) {
            if (!isnan(x)) fail_msg("f16 0x%04x is NaN but widened to %a", h, (double)x);
            if ((signbit(x) != 0) != (int)(h >> 15)) fail_msg("f16 NaN 0x%04x lost its sign", h);
            if (sl_f32_to_f16(x) != (h | 0x0200))
                fail_msg("f16 NaN 0x%04x narrowed back to 0x%04x, expected quiet 0x%04x", h,
                         sl_f32_to_f16(x), h | 0x0200);
            continue;
        }
        if ((double)x != want || !signbit(x) != !signbit(want))
            fail_msg("f16 0x%04x widened to %a, expected %a", h, (double)x, want);
        if (sl_f32_to_f16(x) != h)
            fail_msg("f16 0x%04x did not survive widen+narrow: got 0x%04x", h, sl_f32_to_f16(x));
    }
}

/* ---- constructed cases ---- */

typedef struct {
    float x;
    uint16_t want;
} f16_case;

static void test_f16_ties_round_to_even_and_thresholds_hold(void **state) {
    (void)state;
    const f16_case cases[] = {
        {1.0f + 0x1p-11f, 0x3c00},            /* tie between 0x3c00 (even) and 0x3c01 */
        {1.0f + 3 * 0x1p-11f, 0x3c02},        /* tie between 0x3c01 (odd) and 0x3c02 */
        {1.0f + 0x1p-11f + 0x1p-23f, 0x3c01}, /* just above a tie */
        {2.0f - 0x1p-11f, 0x4000},            /* tie between 0x3fff (odd) and 2.0 */
        {2.0f - 3 * 0x1p-11f, 0x3ffe},        /* tie between 0x3ffe (even) and 0x3fff */
        {1.0f - 0x1p-12f, 0x3c00},            /* tie below 1: 0x3bff is odd */
        {-(1.0f + 0x1p-11f), 0xbc00},
        {-(1.0f + 3 * 0x1p-11f), 0xbc02},
        {1023.5f * 0x1p-24f, 0x0400}, /* largest subnormal (odd) vs smallest normal */
        {1022.5f * 0x1p-24f, 0x03fe},
        {1023.0f * 0x1p-24f, 0x03ff},
        {0x1p-14f, 0x0400},
        {0x1p-25f, 0x0000}, /* half the smallest subnormal: tie to zero */
        {-0x1p-25f, 0x8000},
        {0x1p-25f + 0x1p-48f, 0x0001}, /* just above: up to the smallest subnormal */
        {0x1p-25f - 0x1p-49f, 0x0000},
        {1.5f * 0x1p-24f, 0x0002}, /* tie between 0x0001 (odd) and 0x0002 */
        {2.5f * 0x1p-24f, 0x0002}, /* tie between 0x0002 (even) and 0x0003 */
        {0x1p-24f, 0x0001},
        {65504.0f, 0x7bff},        /* largest finite */
        {65519.99609375f, 0x7bff}, /* the largest float below 65520 */
        {65520.0f, 0x7c00},        /* tie between 65504 (odd) and 2^16: Inf */
        {-65520.0f, 0xfc00},
        {65488.0f, 0x7bfe}, /* tie between 65472 (even) and 65504 */
        {65536.0f, 0x7c00},
        {1e30f, 0x7c00},
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {0x1p-149f, 0x0000}, /* f32 subnormals underflow to zero */
        {-0x1p-149f, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint16_t got = sl_f32_to_f16(cases[i].x);
        if (got != cases[i].want)
            fail_msg("f16(%a) = 0x%04x, expected 0x%04x (case %zu)", (double)cases[i].x, got,
                     cases[i].want, i);
        assert_int_equal(got, ref_f32_to_f16(cases[i].x)); /* the reference agrees */
    }
    assert_true(isinf(sl_f16_to_f32(sl_f32_to_f16(INFINITY))));
    assert_int_equal(sl_f32_to_f16(-INFINITY), 0xfc00);
}

static void test_bf16_ties_round_to_even_and_overflow_to_inf(void **state) {
    (void)state;
    /* For each bf16 pattern h: exactly halfway above it, just above, and just below halfway. */
    const uint16_t patterns[] = {0x3f80, 0x3f81, 0x3fff, 0x7f7e, 0x7f7f, 0x0000, 0x0001,
                                 0x007f, 0x0080, 0xbf80, 0xbf81, 0xff7f, 0x4049};
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        const uint32_t h = patterns[i];
        const uint16_t up = (uint16_t)(h + 1);
        const uint16_t tie_want = (h & 1) ? up : (uint16_t)h;
        const float tie = float_of((h << 16) | 0x8000);
        if (sl_f32_to_bf16(tie) != tie_want)
            fail_msg("bf16 tie above 0x%04x: got 0x%04x, expected 0x%04x", h, sl_f32_to_bf16(tie),
                     tie_want);
        assert_int_equal(sl_f32_to_bf16(float_of((h << 16) | 0x8001)), up);
        assert_int_equal(sl_f32_to_bf16(float_of((h << 16) | 0x7fff)), h);
    }
    assert_int_equal(sl_f32_to_bf16(float_of(0x7f7f8000)), 0x7f80); /* FLT_MAX region: Inf */
    assert_int_equal(sl_f32_to_bf16(float_of(0x7f7fffff)), 0x7f80);
    assert_int_equal(sl_f32_to_bf16(float_of(0x7f7f7fff)), 0x7f7f);
    assert_int_equal(sl_f32_to_bf16(-0.0f), 0x8000);
    assert_int_equal(sl_f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(sl_f32_to_bf16(-INFINITY), 0xff80);
}

static void test_nan_stays_quiet_nan_with_its_sign(void **state) {
    (void)state;
    const uint32_t nans[] = {0x7fc00000, 0x7f800001, 0x7fffffff, 0xff800001,
                             0xffc00000, 0x7f80ffff, 0x7f810000};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        const float x = float_of(nans[i]);
        const uint16_t b = sl_f32_to_bf16(x), h = sl_f32_to_f16(x);
        const uint16_t sign = (uint16_t)((nans[i] >> 16) & 0x8000);
        if ((b & 0x7fc0) != 0x7fc0 || (b & 0x8000) != sign)
            fail_msg("bf16 of NaN 0x%08x is 0x%04x: not a quiet NaN of the same sign", nans[i], b);
        if ((h & 0x7e00) != 0x7e00 || (h & 0x8000) != sign)
            fail_msg("f16 of NaN 0x%08x is 0x%04x: not a quiet NaN of the same sign", nans[i], h);
        assert_true(isnan(sl_round_to(x, SL_DTYPE_BF16)));
        assert_true(isnan(sl_round_to(x, SL_DTYPE_F16)));
    }
}

/* ---- random ---- */

static void test_million_random_f32_match_reference_rounding(void **state) {
    (void)state;
    const uint64_t seed = test_seed();
    uint64_t rng = seed;
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = (uint32_t)splitmix64(&rng);
        if (i & 1) { /* half of the inputs with exponents around the f16 range (2^-27 .. 2^19) */
            const uint32_t ex = 100 + (uint32_t)(splitmix64(&rng) % 47);
            u = (u & 0x807fffffu) | (ex << 23);
        }
        const float x = float_of(u);
        const uint16_t h = sl_f32_to_f16(x), b = sl_f32_to_bf16(x);
        if (isnan(x)) {
            if (!isnan(sl_f16_to_f32(h)) || !isnan(sl_bf16_to_f32(b)))
                fail_msg("NaN 0x%08x did not stay NaN (seed %llu)", u, (unsigned long long)seed);
            continue;
        }
        if (h != ref_f32_to_f16(x))
            fail_msg("f16(0x%08x = %a) = 0x%04x, reference 0x%04x (seed %llu)", u, (double)x, h,
                     ref_f32_to_f16(x), (unsigned long long)seed);
        if (b != ref_f32_to_bf16(x))
            fail_msg("bf16(0x%08x = %a) = 0x%04x, reference 0x%04x (seed %llu)", u, (double)x, b,
                     ref_f32_to_bf16(x), (unsigned long long)seed);
        if (bits_of(sl_round_to(x, SL_DTYPE_F16)) != bits_of(sl_f16_to_f32(h)) ||
            bits_of(sl_round_to(x, SL_DTYPE_BF16)) != bits_of(sl_bf16_to_f32(b)))
            fail_msg("sl_round_to(0x%08x) disagrees with narrow+widen (seed %llu)", u,
                     (unsigned long long)seed);
    }
}

/* ---- bulk ---- */

static void test_bulk_conversions_match_scalar_and_need_no_alignment(void **state) {
    (void)state;
    enum { N = 4099 };
    static float src[N], rounded[N], back[N];
    static unsigned char storage[8 * N + 1];
    const uint64_t seed = test_seed();
    uint64_t rng = seed;
    for (int i = 0; i < N; i++)
        src[i] = float_of((uint32_t)splitmix64(&rng));
    const sl_dtype dts[] = {SL_DTYPE_BF16, SL_DTYPE_F16};
    for (int k = 0; k < 2; k++) {
        memcpy(rounded, src, sizeof src);
        sl_round_array(rounded, N, dts[k]);
        sl_convert_from_f32(storage + 1, dts[k], src, N); /* odd address: unaligned */
        sl_convert_to_f32(back, storage + 1, dts[k], N);
        for (int i = 0; i < N; i++) {
            const float want = sl_round_to(src[i], dts[k]);
            uint16_t stored;
            memcpy(&stored, storage + 1 + 2 * i, 2);
            const uint16_t scalar =
                dts[k] == SL_DTYPE_BF16 ? sl_f32_to_bf16(src[i]) : sl_f32_to_f16(src[i]);
            if (bits_of(rounded[i]) != bits_of(want) || bits_of(back[i]) != bits_of(want) ||
                stored != scalar)
                fail_msg("%s element %d (0x%08x): bulk conversion differs from scalar (seed %llu)",
                         sl_dtype_name(dts[k]), i, bits_of(src[i]), (unsigned long long)seed);
        }
    }
    /* F32 and F64 storage keep every value, NaN payloads included. */
    memcpy(rounded, src, sizeof src);
    sl_round_array(rounded, N, SL_DTYPE_F32);
    assert_memory_equal(rounded, src, sizeof src);
    sl_convert_from_f32(storage + 1, SL_DTYPE_F64, src, N);
    sl_convert_to_f32(back, storage + 1, SL_DTYPE_F64, N);
    for (int i = 0; i < N; i++)
        if (!isnan(src[i])) assert_int_equal(bits_of(back[i]), bits_of(src[i]));
    const int32_t ints[3] = {-7, 0, 16777217}; /* 2^24 + 1 rounds to even: 16777216 */
    sl_convert_to_f32(back, ints, SL_DTYPE_I32, 3);
    assert_true(back[0] == -7.0f && back[1] == 0.0f && back[2] == 16777216.0f);
}

/* ---- names ---- */

static void test_parse_accepts_every_spelling_in_any_case(void **state) {
    (void)state;
    const struct {
        const char *text;
        sl_dtype want;
    } ok[] = {{"fp32", SL_DTYPE_F32},  {"FLOAT32", SL_DTYPE_F32}, {"f32", SL_DTYPE_F32},
              {"Float", SL_DTYPE_F32}, {"bf16", SL_DTYPE_BF16},   {"BFloat16", SL_DTYPE_BF16},
              {"fp16", SL_DTYPE_F16},  {"float16", SL_DTYPE_F16}, {"F16", SL_DTYPE_F16},
              {"HALF", SL_DTYPE_F16},  {"fp64", SL_DTYPE_F64},    {"Float64", SL_DTYPE_F64},
              {"double", SL_DTYPE_F64}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        sl_dtype dt = SL_DTYPE_COUNT;
        assert_int_equal(sl_dtype_parse(ok[i].text, "load_dtype", &dt), SL_OK);
        assert_int_equal(dt, ok[i].want);
    }
}

static void test_parse_error_names_key_found_text_and_allowed_values(void **state) {
    (void)state;
    sl_dtype dt = SL_DTYPE_F32;
    assert_int_equal(sl_dtype_parse("bf61", "mixed_precision", &dt), SL_ERR_CONFIG);
    const char *msg = sl_error_message();
    assert_non_null(strstr(msg, "mixed_precision"));
    assert_non_null(strstr(msg, "\"bf61\""));
    assert_non_null(strstr(msg, "bf16"));
    assert_non_null(strstr(msg, "fp32"));
    assert_non_null(strstr(msg, "half"));
    assert_int_equal(dt, SL_DTYPE_F32); /* untouched on failure */
    assert_int_equal(sl_dtype_parse("fp32 ", "--dtype", &dt), SL_ERR_CONFIG);
    assert_non_null(strstr(sl_error_message(), "--dtype"));
    assert_int_equal(sl_dtype_parse("", "x", &dt), SL_ERR_CONFIG);
}

static void test_safetensors_names_round_trip_and_unknown_is_named(void **state) {
    (void)state;
    for (int i = 0; i < SL_DTYPE_COUNT; i++) {
        sl_dtype dt;
        assert_int_equal(
            sl_dtype_from_safetensors_name(sl_dtype_safetensors_name((sl_dtype)i), &dt), SL_OK);
        assert_int_equal(dt, i);
    }
    sl_dtype dt;
    assert_int_equal(sl_dtype_from_safetensors_name("BOOL", &dt), SL_ERR_FORMAT);
    assert_non_null(strstr(sl_error_message(), "\"BOOL\""));
    assert_int_equal(sl_dtype_from_safetensors_name("f32", &dt), SL_ERR_FORMAT); /* exact case */
    assert_int_equal(sl_dtype_size(SL_DTYPE_BF16), 2);
    assert_int_equal(sl_dtype_size(SL_DTYPE_I64), 8);
    assert_string_equal(sl_dtype_name(SL_DTYPE_F16), "fp16");
    assert_true(sl_dtype_is_float(SL_DTYPE_F64) && !sl_dtype_is_float(SL_DTYPE_I32));
}

int main(void) {
    init_f16_values();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_bf16_widens_exactly_and_narrows_back),
        cmocka_unit_test(test_every_f16_widens_exactly_and_narrows_back),
        cmocka_unit_test(test_f16_ties_round_to_even_and_thresholds_hold),
        cmocka_unit_test(test_bf16_ties_round_to_even_and_overflow_to_inf),
        cmocka_unit_test(test_nan_stays_quiet_nan_with_its_sign),
        cmocka_unit_test(test_million_random_f32_match_reference_rounding),
        cmocka_unit_test(test_bulk_conversions_match_scalar_and_need_no_alignment),
        cmocka_unit_test(test_parse_accepts_every_spelling_in_any_case),
        cmocka_unit_test(test_parse_error_names_key_found_text_and_allowed_values),
        cmocka_unit_test(test_safetensors_names_round_trip_and_unknown_is_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
