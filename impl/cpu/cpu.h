/* impl/cpu/cpu.h — what the CPU kernels share (private to impl/cpu): the context and its
 * workspace, threads, the vectorised casts, argument checks and the tiled sgemm driver. */
#ifndef SHARDLAB_IMPL_CPU_H
#define SHARDLAB_IMPL_CPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shardlab/kernels.h"

/* Blocks of k->alloc kept after k->release for the next request of the same size (context.c). */
#define SL_CPU_CACHE_SLOTS 8

struct sl_kctx {
    void *ws; /* 64-byte aligned, ws_bytes long; reused by every op */
    size_t ws_bytes;
    size_t ws_peak;
    sl_kctx_progress_fn progress; /* sl_kctx_set_progress */
    void *progress_arg;
    void *cache[SL_CPU_CACHE_SLOTS]; /* released blocks (their headers), NULL: empty slot */
};

/* A workspace of at least `bytes` for the op `op`, valid until the next call on ctx. NULL (with
 * the error set) when it cannot be allocated. */
void *sl_cpu_workspace(sl_kctx *ctx, size_t bytes, const char *op);
/* Rounds a byte count up to the 64-byte alignment the workspace carving keeps. */
static inline size_t sl_cpu_align(size_t bytes) {
    return (bytes + 63u) & ~(size_t)63u;
}
/* The floats at byte `offset` of a workspace (every offset used is a multiple of 64). */
static inline float *sl_cpu_ws_floats(char *ws, size_t offset) {
    void *p = ws + offset;
    return p;
}
/* Hands out the next `bytes` of a workspace being carved. */
static inline void *sl_cpu_carve(char **cursor, size_t bytes) {
    void *p = *cursor;
    *cursor += sl_cpu_align(bytes);
    return p;
}

/* Threads for the next parallel region (sl_kernels_threads()). */
int sl_cpu_threads(void);

/* Element i of a tensor's storage. */
static inline void *sl_cpu_at(const sl_tensor *t, int64_t i) {
    return (char *)t->data + i * (int64_t)sl_dtype_size(t->dtype);
}

/* ---- casts (cast.c); n elements, dispatched on sl_cpu_isa_active() ---- */

/* dst (f32) = src of storage dtype dt (F32, BF16, F16), exactly. dst may not overlap src. */
void sl_cpu_to_f32(float *dst, const void *src, sl_dtype dt, int64_t n);
/* dst (storage dtype dt: F32 or cd) = src rounded to cd. src is not modified. */
void sl_cpu_from_f32(void *dst, sl_dtype dt, const float *src, int64_t n, sl_dtype cd);
/* dst = src rounded to cd and widened back (the value a cd buffer would hold); may alias. */
void sl_cpu_round_f32(float *dst, const float *src, int64_t n, sl_dtype cd);
/* The portable and vector forms, for sl_cpu_isa_* dispatch and for tests of each path. */
void sl_cpu_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);
void sl_cpu_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);
void sl_cpu_f32_to_f16(uint16_t *dst, const float *src, int64_t n);
void sl_cpu_f16_to_f32(float *dst, const uint16_t *src, int64_t n);

/* x[i] = tanhf(x[i]) for n elements, bit for bit libm's, on the given path (tanh.c). */
void sl_cpu_tanhf_n(float *x, int64_t n, sl_cpu_isa isa);

/* g[i] = round_cd(g[i] + round_cd(contrib[i])) on n elements of a gradient's storage (F32 or
 * cd); contrib is rounded in place. The reference's sl_ref_grad_add. */
void sl_cpu_grad_add(void *g, sl_dtype g_dtype, float *contrib, int64_t n, sl_dtype cd);

/* ---- argument checks (check.c); each sets an error naming op and tensor ---- */

sl_status sl_cpu_check_float(const char *op, const char *role, const sl_tensor *t);
/* A float tensor the op writes: storage F32 or cd. */
sl_status sl_cpu_check_out(const char *op, const char *role, const sl_tensor *t, sl_dtype cd);
sl_status sl_cpu_check_dtype(const char *op, const char *role, const sl_tensor *t, sl_dtype dt);
sl_status sl_cpu_check_cd(const char *op, sl_dtype cd);
/* t has exactly this shape (ndim dims). */
sl_status sl_cpu_check_shape(const char *op, const char *role, const sl_tensor *t, int ndim,
                             const int64_t *shape);
/* t's last dimension is `cols`; *rows = numel / cols. */
sl_status sl_cpu_check_rows(const char *op, const char *role, const sl_tensor *t, int64_t cols,
                            int64_t *rows);
