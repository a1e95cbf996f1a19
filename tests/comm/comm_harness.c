#include "tests/comm/comm_harness.h"

#include <math.h>
#include <stdio.h>

#include "shardlab/plan.h"

/* splitmix64 of a combined counter: any process can compute any rank's inputs. */
static uint64_t sl_test_mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float sl_test_input(uint64_t seed, int rank, int case_id, size_t i, sl_dtype dt) {
    const uint64_t h = sl_test_mix(
        seed ^ sl_test_mix(((uint64_t)rank << 48) ^ ((uint64_t)case_id << 32) ^ (uint64_t)i));
    const double u = (double)(h >> 11) / 9007199254740992.0; /* [0, 1) */
    const int e = (int)((h >> 3) % 9) - 4;
    return sl_round_to((float)ldexp(16.0 * u - 8.0, e), dt);
}

void sl_test_fill(void *buf, size_t n, sl_dtype dt, uint64_t seed, int rank, int case_id,
                  size_t first) {
    for (size_t i = 0; i < n; i++) {
        const float v = sl_test_input(seed, rank, case_id, first + i, dt);
        if (dt == SL_DTYPE_F32) {
            ((float *)buf)[i] = v;
        } else {
            sl_convert_from_f32((uint16_t *)buf + i, dt, &v, 1);
        }
    }
}

float sl_test_get(const void *buf, size_t i, sl_dtype dt) {
    if (dt == SL_DTYPE_F32) return ((const float *)buf)[i];
    float v;
    sl_convert_to_f32(&v, (const uint16_t *)buf + i, dt, 1);
    return v;
}

/* The pre and post operations of the rule; 0 = none. */
static void sl_test_divide(const sl_comm_opts *o, float *pre, float *post_div, float *post_mul) {
    *pre = *post_div = *post_mul = 0.0f;
    const int w = o->divide_world;
    if (w > 0 && o->divide == SL_DIVIDE_PRE_POST_POW2) {
        double a, b;
        sl_divide_factors_pow2(w, &a, &b);
        if (a != 1.0) *pre = (float)a;
        if (b != 1.0) *post_div = (float)b;
    } else if (w > 0 && o->divide == SL_DIVIDE_AVG) {
        *post_div = (float)w;
    } else if (w > 0 && o->divide == SL_DIVIDE_PRE) {
        *pre = (float)w;
    } else if (w > 0 && o->divide == SL_DIVIDE_POST) {
        *post_mul = (float)(1.0 / w);
    }
    if (o->skip_pre_divide) *pre = 0.0f;
    if (o->skip_post_divide) *post_div = *post_mul = 0.0f;
}

static float sl_test_post(float s, sl_dtype dt, float post_div, float post_mul) {
    if (post_div != 0.0f) return sl_round_to(s / post_div, dt);
    if (post_mul != 0.0f) return sl_round_to(s * post_mul, dt);
    return s;
}

float sl_test_reduce_ref(const float *x, int n, sl_dtype dt, const sl_comm_opts *o) {
    return sl_test_reduce_hybrid_ref(x, n, n, dt, o);
}

float sl_test_reduce_hybrid_ref(const float *x, int n, int g, sl_dtype dt, const sl_comm_opts *o) {
    float pre, post_div, post_mul;
    sl_test_divide(o, &pre, &post_div, &post_mul);
    float total = 0.0f;
    for (int rep = 0; rep < n / g; rep++) {
        float sum = 0.0f;
        for (int j = 0; j < g; j++) {
            float v = x[rep * g + j];
            if (pre != 0.0f) v = sl_round_to(v / pre, dt);
            sum = j == 0 ? v : sl_round_to(sum + v, dt);
        }
        total = rep == 0 ? sum : sl_round_to(total + sum, dt);
    }
    return sl_test_post(total, dt, post_div, post_mul);
}
