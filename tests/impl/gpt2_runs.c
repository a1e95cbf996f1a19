/* Micro-steps of the per-unit GPT-2 and of the reference on the same model, and the reordered
 * reference that measures the noise floor of a legal summation order (gpt2_runs.h). */
#include "gpt2_runs.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernel_check.h"
#include "ref/gpt2.h"
#include "shardlab/rng.h"

static float *fvec(int64_t n) {
    return kc_alloc(n, SL_DTYPE_F32);
}

/* gpt-tiny (L2 C64 H4 T64 V256) at a point away from initialisation: weights 5x the initial
 * scale (attention far from uniform), biases and LayerNorm 0.1 N(0,1) away from 0 and 1; two
 * padding targets. */
void gpt_inputs_create(gpt_inputs *in, int B, int T, sl_dtype cd) {
    sl_gpt2_config cfg;
    CHECK_OK(sl_gpt2_config_from_name("gpt-tiny", &cfg));
    CHECK_OK(sl_model_desc_create_gpt2(&cfg, &in->desc));
    in->B = B;
    in->T = T;
    const sl_model_desc *d = in->desc;
    in->params = calloc((size_t)d->n_params, sizeof *in->params);
    assert_non_null(in->params);
    for (int p = 0; p < d->n_params; p++) {
        const sl_param_desc *pd = &d->params[p];
        in->params[p] = fvec(pd->numel);
        sl_model_init_range(d, p, kc_seed, 0, pd->numel, in->params[p]);
        for (int64_t i = 0; i < pd->numel; i++) {
            float w = in->params[p][i];
            w = pd->init == SL_INIT_NORMAL
                    ? 5.0f * w
                    : w + (float)(0.1 * sl_rng_normal(kc_seed, 100 + (uint64_t)p, (uint64_t)i));
            in->params[p][i] = sl_round_to(w, cd);
        }
    }
    const int64_t BT = (int64_t)B * T;
    in->inputs = kc_alloc(BT, SL_DTYPE_I32);
    in->targets = kc_alloc(BT, SL_DTYPE_I32);
    in->dlosses = fvec(BT);
    for (int64_t i = 0; i < BT; i++) {
        in->inputs[i] = (int32_t)(sl_rng_bits(kc_seed, 90, (uint64_t)i) % (uint64_t)cfg.vocab_size);
        in->targets[i] =
            (int32_t)(sl_rng_bits(kc_seed, 91, (uint64_t)i) % (uint64_t)cfg.vocab_size);
        in->dlosses[i] = (float)((2.0 * sl_rng_uniform(kc_seed, 92, (uint64_t)i) - 1.0) / BT);
    }
    in->targets[5] = in->targets[BT - 1] = -1;
    in->dlosses[5] = in->dlosses[BT - 1] = 0.0f;
}

void gpt_inputs_destroy(gpt_inputs *in) {
    for (int p = 0; p < in->desc->n_params; p++)
        free(in->params[p]);
    free(in->params);
    free(in->inputs), free(in->targets), free(in->dlosses);
    sl_model_desc_destroy(in->desc);
}

void gpt_out_create(gpt_out *o, const gpt_inputs *in) {
    o->grads = calloc((size_t)in->desc->n_params, sizeof *o->grads);
    assert_non_null(o->grads);
    for (int p = 0; p < in->desc->n_params; p++)
        o->grads[p] = fvec(in->desc->params[p].numel);
    o->losses = fvec((int64_t)in->B * in->T);
}

void gpt_out_destroy(gpt_out *o, const gpt_inputs *in) {
    for (int p = 0; p < in->desc->n_params; p++)
        free(o->grads[p]);
    free(o->grads), free(o->losses);
}

/* One micro-step of the reference on `in` (whose arrays may be a permuted copy). */
void gpt_ref_run(const gpt_inputs *in, sl_dtype cd, gpt_out *o) {
    const sl_model_desc *d = in->desc;
    sl_ref_gpt2_acts *acts;
    CHECK_OK(sl_ref_gpt2_acts_create(d, in->B, in->T, &acts));
    sl_ref_gpt2_embed_forward(d, in->params, in->inputs, cd, acts);
    for (int l = 0; l < d->gpt2.n_layer; l++)
        sl_ref_gpt2_block_forward(d, l, in->params, cd, acts);
    sl_ref_gpt2_head_forward(d, in->params, in->targets, cd, acts, o->losses);
    sl_ref_gpt2_head_backward(d, in->params, o->grads, in->targets, in->dlosses, cd, acts);
    for (int l = d->gpt2.n_layer - 1; l >= 0; l--)
        sl_ref_gpt2_block_backward(d, l, in->params, o->grads, cd, acts);
    sl_ref_gpt2_embed_backward(d, o->grads, in->inputs, cd, acts);
    sl_ref_gpt2_acts_destroy(acts);
}

