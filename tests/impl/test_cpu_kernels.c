/* The CPU kernels (include/shardlab/kernels.h) against the reference (ref/): every op forward and
 * backward, the casts, AdamW, and the per-unit GPT-2 forward+backward.
 *
 * What is promised, and how it is checked:
 *  - Casts are bit-identical to common/dtype.c on every instruction-set path.
 *  - Ops whose sums the kernels run in the reference's order (encoder, LayerNorm, GELU, residual,
 *    cross-entropy, AdamW, the bias gradient) are bit-identical to the reference.
 *  - Matrix products and attention differ from the reference only in the order of the terms of
 *    f32 dot products; the tolerances below bound that difference element by element (derived
 *    next to each test). Outputs in bf16/f16 runs are checked to be values of that dtype.
 *  - The per-unit GPT-2 stays within 4x the divergence of a legal reordering of the reference
 *    itself (DESIGN.md §9), and its results do not depend on threads or storage dtypes.
 * Random inputs come from the counter-based RNG under kc_seed (SL_TEST_SEED overrides); every
 * failure prints it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "attention_bounds.h"
#include "gpt2_runs.h"
#include "kernel_check.h"
#include "ref/gpt2.h"
#include "ref/ops.h"
#include "ref/optim.h"
#include "shardlab/kernels.h"
#include "shardlab/rng.h"

static const sl_dtype compute_dtypes[3] = {SL_DTYPE_F32, SL_DTYPE_BF16, SL_DTYPE_F16};

typedef struct fixture {
    const sl_kernels *k;
    sl_kctx *ctx;
} fixture;

static int setup(void **state) {
    kc_seed_from_env();
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    f->k = sl_kernels_cpu();
    if (f->k->context_create(&f->ctx) != SL_OK) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    f->k->context_destroy(f->ctx);
    free(f);
    return 0;
}

/* The storage dtypes an output may have for compute dtype cd: F32, and cd itself. */
static int storage_dtypes(sl_dtype cd, sl_dtype out[2]) {
    out[0] = SL_DTYPE_F32;
    out[1] = cd;
    return cd == SL_DTYPE_F32 ? 1 : 2;
}

static float *fvec(int64_t n) {
    return kc_alloc(n, SL_DTYPE_F32);
}

/* ---- casts ---- */

/* Runs `test` once on every instruction-set path this CPU has, then restores the best. */
static void for_each_isa(void (*test)(fixture *, sl_cpu_isa), fixture *f) {
    const sl_cpu_isa best = sl_cpu_isa_best();
    for (int isa = SL_CPU_ISA_PORTABLE; isa <= (int)best; isa++) {
        CHECK_OK(sl_cpu_isa_set((sl_cpu_isa)isa));
        test(f, (sl_cpu_isa)isa);
    }
    CHECK_OK(sl_cpu_isa_set(best));
}

static void cast_widening(fixture *f, sl_cpu_isa isa) {
    enum { N = 65536 };
    uint16_t *bits = kc_alloc(N, SL_DTYPE_BF16);
    for (int i = 0; i < N; i++)
        bits[i] = (uint16_t)i;
    float *got = fvec(N), *want = fvec(N);
    for (int d = 1; d <= 2; d++) {
        const sl_dtype dt = compute_dtypes[d];
        sl_tensor src = sl_tensor_1d(bits, dt, N), dst = sl_tensor_1d(got, SL_DTYPE_F32, N);
        CHECK_OK(f->k->cast(f->ctx, &dst, &src));
        for (int i = 0; i < N; i++)
            want[i] = dt == SL_DTYPE_BF16 ? sl_bf16_to_f32(bits[i]) : sl_f16_to_f32(bits[i]);
        char what[64];
        snprintf(what, sizeof what, "%s -> fp32 on the %s path", sl_dtype_name(dt),
                 sl_cpu_isa_name(isa));
        kc_expect_bits(what, got, want, N);
    }
    free(bits);
    free(got);
    free(want);
}

/* f32 inputs: random bit patterns (every class: NaN, Inf, subnormal, normal), plus, for every
 * 16-bit pattern h, the values just below, at and above the rounding ties of both narrow types,
 * and the same around the ties between f16 subnormals ((q + 1/2) 2^-24, both signs). */
static float *cast_inputs(int64_t *n) {
    const int64_t n_random = 1 << 20, n_ties = 65536 * 6, n_sub = 2048 * 6;
    *n = n_random + n_ties + n_sub;
    float *x = fvec(*n);
    for (int64_t i = 0; i < n_random; i++) {
        const uint32_t u = (uint32_t)sl_rng_bits(kc_seed, 1, (uint64_t)i);
        memcpy(&x[i], &u, 4);
    }
    static const uint32_t bf16_offsets[3] = {0x7fff, 0x8000, 0x8001};
    static const uint32_t f16_offsets[3] = {0x0fff, 0x1000, 0x1001};
    for (uint32_t h = 0; h < 65536; h++) {
        for (int k = 0; k < 3; k++) {
            const uint32_t a = (h << 16) + bf16_offsets[k];
            const uint32_t b = ((h & 0x7fffu) << 13) + 0x38000000u + f16_offsets[k];
            memcpy(&x[n_random + 6 * h + k], &a, 4);
            memcpy(&x[n_random + 6 * h + 3 + k], &b, 4);
        }
    }
    float *sub = x + n_random + n_ties;
    for (int q = 0; q < 2048; q++) {
        const float tie = ((float)q + 0.5f) * 0x1p-24f;
        const float near[3] = {nextafterf(tie, 0.0f), tie, nextafterf(tie, 1.0f)};
        for (int k = 0; k < 3; k++) {
            sub[6 * q + k] = near[k];
            sub[6 * q + 3 + k] = -near[k];
        }
    }
    return x;
}

static void cast_narrowing(fixture *f, sl_cpu_isa isa) {
    int64_t n;
    float *x = cast_inputs(&n);
    uint16_t *got = kc_alloc(n, SL_DTYPE_BF16);
    float *got32 = fvec(n), *want32 = fvec(n);
    for (int d = 1; d <= 2; d++) {
        const sl_dtype dt = compute_dtypes[d];
        sl_tensor src = sl_tensor_1d(x, SL_DTYPE_F32, n), dst = sl_tensor_1d(got, dt, n);
        CHECK_OK(f->k->cast(f->ctx, &dst, &src));
        for (int64_t i = 0; i < n; i++) {
            const uint16_t w = dt == SL_DTYPE_BF16 ? sl_f32_to_bf16(x[i]) : sl_f32_to_f16(x[i]);
            if (got[i] != w) {
                uint32_t u;
                memcpy(&u, &x[i], 4);
                fail_msg("fp32 -> %s on the %s path: input 0x%08x gives 0x%04x, dtype.c 0x%04x "
                         "(seed %llu)",
                         sl_dtype_name(dt), sl_cpu_isa_name(isa), (unsigned)u, got[i], w,
                         (unsigned long long)kc_seed);
            }
        }
        /* fp32 storage holding dt values: the rounding the ops apply when writing fp32 outputs */
        sl_tensor back = sl_tensor_1d(got32, SL_DTYPE_F32, n);
        CHECK_OK(f->k->cast(f->ctx, &back, &dst));
        for (int64_t i = 0; i < n; i++)
            want32[i] = sl_round_to(x[i], dt);
        kc_expect_bits("narrow then widen = sl_round_to", got32, want32, n);
    }
    free(x);
    free(got);
    free(got32);
    free(want32);
}

static void test_casts_match_dtype_c_bit_for_bit_on_every_isa_path(void **state) {
    for_each_isa(cast_widening, *state);
    for_each_isa(cast_narrowing, *state);
}

/* ---- AdamW ---- */

