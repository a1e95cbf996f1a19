/* The reference GPT-2 forward/backward (ref/gpt2.h): gradients against finite differences, the
 * compute-dtype rounding, causal masking, padding, and the loss of a fresh model.
 *
 * Random inputs come from the counter-based RNG under one seed (SL_TEST_SEED overrides it); every
 * failure message prints it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ref/gpt2.h"
#include "ref/gpt2_acts.h"
#include "shardlab/rng.h"

static uint64_t test_seed = 20240601;

/* Random streams of the test, apart from the model's own initialisation streams. */
enum { STREAM_TOKENS = 1, STREAM_DLOSS, STREAM_PERTURB, STREAM_PICK };

typedef struct test_model {
    sl_model_desc *desc;
    float **params; /* params[p]: full tensor of parameter p */
    float **grads;
    sl_ref_gpt2_acts *acts;
    int B, T;
    int32_t *inputs;  /* (B, T) */
    int32_t *targets; /* (B, T) */
    float *dlosses;   /* (B, T) */
    float *losses;    /* (B, T) */
} test_model;

/* How parameters are initialised. */
typedef enum test_init {
    /* sl_model_init_range as is: N(0, 0.02) weights, LayerNorm (1, 0), zero biases. */
    INIT_FRESH,
    /* A generic point for gradient checks: the fresh weights scaled by 10 (std 0.2, so attention
     * is far from uniform and GELU far from linear), and 0.1 N(0,1) added to every bias and
     * LayerNorm parameter (so no gradient path hides behind a weight of 1 or a bias of 0). Every
     * value is then snapped to a multiple of 2^-20, so that w ± k·h stays exact in f32 for the
     * power-of-two step h. */
    INIT_GENERIC
} test_init;

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    assert_non_null(p);
    return p;
}

static void test_model_create(test_model *m, sl_gpt2_config cfg, int B, int T, test_init init) {
    memset(m, 0, sizeof *m);
    if (sl_model_desc_create_gpt2(&cfg, &m->desc) != SL_OK) fail_msg("%s", sl_error_message());
    if (sl_ref_gpt2_acts_create(m->desc, B, T, &m->acts) != SL_OK) {
        fail_msg("%s", sl_error_message());
    }
    m->B = B;
    m->T = T;
    const int n_params = m->desc->n_params;
    m->params = xcalloc((size_t)n_params, sizeof *m->params);
    m->grads = xcalloc((size_t)n_params, sizeof *m->grads);
    for (int p = 0; p < n_params; p++) {
        const sl_param_desc *pd = &m->desc->params[p];
        m->params[p] = xcalloc((size_t)pd->numel, sizeof(float));
        m->grads[p] = xcalloc((size_t)pd->numel, sizeof(float));
        sl_model_init_range(m->desc, p, test_seed, 0, pd->numel, m->params[p]);
        if (init == INIT_FRESH) continue;
        for (int64_t i = 0; i < pd->numel; i++) {
            float w = m->params[p][i];
            if (pd->init == SL_INIT_NORMAL) {
                w *= 10.0f;
            } else {
                const double z =
                    sl_rng_normal(test_seed, STREAM_PERTURB + 16 * (uint64_t)p, (uint64_t)i);
                w += (float)(0.1 * z);
            }
            m->params[p][i] = (float)(nearbyint((double)w * 0x1p20) * 0x1p-20);
        }
    }
    const int BT = B * T;
    m->inputs = xcalloc((size_t)BT, sizeof *m->inputs);
    m->targets = xcalloc((size_t)BT, sizeof *m->targets);
    m->dlosses = xcalloc((size_t)BT, sizeof *m->dlosses);
    m->losses = xcalloc((size_t)BT, sizeof *m->losses);
    const uint64_t V = (uint64_t)cfg.vocab_size;
    for (int bt = 0; bt < BT; bt++) {
        m->inputs[bt] = (int32_t)(sl_rng_bits(test_seed, STREAM_TOKENS, 2 * (uint64_t)bt) % V);
        m->targets[bt] = (int32_t)(sl_rng_bits(test_seed, STREAM_TOKENS, 2 * (uint64_t)bt + 1) % V);
        // d objective / d loss in [-1, 1) / BT: a weighted, sign-mixed sum of token losses
        const double u = sl_rng_uniform(test_seed, STREAM_DLOSS, (uint64_t)bt);
        m->dlosses[bt] = (float)((2.0 * u - 1.0) / BT);
    }
}

static void test_model_destroy(test_model *m) {
    for (int p = 0; p < m->desc->n_params; p++) {
        free(m->params[p]);
        free(m->grads[p]);
    }
    free(m->params);
    free(m->grads);
    free(m->inputs);
    free(m->targets);
    free(m->dlosses);
    free(m->losses);
    sl_ref_gpt2_acts_destroy(m->acts);
    sl_model_desc_destroy(m->desc);
}

static void test_model_round_params(test_model *m, sl_dtype cd) {
    for (int p = 0; p < m->desc->n_params; p++) {
        sl_round_array(m->params[p], (size_t)m->desc->params[p].numel, cd);
    }
}