/* One micro-step of the per-unit API, parameters stored as param_dt, gradients as grad_dt,
 * activations as act_dt, on `threads` threads. */
void gpt_impl_run(const sl_kernels *k, sl_kctx *ctx, const gpt_inputs *in, sl_dtype cd,
                  sl_dtype param_dt, sl_dtype grad_dt, sl_dtype act_dt, int threads, gpt_out *o) {
    const sl_model_desc *d = in->desc;
    const int P = d->n_params, L = d->gpt2.n_layer;
    sl_tensor *params = calloc((size_t)P, sizeof *params),
              *grads = calloc((size_t)P, sizeof *grads);
    assert_non_null(params);
    assert_non_null(grads);
    for (int p = 0; p < P; p++) {
        params[p] = kc_tensor(in->params[p], param_dt, d->params[p].ndim, d->params[p].shape);
        grads[p] = kc_tensor(NULL, grad_dt, d->params[p].ndim, d->params[p].shape);
    }
    sl_kernels_set_threads(threads);
    sl_impl_gpt2 *g;
    CHECK_OK(sl_impl_gpt2_create(k, ctx, d, in->B, in->T, cd, act_dt, &g));
    CHECK_OK(sl_impl_gpt2_embed_forward(g, params, in->inputs));
    for (int l = 0; l < L; l++)
        CHECK_OK(sl_impl_gpt2_block_forward(g, l, params));
    CHECK_OK(sl_impl_gpt2_head_forward(g, params, in->targets, o->losses));
    CHECK_OK(sl_impl_gpt2_head_backward(g, params, grads, in->targets, in->dlosses));
    for (int l = L - 1; l >= 0; l--)
        CHECK_OK(sl_impl_gpt2_block_backward(g, l, params, grads));
    CHECK_OK(sl_impl_gpt2_embed_backward(g, grads, in->inputs));
    sl_impl_gpt2_destroy(g);
    sl_kernels_set_threads(0);
    for (int p = 0; p < P; p++) {
        kc_read(o->grads[p], &grads[p]);
        free(params[p].data);
        free(grads[p].data);
    }
    free(params), free(grads);
}

/* A relabelling of the model that changes only the order of f32 sums: residual channels, heads,
 * MLP hidden units, vocabulary entries and batch rows permuted. Every dot product over C, 4C, V
 * or the batch then adds its terms in another order; the function computed is the same. */
typedef struct gpt_perm {
    int *c, *heads3c, *headsc, *f, *v, *b; /* old index -> new index */
} gpt_perm;

static int *random_perm(int n, uint64_t stream) {
    int *p = kc_alloc(n, SL_DTYPE_I32);
    for (int i = 0; i < n; i++)
        p[i] = i;
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)(sl_rng_bits(kc_seed, stream, (uint64_t)i) % (uint64_t)(i + 1));
        const int t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

static void gpt_perm_create(gpt_perm *P, const sl_gpt2_config *cfg, int B) {
    const int C = cfg->n_embd, H = cfg->n_head, hs = C / H;
    P->c = random_perm(C, 110);
    P->f = random_perm(4 * C, 111);
    P->v = random_perm(cfg->vocab_size, 112);
    P->b = random_perm(B, 113);
    int *h = random_perm(H, 114);
    P->headsc = kc_alloc(C, SL_DTYPE_I32);
    P->heads3c = kc_alloc(3 * C, SL_DTYPE_I32);
    for (int j = 0; j < 3 * C; j++) {
        const int part = j / C, head = j % C / hs, i = j % hs;
        P->heads3c[j] = part * C + h[head] * hs + i;
        if (part == 0) P->headsc[j] = h[head] * hs + i;
    }
    free(h);
}

static void gpt_perm_destroy(gpt_perm *P) {
    free(P->c), free(P->heads3c), free(P->headsc), free(P->f), free(P->v), free(P->b);
}

