/* The CPU context: one growable workspace shared by the ops issued on it, and host memory for
 * the tensors the ops address.
 *
 * Host memory is cached like a device allocator's: a released block of at least
 * SL_CPU_CACHE_MIN bytes is kept for the next request of exactly its size. The engine releases
 * and requests the same sizes every micro-step (gradients, gathered units, staging); without
 * the cache each large block came back from the OS as fresh pages, and the page faults and their
 * zeroing were about 5% of a gpt-small step (bench/NOTES.md). Accounting is unchanged: the
 * engine's categories count the bytes requested and not released (allocated), the cache is
 * reserved memory on top, at most SL_CPU_CACHE_SLOTS blocks, returned when the context is
 * destroyed. Under AddressSanitizer cached blocks are poisoned, so a use after release is still
 * reported. */
#include "impl/cpu/cpu.h"

#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SL_CPU_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define SL_CPU_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define SL_CPU_POISON(p, n) ((void)(p), (void)(n))
#define SL_CPU_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SL_CPU_CACHE_MIN ((size_t)1 << 20)
/* Each block starts with a 64-byte header holding its size; the caller's memory follows, so it
 * stays 64-byte aligned. */
#define SL_CPU_HEADER 64

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
    for (int i = 0; i < SL_CPU_CACHE_SLOTS; i++)
        free(ctx->cache[i]);
    free(ctx->ws);
    free(ctx);
}

static int64_t sl_cpu_workspace_bytes(const sl_kctx *ctx) {
    return (int64_t)ctx->ws_peak;
}

static size_t sl_cpu_block_bytes(const void *header) {
    return *(const size_t *)header;
}

static sl_status sl_cpu_alloc(sl_kctx *ctx, size_t bytes, void **out) {
    for (int i = 0; bytes >= SL_CPU_CACHE_MIN && i < SL_CPU_CACHE_SLOTS; i++) {
        void *h = ctx->cache[i];
        if (h && sl_cpu_block_bytes(h) == bytes) {
            ctx->cache[i] = NULL;
            SL_CPU_UNPOISON((char *)h + SL_CPU_HEADER, bytes);
            *out = (char *)h + SL_CPU_HEADER;
            return SL_OK;
        }
    }
    void *h = sl_cpu_aligned_alloc(bytes + SL_CPU_HEADER);
    if (!h) {
        *out = NULL;
        return sl_error_set(SL_ERR_OOM, "CPU kernels: cannot allocate %.1f MiB of host memory",
                            (double)bytes / (1024.0 * 1024.0));
    }
    *(size_t *)h = bytes;
    *out = (char *)h + SL_CPU_HEADER;
    return SL_OK;
}

static void sl_cpu_release(sl_kctx *ctx, void *p) {
    if (!p) return;
    void *h = (char *)p - SL_CPU_HEADER;
    const size_t bytes = sl_cpu_block_bytes(h);
    for (int i = 0; bytes >= SL_CPU_CACHE_MIN && i < SL_CPU_CACHE_SLOTS; i++) {
        if (!ctx->cache[i]) {
            ctx->cache[i] = h;
            SL_CPU_POISON(p, bytes);
            return;
        }
    }
    free(h);
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

void sl_kctx_set_progress(sl_kctx *ctx, sl_kctx_progress_fn fn, void *arg) {
    ctx->progress = fn;
    ctx->progress_arg = arg;
}

void sl_kctx_progress(sl_kctx *ctx) {
    if (ctx->progress) ctx->progress(ctx->progress_arg);
}

const sl_kernels *sl_kernels_cpu(void) {
    return &sl_cpu_table;
}