static void adamw_case(fixture *f, sl_cpu_isa isa) {
    enum { N = 1031, STEPS = 3 }; /* not a multiple of any vector width or chunk */
    const sl_adam_variant variants[2] = {SL_ADAM_TORCH, SL_ADAM_DS_FUSED};
    /* beta1 0.9 and 0.3 take both branches of ATen's lerp (weight 0.1 and 0.7) */
    const double beta1s[2] = {0.9, 0.3};
    for (int vi = 0; vi < 2; vi++) {
        for (int bi = 0; bi < 2; bi++) {
            for (int d = 0; d < 3; d++) {
                const sl_dtype md = compute_dtypes[d];
                sl_dtype st[2];
                const int n_st = storage_dtypes(md, st);
                for (int s = 0; s < n_st; s++) {
                    const sl_optim_config cfg = {
                        .beta1 = beta1s[bi], .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
                    float *p = fvec(N), *g = fvec(N), *m = fvec(N), *v = fvec(N);
                    kc_fill_normal(p, N, 10, 1.0, md);
                    sl_tensor tp = kc_tensor(p, st[s], 1, (int64_t[]){N});
                    sl_tensor tm = kc_tensor(m, st[s], 1, (int64_t[]){N});
                    sl_tensor tv = kc_tensor(v, st[s], 1, (int64_t[]){N});
                    for (int step = 1; step <= STEPS; step++) {
                        kc_fill_normal(g, N, 11 + (uint64_t)step, 1e-2, md);
                        g[step] = 0.0f; /* a zero gradient: denominators of eps alone */
                        sl_tensor tg = kc_tensor(g, SL_DTYPE_F32, 1, (int64_t[]){N});
                        const double lr = 1e-3 * step;
                        CHECK_OK(
                            sl_ref_adamw_step(variants[vi], &cfg, lr, step, p, g, m, v, N, md));
                        CHECK_OK(f->k->adamw_step(f->ctx, variants[vi], &cfg, lr, step, md, &tp,
                                                  &tg, &tm, &tv));
                        free(tg.data);
                    }
                    float *got = fvec(N);
                    char what[128];
                    const float *want[3] = {p, m, v};
                    const sl_tensor *t[3] = {&tp, &tm, &tv};
                    const char *names[3] = {"param", "exp_avg", "exp_avg_sq"};
                    for (int k = 0; k < 3; k++) {
                        kc_read(got, t[k]);
                        snprintf(what, sizeof what, "adamw %s beta1 %.1f %s in %s, %s path: %s",
                                 vi ? "ds_fused" : "torch", beta1s[bi], sl_dtype_name(md),
                                 sl_dtype_name(st[s]), sl_cpu_isa_name(isa), names[k]);
                        kc_expect_bits(what, got, want[k], N);
                    }
                    free(got);
                    free(p), free(g), free(m), free(v);
                    free(tp.data), free(tm.data), free(tv.data);
                }
            }
        }
    }
}

static void test_adamw_matches_ref_bit_for_bit_in_both_dialects(void **state) {
    for_each_isa(adamw_case, *state);
}

/* ---- ops the kernels compute in the reference's order: bit-identical ---- */

enum { OP_B = 2, OP_T = 37, OP_C = 48, OP_V = 50, OP_TMAX = 40 };

static void test_encoder_matches_ref_bit_for_bit(void **state) {
    fixture *f = *state;
    const int64_t BT = OP_B * OP_T, C = OP_C;
    int32_t tokens[OP_B * OP_T];
    for (int64_t i = 0; i < BT; i++) { /* few distinct ids, neighbours and both ends included */
        const int32_t k = (int32_t)(sl_rng_bits(kc_seed, 20, (uint64_t)i) % 9);
        tokens[i] = k == 8 ? OP_V - 1 : k;
    }
    for (int d = 0; d < 3; d++) {
        const sl_dtype cd = compute_dtypes[d];
        sl_dtype st[2];
        const int n_st = storage_dtypes(cd, st);
        float *wte = fvec(OP_V * C), *wpe = fvec(OP_TMAX * C), *dout = fvec(BT * C);
        float *out = fvec(BT * C), *dwte = fvec(OP_V * C), *dwpe = fvec(OP_TMAX * C);
        float *got = fvec(OP_V * C > BT * C ? OP_V * C : BT * C);
        kc_fill_normal(wte, OP_V * C, 21, 1.0, cd);
        kc_fill_normal(wpe, OP_TMAX * C, 22, 1.0, cd);
        kc_fill_normal(dout, BT * C, 23, 1.0, cd);
        kc_fill_normal(dwte, OP_V * C, 24, 1.0, cd); /* gradients accumulate onto these */
        kc_fill_normal(dwpe, OP_TMAX * C, 25, 1.0, cd);
        float *dwte0 = fvec(OP_V * C), *dwpe0 = fvec(OP_TMAX * C);
        memcpy(dwte0, dwte, sizeof(float) * OP_V * C);
        memcpy(dwpe0, dwpe, sizeof(float) * OP_TMAX * C);
        float *row = fvec(C);
        int32_t done[OP_B * OP_T];
        sl_ref_encoder_forward(out, tokens, wte, wpe, OP_B, OP_T, OP_C, cd);
        sl_ref_encoder_backward(dwte, dwpe, row, done, dout, tokens, OP_B, OP_T, OP_C, cd);
        for (int s = 0; s < n_st; s++) {
            sl_tensor ttok = sl_tensor_2d(tokens, SL_DTYPE_I32, OP_B, OP_T);
            sl_tensor twte = kc_tensor(wte, st[s], 2, (int64_t[]){OP_V, C});
            sl_tensor twpe = kc_tensor(wpe, st[s], 2, (int64_t[]){OP_TMAX, C});
            sl_tensor tout = kc_tensor(NULL, st[s], 3, (int64_t[]){OP_B, OP_T, C});
            sl_tensor tdout = kc_tensor(dout, st[s], 3, (int64_t[]){OP_B, OP_T, C});
            sl_tensor tdwte = kc_tensor(dwte0, st[s], 2, (int64_t[]){OP_V, C});
            sl_tensor tdwpe = kc_tensor(dwpe0, st[s], 2, (int64_t[]){OP_TMAX, C});
            CHECK_OK(f->k->encoder_forward(f->ctx, cd, &tout, &ttok, &twte, &twpe));
            CHECK_OK(f->k->encoder_backward(f->ctx, cd, &tdwte, &tdwpe, &tdout, &ttok));
            kc_read(got, &tout);
            kc_expect_bits("encoder_forward out", got, out, BT * C);
            kc_read(got, &tdwte);
            kc_expect_bits("encoder_backward dwte", got, dwte, OP_V * C);
            kc_read(got, &tdwpe);
            kc_expect_bits("encoder_backward dwpe", got, dwpe, OP_TMAX * C);
            free(twte.data), free(twpe.data), free(tout.data), free(tdout.data);
            free(tdwte.data), free(tdwpe.data);
        }
        free(wte), free(wpe), free(dout), free(out), free(dwte), free(dwpe), free(got);
        free(dwte0), free(dwpe0), free(row);
    }
}

static void test_layernorm_matches_ref_bit_for_bit(void **state) {
    fixture *f = *state;
    const int64_t N = OP_B * OP_T, C = 300; /* C > one 256-column chunk of the weight sums */
    for (int d = 0; d < 3; d++) {
        const sl_dtype cd = compute_dtypes[d];
        sl_dtype st[2];
        const int n_st = storage_dtypes(cd, st);
        float *x = fvec(N * C), *w = fvec(C), *b = fvec(C), *dout = fvec(N * C);
        float *out = fvec(N * C), *mean = fvec(N), *rstd = fvec(N), *dinp = fvec(N * C);
        float *dw = fvec(C), *db = fvec(C), *dw0 = fvec(C), *db0 = fvec(C), *scratch = fvec(2 * C);
        float *got = fvec(N * C);
        kc_fill_normal(x, N * C, 30, 2.0, cd);
        for (int64_t i = 0; i < N * C; i++) /* rows with an offset: mean subtraction matters */
            x[i] = sl_round_to(x[i] + (float)(i / C % 5), cd);
        kc_fill_normal(w, C, 31, 1.0, cd);
        kc_fill_normal(b, C, 32, 1.0, cd);
        kc_fill_normal(dout, N * C, 33, 1.0, cd);
        kc_fill_normal(dw0, C, 34, 1.0, cd);
        kc_fill_normal(db0, C, 35, 1.0, cd);
        memcpy(dw, dw0, sizeof(float) * C);
        memcpy(db, db0, sizeof(float) * C);
        sl_ref_layernorm_forward(out, mean, rstd, x, w, b, N, (int)C, cd);
        sl_ref_layernorm_backward(dinp, dw, db, scratch, dout, x, w, mean, rstd, N, (int)C, cd);
        for (int s = 0; s < n_st; s++) {
            sl_tensor tx = kc_tensor(x, st[s], 2, (int64_t[]){N, C});
            sl_tensor tw = kc_tensor(w, st[s], 1, (int64_t[]){C});
            sl_tensor tb = kc_tensor(b, st[s], 1, (int64_t[]){C});
            sl_tensor tout = kc_tensor(NULL, st[s], 2, (int64_t[]){N, C});
            sl_tensor tmean = kc_tensor(NULL, SL_DTYPE_F32, 1, (int64_t[]){N});
            sl_tensor trstd = kc_tensor(NULL, SL_DTYPE_F32, 1, (int64_t[]){N});
            sl_tensor tdout = kc_tensor(dout, st[s], 2, (int64_t[]){N, C});
            sl_tensor tdinp = kc_tensor(NULL, st[s], 2, (int64_t[]){N, C});
            sl_tensor tdw = kc_tensor(dw0, st[s], 1, (int64_t[]){C});
            sl_tensor tdb = kc_tensor(db0, st[s], 1, (int64_t[]){C});
            CHECK_OK(f->k->layernorm_forward(f->ctx, cd, &tout, &tmean, &trstd, &tx, &tw, &tb));
            CHECK_OK(f->k->layernorm_backward(f->ctx, cd, &tdinp, &tdw, &tdb, &tdout, &tx, &tw,
                                              &tmean, &trstd));
            kc_read(got, &tout);
            kc_expect_bits("layernorm_forward out", got, out, N * C);
            kc_expect_bits("layernorm_forward mean", tmean.data, mean, N);
            kc_expect_bits("layernorm_forward rstd", trstd.data, rstd, N);
            kc_read(got, &tdinp);
            kc_expect_bits("layernorm_backward dinp", got, dinp, N * C);
            kc_read(got, &tdw);
            kc_expect_bits("layernorm_backward dweight", got, dw, C);
            kc_read(got, &tdb);
            kc_expect_bits("layernorm_backward dbias", got, db, C);
            free(tx.data), free(tw.data), free(tb.data), free(tout.data), free(tmean.data);
            free(trstd.data), free(tdout.data), free(tdinp.data), free(tdw.data), free(tdb.data);
        }
        free(x), free(w), free(b), free(dout), free(out), free(mean), free(rstd), free(dinp);
        free(dw), free(db), free(dw0), free(db0), free(scratch), free(got);
    }
}

static void test_gelu_and_residual_match_ref_bit_for_bit(void **state) {
    fixture *f = *state;
    const int64_t n = 5000; /* spans chunks, with a partial one */
    for (int d = 0; d < 3; d++) {
        const sl_dtype cd = compute_dtypes[d];
        sl_dtype st[2];
        const int n_st = storage_dtypes(cd, st);
        float *x = fvec(n), *y = fvec(n), *dout = fvec(n), *out = fvec(n), *dinp = fvec(n);
        float *sum = fvec(n), *got = fvec(n);
        kc_fill_normal(x, n, 40, 3.0, cd);
        kc_fill_normal(y, n, 41, 3.0, cd);
        kc_fill_normal(dout, n, 42, 1.0, cd);
        sl_ref_gelu_forward(out, x, n, cd);
        sl_ref_gelu_backward(dinp, x, dout, n, cd);
        for (int64_t i = 0; i < n; i++) /* ref/gpt2_block.c's residual join */
            sum[i] = sl_round_to(x[i] + y[i], cd);
        for (int s = 0; s < n_st; s++) {
            sl_tensor tx = kc_tensor(x, st[s], 1, &n), ty = kc_tensor(y, st[s], 1, &n);
            sl_tensor tdout = kc_tensor(dout, st[s], 1, &n), tout = kc_tensor(NULL, st[s], 1, &n);
            CHECK_OK(f->k->gelu_forward(f->ctx, cd, &tout, &tx));
            kc_read(got, &tout);
            kc_expect_bits("gelu_forward", got, out, n);
            CHECK_OK(f->k->gelu_backward(f->ctx, cd, &tdout, &tx, &tdout)); /* in place */
            kc_read(got, &tdout);
            kc_expect_bits("gelu_backward (dinp = dout)", got, dinp, n);
            CHECK_OK(f->k->residual_forward(f->ctx, cd, &tx, &tx, &ty)); /* in place */
            kc_read(got, &tx);
            kc_expect_bits("residual_forward", got, sum, n);
            free(tx.data), free(ty.data), free(tdout.data), free(tout.data);
        }
        free(x), free(y), free(dout), free(out), free(dinp), free(sum), free(got);
    }
}

static void test_crossentropy_matches_ref_bit_for_bit_without_keeping_probs(void **state) {
    fixture *f = *state;
    const int64_t N = OP_B * OP_T, V = 300;
    int32_t targets[OP_B * OP_T];
    float *dlosses = fvec(N);
    for (int64_t n = 0; n < N; n++) {
        targets[n] = (int32_t)(sl_rng_bits(kc_seed, 50, (uint64_t)n) % V);
        dlosses[n] = (float)(sl_rng_uniform(kc_seed, 51, (uint64_t)n) - 0.5);
    }
    targets[3] = targets[N - 1] = -1; /* padding: zero loss, zero gradient */
    dlosses[3] = 1.0f;
    for (int d = 0; d < 3; d++) {
        const sl_dtype cd = compute_dtypes[d];
        sl_dtype st[2];
        const int n_st = storage_dtypes(cd, st);
        float *logits = fvec(N * V), *probs = fvec(N * V), *losses = fvec(N);
        float *dlogits = fvec(N * V), *got = fvec(N * V);
        kc_fill_normal(logits, N * V, 52, 4.0, cd);
        sl_ref_crossentropy_forward(losses, probs, logits, targets, N, (int)V);
        sl_ref_crossentropy_backward(dlogits, probs, targets, dlosses, N, (int)V, cd);
        for (int s = 0; s < n_st; s++) {
            sl_tensor tl = kc_tensor(logits, st[s], 2, (int64_t[]){N, V});
            sl_tensor tloss = kc_tensor(NULL, SL_DTYPE_F32, 1, &N);
            sl_tensor tstats = kc_tensor(NULL, SL_DTYPE_F32, 2, (int64_t[]){N, 2});
            sl_tensor tprobs = kc_tensor(NULL, SL_DTYPE_F32, 2, (int64_t[]){N, V});
            sl_tensor ttg = sl_tensor_1d(targets, SL_DTYPE_I32, N);
            sl_tensor tdl = sl_tensor_1d(dlosses, SL_DTYPE_F32, N);
            CHECK_OK(f->k->crossentropy_forward(f->ctx, &tloss, &tstats, &tprobs, &tl, &ttg));
            kc_expect_bits("crossentropy_forward losses", tloss.data, losses, N);
            kc_expect_bits("crossentropy_forward probs", tprobs.data, probs, N * V);
            /* in place, from logits and stats alone */
            CHECK_OK(f->k->crossentropy_backward(f->ctx, cd, &tl, &tl, &tstats, &ttg, &tdl));
            kc_read(got, &tl);
            kc_expect_bits("crossentropy_backward dlogits", got, dlogits, N * V);
            free(tl.data), free(tloss.data), free(tstats.data), free(tprobs.data);
        }
        free(logits), free(probs), free(losses), free(dlogits), free(got);
    }
    free(dlosses);
}

/* ---- matrix products: the reference up to the order of f32 dot-product terms ----
 *
 * Tolerance. A k-term f32 sum s of products, summed in any order, with or without FMA, has
 * |s - exact| <= gamma_k Σ|terms| (gamma_k = k u / (1 - k u), u = 2^-24; Higham, Accuracy and
 * Stability of Numerical Algorithms, §3.1). Impl and ref both obey it, so their sums differ by at
 * most delta = 2 gamma_k A, A = Σ|x_i w_i| (computed here in double). Each result then goes
 * through one more f32 operation (the bias add, or none) and the rounding to cd; kc_round_tol
 * adds what those can do to two inputs delta apart: 2u|z| for the f32 operation and one ulp of
 * cd (half on each side). A parameter gradient passes this twice: its contribution round_cd(s),
 * then round_cd(g + contribution). The bias gradient sums in the reference's order: exact.
 * With inputs k/16, |k| <= 8, every partial sum is exact in f32, so impl must equal ref bit for
 * bit: that catches a wrong layout, transposition, bias or rounding point outright. */

typedef struct mm_case {
    int64_t N, IC, OC;
    sl_weight_layout layout; /* IN_OUT with bias (Conv1D), OUT_IN without (tied LM head) */
    sl_dtype cd, st;
    int exact; /* inputs whose products sum exactly */
} mm_case;

static void mm_fill(float *x, int64_t n, uint64_t stream, const mm_case *c) {
    if (c->exact)
        kc_fill_grid(x, n, stream, 8, 1.0f / 16);
    else
        kc_fill_normal(x, n, stream, 1.0, c->cd);
}

/* w(i, o) of the weight in its layout */
static float mm_w(const float *w, const mm_case *c, int64_t i, int64_t o) {
    return c->layout == SL_WEIGHT_IN_OUT ? w[i * c->OC + o] : w[o * c->IC + i];
}

static void matmul_check(fixture *f, const mm_case *c) {
    const int64_t N = c->N, IC = c->IC, OC = c->OC, WN = IC * OC;
    const int conv = c->layout == SL_WEIGHT_IN_OUT;
    const sl_dtype cd = c->cd;
    float *x = fvec(N * IC), *w = fvec(WN), *bias = fvec(OC), *dout = fvec(N * OC);
    float *out = fvec(N * OC), *dinp = fvec(N * IC), *dw = fvec(WN), *db = fvec(OC);
    float *dw0 = fvec(WN), *db0 = fvec(OC), *scratch = fvec(WN > IC ? WN : IC);
    mm_fill(x, N * IC, 60, c);
    mm_fill(w, WN, 61, c);
    mm_fill(bias, OC, 62, c);
    mm_fill(dout, N * OC, 63, c);
    mm_fill(dw0, WN, 64, c);
    mm_fill(db0, OC, 65, c);
    memcpy(dw, dw0, sizeof(float) * (size_t)WN);
    memcpy(db, db0, sizeof(float) * (size_t)OC);
    if (conv) {
        sl_ref_conv1d_forward(out, x, w, bias, N, (int)IC, (int)OC, cd);
        sl_ref_conv1d_backward(dinp, dw, db, scratch, dout, x, w, N, (int)IC, (int)OC, cd);
    } else {
        sl_ref_logits_forward(out, x, w, N, (int)IC, (int)OC, cd);
        sl_ref_logits_backward(dinp, dw, scratch, dout, x, w, N, (int)IC, (int)OC, cd);
    }
    const int64_t wshape[2] = {conv ? IC : OC, conv ? OC : IC};
    sl_tensor tx = kc_tensor(x, c->st, 2, (int64_t[]){N, IC});
    sl_tensor tw = kc_tensor(w, c->st, 2, wshape);
    sl_tensor tb = kc_tensor(bias, c->st, 1, &OC);
    sl_tensor tdout = kc_tensor(dout, c->st, 2, (int64_t[]){N, OC});
    sl_tensor tout = kc_tensor(NULL, c->st, 2, (int64_t[]){N, OC});
    sl_tensor tdinp = kc_tensor(NULL, c->st, 2, (int64_t[]){N, IC});
    sl_tensor tdw = kc_tensor(dw0, c->st, 2, wshape);
    sl_tensor tdb = kc_tensor(db0, c->st, 1, &OC);
    CHECK_OK(f->k->matmul_forward(f->ctx, cd, &tout, &tx, &tw, c->layout, conv ? &tb : NULL));
    CHECK_OK(f->k->matmul_backward(f->ctx, cd, &tdinp, &tdw, conv ? &tdb : NULL, &tdout, &tx, &tw,
                                   c->layout));
    float *got = fvec(N * OC > WN ? (N * OC > N * IC ? N * OC : N * IC) : WN);
    double *tol = kc_alloc(N * OC > WN ? (N * OC > N * IC ? N * OC : N * IC) : WN, SL_DTYPE_F64);
    char what[160];
    const char *tag = conv ? "conv1d" : "tied head";
#define MM_WHAT(part)                                                                              \
    (snprintf(what, sizeof what, "%s %s N%lld IC%lld OC%lld %s in %s%s", tag, part, (long long)N,  \
              (long long)IC, (long long)OC, sl_dtype_name(cd), sl_dtype_name(c->st),               \
              c->exact ? ", exact inputs" : ""),                                                   \
     what)

    kc_read(got, &tout);
    if (c->exact) {
        kc_expect_bits(MM_WHAT("forward"), got, out, N * OC);
    } else {
        for (int64_t n = 0; n < N; n++) {
            for (int64_t o = 0; o < OC; o++) {
                double a = 0.0;
                for (int64_t i = 0; i < IC; i++)
                    a += fabs((double)x[n * IC + i] * mm_w(w, c, i, o));
                tol[n * OC + o] = kc_round_tol(out[n * OC + o], 2.0 * kc_gamma(IC) * a, cd);
            }
        }
        kc_expect_close(MM_WHAT("forward"), got, out, tol, N * OC);
    }
    kc_expect_representable(MM_WHAT("forward"), got, N * OC, cd);

    kc_read(got, &tdinp);
    if (c->exact) {
        kc_expect_bits(MM_WHAT("dinp"), got, dinp, N * IC);
    } else {
        for (int64_t n = 0; n < N; n++) {
            for (int64_t i = 0; i < IC; i++) {
                double a = 0.0;
                for (int64_t o = 0; o < OC; o++)
                    a += fabs((double)dout[n * OC + o] * mm_w(w, c, i, o));
                tol[n * IC + i] = kc_round_tol(dinp[n * IC + i], 2.0 * kc_gamma(OC) * a, cd);
            }
        }
        kc_expect_close(MM_WHAT("dinp"), got, dinp, tol, N * IC);
    }
    kc_expect_representable(MM_WHAT("dinp"), got, N * IC, cd);

    kc_read(got, &tdw);
    if (c->exact) {
        kc_expect_bits(MM_WHAT("dweight"), got, dw, WN);
    } else {
        for (int64_t i = 0; i < IC; i++) {
            for (int64_t o = 0; o < OC; o++) {
                double a = 0.0, s = 0.0;
                for (int64_t n = 0; n < N; n++) {
                    a += fabs((double)x[n * IC + i] * dout[n * OC + o]);
                    s += (double)x[n * IC + i] * dout[n * OC + o];
                }
                const double contrib =
                    kc_round_tol(fabs(s) + kc_gamma(N) * a, 2.0 * kc_gamma(N) * a, cd);
                const int64_t e = conv ? i * OC + o : o * IC + i;
                tol[e] = kc_round_tol(dw[e], contrib, cd);
            }
        }
        kc_expect_close(MM_WHAT("dweight"), got, dw, tol, WN);
    }
    kc_expect_representable(MM_WHAT("dweight"), got, WN, cd);
    if (conv) {
        kc_read(got, &tdb);
        kc_expect_bits(MM_WHAT("dbias"), got, db, OC);
    }
#undef MM_WHAT
    free(x), free(w), free(bias), free(dout), free(out), free(dinp), free(dw), free(db);
    free(dw0), free(db0), free(scratch), free(got), free(tol);
    free(tx.data), free(tw.data), free(tb.data), free(tdout.data), free(tout.data);
    free(tdinp.data), free(tdw.data), free(tdb.data);
}

static void test_matmul_matches_ref_within_the_summation_order_bound(void **state) {
    for (int layout = 0; layout < 2; layout++) {
        for (int d = 0; d < 3; d++) {
            sl_dtype st[2];
            const int n_st = storage_dtypes(compute_dtypes[d], st);
            for (int s = 0; s < n_st; s++) {
                for (int exact = 0; exact < 2; exact++) {
                    const mm_case c = {.N = OP_B * OP_T,
                                       .IC = 48,
                                       .OC = 150,
                                       .layout = (sl_weight_layout)layout,
                                       .cd = compute_dtypes[d],
                                       .st = st[s],
                                       .exact = exact};
                    matmul_check(*state, &c);
                }
            }
        }
    }
}

/* Past every tile edge of the sgemm driver (1024 rows, 4096 columns, 1024 summed terms): the
 * tiles, the accumulation of K tiles and the widening of bf16 tiles. */
static void test_matmul_is_exact_across_gemm_tiles(void **state) {
    const sl_dtype st[2] = {SL_DTYPE_F32, SL_DTYPE_BF16};
    for (int s = 0; s < 2; s++) {
        const mm_case c = {.N = 1100,
                           .IC = 40,
                           .OC = 4200,
                           .layout = SL_WEIGHT_IN_OUT,
                           .cd = st[s],
                           .st = st[s],
                           .exact = 1};
        matmul_check(*state, &c);
    }
    const mm_case head = {.N = 1100,
                          .IC = 40,
                          .OC = 4200,
                          .layout = SL_WEIGHT_OUT_IN,
                          .cd = SL_DTYPE_F16,
                          .st = SL_DTYPE_F16,
                          .exact = 0};
    matmul_check(*state, &head);
}

/* ---- attention: the reference up to the order of f32 dot-product terms ----
 *
 * Both sides get the same qkv (and, backward, the same dout and att). The bound follows each
 * rounding point of attention.c, with delta of a dot product 2 gamma_k Σ|terms| as for matmul:
 *   preatt  dp = round_tol(2 gamma_hs scale Σ|q k|)
 *   att     exact softmax is Lipschitz in log space: a change of at most dp_j in each preatt
 *           moves att_i by a factor within exp(±(dp_i + max_j dp_j)); each side's f32 softmax
 *           is within (T + 4 + |p - max|) u relative of the exact one (exp, Σ over T terms,
 *           divide); then round_tol.
 *   out     Σ_t2 datt |v| + 2 gamma_T Σ att |v|, then round_tol.
 *   datt    round_tol(2 gamma_hs Σ|dout v|)
 *   dot     Σ att ddatt + 2 gamma_T Σ att (|datt| + ddatt)      (Σ att datt, in order)
 *   dpre    round_tol(att (ddatt + ddot) + 4u att (|datt| + |dot|)): a subtract and a multiply
 *   ds      scale ddpre + 2u scale |dpre|                         (dpre * scale)
 *   dq, dk  Σ dds |k| (|q|) + 2 gamma_T Σ (|ds| + dds) |k| (|q|), then round_tol
 *   dv      2 gamma_T Σ att |dout|, then round_tol
 * Magnitudes come from the reference's values or from double sums (a bound needs no more). */

static void test_attention_matches_ref_within_the_summation_order_bound(void **state) {
    fixture *f = *state;
    /* T = 70 crosses a 64-row causal block; hs = 12 makes 1/sqrt(hs) inexact */
    const attn_case a = {.B = 2, .T = 70, .C = 48, .H = 4};
    const int64_t BT = (int64_t)a.B * a.T, BHTT = (int64_t)a.B * a.H * a.T * a.T;
    for (int d = 0; d < 3; d++) {
        const sl_dtype cd = compute_dtypes[d];
        sl_dtype st[2];
        const int n_st = storage_dtypes(cd, st);
        float *qkv = fvec(BT * 3 * a.C), *dout = fvec(BT * a.C), *out = fvec(BT * a.C);
        float *pre = fvec(BHTT), *att = fvec(BHTT), *datt = fvec(BHTT), *dqkv = fvec(BT * 3 * a.C);
        kc_fill_normal(qkv, BT * 3 * a.C, 70, 1.5, cd); /* scores of a few units: peaked rows */
        kc_fill_normal(dout, BT * a.C, 71, 1.0, cd);
        sl_ref_attention_forward(out, pre, att, qkv, a.B, a.T, a.C, a.H, cd);
        sl_ref_attention_backward(dqkv, datt, dout, qkv, att, a.B, a.T, a.C, a.H, cd);
        double *tol_pre = kc_alloc(BHTT, SL_DTYPE_F64), *tol_att = kc_alloc(BHTT, SL_DTYPE_F64);
        double *tol_out = kc_alloc(BT * a.C, SL_DTYPE_F64);
        double *tol_dqkv = kc_alloc(BT * 3 * a.C, SL_DTYPE_F64);
        attention_forward_tolerance(&a, cd, qkv, pre, att, out, tol_pre, tol_att, tol_out);
        attention_backward_tolerance(&a, cd, qkv, att, dout, dqkv, tol_dqkv);
        float *got = fvec(BHTT > BT * 3 * a.C ? BHTT : BT * 3 * a.C);
        for (int s = 0; s < n_st; s++) {
            const int64_t s4[4] = {a.B, a.H, a.T, a.T};
            sl_tensor tqkv = kc_tensor(qkv, st[s], 3, (int64_t[]){a.B, a.T, 3 * a.C});
            sl_tensor tout = kc_tensor(NULL, st[s], 3, (int64_t[]){a.B, a.T, a.C});
            sl_tensor tpre = kc_tensor(NULL, st[s], 4, s4), tatt = kc_tensor(NULL, st[s], 4, s4);
            sl_tensor tdout = kc_tensor(dout, st[s], 3, (int64_t[]){a.B, a.T, a.C});
            sl_tensor tatt_ref = kc_tensor(att, st[s], 4, s4);
            sl_tensor tdqkv = kc_tensor(NULL, st[s], 3, (int64_t[]){a.B, a.T, 3 * a.C});
            CHECK_OK(f->k->attention_forward(f->ctx, cd, &tout, &tpre, &tatt, &tqkv));
            CHECK_OK(f->k->attention_backward(f->ctx, cd, &tdqkv, &tdout, &tqkv, &tatt_ref));
            char what[96];
            snprintf(what, sizeof what, "attention %s in %s: ", sl_dtype_name(cd),
                     sl_dtype_name(st[s]));
            const size_t w = strlen(what);
            kc_read(got, &tpre);
            kc_expect_close(strcat(what, "preatt"), got, pre, tol_pre, BHTT);
            kc_expect_representable(what, got, BHTT, cd);
            kc_read(got, &tatt);
            what[w] = '\0';
            kc_expect_close(strcat(what, "att"), got, att, tol_att, BHTT);
            kc_expect_representable(what, got, BHTT, cd);
            kc_read(got, &tout);
            what[w] = '\0';
            kc_expect_close(strcat(what, "out"), got, out, tol_out, BT * a.C);
            kc_expect_representable(what, got, BT * a.C, cd);
            kc_read(got, &tdqkv);
            what[w] = '\0';
            kc_expect_close(strcat(what, "dqkv"), got, dqkv, tol_dqkv, BT * 3 * a.C);
            kc_expect_representable(what, got, BT * 3 * a.C, cd);
            free(tqkv.data), free(tout.data), free(tpre.data), free(tatt.data);
            free(tdout.data), free(tatt_ref.data), free(tdqkv.data);
        }
        free(qkv), free(dout), free(out), free(pre), free(att), free(datt), free(dqkv), free(got);
        free(tol_pre), free(tol_att), free(tol_out), free(tol_dqkv);
    }
}

/* With dot products that are exact in f32 (inputs k/16), the rest of attention's forward is the
 * reference's own loops on the same numbers: preatt and att must match bit for bit, masked zeros
 * included. hs = 12 makes q·k * 1/sqrt(hs) a full-precision f32, so each rounding point shows. */
static void test_attention_softmax_is_bit_exact_when_scores_are(void **state) {
    fixture *f = *state;
    const attn_case a = {.B = 1, .T = 70, .C = 24, .H = 2};
    const int64_t BT = (int64_t)a.B * a.T, BHTT = (int64_t)a.B * a.H * a.T * a.T;
    for (int d = 0; d < 3; d++) {
        const sl_dtype cd = compute_dtypes[d];
        float *qkv = fvec(BT * 3 * a.C), *out = fvec(BT * a.C), *pre = fvec(BHTT);
        float *att = fvec(BHTT), *got = fvec(BHTT);
        kc_fill_grid(qkv, BT * 3 * a.C, 72, 8, 1.0f / 16);
        sl_ref_attention_forward(out, pre, att, qkv, a.B, a.T, a.C, a.H, cd);
        const int64_t s4[4] = {a.B, a.H, a.T, a.T};
        sl_tensor tqkv = kc_tensor(qkv, cd, 3, (int64_t[]){a.B, a.T, 3 * a.C});
        sl_tensor tout = kc_tensor(NULL, cd, 3, (int64_t[]){a.B, a.T, a.C});
        sl_tensor tpre = kc_tensor(NULL, cd, 4, s4), tatt = kc_tensor(NULL, cd, 4, s4);
        CHECK_OK(f->k->attention_forward(f->ctx, cd, &tout, &tpre, &tatt, &tqkv));
        kc_read(got, &tpre);
        kc_expect_bits("attention preatt from exact scores", got, pre, BHTT);
        kc_read(got, &tatt);
        kc_expect_bits("attention att from exact scores", got, att, BHTT);
        free(qkv), free(out), free(pre), free(att), free(got);
        free(tqkv.data), free(tout.data), free(tpre.data), free(tatt.data);
    }
}

/* Backward with every f32 sum exact, so that only the rounding points can tell impl from ref.
 * With hs = 16 (scale 1/4), T = 4, v and dout = k/64 for |k| <= 32, q and k in {-1, 0, 1}, and
 * att = k/4 for 0 <= k <= 4 (an input here, it need not be a softmax):
 *   datt = Σ_16 dout v       multiples of 2^-12, |.| <= 4: exact; bf16/f16 rounding bites
 *   dot  = Σ_4 att datt      multiples of 2^-14, |.| <= 16: exact
 *   att (datt - dot)         multiples of 2^-16, |.| <= 20: exact; bf16/f16 rounding bites
 *   dq = Σ_4 dpre/4 k, dk    multiples of 2^-18, |.| <= 20: 23 bits, exact
 *   dv = Σ_4 att dout        multiples of 2^-8, |.| <= 2: exact
 * so dqkv must equal the reference's bit for bit in every compute dtype. */
static void test_attention_backward_is_bit_exact_when_its_sums_are(void **state) {
    fixture *f = *state;
    const attn_case a = {.B = 2, .T = 4, .C = 32, .H = 2};
    const int64_t BT = (int64_t)a.B * a.T, BHTT = (int64_t)a.B * a.H * a.T * a.T;
    float *qkv = fvec(BT * 3 * a.C), *dout = fvec(BT * a.C), *att = fvec(BHTT);
    float *datt = fvec(BHTT), *dqkv = fvec(BT * 3 * a.C), *got = fvec(BT * 3 * a.C);
    kc_fill_grid(qkv, BT * 3 * a.C, 73, 1, 1.0f);
    for (int64_t bt = 0; bt < BT; bt++)
        kc_fill_grid(qkv + bt * 3 * a.C + 2 * a.C, a.C, 76 + (uint64_t)bt, 32, 1.0f / 64);
    kc_fill_grid(dout, BT * a.C, 74, 32, 1.0f / 64);
    for (int64_t r = 0; r < BHTT / a.T; r++) {
        for (int t2 = 0; t2 < a.T; t2++) {
            const uint64_t k = sl_rng_bits(kc_seed, 75, (uint64_t)(r * a.T + t2)) % 5;
            att[r * a.T + t2] = t2 <= r % a.T ? (float)k / 4.0f : 0.0f;
        }
    }
    for (int d = 0; d < 3; d++) {
        const sl_dtype cd = compute_dtypes[d];
        sl_ref_attention_backward(dqkv, datt, dout, qkv, att, a.B, a.T, a.C, a.H, cd);
        sl_tensor tqkv = kc_tensor(qkv, cd, 3, (int64_t[]){a.B, a.T, 3 * a.C});
        sl_tensor tdout = kc_tensor(dout, cd, 3, (int64_t[]){a.B, a.T, a.C});
        sl_tensor tatt = kc_tensor(att, cd, 4, (int64_t[]){a.B, a.H, a.T, a.T});
        sl_tensor tdqkv = kc_tensor(NULL, cd, 3, (int64_t[]){a.B, a.T, 3 * a.C});
        CHECK_OK(f->k->attention_backward(f->ctx, cd, &tdqkv, &tdout, &tqkv, &tatt));
        kc_read(got, &tdqkv);
        char what[64];
        snprintf(what, sizeof what, "attention dqkv from exact sums, %s", sl_dtype_name(cd));
        kc_expect_bits(what, got, dqkv, BT * 3 * a.C);
        free(tqkv.data), free(tdout.data), free(tatt.data), free(tdqkv.data);
    }
    free(qkv), free(dout), free(att), free(datt), free(dqkv), free(got);
}

/* ---- the per-unit GPT-2 against ref/gpt2.h ---- */

/* Tolerance (DESIGN.md §9, T3): the noise floor is the divergence between two reference runs
 * that differ only in a legal summation order — the model above and its relabelling — measured
 * as the largest relative L2 difference over the losses and every parameter gradient. Impl
 * reorders the terms of its dot products too (BLAS blocking, FMA) and otherwise rounds where the
 * reference rounds, so each of its tensors must stay within 4x that floor. In bf16/f16 the floor
 * is dominated by compute-dtype roundings that flip when an f32 sum moves by one ulp, which is
 * exactly what impl's reordering causes too.
 * Measured over seeds 1..16: impl/floor at most 0.78 in fp32 (floor ~1e-6). In bf16 and fp16
 * impl equalled ref bit for bit at this size: sgemm sums these short dot products in index order
 * and products of bf16/fp16 values are exact in f32, so its FMAs change nothing. */
static void test_gpt2_units_match_ref_within_the_reordering_noise_floor(void **state) {
    fixture *f = *state;
    for (int d = 0; d < 3; d++) {
        const sl_dtype cd = compute_dtypes[d];
        gpt_inputs in;
        gpt_inputs_create(&in, 2, 64, cd);
        const int P = in.desc->n_params;
        const int64_t BT = (int64_t)in.B * in.T;
        gpt_out ref, perm, impl;
        gpt_out_create(&ref, &in);
        gpt_out_create(&perm, &in);
        gpt_out_create(&impl, &in);
        gpt_ref_run(&in, cd, &ref);
        gpt_ref_run_permuted(&in, cd, &perm);
        gpt_impl_run(f->k, f->ctx, &in, cd, cd, cd, cd, sl_kernels_default_threads(1), &impl);

        double floor = rel_l2(perm.losses, ref.losses, BT);
        for (int p = 0; p < P; p++)
            floor = fmax(floor, rel_l2(perm.grads[p], ref.grads[p], in.desc->params[p].numel));
        if (!(floor > 0.0 && floor < (cd == SL_DTYPE_F32 ? 1e-4 : 0.2))) {
            fail_msg("%s: the reordered reference diverges by %.3g; expected a small nonzero "
                     "noise floor (seed %llu)",
                     sl_dtype_name(cd), floor, (unsigned long long)kc_seed);
        }
        double worst = rel_l2(impl.losses, ref.losses, BT) / floor;
        if (!(worst <= 4.0)) {
            fail_msg("%s losses: impl diverges from ref by %.3g, more than 4x the noise floor "
                     "%.3g (seed %llu)",
                     sl_dtype_name(cd), worst * floor, floor, (unsigned long long)kc_seed);
        }
        for (int p = 0; p < P; p++) {
            const double r = rel_l2(impl.grads[p], ref.grads[p], in.desc->params[p].numel);
            if (!(r <= 4.0 * floor)) {
                fail_msg("%s gradient of %s: impl diverges from ref by %.3g, more than 4x the "
                         "noise floor %.3g (seed %llu)",
                         sl_dtype_name(cd), in.desc->params[p].name, r, floor,
                         (unsigned long long)kc_seed);
            }
            worst = fmax(worst, r / floor);
            kc_expect_representable(in.desc->params[p].name, impl.grads[p],
                                    in.desc->params[p].numel, cd);
        }
        print_message("gpt-tiny %s: noise floor %.3g, impl/floor at most %.2f\n", sl_dtype_name(cd),
                      floor, worst);
        gpt_out_destroy(&ref, &in);
        gpt_out_destroy(&perm, &in);
        gpt_out_destroy(&impl, &in);
        gpt_inputs_destroy(&in);
    }
}

static void expect_same_outputs(const char *what, const gpt_inputs *in, const gpt_out *a,
                                const gpt_out *b) {
    char buf[192];
    snprintf(buf, sizeof buf, "%s: losses", what);
    kc_expect_bits(buf, a->losses, b->losses, (int64_t)in->B * in->T);
    for (int p = 0; p < in->desc->n_params; p++) {
        snprintf(buf, sizeof buf, "%s: gradient of %s", what, in->desc->params[p].name);
        kc_expect_bits(buf, a->grads[p], b->grads[p], in->desc->params[p].numel);
    }
}

/* Every stored value is a cd value, so fp32 storage holds the same numbers as cd storage; and
 * every element's sum runs in one fixed order whatever the thread count. */
static void test_gpt2_units_do_not_depend_on_threads_or_storage_dtypes(void **state) {
    fixture *f = *state;
    const sl_dtype cd = SL_DTYPE_BF16;
    gpt_inputs in;
    gpt_inputs_create(&in, 2, 64, cd);
    gpt_out base, other;
    gpt_out_create(&base, &in);
    gpt_out_create(&other, &in);
    gpt_impl_run(f->k, f->ctx, &in, cd, cd, cd, cd, 1, &base);
    gpt_impl_run(f->k, f->ctx, &in, cd, cd, cd, cd, 1, &other);
    expect_same_outputs("a second run", &in, &other, &base);
    gpt_impl_run(f->k, f->ctx, &in, cd, cd, cd, cd, 2, &other);
    expect_same_outputs("2 threads vs 1", &in, &other, &base);
    gpt_impl_run(f->k, f->ctx, &in, cd, cd, cd, SL_DTYPE_F32, 2, &other);
    expect_same_outputs("fp32 activations vs bf16", &in, &other, &base);
    gpt_impl_run(f->k, f->ctx, &in, cd, SL_DTYPE_F32, SL_DTYPE_F32, cd, 1, &other);
    expect_same_outputs("fp32-stored parameters and gradients vs bf16", &in, &other, &base);
    gpt_out_destroy(&base, &in);
    gpt_out_destroy(&other, &in);
    gpt_inputs_destroy(&in);
}

/* The activations kept from forward to backward are the plan's prediction
 * (sl_gpt2_activation_numel x sizeof(cd)) minus what the kernels do not keep — preatt and
 * attproj, fcproj per layer, the (B,T,V) probabilities and the losses — with the LayerNorm
 * statistics and the classifier's (max, sum) in fp32; plus at most 63 bytes of alignment per
 * buffer (19 buffers). */
static void test_activation_bytes_are_the_prediction_minus_what_is_not_kept(void **state) {
    fixture *f = *state;
    sl_gpt2_config cfg;
    CHECK_OK(sl_gpt2_config_from_name("gpt-small", &cfg));
    const int B = 4, T = 256;
    const int64_t BT = (int64_t)B * T, C = cfg.n_embd, H = cfg.n_head, V = cfg.vocab_size;
    const int64_t L = cfg.n_layer;
    const int64_t predicted = sl_gpt2_activation_numel(&cfg, B, T);
    const int64_t not_kept = L * (2 * BT * C + (int64_t)B * H * T * T) + BT * V + BT;
    const int64_t stats_predicted = 4 * L * BT + 2 * BT, stats_kept = stats_predicted + 2 * BT;
    for (int d = 0; d < 3; d++) {
        const sl_dtype cd = compute_dtypes[d];
        const int64_t size = (int64_t)sl_dtype_size(cd);
        const int64_t expected = size * (predicted - not_kept - stats_predicted) + 4 * stats_kept;
        const int64_t bytes = sl_impl_gpt2_activation_bytes(&cfg, B, T, cd);
        if (!(bytes >= expected && bytes <= expected + 19 * 63)) {
            fail_msg("gpt-small B=%d T=%d %s: %lld activation bytes, expected %lld (+ padding)", B,
                     T, sl_dtype_name(cd), (long long)bytes, (long long)expected);
        }
        /* 13 (B,T,C) activation gradients and scratch */
        const int64_t grad = sl_impl_gpt2_gradient_bytes(&cfg, B, T, cd);
        assert_true(grad >= 13 * BT * C * size && grad <= 13 * BT * C * size + 8 * 63);
    }
    sl_model_desc *desc;
    CHECK_OK(sl_model_desc_create_gpt2(&cfg, &desc));
    sl_impl_gpt2 *g;
    CHECK_OK(sl_impl_gpt2_create(f->k, f->ctx, desc, 2, 16, SL_DTYPE_BF16, SL_DTYPE_BF16, &g));
    assert_int_equal(sl_impl_gpt2_bytes(g),
                     sl_impl_gpt2_activation_bytes(&cfg, 2, 16, SL_DTYPE_BF16) +
                         sl_impl_gpt2_gradient_bytes(&cfg, 2, 16, SL_DTYPE_BF16));
    sl_impl_gpt2_destroy(g);
    sl_model_desc_destroy(desc);
}

/* ---- bad input: the op refuses before writing, naming the tensor ---- */

static void expect_error(sl_status st, sl_status code, const char *needle) {
    if (st != code) {
        fail_msg("expected %s, got %s (%s)", sl_status_name(code), sl_status_name(st),
                 sl_error_message());
    }
    if (!strstr(sl_error_message(), needle)) {
        fail_msg("error message \"%s\" does not name \"%s\"", sl_error_message(), needle);
    }
}

static void test_ops_reject_bad_shapes_dtypes_and_token_ids_naming_the_tensor(void **state) {
    fixture *f = *state;
    float x[6 * 4] = {0}, w[4 * 5] = {0}, out[6 * 5] = {0};
    sl_tensor tx = sl_tensor_2d(x, SL_DTYPE_F32, 6, 4);
    sl_tensor tw = sl_tensor_2d(w, SL_DTYPE_F32, 3, 5); /* IC 3, but inp has 4 columns */
    tw.name = "transformer.h.0.mlp.c_fc.weight";
    sl_tensor tout = sl_tensor_2d(out, SL_DTYPE_F32, 6, 5);
    expect_error(
        f->k->matmul_forward(f->ctx, SL_DTYPE_F32, &tout, &tx, &tw, SL_WEIGHT_IN_OUT, NULL),
        SL_ERR_MISMATCH, "inp");
    tw.shape[0] = 4;
    sl_tensor t16 = sl_tensor_2d(out, SL_DTYPE_F16, 6, 5);
    t16.name = "attn.out";
    expect_error(
        f->k->matmul_forward(f->ctx, SL_DTYPE_BF16, &t16, &tx, &tw, SL_WEIGHT_IN_OUT, NULL),
        SL_ERR_INVALID_ARG, "attn.out");
    sl_tensor bias = sl_tensor_1d(w, SL_DTYPE_F32, 4);
    bias.name = "transformer.h.0.mlp.c_fc.bias";
    expect_error(
        f->k->matmul_forward(f->ctx, SL_DTYPE_F32, &tout, &tx, &tw, SL_WEIGHT_IN_OUT, &bias),
        SL_ERR_MISMATCH, "transformer.h.0.mlp.c_fc.bias");

    int32_t ids[2 * 3] = {0, 1, 2, 3, 9, 1};
    sl_tensor tok = sl_tensor_2d(ids, SL_DTYPE_I32, 2, 3);
    float wte[8 * 4] = {0}, wpe[3 * 4] = {0}, enc[2 * 3 * 4];
    sl_tensor twte = sl_tensor_2d(wte, SL_DTYPE_F32, 8, 4),
              twpe = sl_tensor_2d(wpe, SL_DTYPE_F32, 3, 4);
    sl_tensor tenc = sl_tensor_3d(enc, SL_DTYPE_F32, 2, 3, 4);
    expect_error(f->k->encoder_forward(f->ctx, SL_DTYPE_F32, &tenc, &tok, &twte, &twpe),
                 SL_ERR_INVALID_ARG, "token id 9 at (b=1, t=1)");
    ids[4] = 1;
    twpe.shape[0] = 2;
    expect_error(f->k->encoder_forward(f->ctx, SL_DTYPE_F32, &tenc, &tok, &twte, &twpe),
                 SL_ERR_MISMATCH, "exceeds the 2 positions");

    int32_t targets[6] = {0, 1, 2, 3, 4, 5};
    float logits[6 * 5] = {0}, losses[6], stats[12];
    sl_tensor tl = sl_tensor_2d(logits, SL_DTYPE_F32, 6, 5),
              tt = sl_tensor_1d(targets, SL_DTYPE_I32, 6);
    sl_tensor tloss = sl_tensor_1d(losses, SL_DTYPE_F32, 6),
              tst = sl_tensor_2d(stats, SL_DTYPE_F32, 6, 2);
    expect_error(f->k->crossentropy_forward(f->ctx, &tloss, &tst, NULL, &tl, &tt),
                 SL_ERR_INVALID_ARG, "target 5 at row 5");

    float p[4] = {0}, m4[4] = {0};
    sl_tensor tp = sl_tensor_1d(p, SL_DTYPE_F32, 4), tm = sl_tensor_1d(m4, SL_DTYPE_F32, 3);
    const sl_optim_config cfg = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    expect_error(
        f->k->adamw_step(f->ctx, SL_ADAM_TORCH, &cfg, 1e-3, 1, SL_DTYPE_F32, &tp, &tp, &tm, &tp),
        SL_ERR_MISMATCH, "exp_avg");
    expect_error(
        f->k->adamw_step(f->ctx, SL_ADAM_TORCH, &cfg, 1e-3, 0, SL_DTYPE_F32, &tp, &tp, &tp, &tp),
        SL_ERR_INVALID_ARG, "got 0");
}

static void test_gpt2_units_reject_bad_configurations_naming_the_parameter(void **state) {
    fixture *f = *state;
    gpt_inputs in;
    gpt_inputs_create(&in, 1, 8, SL_DTYPE_F32);
    sl_impl_gpt2 *g = NULL;
    expect_error(sl_impl_gpt2_create(f->k, f->ctx, in.desc, 1, 65, SL_DTYPE_F32, SL_DTYPE_F32, &g),
                 SL_ERR_INVALID_ARG, "T = 65");
    expect_error(sl_impl_gpt2_create(f->k, f->ctx, in.desc, 1, 8, SL_DTYPE_BF16, SL_DTYPE_F16, &g),
                 SL_ERR_INVALID_ARG, "activation dtype fp16");
    assert_null(g);
    CHECK_OK(sl_impl_gpt2_create(f->k, f->ctx, in.desc, 1, 8, SL_DTYPE_F32, SL_DTYPE_F32, &g));
    const int P = in.desc->n_params;
    sl_tensor *params = calloc((size_t)P, sizeof *params);
    assert_non_null(params);
    for (int p = 0; p < P; p++) {
        const sl_param_desc *pd = &in.desc->params[p];
        params[p] = pd->ndim == 2
                        ? sl_tensor_2d(in.params[p], SL_DTYPE_F32, pd->shape[0], pd->shape[1])
                        : sl_tensor_1d(in.params[p], SL_DTYPE_F32, pd->shape[0]);
    }
    const int qkv = sl_model_find_param(in.desc, "transformer.h.1.attn.c_attn.weight");
    params[qkv].shape[1] -= 1;
    CHECK_OK(sl_impl_gpt2_embed_forward(g, params, in.inputs));
    CHECK_OK(sl_impl_gpt2_block_forward(g, 0, params));
    expect_error(sl_impl_gpt2_block_forward(g, 1, params), SL_ERR_MISMATCH,
                 "transformer.h.1.attn.c_attn.weight");
    expect_error(sl_impl_gpt2_block_forward(g, 2, params), SL_ERR_INVALID_ARG, "block 2");
    free(params);
    sl_impl_gpt2_destroy(g);
    gpt_inputs_destroy(&in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_casts_match_dtype_c_bit_for_bit_on_every_isa_path),
        cmocka_unit_test(test_adamw_matches_ref_bit_for_bit_in_both_dialects),
        cmocka_unit_test(test_encoder_matches_ref_bit_for_bit),
        cmocka_unit_test(test_layernorm_matches_ref_bit_for_bit),
        cmocka_unit_test(test_gelu_and_residual_match_ref_bit_for_bit),
        cmocka_unit_test(test_crossentropy_matches_ref_bit_for_bit_without_keeping_probs),
        cmocka_unit_test(test_matmul_matches_ref_within_the_summation_order_bound),
        cmocka_unit_test(test_matmul_is_exact_across_gemm_tiles),
        cmocka_unit_test(test_attention_matches_ref_within_the_summation_order_bound),
        cmocka_unit_test(test_attention_softmax_is_bit_exact_when_scores_are),
        cmocka_unit_test(test_attention_backward_is_bit_exact_when_its_sums_are),
        cmocka_unit_test(test_gpt2_units_match_ref_within_the_reordering_noise_floor),
        cmocka_unit_test(test_gpt2_units_do_not_depend_on_threads_or_storage_dtypes),
        cmocka_unit_test(test_activation_bytes_are_the_prediction_minus_what_is_not_kept),
        cmocka_unit_test(test_ops_reject_bad_shapes_dtypes_and_token_ids_naming_the_tensor),
        cmocka_unit_test(test_gpt2_units_reject_bad_configurations_naming_the_parameter),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