/* Runs the forward unit by unit; returns the objective Σ_bt dlosses[bt] · losses[bt] in double. */
static double test_model_forward(test_model *m, sl_dtype cd) {
    sl_ref_gpt2_embed_forward(m->desc, m->params, m->inputs, cd, m->acts);
    for (int l = 0; l < m->desc->gpt2.n_layer; l++) {
        sl_ref_gpt2_block_forward(m->desc, l, m->params, cd, m->acts);
    }
    sl_ref_gpt2_head_forward(m->desc, m->params, m->targets, cd, m->acts, m->losses);
    double objective = 0.0;
    for (int bt = 0; bt < m->B * m->T; bt++)
        objective += (double)m->dlosses[bt] * m->losses[bt];
    return objective;
}

/* Backward after a forward; adds into m->grads. */
static void test_model_backward(test_model *m, sl_dtype cd) {
    sl_ref_gpt2_head_backward(m->desc, m->params, m->grads, m->targets, m->dlosses, cd, m->acts);
    for (int l = m->desc->gpt2.n_layer - 1; l >= 0; l--) {
        sl_ref_gpt2_block_backward(m->desc, l, m->params, m->grads, cd, m->acts);
    }
    sl_ref_gpt2_embed_backward(m->desc, m->grads, m->inputs, cd, m->acts);
}

static void test_model_zero_grads(test_model *m) {
    for (int p = 0; p < m->desc->n_params; p++) {
        memset(m->grads[p], 0, (size_t)m->desc->params[p].numel * sizeof(float));
    }
}

/* A model small enough to finite-difference every tensor; block_size > T leaves wpe rows that
 * the batch never touches. */
static const sl_gpt2_config tiny_cfg = {
    .n_layer = 2, .n_embd = 16, .n_head = 2, .block_size = 10, .vocab_size = 32};
enum { TINY_B = 2, TINY_T = 8 };

/* ---- gradients against finite differences ---- */

/* The derivative of the objective J along element i of parameter p, by the fourth-order central
 * stencil (8 (J(w+h) - J(w-h)) - (J(w+2h) - J(w-2h))) / 12h, each J a full f32 forward. */
static double finite_difference(test_model *m, int p, int64_t i, float h) {
    float *w = &m->params[p][i];
    const float w0 = *w;
    double j[4];
    const float steps[4] = {h, -h, 2 * h, -2 * h};
    for (int k = 0; k < 4; k++) {
        *w = w0 + steps[k]; // exact: w0 is a multiple of 2^-20, |w0| < 8, h = 2^-5
        j[k] = test_model_forward(m, SL_DTYPE_F32);
    }
    *w = w0;
    return (8.0 * (j[0] - j[1]) - (j[2] - j[3])) / (12.0 * (double)h);
}

/* Tolerance of the comparison |fd - grad| <= FD_ATOL + FD_RTOL |grad|.
 *
 * Truncation: the stencil's error is h^4/30 · |d^5 J / dw^5|, which scales with the gradient's
 * own size. With h = 2^-5 (h^4/30 = 3e-8) it stays below ~5e-4 |grad| on the largest gradients
 * (~0.1) of this deliberately sharpened model, and grows 16x at h = 2^-4. FD_RTOL = 1e-3.
 * Rounding: each J is a full f32 forward. Its error is dominated by each token loss's own
 * rounding (a logsumexp over V = 32 in f32: ~4u·(|loss| + |max logit|) ~ 2e-6 with u = 2^-24,
 * losses and logits ~4), weighted by |dlosses| <= 1/16 over 16 tokens with random signs:
 * e ~ sqrt(16)/16 · 2e-6 = 5e-7 per evaluation. The stencil weighs the four evaluations by
 * (8 + 8 + 1 + 1)/12h = 1.5/h = 48, so the rounding part is ~2.4e-5 if the four errors were
 * independent and maximally unlucky. FD_ATOL = 3e-5 covers that.
 * Measured: the largest |fd - grad| / tolerance over seeds 1..60 is 0.49; the floor at seed
 * 20240601 is 2e-6.
 * What this catches: dropping the 3 in GELU's derivative or a 1% error in the attention
 * scale's backward, the smallest wrong terms we tried, fail at every seed tried (errors 7e-5 to
 * 3e-3); a wrong sign, missing weight or missing branch is off by O(|grad|). */
#define FD_STEP 0x1p-5f
#define FD_ATOL 3e-5
#define FD_RTOL 1e-3
#define FD_ELEMENTS_PER_WEIGHT 24

