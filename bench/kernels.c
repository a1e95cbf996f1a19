/* The kernel suite: the CPU kernels (impl/cpu, through the kernel table) at the shapes of one
 * GPT-2 micro-batch, next to the machine's measured OpenBLAS sgemm peak.
 *
 * Shapes: gpt-tiny B8 T64, gpt-small B4 T256, gpt2-124m B4 T1024 (the micro-batches of
 * bench/NOTES.md); N = B·T rows. FLOP counts are the useful ones: matmul forward 2·N·IC·OC,
 * backward 4·N·IC·OC (dinp and dW; the bias terms are left out); causal attention forward
 * 2·B·T·(T+1)·C (q·k and att·v over the t2 <= t half), backward twice that. Bytes (GB/s) count
 * each element read or written once: the floor of traffic, not what caches see. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench_util.h"
#include "bench/benchmark_c/benchmark_c.h"
#include "bench/suites.h"
#include "shardlab/kernels.h"
#include "shardlab/model.h"

typedef enum sl_kop {
    SL_KOP_MATMUL_FWD,
    SL_KOP_MATMUL_BWD,
    SL_KOP_ATTENTION_FWD,
    SL_KOP_ATTENTION_BWD,
    SL_KOP_LAYERNORM_FWD,
    SL_KOP_LAYERNORM_BWD,
    SL_KOP_GELU_FWD,
    SL_KOP_GELU_BWD,
    SL_KOP_ADAMW,
    SL_KOP_CAST
} sl_kop;

static const char *const sl_kop_names[] = {
    "matmul_fwd",    "matmul_bwd", "attention_fwd", "attention_bwd", "layernorm_fwd",
    "layernorm_bwd", "gelu_fwd",   "gelu_bwd",      "adamw",         "cast"};

typedef struct sl_kcase {
    sl_kop op;
    sl_dtype dt; /* compute and storage dtype; a cast's source */
    sl_dtype to; /* a cast's destination */
    const char *model;
    int B, T, C, H;
    int64_t params; /* the model's parameter count: AdamW and cast sizes */
    const char *layer;
    int64_t N, IC, OC; /* matmul */
    char name[96];
} sl_kcase;

typedef struct sl_kmodel {
    const char *name;
    int B, T;
} sl_kmodel;

static const sl_kmodel sl_kmodels[] = {
    {"gpt-tiny", 8, 64}, {"gpt-small", 4, 256}, {"gpt2-124m", 4, 1024}};

#define SL_KCASES_MAX 160
static sl_kcase sl_kcases[SL_KCASES_MAX];
static int sl_n_kcases;
static int sl_kthreads;
/* The best sgemm GFLOP/s the peak benchmark has seen in this process (0: not run yet). */
static double sl_peak_gflops;

/* ---- the sgemm peak ---- */

typedef struct sl_peak_case {
    int m, n, k;
} sl_peak_case;
static sl_peak_case sl_peak_shape;

/* C (m,n) = A (m,k) @ B (k,n): one single-threaded OpenBLAS sgemm per OpenMP thread on its slice
 * of rows — how the kernels themselves split a product (OpenBLAS's own threads reach the same
 * rate, bench/NOTES.md, but their spinning after a call would steal the cores of the kernel
 * benchmarks that follow). */
static void sl_peak_sgemm(const float *a, const float *b, float *c) {
    const sl_peak_case *p = &sl_peak_shape;
#pragma omp parallel num_threads(sl_kthreads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int r0 = p->m * t / nt, r1 = p->m * (t + 1) / nt;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, p->n, p->k, 1.0f,
                    a + (size_t)r0 * p->k, p->k, b, p->n, 0.0f, c + (size_t)r0 * p->n, p->n);
    }
}

/* GFLOP/s of the timed loop when st is given, else the best of `reps` calls; one untimed call
 * first. */
