/* Rounding to the compute dtype and the parameter-gradient accumulation rule (ref/gpt2.h). */
#include "ref/ops.h"

#include <stddef.h>

void sl_ref_round_buffer(float *x, int64_t n, sl_dtype cd) {
    if (cd != SL_DTYPE_F32) sl_round_array(x, (size_t)n, cd);
}

void sl_ref_grad_add(float *grad, float *contrib, int64_t n, sl_dtype cd) {
    sl_ref_round_buffer(contrib, n, cd);
    for (int64_t i = 0; i < n; i++)
        grad[i] = sl_ref_round_value(grad[i] + contrib[i], cd);
}
