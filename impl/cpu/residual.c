/* out = round_cd(a + b), element-wise: a residual join in forward, the join of two gradient
 * branches in backward (ref/gpt2_block.c's sl_ref_add), bit-identical to the reference. */
#include "impl/cpu/cpu.h"

#define SL_RESIDUAL_CHUNK 2048

sl_status sl_cpu_residual_forward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                  const sl_tensor *a, const sl_tensor *b) {
    (void)ctx;
    static const char op[] = "residual_forward";
    SL_TRY(sl_cpu_check_cd(op, cd));
    SL_TRY(sl_cpu_check_out(op, "out", out, cd));
    SL_TRY(sl_cpu_check_float(op, "a", a));
    SL_TRY(sl_cpu_check_float(op, "b", b));
    const int64_t n = sl_tensor_numel(a);
    SL_TRY(sl_cpu_check_numel(op, "b", b, n));
    SL_TRY(sl_cpu_check_numel(op, "out", out, n));
    const int64_t chunks = (n + SL_RESIDUAL_CHUNK - 1) / SL_RESIDUAL_CHUNK;
#pragma omp parallel for num_threads(sl_cpu_threads()) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i0 = c * SL_RESIDUAL_CHUNK;
        const int64_t len = n - i0 < SL_RESIDUAL_CHUNK ? n - i0 : SL_RESIDUAL_CHUNK;
        float x[SL_RESIDUAL_CHUNK], y[SL_RESIDUAL_CHUNK];
        sl_cpu_to_f32(x, sl_cpu_at(a, i0), a->dtype, len);
        sl_cpu_to_f32(y, sl_cpu_at(b, i0), b->dtype, len);
        for (int64_t i = 0; i < len; i++)
            x[i] = x[i] + y[i];
        sl_cpu_from_f32(sl_cpu_at(out, i0), out->dtype, x, len, cd);
    }
    return SL_OK;
}