static void test_gradients_match_finite_differences_for_every_tensor(void **state) {
    (void)state;
    test_model m;
    test_model_create(&m, tiny_cfg, TINY_B, TINY_T, INIT_GENERIC);
    // padding: three positions, one of them with a nonzero dlosses that must not count
    const int padded[3] = {3, 8, 15};
    for (int k = 0; k < 3; k++)
        m.targets[padded[k]] = -1;
    for (int k = 0; k < 2; k++)
        m.dlosses[padded[k]] = 0.0f;

    test_model_zero_grads(&m);
    test_model_forward(&m, SL_DTYPE_F32);
    test_model_backward(&m, SL_DTYPE_F32);

    int checked = 0;
    double worst = 0.0;
    for (int p = 0; p < m.desc->n_params; p++) {
        const sl_param_desc *pd = &m.desc->params[p];
        // all elements of vectors (biases, LayerNorms); a random subset of matrices
        const int all = pd->ndim == 1;
        const int64_t n = all ? pd->numel : FD_ELEMENTS_PER_WEIGHT;
        for (int64_t k = 0; k < n; k++) {
            const int64_t i = all ? k
                                  : (int64_t)(sl_rng_bits(test_seed, STREAM_PICK + 16 * (uint64_t)p,
                                                          (uint64_t)k) %
                                              (uint64_t)pd->numel);
            const double fd = finite_difference(&m, p, i, FD_STEP);
            const double grad = m.grads[p][i];
            const double err = fabs(fd - grad);
            const double tol = FD_ATOL + FD_RTOL * fabs(grad);
            if (err > tol) {
                fail_msg("%s[%lld]: backward %.8g, finite difference %.8g, |diff| %.3g > "
                         "tolerance %.3g (seed %llu)",
                         pd->name, (long long)i, grad, fd, err, tol, (unsigned long long)test_seed);
            }
            if (err > worst) worst = err;
            checked++;
        }
    }
    print_message("checked %d gradient elements over %d tensors, worst |fd - grad| %.3g\n", checked,
                  m.desc->n_params, worst);
    test_model_destroy(&m);
}

/* wpe rows at positions >= T take no part in the forward: their gradient is exactly 0, while
 * every row the batch uses gets a nonzero one. */
static void test_wpe_rows_beyond_T_get_zero_gradient(void **state) {
    (void)state;
    test_model m;
    test_model_create(&m, tiny_cfg, TINY_B, TINY_T, INIT_GENERIC);
    test_model_zero_grads(&m);
    test_model_forward(&m, SL_DTYPE_F32);
    test_model_backward(&m, SL_DTYPE_F32);
    const int wpe = sl_model_find_param(m.desc, "transformer.wpe.weight");
    const int C = tiny_cfg.n_embd;
    for (int t = 0; t < tiny_cfg.block_size; t++) {
        float norm = 0.0f;
        for (int c = 0; c < C; c++)
            norm += fabsf(m.grads[wpe][t * C + c]);
        if (t < TINY_T && norm == 0.0f) fail_msg("wpe row %d (used) has a zero gradient", t);
        if (t >= TINY_T && norm != 0.0f) {
            fail_msg("wpe row %d (beyond T = %d) has gradient mass %g", t, TINY_T, norm);
        }
    }
    test_model_destroy(&m);
}

/* Backward adds into grads (g = g + contrib), and wte takes its LM-head contribution first and
 * its embedding contribution second. A second backward without zeroing therefore doubles every
 * gradient exactly (g + g = 2g in f32), except wte, which must read (g + head) + embedding, with
 * head and embedding measured on their own. */
static void test_backward_adds_into_grads_head_before_embedding(void **state) {
    (void)state;
    test_model m;
    test_model_create(&m, tiny_cfg, TINY_B, TINY_T, INIT_GENERIC);
    const int wte = sl_model_find_param(m.desc, "transformer.wte.weight");
    const int64_t wte_numel = m.desc->params[wte].numel;
    float *head = xcalloc((size_t)wte_numel, sizeof *head);
    float *embedding = xcalloc((size_t)wte_numel, sizeof *embedding);

    // the two contributions on their own
    test_model_zero_grads(&m);
    test_model_forward(&m, SL_DTYPE_F32);
    sl_ref_gpt2_head_backward(m.desc, m.params, m.grads, m.targets, m.dlosses, SL_DTYPE_F32,
                              m.acts);
    memcpy(head, m.grads[wte], (size_t)wte_numel * sizeof *head);
    memset(m.grads[wte], 0, (size_t)wte_numel * sizeof *head);
    for (int l = m.desc->gpt2.n_layer - 1; l >= 0; l--) {
        sl_ref_gpt2_block_backward(m.desc, l, m.params, m.grads, SL_DTYPE_F32, m.acts);
    }
    sl_ref_gpt2_embed_backward(m.desc, m.grads, m.inputs, SL_DTYPE_F32, m.acts);
    memcpy(embedding, m.grads[wte], (size_t)wte_numel * sizeof *embedding);

    test_model_zero_grads(&m);
    test_model_forward(&m, SL_DTYPE_F32);
    test_model_backward(&m, SL_DTYPE_F32);
    float **once = xcalloc((size_t)m.desc->n_params, sizeof *once);
    for (int p = 0; p < m.desc->n_params; p++) {
        const size_t bytes = (size_t)m.desc->params[p].numel * sizeof(float);
        once[p] = xcalloc(1, bytes);
        memcpy(once[p], m.grads[p], bytes);
    }
    test_model_forward(&m, SL_DTYPE_F32);
    test_model_backward(&m, SL_DTYPE_F32);
    for (int p = 0; p < m.desc->n_params; p++) {
        for (int64_t i = 0; i < m.desc->params[p].numel; i++) {
            const float expected =
                p == wte ? (once[p][i] + head[i]) + embedding[i] : 2.0f * once[p][i];
            if (m.grads[p][i] != expected) {
                fail_msg("%s[%lld]: after two backwards %.9g, expected %.9g (seed %llu)",
                         m.desc->params[p].name, (long long)i, m.grads[p][i], expected,
                         (unsigned long long)test_seed);
            }
        }
        free(once[p]);
    }
    free(once);
    free(head);
    free(embedding);
    test_model_destroy(&m);
}