static double sl_peak_run(sl_bench_state *st, int reps) {
    const sl_peak_case *p = &sl_peak_shape;
    const size_t na = (size_t)p->m * p->k, nb = (size_t)p->k * p->n, nc = (size_t)p->m * p->n;
    float *a = sl_bench_alloc(na * sizeof(float)), *b = sl_bench_alloc(nb * sizeof(float));
    float *c = sl_bench_alloc(nc * sizeof(float));
    double best = 0;
    const double flops = 2.0 * p->m * p->n * p->k;
    if (!a || !b || !c) {
        if (st) sl_bench_skip_with_error(st, sl_error_message());
    } else if (st) {
        sl_bench_fill(a, SL_DTYPE_F32, (int64_t)na, 1, 1.0f);
        sl_bench_fill(b, SL_DTYPE_F32, (int64_t)nb, 2, 1.0f);
        sl_peak_sgemm(a, b, c);
        const double t0 = sl_bench_now();
        while (sl_bench_keep_running(st))
            sl_peak_sgemm(a, b, c);
        const double iters = (double)sl_bench_iterations(st);
        best = flops * iters / (sl_bench_now() - t0) / 1e9;
        sl_bench_set_counter(st, "gflops", flops * iters / 1e9, SL_BENCH_COUNTER_RATE);
    } else {
        sl_bench_fill(a, SL_DTYPE_F32, (int64_t)na, 1, 1.0f);
        sl_bench_fill(b, SL_DTYPE_F32, (int64_t)nb, 2, 1.0f);
        sl_peak_sgemm(a, b, c);
        for (int r = 0; r < reps; r++) {
            const double t0 = sl_bench_now();
            sl_peak_sgemm(a, b, c);
            const double g = flops / (sl_bench_now() - t0) / 1e9;
            if (g > best) best = g;
        }
    }
    sl_bench_free(a);
    sl_bench_free(b);
    sl_bench_free(c);
    return best;
}

static void sl_bm_peak(sl_bench_state *st, void *user) {
    (void)user;
    const double g = sl_peak_run(st, 0);
    if (g > sl_peak_gflops) sl_peak_gflops = g;
    char label[64];
    snprintf(label, sizeof label, "threads=%d", sl_kthreads);
    sl_bench_set_label(st, label);
}

/* The peak for pct_peak: the peak benchmark's when it ran, else a short measurement now (a
 * filter may have left the peak benchmark out). */
static double sl_peak_now(void) {
    if (sl_peak_gflops <= 0) sl_peak_gflops = sl_peak_run(NULL, 5);
    return sl_peak_gflops;
}

/* ---- the kernels ---- */

/* Buffers of one run, from the kernel table's allocator. */
typedef struct sl_kbufs {
    const sl_kernels *k;
    sl_kctx *ctx;
    void *p[12];
    int n;
    bool failed;
} sl_kbufs;

static void *sl_kb(sl_kbufs *b, sl_dtype dt, int64_t n, uint64_t seed) {
    void *p = NULL;
    if (b->failed) return NULL;
    if (b->k->alloc(b->ctx, (size_t)n * sl_dtype_size(dt), &p) != SL_OK) {
        b->failed = true;
        return NULL;
    }
    b->p[b->n++] = p;
    /* values of a trained layer's scale; 0.5 keeps AdamW's and LayerNorm's inputs ordinary */
    sl_bench_fill(p, dt, n, seed, 0.5f);
    return p;
}

static void sl_kb_release(sl_kbufs *b) {
    for (int i = 0; i < b->n; i++)
        b->k->release(b->ctx, b->p[i]);
    if (b->ctx) b->k->context_destroy(b->ctx);
}

/* Runs one op of case c on the buffers: the body of the timed loop. */
typedef struct sl_kargs {
    sl_tensor t[10];
    sl_optim_config optim;
    int step;
} sl_kargs;

