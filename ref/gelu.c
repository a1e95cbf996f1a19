/* GELU, tanh approximation (Hugging Face "gelu_new"). */
#include "ref/ops.h"

#include <math.h>

#define SL_REF_GELU_SCALE 0.7978845608028654f // sqrt(2 / pi)
#define SL_REF_GELU_CUBIC 0.044715f

void sl_ref_gelu_forward(float *out, const float *inp, int64_t n, sl_dtype cd) {
    for (int64_t i = 0; i < n; i++) {
        const float x = inp[i];
        const float cube = SL_REF_GELU_CUBIC * x * x * x;
        out[i] = sl_ref_round_value(0.5f * x * (1.0f + tanhf(SL_REF_GELU_SCALE * (x + cube))), cd);
    }
}

/* d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh² u) du/dx, u = s (x + a x³), du/dx = s (1 + 3 a x²) */
void sl_ref_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n,
                          sl_dtype cd) {
    for (int64_t i = 0; i < n; i++) {
        const float x = inp[i];
        const float cube = SL_REF_GELU_CUBIC * x * x * x;
        const float tanh_u = tanhf(SL_REF_GELU_SCALE * (x + cube));
        const float sech2_u = 1.0f - tanh_u * tanh_u;
        const float du_dx = SL_REF_GELU_SCALE * (1.0f + 3.0f * SL_REF_GELU_CUBIC * x * x);
        const float local_grad = 0.5f * (1.0f + tanh_u) + 0.5f * x * sech2_u * du_dx;
        dinp[i] = sl_ref_round_value(local_grad * dout[i], cd);
    }
}
