/* The arithmetic of a reduction (DESIGN.md §4.4, §4.5) on host buffers in their storage dtype
 * (f32, or uint16_t holding bf16 / f16 bits). Every operation rounds to the buffer's dtype, so a
 * bf16 sum is "widen both to f32, add, round to bf16" once per addition — the reference's rule. */
#ifndef SHARDLAB_IMPL_COMM_REDUCE_H
#define SHARDLAB_IMPL_COMM_REDUCE_H

#include <stdbool.h>
#include <stddef.h>

#include "shardlab/comm.h"
#include "shardlab/dtype.h"

/* The divide rule resolved into at most one operation before the sum and one after it.
 * 0 means "no operation" (a factor of 1 is skipped, as FSDP skips it). */
typedef struct sl_comm_divide {
    float pre_div;  /* x_r = round(x_r / pre_div) before the sum */
    float post_div; /* s = round(s / post_div) after it */
    float post_mul; /* s = round(s * post_mul) after it (POST: f32(1/W)) */
} sl_comm_divide;

/* From the options (divide_world 0: none). PRE divides by W even when W is 1, as the reference
 * does; the result is the same. */
sl_comm_divide sl_comm_divide_resolve(const sl_comm_opts *opts);

bool sl_comm_dtype_reducible(sl_dtype dt); /* F32, BF16, F16 */

/* dst[i] = round(src[i] / div); dst may equal src. */
void sl_comm_divide_array(void *dst, const void *src, size_t n, sl_dtype dt, float div);

/* buf[i] = round(buf[i] / post_div) or round(buf[i] * post_mul), as d says (nothing if neither). */
void sl_comm_post_divide(void *buf, size_t n, sl_dtype dt, const sl_comm_divide *d);

/* out[e] = x_0 (+) x_1 (+) ... (+) x_{n_ranks-1} for e < n, where x_r = in[r·stride + e], each
 * x_r first divided by pre_div when pre_div != 0, every operation rounded to dt. The deterministic
 * reduction's local step. out must not overlap in. */
void sl_comm_sum_ranks(void *out, const void *in, size_t n, int n_ranks, size_t stride, sl_dtype dt,
                       float pre_div);

/* inout[i] = round(in[i] + inout[i]): one step of a native reduction (the body of the
 * user-defined MPI operations for bf16 and f16; f32 for completeness). */
void sl_comm_sum_into(void *inout, const void *in, size_t n, sl_dtype dt);

#endif
