/* The kernel interface: every GPT-2 op the engine runs, forward and backward, behind a table of
 * function pointers that a backend fills (the CPU backend here; a CUDA backend implements the
 * same table), and the per-unit GPT-2 forward/backward built on top of it.
 *
 * Tensors are views of storage (sl_tensor): a pointer, the storage dtype and a shape. Float
 * storage is F32, BF16 or F16 (bf16/f16 as uint16 bit patterns); token ids are I32. Every op
 * computes in f32: it widens what it reads (exactly) and rounds what it writes to the compute
 * dtype `cd` (the plan's param_dtype) at the points the reference rounds (ref/ops.h, ref/gpt2.h):
 * once per produced tensor, when written. An output's storage must be F32 or `cd` itself, so
 * that storing never rounds a second time. Impl and ref then differ only in the order of the
 * terms of f32 dot products (BLAS blocking, FMA); every other sum runs in the reference's order.
 *
 * Parameter-gradient outputs ACCUMULATE: g = round_cd(g + round_cd(contrib)), as the reference
 * does (the caller zeroes gradients before a micro-step). Activation-gradient outputs are
 * overwritten. Row-shaped arguments ("(N, C)") accept any shape whose last dimension is C; N is
 * the product of the others.
 *
 * Errors: an op checks the dtypes and shapes of its arguments before touching memory and
 * returns SL_ERR_INVALID_ARG (a dtype or a NULL) or SL_ERR_MISMATCH (a shape), naming the op,
 * the tensor (its `name`, else its role) and the expected and found values; nothing is written
 * then. Ops are ordered on their context; with the CPU backend each returns when done. */
#ifndef SHARDLAB_KERNELS_H
#define SHARDLAB_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "shardlab/dtype.h"
#include "shardlab/model.h"
#include "shardlab/plan.h"
#include "shardlab/status.h"

/* A view of a tensor's storage; it owns nothing. Row-major, contiguous. */
typedef struct sl_tensor {
    void *data;
    sl_dtype dtype;
    int ndim;
    int64_t shape[SL_MAX_DIMS];
    const char *name; /* used in error messages; NULL: the op names the argument's role */
} sl_tensor;

