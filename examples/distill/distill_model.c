/* The teacher's and the student's classifiers (distill_model.h). */
#include "distill_model.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct distill_link {
    int64_t N, V; /* N = B·T tokens of a micro-batch */
    distill_objective obj;
    float *teacher_logits; /* (N, V) f32: the teacher's logits of the current micro-batch */
    bool teacher_ready;    /* written since the student last used them */
    float *row;            /* (V) the student's logits of one token, widened */
    float *grad;           /* (V) its gradient before rounding */
    double ce_sum, kl_sum;
};

typedef enum distill_role { DISTILL_TEACHER, DISTILL_STUDENT } distill_role;

typedef struct distill_model {
    sl_engine_model inner; /* the built-in GPT-2 on `kernels` */
    sl_kernels kernels;    /* the CPU table, classifier replaced; inner's ops point here */
    const sl_kernels *base;
    sl_kctx *ctx;
    distill_link *link;
    distill_role role;
} distill_model;

/* The kernel table's entries carry no user pointer: the model whose loss is running is named
 * here for the duration of its loss_forward/loss_backward call (the classifier runs inside it,
 * on the same thread). */
static _Thread_local distill_model *distill_active;

sl_status distill_link_create(int B, int T, int V, distill_objective obj, distill_link **out) {
    *out = NULL;
    if (!(obj.alpha >= 0 && obj.alpha <= 1) || !(obj.temperature > 0)) {
        return sl_error_set(SL_ERR_CONFIG,
                            "distill: alpha must be in [0, 1] and temperature > 0, found alpha = "
                            "%g, temperature = %g; pass --alpha 0.5 --temperature 2 for example",
                            (double)obj.alpha, (double)obj.temperature);
    }
    distill_link *l = calloc(1, sizeof *l);
    if (!l) return sl_error_set(SL_ERR_OOM, "distill: out of memory");
    l->N = (int64_t)B * T;
    l->V = V;
    l->obj = obj;
    l->teacher_logits = malloc((size_t)(l->N * l->V) * sizeof(float));
    l->row = malloc((size_t)V * sizeof(float));
    l->grad = malloc((size_t)V * sizeof(float));
    if (!l->teacher_logits || !l->row || !l->grad) {
        distill_link_destroy(l);
        return sl_error_set(SL_ERR_OOM, "distill: out of memory for (%d·%d, %d) teacher logits", B,
                            T, V);
    }
    *out = l;
    return SL_OK;
}

void distill_link_destroy(distill_link *l) {
    if (!l) return;
    free(l->teacher_logits);
    free(l->row);
    free(l->grad);
    free(l);
}

void distill_link_take_sums(distill_link *l, double *ce, double *kl) {
    *ce = l->ce_sum;
    *kl = l->kl_sum;
    l->ce_sum = l->kl_sum = 0;
}

/* max and log Σ exp(x/tau - max) of a row: log softmax(x/tau)[v] = x[v]/tau - max - lse. */
static void distill_logsumexp(const float *x, int64_t V, double tau, double *max, double *lse) {
    double m = -INFINITY, s = 0;
    for (int64_t v = 0; v < V; v++)
        m = fmax(m, x[v] / tau);
    for (int64_t v = 0; v < V; v++)
        s += exp(x[v] / tau - m);
    *max = m;
    *lse = log(s);
}

static sl_status distill_check(const distill_model *m, const char *op, const sl_tensor *logits,
                               const sl_tensor *targets) {
    const distill_link *l = m->link;
    if (sl_tensor_numel(logits) != l->N * l->V || sl_tensor_numel(targets) != l->N) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "distill: %s got %lld logits and %lld targets, expected (%lld, %lld) "
                            "and %lld: the micro-batch differs from the plan's micro_batch_size × "
                            "seq_len",
                            op, (long long)sl_tensor_numel(logits),
                            (long long)sl_tensor_numel(targets), (long long)l->N, (long long)l->V,
                            (long long)l->N);
    }
    if (m->role == DISTILL_STUDENT && !l->teacher_ready) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "distill: the student's %s ran before the teacher's forward on this "
                            "micro-batch; call sl_engine_forward on the teacher first",
                            op);
    }
    return SL_OK;
}

