/* The optimizer step on this rank's shard (ref/step.c and ref/clip.c for one rank): gradients
 * into the master dtype, overflow detection and unscaling, the global norm, clipping, AdamW, and
 * the loss scaler's verdict. The scalar collectives (overflow flag, squared norm) run over the
 * shard group in rank order, so the norm is the reference's bit for bit in deterministic mode. */
#include <math.h>
#include <stdlib.h>

#include "impl/engine/engine_internal.h"
#include "shardlab/lr_schedule.h"

/* Runs of at most this many elements are summed in order; longer ranges split in halves, as
 * ref/clip.c does (torch's cascade sums). */
#define SL_PAIRWISE_BLOCK 32
/* Elements per AdamW call: enough that the kernel's threads share many of its chunks. The
 * scratch borrows the model's workspace, idle during the optimizer step, so the step adds nothing
 * to the workspace peak; a model with less than SL_STEP_MIN floats of it uses the stack. */
#define SL_STEP_CHUNK (1 << 20)
#define SL_STEP_MIN 512

/* Owned elements [j0, j0 + n) as the optimizer reads them: the grad shard's values in
 * master_dtype. */
static void sl_step_load_run(const sl_engine *e, int64_t j0, int64_t n, float *out) {
    sl_convert_to_f32(out, (const char *)e->grad_shard + (size_t)j0 * sl_dtype_size(e->gsd), e->gsd,
                      (size_t)n);
    if (e->md == SL_DTYPE_F32 || e->md == e->gsd) return;
    for (int64_t i = 0; i < n; i++)
        out[i] = sl_round_to(out[i], e->md);
}

static float sl_step_load(const sl_engine *e, int64_t j) {
    float x;
    sl_step_load_run(e, j, 1, &x);
    return x;
}

static float sl_sumsq_f32(const sl_engine *e, int64_t j0, int64_t n) {
    if (n <= SL_PAIRWISE_BLOCK) {
        float x[SL_PAIRWISE_BLOCK], s = 0.0f;
        sl_step_load_run(e, j0, n, x);
        for (int64_t i = 0; i < n; i++)
            s += x[i] * x[i];
        return s;
    }
    const int64_t half = n / 2;
    return sl_sumsq_f32(e, j0, half) + sl_sumsq_f32(e, j0 + half, n - half);
}

static double sl_sumsq_f64(const sl_engine *e, int64_t j0, int64_t n) {
    if (n <= SL_PAIRWISE_BLOCK) {
        float x[SL_PAIRWISE_BLOCK];
        double s = 0.0;
        sl_step_load_run(e, j0, n, x);
        for (int64_t i = 0; i < n; i++)
            s += (double)x[i] * (double)x[i];
        return s;
    }
    const int64_t half = n / 2;
    return sl_sumsq_f64(e, j0, half) + sl_sumsq_f64(e, j0 + half, n - half);
}

#define SL_FOR_EACH_PIECE(e, b, pc)                                                                \
    for (int b = 0; b < (e)->plan->n_buffers; b++)                                                 \
        for (const sl_shard_piece *pc = (e)->pieces[b]; pc < (e)->pieces[b] + (e)->n_pieces[b];    \
             pc++)

/* A 1-element f32 all-reduce (SUM) over the shard group, recorded in the step phase. */
static sl_status sl_step_scalar(sl_engine *e, float *x) {
    if (e->plan->strategy == SL_STRATEGY_NO_SHARD) return SL_OK;
    sl_comm_opts o = e->reduce_opts;
    o.divide_world = 0;
    o.phase = SL_PHASE_STEP;
    o.micro_step = e->plan->grad_accum_steps - 1;
    o.unit = -1;
    const bool staged = sl_comm_size(e->shard_comm) > 1;
    sl_engine_charge(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, staged ? 4 : 0, true);
    const double t0 = sl_engine_now();
    sl_status st = sl_comm_all_reduce(e->shard_comm, x, x, 1, SL_DTYPE_F32, &o, NULL);
    sl_engine_comm_blocked(e, t0);
    sl_engine_charge(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, staged ? 4 : 0, false);
    SL_TRY(st);
    sl_engine_note_collective(e, e->shard_comm);
    return SL_OK;
}

/* Each piece's norm is independent of the others: they are computed in parallel into
 * norms[i] (piece order) and then combined in order, so the result is the sequential one. */