static inline sl_tensor sl_tensor_1d(void *data, sl_dtype dtype, int64_t d0) {
    return (sl_tensor){.data = data, .dtype = dtype, .ndim = 1, .shape = {d0}};
}
static inline sl_tensor sl_tensor_2d(void *data, sl_dtype dtype, int64_t d0, int64_t d1) {
    return (sl_tensor){.data = data, .dtype = dtype, .ndim = 2, .shape = {d0, d1}};
}
static inline sl_tensor sl_tensor_3d(void *data, sl_dtype dtype, int64_t d0, int64_t d1,
                                     int64_t d2) {
    return (sl_tensor){.data = data, .dtype = dtype, .ndim = 3, .shape = {d0, d1, d2}};
}
static inline sl_tensor sl_tensor_4d(void *data, sl_dtype dtype, int64_t d0, int64_t d1, int64_t d2,
                                     int64_t d3) {
    return (sl_tensor){.data = data, .dtype = dtype, .ndim = 4, .shape = {d0, d1, d2, d3}};
}
static inline int64_t sl_tensor_numel(const sl_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

/* How a matmul weight is laid out. */
typedef enum sl_weight_layout {
    SL_WEIGHT_IN_OUT, /* (IC, OC): Hugging Face Conv1D, out = inp @ W */
    SL_WEIGHT_OUT_IN  /* (OC, IC): nn.Linear and the LM head tied to wte, out = inp @ W^T */
} sl_weight_layout;

/* A backend's execution context: its workspace (grown on demand and kept), and for device
 * backends the stream and library handles. One per thread that issues ops. */
typedef struct sl_kctx sl_kctx;

typedef struct sl_kernels {
    const char *name; /* "cpu" */

    sl_status (*context_create)(sl_kctx **out);
    void (*context_destroy)(sl_kctx *ctx);
    /* Peak bytes of workspace the context has held (DESIGN.md §6 category `workspace`). */
    int64_t (*workspace_bytes)(const sl_kctx *ctx);
    /* Memory the ops of this backend can address (host memory for the CPU backend), 64-byte
     * aligned. release(NULL) does nothing. */
    sl_status (*alloc)(sl_kctx *ctx, size_t bytes, void **out);
    void (*release)(sl_kctx *ctx, void *p);
    /* Waits until every op issued on ctx has finished (nothing to wait for on the CPU). */
    sl_status (*synchronize)(sl_kctx *ctx);

    /* dst = src converted element by element; same numel. Narrowing rounds to nearest even,
     * bit for bit as common/dtype.c (NaN stays NaN, f16 subnormals exact); widening is exact. */
    sl_status (*cast)(sl_kctx *ctx, const sl_tensor *dst, const sl_tensor *src);

    /* out (B,T,C) = round(wte[tokens[b,t]] + wpe[t]); tokens (B,T) I32 in [0, V); wte (V,C);
     * wpe (Tmax,C) with Tmax >= T. */
    sl_status (*encoder_forward)(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                 const sl_tensor *tokens, const sl_tensor *wte,
                                 const sl_tensor *wpe);
    /* dwpe[t] += Σ_b dout[b,t]; dwte[v] += Σ over positions holding v, in position order. */
    sl_status (*encoder_backward)(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dwte,
                                  const sl_tensor *dwpe, const sl_tensor *dout,
                                  const sl_tensor *tokens);

    /* out (N,C) = round((inp - mean) * rstd * weight + bias), eps 1e-5, biased variance; mean
     * and rstd (N) are F32 and not rounded. */
    sl_status (*layernorm_forward)(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                   const sl_tensor *mean, const sl_tensor *rstd,
                                   const sl_tensor *inp, const sl_tensor *weight,
                                   const sl_tensor *bias);
    /* dinp (N,C) = round(rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))), dnorm =
     * dout * weight; dweight += Σ_n norm * dout; dbias += Σ_n dout. */
    sl_status (*layernorm_backward)(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dinp,
                                    const sl_tensor *dweight, const sl_tensor *dbias,
                                    const sl_tensor *dout, const sl_tensor *inp,
                                    const sl_tensor *weight, const sl_tensor *mean,
                                    const sl_tensor *rstd);

    /* out (N,OC) = round((inp (N,IC) @ W) + bias): the bias (OC, or NULL) joins after the full
     * f32 sum, as addmm does. */
    sl_status (*matmul_forward)(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                const sl_tensor *inp, const sl_tensor *weight,
                                sl_weight_layout layout, const sl_tensor *bias);
    /* dinp (N,IC) = round(dout @ W^T); dweight += dW (in the weight's layout); dbias (OC, or
     * NULL) += Σ_n dout, summed in row order. */
    sl_status (*matmul_backward)(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dinp,
                                 const sl_tensor *dweight, const sl_tensor *dbias,
                                 const sl_tensor *dout, const sl_tensor *inp,
                                 const sl_tensor *weight, sl_weight_layout layout);

    /* Causal attention on qkv (B,T,3C) = [q | k | v], heads contiguous in each; H = att's
     * dim 1. preatt (B,H,T,T) = round(q·k / sqrt(C/H)) (may be NULL: not stored), att (B,H,T,T)
     * = round(softmax over t2 <= t), 0 above the diagonal; out (B,T,C) = round(att @ v). */
    sl_status (*attention_forward)(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                   const sl_tensor *preatt, const sl_tensor *att,
                                   const sl_tensor *qkv);
    /* dqkv (B,T,3C) from dout (B,T,C): datt = round(dout · v), dpreatt = round(att * (datt -
     * Σ att·datt)), then dq, dk, dv each rounded once after their f32 sums. */
    sl_status (*attention_backward)(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dqkv,
                                    const sl_tensor *dout, const sl_tensor *qkv,
                                    const sl_tensor *att);

    /* out = round(0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))); same numel. */
    sl_status (*gelu_forward)(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                              const sl_tensor *inp);
    /* dinp = round(gelu'(inp) * dout); dinp may be dout itself. */
    sl_status (*gelu_backward)(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dinp,
                               const sl_tensor *inp, const sl_tensor *dout);

    /* out = round(a + b), same numel: a residual join, or the join of two gradients. out may be
     * a or b. */
    sl_status (*residual_forward)(sl_kctx *ctx, sl_dtype cd, const sl_tensor *out,
                                  const sl_tensor *a, const sl_tensor *b);

    /* Fused softmax cross-entropy over logits (N,V), all in f32 and unrounded: losses (N) =
     * logsumexp - logits[target] (0 where target < 0), stats (N,2) = the row's max and Σ exp(l -
     * max), which backward needs instead of the (N,V) probabilities; probs (N,V) F32 is written
     * only when not NULL. targets (N) I32, each < V. */
    sl_status (*crossentropy_forward)(sl_kctx *ctx, const sl_tensor *losses, const sl_tensor *stats,
                                      const sl_tensor *probs, const sl_tensor *logits,
                                      const sl_tensor *targets);
    /* dlogits (N,V) = round((softmax - onehot(target)) * dlosses), 0 on padding rows; the
     * softmax is recomputed from logits and stats bit for bit. dlogits may be logits itself. */
    sl_status (*crossentropy_backward)(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dlogits,
                                       const sl_tensor *logits, const sl_tensor *stats,
                                       const sl_tensor *targets, const sl_tensor *dlosses);

    /* One AdamW step in place: the formulas, the order of operations and every rounding of
     * sl_ref_adamw_step (ref/optim.h), bit for bit. param, m, v are stored as F32 or
     * master_dtype; grad holds master_dtype values in any float storage; equal numel. */
    sl_status (*adamw_step)(sl_kctx *ctx, sl_adam_variant variant, const sl_optim_config *cfg,
                            double lr, int step, sl_dtype master_dtype, const sl_tensor *param,
                            const sl_tensor *grad, const sl_tensor *m, const sl_tensor *v);
} sl_kernels;

/* The CPU backend: OpenBLAS sgemm for matrix products, OpenMP threads, AVX-512/AVX2 casts chosen
 * at run time. Its contexts may be used from one thread at a time each. */
const sl_kernels *sl_kernels_cpu(void);

/* Threads of the CPU kernels in this process. The kernels split work themselves (matrix products
 * by output tiles, attention by (batch, head)) and run OpenBLAS single-threaded inside each
 * thread, so a rank uses exactly n threads: give W ranks on a node n <= cores / W each.
 * n <= 0 restores the default, sl_kernels_default_threads(1). */
void sl_kernels_set_threads(int n);
int sl_kernels_threads(void);
/* OMP_NUM_THREADS when set to a positive number, else max(1, available cores / ranks_per_node). */
int sl_kernels_default_threads(int ranks_per_node);

/* The instruction-set path of the CPU casts (kernels without a vector path compute the same bits
 * on every path). */
typedef enum sl_cpu_isa {
    SL_CPU_ISA_PORTABLE, /* plain C */
    SL_CPU_ISA_AVX2,     /* AVX2 + F16C */
    SL_CPU_ISA_AVX512    /* AVX-512F */
} sl_cpu_isa;

typedef struct sl_cpu_features {
    int avx2, f16c, fma, avx512f, avx512bw, avx512_bf16, avx512_fp16;
} sl_cpu_features;

void sl_cpu_features_detect(sl_cpu_features *out);
const char *sl_cpu_isa_name(sl_cpu_isa isa); /* "portable", "avx2", "avx512" */
/* The best path this CPU (and OS) supports. */
sl_cpu_isa sl_cpu_isa_best(void);
/* The path in use: sl_cpu_isa_best() unless sl_cpu_isa_set chose a lower one. */
sl_cpu_isa sl_cpu_isa_active(void);
/* Forces a path, e.g. to compare paths; SL_ERR_INVALID_ARG when the CPU lacks it. */
sl_status sl_cpu_isa_set(sl_cpu_isa isa);

/* ---- GPT-2 per sharding unit, on top of a kernel table (mirrors ref/gpt2.h) ----
 *
 * Same math, same order of units and same rounding points as the reference. Parameters and
 * gradients are addressed by the model description's parameter index: params[p] / grads[p] view
 * the full tensor of parameter p in export layout, in its storage dtype (F32 holding cd values,
 * or cd); only the unit being run must be valid. Gradients accumulate (the caller zeroes them).
 * Token ids, targets, losses and dlosses are host arrays of B*T elements. */
typedef struct sl_impl_gpt2 sl_impl_gpt2;

/* Activations for a (B, T) micro-batch, computed in `cd` and stored in `act_dtype` (F32, or cd
 * itself to halve the memory of bf16/f16 runs); allocated through k->alloc. */
sl_status sl_impl_gpt2_create(const sl_kernels *k, sl_kctx *ctx, const sl_model_desc *model, int B,
                              int T, sl_dtype cd, sl_dtype act_dtype, sl_impl_gpt2 **out);
void sl_impl_gpt2_destroy(sl_impl_gpt2 *g);

/* Bytes kept from forward to backward (category `activations`): per layer ln1, qkv, atty, att,
 * residual2, ln2, fch, fch_gelu, residual3 in act_dtype and the LayerNorm mean/rstd in F32; then
 * encoded, lnf, logits in act_dtype and lnf mean/rstd and the classifier's (max, sum) in F32.
 * Not kept, unlike the reference: preatt (backward never reads it), attproj and fcproj (the
 * residual join consumes them at once) and the (B,T,V) probabilities (recomputed from logits). */
int64_t sl_impl_gpt2_activation_bytes(const sl_gpt2_config *cfg, int B, int T, sl_dtype act_dtype);
/* Bytes of one layer's activation gradients and the projection scratch, live during backward
 * (category `workspace`): 13 (B,T,C) tensors in act_dtype. */
int64_t sl_impl_gpt2_gradient_bytes(const sl_gpt2_config *cfg, int B, int T, sl_dtype act_dtype);
/* What g holds: activation_bytes + gradient_bytes for its configuration. */
int64_t sl_impl_gpt2_bytes(const sl_impl_gpt2 *g);

/* encoded = wte[inputs] + wpe[0..T) */
sl_status sl_impl_gpt2_embed_forward(sl_impl_gpt2 *g, const sl_tensor *params,
                                     const int32_t *inputs);
/* block l: x += attn(ln_1(x)); x += mlp(ln_2(x)) */
sl_status sl_impl_gpt2_block_forward(sl_impl_gpt2 *g, int l, const sl_tensor *params);
/* logits = ln_f(x) @ wte^T; losses[b,t] = -log softmax(logits)[targets[b,t]] in f32, 0 where
 * the target is < 0 (padding). */
sl_status sl_impl_gpt2_head_forward(sl_impl_gpt2 *g, const sl_tensor *params,
                                    const int32_t *targets, float *losses);
/* Seeds backward with dlosses = d objective / d losses (f32; 0 for padding). */
sl_status sl_impl_gpt2_head_backward(sl_impl_gpt2 *g, const sl_tensor *params,
                                     const sl_tensor *grads, const int32_t *targets,
                                     const float *dlosses);
sl_status sl_impl_gpt2_block_backward(sl_impl_gpt2 *g, int l, const sl_tensor *params,
                                      const sl_tensor *grads);
sl_status sl_impl_gpt2_embed_backward(sl_impl_gpt2 *g, const sl_tensor *grads,
                                      const int32_t *inputs);

/* ---- communication progress between ops ----
 *
 * MPI advances non-blocking collectives only inside MPI calls (bench/NOTES.md), so an engine
 * that overlaps a collective with compute installs a progress function on the context, and the
 * per-unit GPT-2 above calls it between its ops (a model of its own may call sl_kctx_progress
 * too). The function runs on the thread that issues the ops. NULL fn removes it. */
typedef void (*sl_kctx_progress_fn)(void *arg);
void sl_kctx_set_progress(sl_kctx *ctx, sl_kctx_progress_fn fn, void *arg);
/* Calls the context's progress function, if any. */
void sl_kctx_progress(sl_kctx *ctx);

#endif
