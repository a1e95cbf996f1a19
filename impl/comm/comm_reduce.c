/* Reduction arithmetic on storage-dtype buffers. bf16 / f16 values are widened to f32 a block at a
 * time, combined in f32 with each result rounded back to the dtype (sl_round_array), and narrowed
 * again; narrowing a value that is already representable is exact. */
#include "impl/comm/comm_reduce.h"

#include <string.h>

#include "shardlab/plan.h"

/* Elements per f32 staging block: two blocks of 4 KiB live on the stack. */
#define SL_COMM_BLOCK 1024

/* Elements of the block starting at b of an n-element buffer. */
static size_t sl_block_len(size_t n, size_t b) {
    const size_t left = n - b;
    return left < SL_COMM_BLOCK ? left : SL_COMM_BLOCK;
}

sl_comm_divide sl_comm_divide_resolve(const sl_comm_opts *opts) {
    sl_comm_divide d = {0.0f, 0.0f, 0.0f};
    const int w = opts->divide_world;
    if (w <= 0) return d;
    switch (opts->divide) {
    case SL_DIVIDE_PRE_POST_POW2: {
        double pre, post;
        sl_divide_factors_pow2(w, &pre, &post);
        if (pre != 1.0) d.pre_div = (float)pre;
        if (post != 1.0) d.post_div = (float)post;
        break;
    }
    case SL_DIVIDE_AVG: d.post_div = (float)w; break;
    case SL_DIVIDE_PRE: d.pre_div = (float)w; break;
    case SL_DIVIDE_POST: d.post_mul = (float)(1.0 / w); break;
    }
    if (opts->skip_pre_divide) d.pre_div = 0.0f;
    if (opts->skip_post_divide) d.post_div = d.post_mul = 0.0f;
    return d;
}

bool sl_comm_dtype_reducible(sl_dtype dt) {
    return dt == SL_DTYPE_F32 || dt == SL_DTYPE_BF16 || dt == SL_DTYPE_F16;
}

/* dst[0..n) = elements [first, first + n) of a storage buffer, widened to f32. */
static void sl_load(float *dst, const void *src, size_t first, size_t n, sl_dtype dt) {
    const char *p = (const char *)src + first * sl_dtype_size(dt);
    if (dt == SL_DTYPE_F32) {
        memcpy(dst, p, n * sizeof(float));
    } else {
        sl_convert_to_f32(dst, p, dt, n);
    }
}

static void sl_store(void *dst, size_t first, const float *src, size_t n, sl_dtype dt) {
    char *p = (char *)dst + first * sl_dtype_size(dt);
    if (dt == SL_DTYPE_F32) {
        memcpy(p, src, n * sizeof(float));
    } else {
        sl_convert_from_f32(p, dt, src, n);
    }
}

void sl_comm_divide_array(void *dst, const void *src, size_t n, sl_dtype dt, float div) {
    float x[SL_COMM_BLOCK];
    for (size_t b = 0; b < n; b += SL_COMM_BLOCK) {
        const size_t m = sl_block_len(n, b);
        sl_load(x, src, b, m, dt);
        for (size_t i = 0; i < m; i++)
            x[i] = x[i] / div;
        sl_round_array(x, m, dt);
        sl_store(dst, b, x, m, dt);
    }
}

void sl_comm_post_divide(void *buf, size_t n, sl_dtype dt, const sl_comm_divide *d) {
    if (d->post_div != 0.0f) {
        sl_comm_divide_array(buf, buf, n, dt, d->post_div);
    } else if (d->post_mul != 0.0f) {
        float x[SL_COMM_BLOCK];
        for (size_t b = 0; b < n; b += SL_COMM_BLOCK) {
            const size_t m = sl_block_len(n, b);
            sl_load(x, buf, b, m, dt);
            for (size_t i = 0; i < m; i++)
                x[i] = x[i] * d->post_mul;
            sl_round_array(x, m, dt);
            sl_store(buf, b, x, m, dt);
        }
    }
}

void sl_comm_sum_ranks(void *out, const void *in, size_t n, int n_ranks, size_t stride, sl_dtype dt,
                       float pre_div) {
    float acc[SL_COMM_BLOCK], x[SL_COMM_BLOCK];
    for (size_t b = 0; b < n; b += SL_COMM_BLOCK) {
        const size_t m = sl_block_len(n, b);
        /* rank 0's value starts the sum (no "0 +": that would turn -0 into +0) */
        sl_load(acc, in, b, m, dt);
        if (pre_div != 0.0f) {
            for (size_t i = 0; i < m; i++)
                acc[i] = acc[i] / pre_div;
            sl_round_array(acc, m, dt);
        }
        for (int r = 1; r < n_ranks; r++) {
            sl_load(x, in, (size_t)r * stride + b, m, dt);
            if (pre_div != 0.0f) {
                for (size_t i = 0; i < m; i++)
                    x[i] = x[i] / pre_div;
                sl_round_array(x, m, dt);
            }
            for (size_t i = 0; i < m; i++)
                acc[i] = acc[i] + x[i];
            sl_round_array(acc, m, dt);
        }
        sl_store(out, b, acc, m, dt);
    }
}

void sl_comm_sum_into(void *inout, const void *in, size_t n, sl_dtype dt) {
    if (dt == SL_DTYPE_F32) {
        float *io = inout;
        const float *a = in;
        for (size_t i = 0; i < n; i++)
            io[i] = a[i] + io[i];
        return;
    }
    float acc[SL_COMM_BLOCK], x[SL_COMM_BLOCK];
    for (size_t b = 0; b < n; b += SL_COMM_BLOCK) {
        const size_t m = sl_block_len(n, b);
        sl_load(acc, inout, b, m, dt);
        sl_load(x, in, b, m, dt);
        for (size_t i = 0; i < m; i++)
            acc[i] = x[i] + acc[i];
        sl_round_array(acc, m, dt);
        sl_store(inout, b, acc, m, dt);
    }
}