/* How parameter p's rows and columns move (NULL: they stay); 1-D tensors are one row. */
static void gpt_perm_maps(const gpt_perm *P, const sl_param_desc *pd, const int **rows,
                          const int **cols, int64_t *R, int64_t *K) {
    const char *n = pd->name;
    *R = pd->ndim == 2 ? pd->shape[0] : 1;
    *K = pd->ndim == 2 ? pd->shape[1] : pd->shape[0];
    *rows = NULL;
    *cols = P->c; /* LayerNorms, wpe, the c_proj biases: channels of the residual stream */
    if (strstr(n, "wte.weight"))
        *rows = P->v;
    else if (strstr(n, "c_attn.weight"))
        *rows = P->c, *cols = P->heads3c;
    else if (strstr(n, "c_attn.bias"))
        *cols = P->heads3c;
    else if (strstr(n, "attn.c_proj.weight"))
        *rows = P->headsc;
    else if (strstr(n, "c_fc.weight"))
        *rows = P->c, *cols = P->f;
    else if (strstr(n, "c_fc.bias"))
        *cols = P->f;
    else if (strstr(n, "mlp.c_proj.weight"))
        *rows = P->f;
}

/* forward: dst[rows(i), cols(j)] = src[i, j]; backward: dst[i, j] = src[rows(i), cols(j)] */
static void gpt_perm_apply(float *dst, const float *src, int64_t R, int64_t K, const int *rows,
                           const int *cols, int back) {
    for (int64_t i = 0; i < R; i++) {
        for (int64_t j = 0; j < K; j++) {
            const int64_t moved = (rows ? rows[i] : i) * K + (cols ? cols[j] : j);
            if (back)
                dst[i * K + j] = src[moved];
            else
                dst[moved] = src[i * K + j];
        }
    }
}

/* The reference on the relabelled model, its losses and gradients mapped back. */
void gpt_ref_run_permuted(const gpt_inputs *in, sl_dtype cd, gpt_out *o) {
    const sl_model_desc *d = in->desc;
    gpt_perm P;
    gpt_perm_create(&P, &d->gpt2, in->B);
    gpt_inputs pin = *in;
    pin.params = calloc((size_t)d->n_params, sizeof *pin.params);
    assert_non_null(pin.params);
    const int64_t T = in->T, BT = (int64_t)in->B * T;
    for (int p = 0; p < d->n_params; p++) {
        const int *rows, *cols;
        int64_t R, K;
        gpt_perm_maps(&P, &d->params[p], &rows, &cols, &R, &K);
        pin.params[p] = fvec(R * K);
        gpt_perm_apply(pin.params[p], in->params[p], R, K, rows, cols, 0);
    }
    pin.inputs = kc_alloc(BT, SL_DTYPE_I32);
    pin.targets = kc_alloc(BT, SL_DTYPE_I32);
    pin.dlosses = fvec(BT);
    for (int64_t i = 0; i < BT; i++) {
        const int64_t j = P.b[i / T] * T + i % T;
        pin.inputs[j] = P.v[in->inputs[i]];
        pin.targets[j] = in->targets[i] < 0 ? in->targets[i] : P.v[in->targets[i]];
        pin.dlosses[j] = in->dlosses[i];
    }
    gpt_out po;
    gpt_out_create(&po, in);
    gpt_ref_run(&pin, cd, &po);
    for (int p = 0; p < d->n_params; p++) {
        const int *rows, *cols;
        int64_t R, K;
        gpt_perm_maps(&P, &d->params[p], &rows, &cols, &R, &K);
        gpt_perm_apply(o->grads[p], po.grads[p], R, K, rows, cols, 1);
        free(pin.params[p]);
    }
    for (int64_t i = 0; i < BT; i++)
        o->losses[i] = po.losses[P.b[i / T] * T + i % T];
    gpt_out_destroy(&po, in);
    free(pin.params), free(pin.inputs), free(pin.targets), free(pin.dlosses);
    gpt_perm_destroy(&P);
}

double rel_l2(const float *a, const float *b, int64_t n) {
    double diff = 0.0, norm = 0.0;
    for (int64_t i = 0; i < n; i++) {
        diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        norm += (double)b[i] * b[i];
    }
    return sqrt(diff) / fmax(sqrt(norm), 1e-30);
}
