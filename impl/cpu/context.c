/* The CPU context: one growable workspace shared by the ops issued on it, and host memory for
 * the tensors the ops address. */
#include "impl/cpu/cpu.h"

#include <stdlib.h>

static void *sl_cpu_aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}

void *sl_cpu_workspace(sl_kctx *ctx, size_t bytes, const char *op) {
    if (bytes <= ctx->ws_bytes) return ctx->ws;
    /* Grow by at least half again, so a sequence of ops of rising sizes reallocates rarely. */
    size_t want = ctx->ws_bytes + ctx->ws_bytes / 2;
    if (want < bytes) want = bytes;
    free(ctx->ws);
    ctx->ws = sl_cpu_aligned_alloc(want);
    if (!ctx->ws) {
        ctx->ws_bytes = 0;
        sl_error_set(SL_ERR_OOM,
                     "%s: cannot allocate %.1f MiB of CPU kernel workspace; reduce the "
                     "micro-batch or the sequence length",
                     op, (double)want / (1024.0 * 1024.0));
        return NULL;
    }
    ctx->ws_bytes = want;
    if (want > ctx->ws_peak) ctx->ws_peak = want;
    return ctx->ws;
}

static sl_status sl_cpu_context_create(sl_kctx **out) {
    *out = NULL;
    (void)sl_kernels_threads(); /* settles the OpenBLAS thread count before the first sgemm */
    sl_kctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return sl_error_set(SL_ERR_OOM, "CPU kernel context: out of memory");
    *out = ctx;
    return SL_OK;
}

static void sl_cpu_context_destroy(sl_kctx *ctx) {
    if (!ctx) return;
    free(ctx->ws);
    free(ctx);
}

static int64_t sl_cpu_workspace_bytes(const sl_kctx *ctx) {
    return (int64_t)ctx->ws_peak;
}

static sl_status sl_cpu_alloc(sl_kctx *ctx, size_t bytes, void **out) {
    (void)ctx;
    *out = sl_cpu_aligned_alloc(bytes);
    if (!*out) {
        return sl_error_set(SL_ERR_OOM, "CPU kernels: cannot allocate %.1f MiB of host memory",
                            (double)bytes / (1024.0 * 1024.0));
    }
    return SL_OK;
}

static void sl_cpu_release(sl_kctx *ctx, void *p) {
    (void)ctx;
    free(p);
}

/* CPU ops finish before they return. */
static sl_status sl_cpu_synchronize(sl_kctx *ctx) {
    (void)ctx;
    return SL_OK;
}

static const sl_kernels sl_cpu_table = {
    .name = "cpu",
    .context_create = sl_cpu_context_create,
    .context_destroy = sl_cpu_context_destroy,
    .workspace_bytes = sl_cpu_workspace_bytes,
    .alloc = sl_cpu_alloc,
    .release = sl_cpu_release,
    .synchronize = sl_cpu_synchronize,
    .cast = sl_cpu_cast,
    .encoder_forward = sl_cpu_encoder_forward,
    .encoder_backward = sl_cpu_encoder_backward,
    .layernorm_forward = sl_cpu_layernorm_forward,
    .layernorm_backward = sl_cpu_layernorm_backward,
    .matmul_forward = sl_cpu_matmul_forward,
    .matmul_backward = sl_cpu_matmul_backward,
    .attention_forward = sl_cpu_attention_forward,
    .attention_backward = sl_cpu_attention_backward,
    .gelu_forward = sl_cpu_gelu_forward,
    .gelu_backward = sl_cpu_gelu_backward,
    .residual_forward = sl_cpu_residual_forward,
    .crossentropy_forward = sl_cpu_crossentropy_forward,
    .crossentropy_backward = sl_cpu_crossentropy_backward,
    .adamw_step = sl_cpu_adamw_step,
};

const sl_kernels *sl_kernels_cpu(void) {
    return &sl_cpu_table;
}