static sl_status sl_kcase_prepare(const sl_kcase *c, sl_kbufs *b, sl_kargs *a) {
    const sl_dtype dt = c->dt;
    const int64_t N = (int64_t)c->B * c->T, C = c->C;
    sl_tensor *t = a->t;
    switch (c->op) {
    case SL_KOP_MATMUL_FWD:
    case SL_KOP_MATMUL_BWD:
        t[0] = sl_tensor_2d(sl_kb(b, dt, c->N * c->IC, 1), dt, c->N, c->IC);   /* inp */
        t[1] = sl_tensor_2d(sl_kb(b, dt, c->IC * c->OC, 2), dt, c->IC, c->OC); /* weight */
        t[2] = sl_tensor_1d(sl_kb(b, dt, c->OC, 3), dt, c->OC);                /* bias, dbias */
        t[3] = sl_tensor_2d(sl_kb(b, dt, c->N * c->OC, 4), dt, c->N, c->OC);   /* out, dout */
        if (c->op == SL_KOP_MATMUL_BWD) {
            t[4] = sl_tensor_2d(sl_kb(b, dt, c->N * c->IC, 5), dt, c->N, c->IC);   /* dinp */
            t[5] = sl_tensor_2d(sl_kb(b, dt, c->IC * c->OC, 6), dt, c->IC, c->OC); /* dweight */
        }
        break;
    case SL_KOP_ATTENTION_FWD:
    case SL_KOP_ATTENTION_BWD:
        t[0] = sl_tensor_3d(sl_kb(b, dt, N * 3 * C, 1), dt, c->B, c->T, 3 * C); /* qkv */
        t[1] = sl_tensor_3d(sl_kb(b, dt, N * C, 2), dt, c->B, c->T, C);         /* out, dout */
        t[2] = sl_tensor_4d(sl_kb(b, dt, (int64_t)c->B * c->H * c->T * c->T, 3), dt, c->B, c->H,
                            c->T, c->T); /* att */
        if (c->op == SL_KOP_ATTENTION_BWD) {
            t[3] = sl_tensor_3d(sl_kb(b, dt, N * 3 * C, 4), dt, c->B, c->T, 3 * C); /* dqkv */
        }
        break;
    case SL_KOP_LAYERNORM_FWD:
    case SL_KOP_LAYERNORM_BWD:
        t[0] = sl_tensor_2d(sl_kb(b, dt, N * C, 1), dt, N, C);              /* inp */
        t[1] = sl_tensor_1d(sl_kb(b, dt, C, 2), dt, C);                     /* weight */
        t[2] = sl_tensor_1d(sl_kb(b, dt, C, 3), dt, C);                     /* bias */
        t[3] = sl_tensor_2d(sl_kb(b, dt, N * C, 4), dt, N, C);              /* out, dout */
        t[4] = sl_tensor_1d(sl_kb(b, SL_DTYPE_F32, N, 5), SL_DTYPE_F32, N); /* mean */
        t[5] = sl_tensor_1d(sl_kb(b, SL_DTYPE_F32, N, 6), SL_DTYPE_F32, N); /* rstd */
        if (c->op == SL_KOP_LAYERNORM_BWD) {
            t[6] = sl_tensor_2d(sl_kb(b, dt, N * C, 7), dt, N, C); /* dinp */
            t[7] = sl_tensor_1d(sl_kb(b, dt, C, 8), dt, C);        /* dweight */
            t[8] = sl_tensor_1d(sl_kb(b, dt, C, 9), dt, C);        /* dbias */
        }
        break;
    case SL_KOP_GELU_FWD:
    case SL_KOP_GELU_BWD:
        t[0] = sl_tensor_2d(sl_kb(b, dt, N * 4 * C, 1), dt, N, 4 * C); /* inp */
        t[1] = sl_tensor_2d(sl_kb(b, dt, N * 4 * C, 2), dt, N, 4 * C); /* out, dout */
        if (c->op == SL_KOP_GELU_BWD) {
            t[2] = sl_tensor_2d(sl_kb(b, dt, N * 4 * C, 3), dt, N, 4 * C); /* dinp */
        }
        break;
    case SL_KOP_ADAMW:
        for (int i = 0; i < 4; i++) /* param, grad, m, v */
            t[i] = sl_tensor_1d(sl_kb(b, SL_DTYPE_F32, c->params, (uint64_t)i + 1), SL_DTYPE_F32,
                                c->params);
        if (!b->failed) memset(t[3].data, 0, (size_t)c->params * sizeof(float)); /* v >= 0 */
        a->optim = (sl_optim_config){
            .lr = 6e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.01};
        break;
    case SL_KOP_CAST:
        t[0] = sl_tensor_1d(sl_kb(b, c->dt, c->params, 1), c->dt, c->params);
        t[1] = sl_tensor_1d(sl_kb(b, c->to, c->params, 2), c->to, c->params);
        break;
    }
    if (b->failed) return sl_error_prefix(SL_ERR_OOM, "%s: ", c->name);
    if (c->op == SL_KOP_ATTENTION_BWD) { /* a causal att to differentiate through */
        SL_TRY(b->k->attention_forward(b->ctx, dt, &t[1], NULL, &t[2], &t[0]));
    }
    if (c->op == SL_KOP_LAYERNORM_BWD) {
        SL_TRY(b->k->layernorm_forward(b->ctx, dt, &t[3], &t[4], &t[5], &t[0], &t[1], &t[2]));
    }
    return SL_OK;
}