/* ---- compute-dtype rounding ---- */

static void assert_values_in_dtype(const char *what, const float *x, int64_t n, sl_dtype cd) {
    for (int64_t i = 0; i < n; i++) {
        if (sl_round_to(x[i], cd) != x[i] || !isfinite(x[i])) {
            fail_msg("%s[%lld] = %.9g is not a finite %s value (seed %llu)", what, (long long)i,
                     x[i], sl_dtype_name(cd), (unsigned long long)test_seed);
        }
    }
}

/* Cosine similarity of the full gradients of two models. */
static double gradient_cosine(const test_model *a, const test_model *b) {
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (int p = 0; p < a->desc->n_params; p++) {
        for (int64_t i = 0; i < a->desc->params[p].numel; i++) {
            ab += (double)a->grads[p][i] * b->grads[p][i];
            aa += (double)a->grads[p][i] * a->grads[p][i];
            bb += (double)b->grads[p][i] * b->grads[p][i];
        }
    }
    return ab / sqrt(aa * bb);
}

/* With cd = bf16 or f16, every activation, activation gradient and parameter gradient holds a
 * value of cd, and the result still computes the function the f32 path computes. bf16 keeps 8
 * significant bits (relative rounding u = 2^-9 = 2e-3 per op): gradient errors of a few u,
 * uncorrelated across elements, leave the cosine between the two gradients at 1 - O(u^2 · n_ops)
 * ~ 1 - 1e-4 (measured >= 0.99993 over seeds 1..40), so we require > 0.999; logits of ~4 carry
 * errors ~4 · 2u ~ 0.016 that mostly cancel in the mean loss (measured <= 0.004), so we require
 * the mean losses within 0.02. f16 (u = 2^-12) is tighter on both. */
static void check_compute_dtype_path(sl_dtype cd) {
    test_model m, f32;
    test_model_create(&m, tiny_cfg, TINY_B, TINY_T, INIT_GENERIC);
    test_model_create(&f32, tiny_cfg, TINY_B, TINY_T, INIT_GENERIC);
    test_model_round_params(&m, cd);
    test_model_round_params(&f32, cd);
    test_model_zero_grads(&m);
    test_model_forward(&m, cd);
    const sl_ref_gpt2_acts *a = m.acts;
    const int64_t L = a->L, BT = (int64_t)a->B * a->T, C = a->C;
    const int64_t BHTT = (int64_t)a->B * a->H * a->T * a->T, V = a->V;
    const struct {
        const char *name;
        const float *x;
        int64_t n;
    } forward[] = {
        {"encoded", a->encoded, BT * C},
        {"ln1", a->ln1, L * BT * C},
        {"qkv", a->qkv, L * BT * 3 * C},
        {"atty", a->atty, L * BT * C},
        {"preatt", a->preatt, L * BHTT},
        {"att", a->att, L * BHTT},
        {"attproj", a->attproj, L * BT * C},
        {"residual2", a->residual2, L * BT * C},
        {"ln2", a->ln2, L * BT * C},
        {"fch", a->fch, L * BT * 4 * C},
        {"fch_gelu", a->fch_gelu, L * BT * 4 * C},
        {"fcproj", a->fcproj, L * BT * C},
        {"residual3", a->residual3, L * BT * C},
        {"lnf", a->lnf, BT * C},
        {"logits", a->logits, BT * V},
    };
    for (size_t k = 0; k < sizeof forward / sizeof forward[0]; k++) {
        assert_values_in_dtype(forward[k].name, forward[k].x, forward[k].n, cd);
    }

    // Backward, checking the activation gradients of every block as it leaves them.
    sl_ref_gpt2_head_backward(m.desc, m.params, m.grads, m.targets, m.dlosses, cd, m.acts);
    assert_values_in_dtype("dlogits", a->probs, BT * V, cd);
    assert_values_in_dtype("dlnf", a->dln, BT * C, cd);
    assert_values_in_dtype("dresidual (head)", a->dresidual, BT * C, cd);
    for (int l = (int)L - 1; l >= 0; l--) {
        sl_ref_gpt2_block_backward(m.desc, l, m.params, m.grads, cd, m.acts);
        const struct {
            const char *name;
            const float *x;
            int64_t n;
        } backward[] = {
            {"dresidual", a->dresidual, BT * C},
            {"dresidual2", a->dresidual2, BT * C},
            {"dln1", a->dln, BT * C},
            {"dx", a->dx, BT * C},
            {"datty", a->datty, BT * C},
            {"dqkv", a->dqkv, BT * 3 * C},
            {"dpreatt", a->datt, BHTT},
            {"dfch", a->dfch, BT * 4 * C},
        };
        for (size_t k = 0; k < sizeof backward / sizeof backward[0]; k++) {
            char name[64];
            snprintf(name, sizeof name, "block %d %s", l, backward[k].name);
            assert_values_in_dtype(name, backward[k].x, backward[k].n, cd);
        }
    }
    sl_ref_gpt2_embed_backward(m.desc, m.grads, m.inputs, cd, m.acts);
    for (int p = 0; p < m.desc->n_params; p++) {
        char name[SL_MAX_NAME + 8];
        snprintf(name, sizeof name, "d %s", m.desc->params[p].name);
        assert_values_in_dtype(name, m.grads[p], m.desc->params[p].numel, cd);
    }

    test_model_zero_grads(&f32);
    test_model_forward(&f32, SL_DTYPE_F32);
    test_model_backward(&f32, SL_DTYPE_F32);
    double mean_m = 0.0, mean_f32 = 0.0;
    int differ = 0;
    for (int64_t bt = 0; bt < BT; bt++) {
        mean_m += m.losses[bt] / (double)BT;
        mean_f32 += f32.losses[bt] / (double)BT;
    }
    for (int64_t i = 0; i < BT * V; i++)
        differ += m.acts->logits[i] != f32.acts->logits[i];
    const double cosine = gradient_cosine(&m, &f32);
    if (cosine < 0.999 || fabs(mean_m - mean_f32) > 0.02 || differ == 0) {
        fail_msg("%s vs f32: gradient cosine %.6f (want > 0.999), mean loss %.6f vs %.6f (want "
                 "within 0.02), %d logits differ (want > 0) (seed %llu)",
                 sl_dtype_name(cd), cosine, mean_m, mean_f32, differ,
                 (unsigned long long)test_seed);
    }
    test_model_destroy(&f32);
    test_model_destroy(&m);
}