/* losses (CE from the base classifier) become the distillation objective. */
static void distill_student_losses(distill_link *l, const sl_tensor *logits, const int32_t *targets,
                                   float *losses) {
    const double a = l->obj.alpha, tau = l->obj.temperature;
    for (int64_t n = 0; n < l->N; n++) {
        if (targets[n] < 0) continue;
        sl_convert_to_f32(l->row,
                          (const char *)logits->data + n * l->V * sl_dtype_size(logits->dtype),
                          logits->dtype, (size_t)l->V);
        const float *t = l->teacher_logits + n * l->V;
        double sm, sl, tm, tl, kl = 0;
        distill_logsumexp(l->row, l->V, tau, &sm, &sl);
        distill_logsumexp(t, l->V, tau, &tm, &tl);
        for (int64_t v = 0; v < l->V; v++) {
            const double logp = t[v] / tau - tm - tl, logq = l->row[v] / tau - sm - sl;
            kl += exp(logp) * (logp - logq);
        }
        l->ce_sum += losses[n];
        l->kl_sum += kl;
        losses[n] = (float)(a * losses[n] + (1 - a) * tau * tau * kl);
    }
}

static sl_status distill_ce_forward(sl_kctx *ctx, const sl_tensor *losses, const sl_tensor *stats,
                                    const sl_tensor *probs, const sl_tensor *logits,
                                    const sl_tensor *targets) {
    distill_model *m = distill_active;
    if (!m || m->ctx != ctx) {
        return sl_error_set(SL_ERR_INTERNAL,
                            "distill: classifier called outside its model's loss_forward");
    }
    SL_TRY(distill_check(m, "loss_forward", logits, targets));
    SL_TRY(m->base->crossentropy_forward(ctx, losses, stats, probs, logits, targets));
    distill_link *l = m->link;
    if (m->role == DISTILL_TEACHER) {
        sl_convert_to_f32(l->teacher_logits, logits->data, logits->dtype, (size_t)(l->N * l->V));
        l->teacher_ready = true;
        return SL_OK;
    }
    distill_student_losses(l, logits, targets->data, losses->data);
    return SL_OK;
}

/* dlogits = dlosses · d objective / d logits, row by row (a row is read whole before it is
 * overwritten, so dlogits may be logits itself). */
static sl_status distill_ce_backward(sl_kctx *ctx, sl_dtype cd, const sl_tensor *dlogits,
                                     const sl_tensor *logits, const sl_tensor *stats,
                                     const sl_tensor *targets, const sl_tensor *dlosses) {
    distill_model *m = distill_active;
    if (!m || m->ctx != ctx) {
        return sl_error_set(SL_ERR_INTERNAL,
                            "distill: classifier called outside its model's loss_backward");
    }
    if (m->role == DISTILL_TEACHER)
        return m->base->crossentropy_backward(ctx, cd, dlogits, logits, stats, targets, dlosses);
    SL_TRY(distill_check(m, "loss_backward", logits, targets));
    if (sl_tensor_numel(dlogits) != sl_tensor_numel(logits) ||
        sl_tensor_numel(dlosses) != m->link->N ||
        (dlogits->dtype != SL_DTYPE_F32 && dlogits->dtype != cd)) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "distill: loss_backward expects dlogits shaped like the logits in f32 "
                            "or %s and %lld dlosses",
                            sl_dtype_name(cd), (long long)m->link->N);
    }
    distill_link *l = m->link;
    const double a = l->obj.alpha, tau = l->obj.temperature;
    const int32_t *tg = targets->data;
    const float *dl = dlosses->data;
    const size_t in_row = (size_t)l->V * sl_dtype_size(logits->dtype);
    const size_t out_row = (size_t)l->V * sl_dtype_size(dlogits->dtype);
    for (int64_t n = 0; n < l->N; n++) {
        void *out = (char *)dlogits->data + (size_t)n * out_row;
        if (tg[n] < 0) {
            memset(out, 0, out_row);
            continue;
        }
        sl_convert_to_f32(l->row, (const char *)logits->data + (size_t)n * in_row, logits->dtype,
                          (size_t)l->V);
        const float *t = l->teacher_logits + n * l->V;
        double m1, l1, sm, sl, tm, tl;
        distill_logsumexp(l->row, l->V, 1.0, &m1, &l1);
        distill_logsumexp(l->row, l->V, tau, &sm, &sl);
        distill_logsumexp(t, l->V, tau, &tm, &tl);
        for (int64_t v = 0; v < l->V; v++) {
            const double p = exp(l->row[v] - m1 - l1) - (v == tg[n]);
            const double q = exp(l->row[v] / tau - sm - sl) - exp(t[v] / tau - tm - tl);
            l->grad[v] = (float)(dl[n] * (a * p + (1 - a) * tau * q));
        }
        /* one rounding to the compute dtype, as the built-in classifier's */
        if (dlogits->dtype == SL_DTYPE_F32) {
            sl_round_array(l->grad, (size_t)l->V, cd);
            memcpy(out, l->grad, out_row);
        } else {
            sl_convert_from_f32(out, cd, l->grad, (size_t)l->V);
        }
    }
    l->teacher_ready = false; /* the next micro-batch needs the teacher's forward again */
    return SL_OK;
}