static sl_status sl_kcase_run(const sl_kcase *c, const sl_kbufs *b, sl_kargs *a) {
    const sl_kernels *k = b->k;
    sl_kctx *x = b->ctx;
    const sl_dtype dt = c->dt;
    const sl_tensor *t = a->t;
    switch (c->op) {
    case SL_KOP_MATMUL_FWD:
        return k->matmul_forward(x, dt, &t[3], &t[0], &t[1], SL_WEIGHT_IN_OUT, &t[2]);
    case SL_KOP_MATMUL_BWD:
        return k->matmul_backward(x, dt, &t[4], &t[5], &t[2], &t[3], &t[0], &t[1],
                                  SL_WEIGHT_IN_OUT);
    case SL_KOP_ATTENTION_FWD: return k->attention_forward(x, dt, &t[1], NULL, &t[2], &t[0]);
    case SL_KOP_ATTENTION_BWD: return k->attention_backward(x, dt, &t[3], &t[1], &t[0], &t[2]);
    case SL_KOP_LAYERNORM_FWD:
        return k->layernorm_forward(x, dt, &t[3], &t[4], &t[5], &t[0], &t[1], &t[2]);
    case SL_KOP_LAYERNORM_BWD:
        return k->layernorm_backward(x, dt, &t[6], &t[7], &t[8], &t[3], &t[0], &t[1], &t[4], &t[5]);
    case SL_KOP_GELU_FWD: return k->gelu_forward(x, dt, &t[1], &t[0]);
    case SL_KOP_GELU_BWD: return k->gelu_backward(x, dt, &t[2], &t[0], &t[1]);
    case SL_KOP_ADAMW:
        return k->adamw_step(x, SL_ADAM_TORCH, &a->optim, a->optim.lr, ++a->step, SL_DTYPE_F32,
                             &t[0], &t[1], &t[2], &t[3]);
    case SL_KOP_CAST: return k->cast(x, &t[1], &t[0]);
    }
    return sl_error_set(SL_ERR_INTERNAL, "%s: unknown kernel op %d", c->name, (int)c->op);
}

/* FLOPs (0 when the op is memory-bound) and bytes of one call. */
static void sl_kcase_work(const sl_kcase *c, double *flops, double *bytes) {
    const double N = (double)c->B * c->T, C = c->C, T = c->T, B = c->B;
    const double s = (double)sl_dtype_size(c->dt);
    *flops = 0;
    *bytes = 0;
    switch (c->op) {
    case SL_KOP_MATMUL_FWD: *flops = 2.0 * (double)c->N * (double)c->IC * (double)c->OC; break;
    case SL_KOP_MATMUL_BWD: *flops = 4.0 * (double)c->N * (double)c->IC * (double)c->OC; break;
    case SL_KOP_ATTENTION_FWD: *flops = 2.0 * B * T * (T + 1) * C; break;
    case SL_KOP_ATTENTION_BWD: *flops = 4.0 * B * T * (T + 1) * C; break;
    case SL_KOP_LAYERNORM_FWD: *bytes = 2.0 * N * C * s; break; /* inp in, out out */
    case SL_KOP_LAYERNORM_BWD: *bytes = 3.0 * N * C * s; break; /* dout, inp in; dinp out */
    case SL_KOP_GELU_FWD: *bytes = 2.0 * N * 4 * C * s; break;
    case SL_KOP_GELU_BWD: *bytes = 3.0 * N * 4 * C * s; break;
    case SL_KOP_ADAMW: *bytes = 28.0 * (double)c->params; break; /* 4 f32 in, 3 f32 out */
    case SL_KOP_CAST:
        *bytes = (double)c->params * (double)(sl_dtype_size(c->dt) + sl_dtype_size(c->to));
        break;
    }
}