static void test_bf16_path_writes_only_bf16_values(void **state) {
    (void)state;
    check_compute_dtype_path(SL_DTYPE_BF16);
}

static void test_f16_path_writes_only_f16_values(void **state) {
    (void)state;
    check_compute_dtype_path(SL_DTYPE_F16);
}

/* ---- the forward's math, against an independent double-precision evaluation ---- */

/* The Hugging Face GPT-2 forward written out directly in double: out (N, D) = LayerNorm(x). */
static void hf_layernorm(double *out, const double *x, const float *w, const float *b, int N,
                         int D) {
    for (int n = 0; n < N; n++) {
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < D; i++)
            mean += x[n * D + i] / D;
        for (int i = 0; i < D; i++)
            var += (x[n * D + i] - mean) * (x[n * D + i] - mean) / D;
        for (int i = 0; i < D; i++) {
            out[n * D + i] = (x[n * D + i] - mean) / sqrt(var + 1e-5) * w[i] + b[i];
        }
    }
}

/* out (N, OC) = x (N, IC) @ W (IC, OC) + bias: transformers' Conv1D. */
static void hf_conv1d(double *out, const double *x, const float *W, const float *bias, int N,
                      int IC, int OC) {
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            double acc = bias[o];
            for (int i = 0; i < IC; i++)
                acc += x[n * IC + i] * W[i * OC + o];
            out[n * OC + o] = acc;
        }
    }
}

static const float *hf_param(const test_model *m, const char *fmt, int l) {
    char name[SL_MAX_NAME];
    snprintf(name, sizeof name, fmt, l);
    const int p = sl_model_find_param(m->desc, name);
    if (p < 0) fail_msg("no parameter %s", name);
    return m->params[p];
}

