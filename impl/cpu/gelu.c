/* GELU, tanh approximation (Hugging Face "gelu_new"), element-wise in chunks shared among
 * threads. Each element is the reference's expression (ref/gelu.c), tanh included: libm's tanhf
 * on vector lanes (tanh.c), so the outputs are bit-identical to it. Rounding: out =
 * round_cd(gelu(x)), dinp = round_cd(gelu'(x) * dout). */
#include "impl/cpu/cpu.h"

#define SL_GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */
#define SL_GELU_CUBIC 0.044715f
#define SL_GELU_CHUNK 1024

static int64_t sl_gelu_len(int64_t n, int64_t i) {
    return n - i < SL_GELU_CHUNK ? n - i : SL_GELU_CHUNK;
}

sl_status sl_cpu_gelu_forward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                              const sl_tensor *inp) {
    (void)ctx;
    static const char op[] = "gelu_forward";
    SL_TRY(sl_cpu_check_cd(op, cd));
    SL_TRY(sl_cpu_check_out(op, "out", out, cd));
    SL_TRY(sl_cpu_check_float(op, "inp", inp));
    const int64_t n = sl_tensor_numel(inp);
    SL_TRY(sl_cpu_check_numel(op, "out", out, n));
    const int64_t chunks = (n + SL_GELU_CHUNK - 1) / SL_GELU_CHUNK;
    const sl_cpu_isa isa = sl_cpu_isa_active();
#pragma omp parallel for num_threads(sl_cpu_threads()) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i0 = c * SL_GELU_CHUNK, len = sl_gelu_len(n, i0);
        float x[SL_GELU_CHUNK], tanh_u[SL_GELU_CHUNK];
        sl_cpu_to_f32(x, sl_cpu_at(inp, i0), inp->dtype, len);
        for (int64_t i = 0; i < len; i++) {
            const float xi = x[i];
            const float cube = SL_GELU_CUBIC * xi * xi * xi;
            tanh_u[i] = SL_GELU_SCALE * (xi + cube);
        }
        sl_cpu_tanhf_n(tanh_u, len, isa);
        for (int64_t i = 0; i < len; i++)
            x[i] = 0.5f * x[i] * (1.0f + tanh_u[i]);
        sl_cpu_from_f32(sl_cpu_at(out, i0), out->dtype, x, len, cd);
    }
    return SL_OK;
}

sl_status sl_cpu_gelu_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dinp,
                               const sl_tensor *inp, const sl_tensor *dout) {
    (void)ctx;
    static const char op[] = "gelu_backward";
    SL_TRY(sl_cpu_check_cd(op, cd));
    SL_TRY(sl_cpu_check_out(op, "dinp", dinp, cd));
    SL_TRY(sl_cpu_check_float(op, "inp", inp));
    SL_TRY(sl_cpu_check_float(op, "dout", dout));
    const int64_t n = sl_tensor_numel(inp);
    SL_TRY(sl_cpu_check_numel(op, "dout", dout, n));
    SL_TRY(sl_cpu_check_numel(op, "dinp", dinp, n));
    const int64_t chunks = (n + SL_GELU_CHUNK - 1) / SL_GELU_CHUNK;
    const sl_cpu_isa isa = sl_cpu_isa_active();
#pragma omp parallel for num_threads(sl_cpu_threads()) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i0 = c * SL_GELU_CHUNK, len = sl_gelu_len(n, i0);
        float x[SL_GELU_CHUNK], dy[SL_GELU_CHUNK], t[SL_GELU_CHUNK];
        sl_cpu_to_f32(x, sl_cpu_at(inp, i0), inp->dtype, len);
        sl_cpu_to_f32(dy, sl_cpu_at(dout, i0), dout->dtype, len);
        for (int64_t i = 0; i < len; i++) {
            const float xi = x[i];
            const float cube = SL_GELU_CUBIC * xi * xi * xi;
            t[i] = SL_GELU_SCALE * (xi + cube);
        }
        sl_cpu_tanhf_n(t, len, isa);
        /* d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh² u) du/dx, u = s (x + a x³) */
        for (int64_t i = 0; i < len; i++) {
            const float xi = x[i];
            const float tanh_u = t[i];
            const float sech2_u = 1.0f - tanh_u * tanh_u;
            const float du_dx = SL_GELU_SCALE * (1.0f + 3.0f * SL_GELU_CUBIC * xi * xi);
            const float local_grad = 0.5f * (1.0f + tanh_u) + 0.5f * xi * sech2_u * du_dx;
            x[i] = local_grad * dy[i];
        }
        sl_cpu_from_f32(sl_cpu_at(dinp, i0), dinp->dtype, x, len, cd);
    }
    return SL_OK;
}