static void sl_bm_kernel(sl_bench_state *st, void *user) {
    const sl_kcase *c = user;
    sl_kbufs b = {.k = sl_kernels_cpu()};
    sl_kargs a = {0};
    sl_status s = b.k->context_create(&b.ctx);
    if (s == SL_OK) s = sl_kcase_prepare(c, &b, &a);
    const double peak = s == SL_OK ? sl_peak_now() : 0;
    if (s == SL_OK) s = sl_kcase_run(c, &b, &a); /* untimed: first touch of the workspace */
    while (s == SL_OK && sl_bench_keep_running(st))
        s = sl_kcase_run(c, &b, &a);
    if (s != SL_OK) {
        sl_bench_skip_with_error(st, sl_error_message());
    } else {
        double flops, bytes;
        sl_kcase_work(c, &flops, &bytes);
        const double iters = (double)sl_bench_iterations(st);
        if (flops > 0) {
            sl_bench_set_counter(st, "gflops", flops * iters / 1e9, SL_BENCH_COUNTER_RATE);
            if (peak > 0) {
                sl_bench_set_counter(st, "pct_peak", 100.0 * flops * iters / 1e9 / peak,
                                     SL_BENCH_COUNTER_RATE);
            }
        }
        if (bytes > 0) {
            sl_bench_set_counter(st, "gbps", bytes * iters / 1e9, SL_BENCH_COUNTER_RATE);
            sl_bench_set_bytes_processed(st, (int64_t)(bytes * iters));
        }
        char label[96];
        if (c->op == SL_KOP_MATMUL_FWD || c->op == SL_KOP_MATMUL_BWD) {
            snprintf(label, sizeof label, "N=%lld IC=%lld OC=%lld threads=%d", (long long)c->N,
                     (long long)c->IC, (long long)c->OC, sl_kthreads);
        } else if (c->op == SL_KOP_ADAMW || c->op == SL_KOP_CAST) {
            snprintf(label, sizeof label, "n=%lld threads=%d", (long long)c->params, sl_kthreads);
        } else {
            snprintf(label, sizeof label, "B=%d T=%d C=%d H=%d threads=%d", c->B, c->T, c->C, c->H,
                     sl_kthreads);
        }
        sl_bench_set_label(st, label);
    }
    sl_kb_release(&b);
}

/* ---- registration ---- */

static sl_status sl_kcase_add(sl_kcase c) {
    if (sl_n_kcases == SL_KCASES_MAX) {
        return sl_error_set(SL_ERR_INTERNAL, "kernel benchmarks: more than %d cases",
                            SL_KCASES_MAX);
    }
    if (c.op == SL_KOP_CAST) {
        snprintf(c.name, sizeof c.name, "cast/%s_to_%s/%s", sl_dtype_name(c.dt),
                 sl_dtype_name(c.to), c.model);
    } else if (c.layer) {
        snprintf(c.name, sizeof c.name, "%s/%s/%s/%s", sl_kop_names[c.op], sl_dtype_name(c.dt),
                 c.model, c.layer);
    } else {
        snprintf(c.name, sizeof c.name, "%s/%s/%s", sl_kop_names[c.op], sl_dtype_name(c.dt),
                 c.model);
    }
    sl_kcases[sl_n_kcases++] = c;
    return SL_OK;
}