static void hf_forward_f64(const test_model *m, double *losses) {
    const sl_gpt2_config *cfg = &m->desc->gpt2;
    const int B = m->B, T = m->T, C = cfg->n_embd, H = cfg->n_head, V = cfg->vocab_size;
    const int N = B * T, hs = C / H;
    double *x = xcalloc((size_t)N * C, sizeof *x), *h = xcalloc((size_t)N * C, sizeof *h);
    double *qkv = xcalloc((size_t)N * 3 * C, sizeof *qkv), *y = xcalloc((size_t)N * C, sizeof *y);
    double *f = xcalloc((size_t)N * 4 * C, sizeof *f), *o = xcalloc((size_t)N * C, sizeof *o);
    double *w = xcalloc((size_t)T, sizeof *w);
    const float *wte = hf_param(m, "transformer.wte.weight", 0);
    const float *wpe = hf_param(m, "transformer.wpe.weight", 0);
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < C; c++)
            x[n * C + c] = (double)wte[m->inputs[n] * C + c] + wpe[(n % T) * C + c];
    }
    for (int l = 0; l < cfg->n_layer; l++) {
        hf_layernorm(h, x, hf_param(m, "transformer.h.%d.ln_1.weight", l),
                     hf_param(m, "transformer.h.%d.ln_1.bias", l), N, C);
        hf_conv1d(qkv, h, hf_param(m, "transformer.h.%d.attn.c_attn.weight", l),
                  hf_param(m, "transformer.h.%d.attn.c_attn.bias", l), N, C, 3 * C);
        // split q | k | v along the last axis, then heads of hs channels within each
        for (int b = 0; b < B; b++) {
            for (int hd = 0; hd < H; hd++) {
                for (int t = 0; t < T; t++) {
                    const double *q = qkv + (b * T + t) * 3 * C + hd * hs;
                    double wmax = -INFINITY, wsum = 0.0;
                    for (int t2 = 0; t2 <= t; t2++) {
                        const double *k = qkv + (b * T + t2) * 3 * C + C + hd * hs;
                        double dot = 0.0;
                        for (int i = 0; i < hs; i++)
                            dot += q[i] * k[i];
                        w[t2] = dot / sqrt((double)hs);
                        wmax = fmax(wmax, w[t2]);
                    }
                    for (int t2 = 0; t2 <= t; t2++)
                        wsum += exp(w[t2] - wmax);
                    for (int i = 0; i < hs; i++) {
                        double acc = 0.0;
                        for (int t2 = 0; t2 <= t; t2++) {
                            acc += exp(w[t2] - wmax) / wsum *
                                   qkv[(b * T + t2) * 3 * C + 2 * C + hd * hs + i];
                        }
                        y[(b * T + t) * C + hd * hs + i] = acc;
                    }
                }
            }
        }
        hf_conv1d(o, y, hf_param(m, "transformer.h.%d.attn.c_proj.weight", l),
                  hf_param(m, "transformer.h.%d.attn.c_proj.bias", l), N, C, C);
        for (int i = 0; i < N * C; i++)
            x[i] += o[i];
        hf_layernorm(h, x, hf_param(m, "transformer.h.%d.ln_2.weight", l),
                     hf_param(m, "transformer.h.%d.ln_2.bias", l), N, C);
        hf_conv1d(f, h, hf_param(m, "transformer.h.%d.mlp.c_fc.weight", l),
                  hf_param(m, "transformer.h.%d.mlp.c_fc.bias", l), N, C, 4 * C);
        for (int i = 0; i < N * 4 * C; i++) {
            const double v = f[i];
            f[i] = 0.5 * v *
                   (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
        }
        hf_conv1d(o, f, hf_param(m, "transformer.h.%d.mlp.c_proj.weight", l),
                  hf_param(m, "transformer.h.%d.mlp.c_proj.bias", l), N, 4 * C, C);
        for (int i = 0; i < N * C; i++)
            x[i] += o[i];
    }
    hf_layernorm(h, x, hf_param(m, "transformer.ln_f.weight", 0),
                 hf_param(m, "transformer.ln_f.bias", 0), N, C);
    for (int n = 0; n < N; n++) {
        double lmax = -INFINITY, lsum = 0.0, target_logit = 0.0;
        double *logits = xcalloc((size_t)V, sizeof *logits);
        for (int v = 0; v < V; v++) {
            for (int c = 0; c < C; c++)
                logits[v] += h[n * C + c] * wte[v * C + c];
            lmax = fmax(lmax, logits[v]);
        }
        for (int v = 0; v < V; v++)
            lsum += exp(logits[v] - lmax);
        if (m->targets[n] >= 0) target_logit = logits[m->targets[n]];
        losses[n] = m->targets[n] < 0 ? 0.0 : lmax + log(lsum) - target_logit;
        free(logits);
    }
    free(x), free(h), free(qkv), free(y), free(f), free(o), free(w);
}

/* The f32 forward computes Hugging Face GPT-2's function: per-token losses agree with a double
 * evaluation written straight from the definitions. The f32 path has ~100 roundings of relative
 * size u = 6e-8 along its longest chain, so losses of ~4 differ by at most ~100 u · 4 = 2.4e-5;
 * measured, they differ by <= 1.3e-6 over seeds 1..40. FWD_TOL = 1e-5. A wrong constant (eps
 * 1e-4 for 1e-5, GELU's 0.044715, the 1/sqrt(hs) scale), a swapped q/k/v or head layout, or a
 * transposed Conv1D weight moves losses by 1e-3 or more. */
#define FWD_TOL 1e-5

static void test_forward_matches_double_precision_hf_math(void **state) {
    (void)state;
    test_model m;
    test_model_create(&m, tiny_cfg, TINY_B, TINY_T, INIT_GENERIC);
    m.targets[5] = -1;
    test_model_forward(&m, SL_DTYPE_F32);
    double expected[TINY_B * TINY_T] = {0};
    hf_forward_f64(&m, expected);
    for (int n = 0; n < TINY_B * TINY_T; n++) {
        if (fabs(m.losses[n] - expected[n]) > FWD_TOL) {
            fail_msg("token %d: loss %.9g, double-precision Hugging Face math gives %.9g "
                     "(tolerance %g, seed %llu)",
                     n, m.losses[n], expected[n], FWD_TOL, (unsigned long long)test_seed);
        }
    }
    test_model_destroy(&m);
}