sl_status sl_cpu_check_numel(const char *op, const char *role, const sl_tensor *t, int64_t numel);

/* ---- matrix products (gemm.c) ---- */

/* op(X)(r, c) = trans ? X[c * ld + r] : X[r * ld + c], X of any float storage dtype. */
typedef struct sl_cpu_mat {
    const void *data;
    sl_dtype dtype;
    int64_t ld;
    bool trans;
} sl_cpu_mat;

/* Called, on the thread that computed it, for each finished block [m0,m1) x [n0,n1) of
 * C = op(A) op(B): c[(m - m0) * ldc + (n - n0)] holds the complete f32 sum and may be modified. */
typedef void (*sl_cpu_epilogue)(void *arg, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float *c,
                                int64_t ldc);

/* Where C goes: an f32 matrix the sums are written into directly (data, ld), or, with data
 * NULL, a workspace tile. */
typedef struct sl_cpu_dest {
    float *data;
    int64_t ld;
} sl_cpu_dest;

/* Workspace bytes sl_cpu_gemm needs for these operands and destination. */
size_t sl_cpu_gemm_workspace(int64_t M, int64_t N, int64_t K, const sl_cpu_mat *A,
                             const sl_cpu_mat *B, const sl_cpu_dest *dest);
/* C (M,N) = op(A) (M,K) @ op(B) (K,N) with single-threaded OpenBLAS sgemm per thread and per
 * tile; operands not stored as F32 are widened tile by tile. Each C element is one f32 dot
 * product over all K (K tiles accumulate into it in f32). The epilogue sees each block where C
 * was written (dest, or the workspace tile). ws holds sl_cpu_gemm_workspace bytes. */
void sl_cpu_gemm(int64_t M, int64_t N, int64_t K, const sl_cpu_mat *A, const sl_cpu_mat *B,
                 const sl_cpu_dest *dest, void *ws, sl_cpu_epilogue epilogue, void *arg);

/* The ops of the CPU table (one file each). */
sl_status sl_cpu_cast(sl_kctx *ctx, const sl_tensor *dst, const sl_tensor *src);
sl_status sl_cpu_encoder_forward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                 const sl_tensor *tokens, const sl_tensor *wte,
                                 const sl_tensor *wpe);
sl_status sl_cpu_encoder_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dwte,
                                  const sl_tensor *dwpe, const sl_tensor *dout,
                                  const sl_tensor *tokens);
sl_status sl_cpu_layernorm_forward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                   const sl_tensor *mean, const sl_tensor *rstd,
                                   const sl_tensor *inp, const sl_tensor *weight,
                                   const sl_tensor *bias);
sl_status sl_cpu_layernorm_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dinp,
                                    const sl_tensor *dweight, const sl_tensor *dbias,
                                    const sl_tensor *dout, const sl_tensor *inp,
                                    const sl_tensor *weight, const sl_tensor *mean,
                                    const sl_tensor *rstd);
sl_status sl_cpu_matmul_forward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                const sl_tensor *inp, const sl_tensor *weight,
                                sl_weight_layout layout, const sl_tensor *bias);
sl_status sl_cpu_matmul_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dinp,
                                 const sl_tensor *dweight, const sl_tensor *dbias,
                                 const sl_tensor *dout, const sl_tensor *inp,
                                 const sl_tensor *weight, sl_weight_layout layout);
sl_status sl_cpu_attention_forward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                   const sl_tensor *preatt, const sl_tensor *att,
                                   const sl_tensor *qkv);
sl_status sl_cpu_attention_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dqkv,
                                    const sl_tensor *dout, const sl_tensor *qkv,
                                    const sl_tensor *att);
sl_status sl_cpu_gelu_forward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                              const sl_tensor *inp);
sl_status sl_cpu_gelu_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dinp,
                               const sl_tensor *inp, const sl_tensor *dout);
sl_status sl_cpu_residual_forward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                  const sl_tensor *a, const sl_tensor *b);
sl_status sl_cpu_crossentropy_forward(sl_kctx *ctx, const sl_tensor *losses, const sl_tensor *stats,
                                      const sl_tensor *probs, const sl_tensor *logits,
                                      const sl_tensor *targets);
sl_status sl_cpu_crossentropy_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dlogits,
                                       const sl_tensor *logits, const sl_tensor *stats,
                                       const sl_tensor *targets, const sl_tensor *dlosses);
sl_status sl_cpu_adamw_step(sl_kctx *ctx, sl_adam_variant variant, const sl_optim_config *cfg,
                            double lr, int step, sl_dtype master_dtype, const sl_tensor *param,
                            const sl_tensor *grad, const sl_tensor *m, const sl_tensor *v);

#endif