static sl_status sl_step_piece_norms(sl_engine *e, bool f64, double **out, int *count) {
    int n = 0;
    SL_FOR_EACH_PIECE(e, b, pc) {
        (void)pc;
        n++;
    }
    int64_t *first = calloc((size_t)n + 1, sizeof *first),
            *len = calloc((size_t)n + 1, sizeof *len);
    double *norms = calloc((size_t)n + 1, sizeof *norms);
    if (!first || !len || !norms) {
        free(first);
        free(len);
        free(norms);
        return sl_error_set(SL_ERR_OOM, "engine: out of memory computing the gradient norm");
    }
    int i = 0;
    SL_FOR_EACH_PIECE(e, b, pc) {
        first[i] = e->shard_off[b] + pc->shard_offset;
        len[i++] = pc->end - pc->start;
    }
#pragma omp parallel for num_threads(sl_kernels_threads()) schedule(dynamic, 1)
    for (int p = 0; p < n; p++) {
        norms[p] = f64 ? sqrt(sl_sumsq_f64(e, first[p], len[p]))
                       : (double)sqrtf(sl_sumsq_f32(e, first[p], len[p]));
    }
    free(first);
    free(len);
    *out = norms;
    *count = n;
    return SL_OK;
}

/* FSDP1 clip_grad_norm_ (F32) or DeepSpeed get_grad_norm_direct (F64): ref/optim.h. */
static sl_status sl_step_norm(sl_engine *e, double *norm) {
    const bool f64 = e->plan->precision.norm == SL_NORM_F64;
    double *norms = NULL;
    int n = 0;
    SL_TRY(sl_step_piece_norms(e, f64, &norms, &n));
    if (f64) {
        double local_sq = 0.0;
        for (int i = 0; i < n; i++)
            local_sq += norms[i] * norms[i];
        free(norms);
        float total_sq = (float)local_sq;
        SL_TRY(sl_step_scalar(e, &total_sq));
        const float total = sqrtf(total_sq);
        *norm = isfinite(total) ? total : -1.0f;
        return SL_OK;
    }
    float local_sq = 0.0f;
    for (int i = 0; i < n; i++) {
        const float t = (float)norms[i];
        local_sq += t * t;
    }
    free(norms);
    const float local = sqrtf(local_sq);
    float total_sq = local * local;
    SL_TRY(sl_step_scalar(e, &total_sq));
    *norm = sqrtf(total_sq);
    return SL_OK;
}

/* sl_ref_clip_coef (ref/optim.h). */
static float sl_step_clip_coef(sl_clip_rule rule, double norm, double max_norm, double scale) {
    if (rule == SL_CLIP_TORCH) {
        if (max_norm <= 0.0) return 1.0f;
        const float shifted = (float)norm + (float)1e-6;
        const float coef = (1.0f / shifted) * (float)max_norm;
        return coef > 1.0f ? 1.0f : coef;
    }
    if (max_norm <= 0.0) return (float)(1.0 / scale);
    const float fs = (float)scale;
    float clip = (((float)norm / fs) + (float)1e-6) / (float)max_norm;
    if (clip < 1.0f) clip = 1.0f;
    return 1.0f / (clip * fs);
}

static sl_tensor sl_step_view(void *base, sl_dtype dt, int64_t j0, int64_t n) {
    return sl_tensor_1d((char *)base + (size_t)j0 * sl_dtype_size(dt), dt, n);
}

static sl_status sl_step_adamw(sl_engine *e, double lr, float coef) {
    const sl_precision *pr = &e->plan->precision;
    const float k = pr->clip == SL_CLIP_TORCH ? sl_round_to(coef, e->md) : coef;
    const int step = e->applied_steps + 1;
    int64_t cap = e->model.workspace_bytes / (int64_t)sizeof(float);
    cap = cap < SL_STEP_CHUNK ? cap : SL_STEP_CHUNK;
    const int64_t bytes = cap >= SL_STEP_MIN ? cap * (int64_t)sizeof(float) : 0;
    float local[SL_STEP_MIN];
    void *scratch = NULL;
    if (bytes) SL_TRY(sl_engine_alloc(e, SL_SPACE_DEVICE, SL_MEM_WORKSPACE, bytes, &scratch));
    float *g = bytes ? scratch : local;
    if (!bytes) cap = SL_STEP_MIN;
    sl_status st = SL_OK;
    SL_FOR_EACH_PIECE(e, b, pc) {
        const int64_t first = e->shard_off[b] + pc->shard_offset, n = pc->end - pc->start;
        for (int64_t j0 = 0; st == SL_OK && j0 < n; j0 += cap) {
            const int64_t m = n - j0 < cap ? n - j0 : cap;
            sl_step_load_run(e, first + j0, m, g);
            if (e->md == SL_DTYPE_F32) {
                for (int64_t i = 0; i < m; i++)
                    g[i] = g[i] * k;
            } else {
                for (int64_t i = 0; i < m; i++)
                    g[i] = sl_round_to(g[i] * k, e->md);
            }
            const sl_tensor param = sl_step_view(e->master, e->md, first + j0, m);
            const sl_tensor mt = sl_step_view(e->m, e->od, first + j0, m);
            const sl_tensor vt = sl_step_view(e->v, e->od, first + j0, m);
            const sl_tensor gt = sl_tensor_1d(g, SL_DTYPE_F32, m);
            st = e->k->adamw_step(e->ctx, pr->adam, &e->plan->optim, lr, step, e->md, &param, &gt,
                                  &mt, &vt);
        }
    }
    if (bytes) sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_WORKSPACE, bytes, scratch);
    return st;
}