/* ---- masking, padding, fresh loss, errors ---- */

/* Changing the token at position t0 leaves every logit at positions < t0 bit for bit unchanged,
 * and changes those at t0. */
static void test_future_tokens_do_not_change_earlier_logits(void **state) {
    (void)state;
    test_model m;
    test_model_create(&m, tiny_cfg, TINY_B, TINY_T, INIT_GENERIC);
    const int T = TINY_T, V = tiny_cfg.vocab_size, t0 = 5;
    const size_t n = (size_t)TINY_B * T * V;
    float *before = xcalloc(n, sizeof *before);
    test_model_forward(&m, SL_DTYPE_BF16);
    memcpy(before, m.acts->logits, n * sizeof *before);
    for (int b = 0; b < TINY_B; b++)
        m.inputs[b * T + t0] = (m.inputs[b * T + t0] + 1) % V;
    test_model_forward(&m, SL_DTYPE_BF16);
    for (int b = 0; b < TINY_B; b++) {
        int changed_at_t0 = 0;
        for (int t = 0; t <= t0; t++) {
            for (int v = 0; v < V; v++) {
                const size_t i = ((size_t)b * T + t) * V + v;
                if (t < t0 && m.acts->logits[i] != before[i]) {
                    fail_msg("b %d t %d v %d: logit changed from %.9g to %.9g when only the "
                             "token at t %d changed (seed %llu)",
                             b, t, v, before[i], m.acts->logits[i], t0,
                             (unsigned long long)test_seed);
                }
                if (t == t0) changed_at_t0 += m.acts->logits[i] != before[i];
            }
        }
        if (!changed_at_t0) fail_msg("b %d: changing the token at t %d changed no logit", b, t0);
    }
    free(before);
    test_model_destroy(&m);
}

/* A target of -1 gives loss 0 and contributes nothing to any gradient, even with a nonzero
 * dlosses: the gradients equal those of the same batch with a real target there and dlosses 0,
 * bit for bit. */
static void test_padding_targets_give_zero_loss_and_no_gradient(void **state) {
    (void)state;
    test_model padded, weightless;
    test_model_create(&padded, tiny_cfg, TINY_B, TINY_T, INIT_GENERIC);
    test_model_create(&weightless, tiny_cfg, TINY_B, TINY_T, INIT_GENERIC);
    const int positions[4] = {0, 6, 7, 12};
    for (int k = 0; k < 4; k++) {
        padded.targets[positions[k]] = -1;
        padded.dlosses[positions[k]] = 1.0f;
        weightless.dlosses[positions[k]] = 0.0f;
    }
    for (int k = 0; k < 2; k++) {
        test_model *m = k ? &weightless : &padded;
        test_model_zero_grads(m);
        test_model_forward(m, SL_DTYPE_F32);
        test_model_backward(m, SL_DTYPE_F32);
    }
    for (int k = 0; k < 4; k++) {
        if (padded.losses[positions[k]] != 0.0f) {
            fail_msg("padded position %d has loss %.9g, expected 0", positions[k],
                     padded.losses[positions[k]]);
        }
        if (weightless.losses[positions[k]] == 0.0f) {
            fail_msg("position %d with a real target has loss 0", positions[k]);
        }
    }
    for (int p = 0; p < padded.desc->n_params; p++) {
        for (int64_t i = 0; i < padded.desc->params[p].numel; i++) {
            if (padded.grads[p][i] != weightless.grads[p][i]) {
                fail_msg("%s[%lld]: %.9g with padded targets, %.9g with zero dlosses (seed %llu)",
                         padded.desc->params[p].name, (long long)i, padded.grads[p][i],
                         weightless.grads[p][i], (unsigned long long)test_seed);
            }
        }
    }
    test_model_destroy(&weightless);
    test_model_destroy(&padded);
}

/* A fresh gpt-tiny predicts nearly uniformly. ln_f output has unit variance per token and wte
 * is N(0, 0.02^2), so each logit is ~N(0, s^2) with s^2 = C · 0.02^2 = 0.0256, and the expected
 * loss is ln V + s^2/2 = ln 256 + 0.013 (the log-normal mean of Σ exp). Token losses fluctuate by
 * ~s = 0.16, so the mean over B·T = 256 tokens fluctuates by ~0.01; 0.05 is five of those. */