/* ---- the engine model around the built-in GPT-2 ---- */

static sl_status distill_forward(void *self, int unit, const sl_tensor *params,
                                 const sl_batch *batch) {
    distill_model *m = self;
    return m->inner.forward(m->inner.self, unit, params, batch);
}

static sl_status distill_loss_forward(void *self, const sl_tensor *params, const sl_batch *batch,
                                      float *losses) {
    distill_model *m = self;
    distill_active = m;
    const sl_status st = m->inner.loss_forward(m->inner.self, params, batch, losses);
    distill_active = NULL;
    return st;
}

static sl_status distill_loss_backward(void *self, const sl_tensor *params, const sl_tensor *grads,
                                       const sl_batch *batch, const float *dlosses) {
    distill_model *m = self;
    distill_active = m;
    const sl_status st = m->inner.loss_backward(m->inner.self, params, grads, batch, dlosses);
    distill_active = NULL;
    return st;
}

static sl_status distill_backward(void *self, int unit, const sl_tensor *params,
                                  const sl_tensor *grads, const sl_batch *batch) {
    distill_model *m = self;
    return m->inner.backward(m->inner.self, unit, params, grads, batch);
}

static void distill_destroy(void *self) {
    distill_model *m = self;
    if (!m) return;
    if (m->inner.destroy) m->inner.destroy(m->inner.self);
    if (m->ctx) m->base->context_destroy(m->ctx);
    free(m);
}

static sl_status distill_model_create(const sl_model_desc *desc, const sl_plan *plan,
                                      distill_link *link, distill_role role, sl_engine_model *out) {
    const char *who = role == DISTILL_TEACHER ? "teacher" : "student";
    const int64_t N = (int64_t)plan->micro_batch_size * plan->seq_len;
    if (N != link->N || desc->gpt2.vocab_size != link->V) {
        return sl_error_set(SL_ERR_MISMATCH,
                            "distill: the %s's plan has micro_batch_size × seq_len = %lld tokens "
                            "and vocab_size %d, but the teacher/student pair was made for %lld "
                            "and %lld; give both plans the same micro_batch_size and seq_len",
                            who, (long long)N, desc->gpt2.vocab_size, (long long)link->N,
                            (long long)link->V);
    }
    distill_model *m = calloc(1, sizeof *m);
    if (!m) return sl_error_set(SL_ERR_OOM, "distill: out of memory creating the %s", who);
    m->base = sl_kernels_cpu();
    m->kernels = *m->base;
    m->kernels.crossentropy_forward = distill_ce_forward;
    m->kernels.crossentropy_backward = distill_ce_backward;
    m->link = link;
    m->role = role;
    sl_status st = m->base->context_create(&m->ctx);
    if (st == SL_OK) st = sl_engine_gpt2_model(&m->kernels, m->ctx, desc, plan, &m->inner);
    if (st != SL_OK) {
        distill_destroy(m);
        return sl_error_prefix(st, "distill: %s model: ", who);
    }
    *out = m->inner;
    out->self = m;
    out->forward = distill_forward;
    out->loss_forward = distill_loss_forward;
    out->loss_backward = distill_loss_backward;
    out->backward = distill_backward;
    out->destroy = distill_destroy;
    return SL_OK;
}

sl_status distill_teacher_model(const sl_model_desc *desc, const sl_plan *plan, distill_link *link,
                                sl_engine_model *out) {
    return distill_model_create(desc, plan, link, DISTILL_TEACHER, out);
}

sl_status distill_student_model(const sl_model_desc *desc, const sl_plan *plan, distill_link *link,
                                sl_engine_model *out) {
    return distill_model_create(desc, plan, link, DISTILL_STUDENT, out);
}