/* Every case of one model, in the order they run. */
static sl_status sl_kcases_of_model(const sl_kmodel *m) {
    sl_gpt2_config g;
    SL_TRY(sl_gpt2_config_from_name(m->name, &g));
    sl_model_desc *desc = NULL;
    SL_TRY(sl_model_desc_create_gpt2(&g, &desc));
    const int64_t params = desc->total_numel;
    sl_model_desc_destroy(desc);
    const sl_kcase base = {.model = m->name,
                           .B = m->B,
                           .T = m->T,
                           .C = g.n_embd,
                           .H = g.n_head,
                           .params = params,
                           .N = (int64_t)m->B * m->T};
    const int64_t C = g.n_embd;
    const struct {
        const char *layer;
        int64_t ic, oc;
    } layers[] = {{"qkv", C, 3 * C}, {"attn_proj", C, C}, {"fc", C, 4 * C}, {"fc_proj", 4 * C, C}};
    const sl_dtype dts[] = {SL_DTYPE_F32, SL_DTYPE_BF16};
    for (int d = 0; d < 2; d++) {
        for (int op = SL_KOP_MATMUL_FWD; op <= SL_KOP_MATMUL_BWD; op++) {
            for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
                sl_kcase c = base;
                c.op = (sl_kop)op;
                c.dt = dts[d];
                c.layer = layers[l].layer;
                c.IC = layers[l].ic;
                c.OC = layers[l].oc;
                SL_TRY(sl_kcase_add(c));
            }
        }
    }
    for (int d = 0; d < 2; d++) {
        for (int op = SL_KOP_ATTENTION_FWD; op <= SL_KOP_ATTENTION_BWD; op++) {
            sl_kcase c = base;
            c.op = (sl_kop)op;
            c.dt = dts[d];
            SL_TRY(sl_kcase_add(c));
        }
    }
    for (int op = SL_KOP_LAYERNORM_FWD; op <= SL_KOP_ADAMW; op++) {
        sl_kcase c = base;
        c.op = (sl_kop)op;
        c.dt = SL_DTYPE_F32;
        SL_TRY(sl_kcase_add(c));
    }
    const sl_dtype casts[][2] = {{SL_DTYPE_F32, SL_DTYPE_BF16},
                                 {SL_DTYPE_BF16, SL_DTYPE_F32},
                                 {SL_DTYPE_F32, SL_DTYPE_F16},
                                 {SL_DTYPE_F16, SL_DTYPE_F32}};
    for (int i = 0; i < 4; i++) {
        sl_kcase c = base;
        c.op = SL_KOP_CAST;
        c.dt = casts[i][0];
        c.to = casts[i][1];
        SL_TRY(sl_kcase_add(c));
    }
    return SL_OK;
}

/* The thread count and the peak's shape, before the peak or the kernels register. */
static sl_status sl_kernels_setup(const sl_bench_suite_opts *o) {
    const int threads = o->threads > 0 ? o->threads : sl_kernels_default_threads(1);
    if (threads != sl_kthreads) sl_peak_gflops = 0; /* measured with another thread count */
    sl_kthreads = threads;
    sl_kernels_set_threads(sl_kthreads);
    sl_peak_shape = o->quick ? (sl_peak_case){1024, 1024, 1024} : (sl_peak_case){2048, 2048, 2048};
    char text[16];
    snprintf(text, sizeof text, "%d", sl_kthreads);
    return sl_bench_add_context("kernel_threads", text);
}

sl_status sl_bench_peak_register(const sl_bench_suite_opts *o) {
    SL_TRY(sl_kernels_setup(o));
    sl_peak_gflops = 0;
    sl_bench *b;
    SL_TRY(sl_bench_register("peak/sgemm_f32", sl_bm_peak, NULL, &b));
    const int64_t mnk[3] = {sl_peak_shape.m, sl_peak_shape.n, sl_peak_shape.k};
    SL_TRY(sl_bench_add_args(b, mnk, 3));
    SL_TRY(sl_bench_set_arg_names(b, (const char *const[]){"m", "n", "k"}, 3));
    SL_TRY(sl_bench_use_real_time(b));
    /* long enough for several products: every percentage of the suite is relative to it */
    SL_TRY(sl_bench_set_min_time(b, o->quick ? 0.1 : 0.5));
    sl_bench_set_time_unit(b, SL_BENCH_MS);
    return SL_OK;
}

double sl_bench_peak_gflops(const sl_bench_suite_opts *o) {
    if (sl_kernels_setup(o) != SL_OK) return 0;
    return sl_peak_now();
}

sl_status sl_bench_kernels_register(const sl_bench_suite_opts *o) {
    SL_TRY(sl_kernels_setup(o));
    sl_n_kcases = 0;
    const int n_models = o->quick ? 1 : (int)(sizeof sl_kmodels / sizeof sl_kmodels[0]);
    for (int m = 0; m < n_models; m++)
        SL_TRY(sl_kcases_of_model(&sl_kmodels[m]));
    for (int i = 0; i < sl_n_kcases; i++) {
        sl_bench *b;
        SL_TRY(sl_bench_register(sl_kcases[i].name, sl_bm_kernel, &sl_kcases[i], &b));
        SL_TRY(sl_bench_use_real_time(b));
        sl_bench_set_time_unit(b, SL_BENCH_US);
    }
    return SL_OK;
}