static void test_fresh_model_loss_is_near_ln_vocab(void **state) {
    (void)state;
    sl_gpt2_config cfg;
    assert_int_equal(sl_gpt2_config_from_name("gpt-tiny", &cfg), SL_OK);
    test_model m;
    test_model_create(&m, cfg, 4, 64, INIT_FRESH);
    test_model_forward(&m, SL_DTYPE_F32);
    double mean = 0.0;
    for (int bt = 0; bt < m.B * m.T; bt++)
        mean += m.losses[bt] / (double)(m.B * m.T);
    const double s2 = cfg.n_embd * 0.02 * 0.02;
    const double expected = log((double)cfg.vocab_size) + s2 / 2.0;
    if (fabs(mean - expected) > 0.05) {
        fail_msg("fresh gpt-tiny mean loss %.6f, expected %.6f ± 0.05 (ln %d = %.6f) (seed %llu)",
                 mean, expected, cfg.vocab_size, log((double)cfg.vocab_size),
                 (unsigned long long)test_seed);
    }
    test_model_destroy(&m);
}

static void test_acts_create_rejects_T_beyond_block_size(void **state) {
    (void)state;
    sl_model_desc *desc = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&tiny_cfg, &desc), SL_OK);
    sl_ref_gpt2_acts *acts = NULL;
    assert_int_equal(sl_ref_gpt2_acts_create(desc, 1, tiny_cfg.block_size + 1, &acts),
                     SL_ERR_INVALID_ARG);
    assert_null(acts);
    const char *msg = sl_error_message();
    if (!strstr(msg, "T = 11") || !strstr(msg, "block_size (10)")) {
        fail_msg("message does not name T and block_size: %s", msg);
    }
    assert_int_equal(sl_ref_gpt2_acts_create(desc, 0, 4, &acts), SL_ERR_INVALID_ARG);
    if (!strstr(sl_error_message(), "B = 0")) fail_msg("message: %s", sl_error_message());
    sl_model_desc_destroy(desc);
}

/* A model description that does not match the config (a renamed or reshaped tensor) is refused
 * with the tensor named. */
static void test_acts_create_names_a_missing_or_misshapen_tensor(void **state) {
    (void)state;
    sl_model_desc *desc = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&tiny_cfg, &desc), SL_OK);
    sl_ref_gpt2_acts *acts = NULL;
    const int fc_bias = sl_model_find_param(desc, "transformer.h.1.mlp.c_fc.bias");
    assert_true(fc_bias >= 0);
    desc->params[fc_bias].shape[0] = 5;
    desc->params[fc_bias].numel = 5;
    assert_int_equal(sl_ref_gpt2_acts_create(desc, 1, 4, &acts), SL_ERR_MISMATCH);
    assert_null(acts);
    if (!strstr(sl_error_message(), "'transformer.h.1.mlp.c_fc.bias' has shape [5, 0]")) {
        fail_msg("message does not name the misshapen tensor: %s", sl_error_message());
    }
    snprintf(desc->params[fc_bias].name, sizeof desc->params[fc_bias].name, "renamed");
    assert_int_equal(sl_ref_gpt2_acts_create(desc, 1, 4, &acts), SL_ERR_MISMATCH);
    if (!strstr(sl_error_message(), "no parameter 'transformer.h.1.mlp.c_fc.bias'")) {
        fail_msg("message does not name the missing tensor: %s", sl_error_message());
    }
    sl_model_desc_destroy(desc);
}

/* The forward buffers are exactly what sl_gpt2_activation_numel predicts (acts_create checks
 * it); the backward buffers come on top. */
static void test_acts_numel_covers_the_predicted_activations(void **state) {
    (void)state;
    sl_model_desc *desc = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&tiny_cfg, &desc), SL_OK);
    sl_ref_gpt2_acts *acts = NULL;
    assert_int_equal(sl_ref_gpt2_acts_create(desc, TINY_B, TINY_T, &acts), SL_OK);
    const int64_t predicted = sl_gpt2_activation_numel(&tiny_cfg, TINY_B, TINY_T);
    assert_int_equal(acts->forward_numel, predicted);
    assert_true(sl_ref_gpt2_acts_numel(acts) > predicted);
    sl_ref_gpt2_acts_destroy(acts);
    sl_model_desc_destroy(desc);
}

int main(void) {
    const char *seed = getenv("SL_TEST_SEED");
    if (seed && *seed) test_seed = strtoull(seed, NULL, 10);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_finite_differences_for_every_tensor),
        cmocka_unit_test(test_wpe_rows_beyond_T_get_zero_gradient),
        cmocka_unit_test(test_backward_adds_into_grads_head_before_embedding),
        cmocka_unit_test(test_bf16_path_writes_only_bf16_values),
        cmocka_unit_test(test_f16_path_writes_only_f16_values),
        cmocka_unit_test(test_forward_matches_double_precision_hf_math),
        cmocka_unit_test(test_future_tokens_do_not_change_earlier_logits),
        cmocka_unit_test(test_padding_targets_give_zero_loss_and_no_gradient),
        cmocka_unit_test(test_fresh_model_loss_is_near_ln_vocab),
        cmocka_unit_test(test_acts_create_rejects_T_beyond_block_size),
        cmocka_unit_test(test_acts_create_names_a_missing_or_misshapen_tensor),
        cmocka_unit_test(test_acts_numel_covers_the_predicted_activations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