sl_status sl_engine_step(sl_engine *e, sl_trajectory_step *rec) {
    const sl_plan *plan = e->plan;
    const sl_precision *pr = &plan->precision;
    const double scale = e->scaler.scale;
    e->obs.dtype_table[SL_STAGE_PREPARATION] = e->md;
    e->obs.dtype_table[SL_STAGE_OPTIMIZER_STATES] = e->od;

    /* Overflow: GradScaler unscales and detects on the way (in place: its grads are masters);
     * DeepSpeed checks the scaled gradients. A global OR over the shard group. */
    bool overflow = false;
    if (pr->loss_scale == SL_SCALER_TORCH_GRADSCALER) {
        if (e->gsd != e->md) {
            return sl_error_set(SL_ERR_INTERNAL,
                                "engine: GradScaler with grad shards in %s, "
                                "masters in %s",
                                sl_dtype_name(e->gsd), sl_dtype_name(e->md));
        }
        const float inv = (float)(1.0 / scale);
        SL_FOR_EACH_PIECE(e, b, pc) {
            const int64_t first = e->shard_off[b] + pc->shard_offset;
            for (int64_t j = first; j < first + (pc->end - pc->start); j++) {
                const float x = sl_engine_get(e->grad_shard, e->gsd, j);
                if (!isfinite(x)) overflow = true;
                sl_engine_set(e->grad_shard, e->gsd, j, x * inv);
            }
        }
    } else if (pr->loss_scale != SL_SCALER_NONE) {
        SL_FOR_EACH_PIECE(e, b, pc) {
            const int64_t first = e->shard_off[b] + pc->shard_offset;
            for (int64_t j = first; j < first + (pc->end - pc->start); j++) {
                if (!isfinite(sl_step_load(e, j))) overflow = true;
            }
        }
    }
    if (pr->loss_scale != SL_SCALER_NONE) {
        float flag = overflow ? 1.0f : 0.0f;
        SL_TRY(sl_step_scalar(e, &flag));
        overflow = flag != 0.0f;
    }

    double norm = 0.0;
    SL_TRY(sl_step_norm(e, &norm));
    const bool ds_scaled = pr->clip == SL_CLIP_DS;
    rec->grad_norm = ds_scaled && norm >= 0.0 ? norm / scale : norm;
    if (e->record && e->step1_grads) { /* unscaled, as grads_step1 holds them */
        SL_FOR_EACH_PIECE(e, b, pc) {
            const int64_t first = e->shard_off[b] + pc->shard_offset;
            for (int64_t j = first; j < first + (pc->end - pc->start); j++) {
                const float x = sl_step_load(e, j);
                e->step1_grads[j] = ds_scaled && scale != 1.0 ? (float)(x / scale) : x;
            }
        }
    }

    bool skip = false;
    SL_TRY(sl_loss_scaler_update(&e->scaler, overflow, &skip));
    rec->skipped = skip;
    rec->lr = sl_lr_at(&plan->optim, e->applied_steps, plan->steps);
    if (!skip) {
        const float coef = sl_step_clip_coef(pr->clip, norm, plan->optim.max_grad_norm, scale);
        e->obs.dtype_table[SL_STAGE_OPTIMIZER_STEP] = e->md;
        SL_TRY(sl_step_adamw(e, rec->lr, coef));
        e->applied_steps++;
    }
    /* New masters: every copy of the parameters is stale. */
    return sl_engine_refresh_resident(e, !skip);
}
