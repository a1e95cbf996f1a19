/* The gradients of one micro-step on this rank (ref/grads.c for one rank): where they are kept
 * (DESIGN.md §4.2 accumulation rules), when they are reduced (§4.4–§4.5, through sl_comm with
 * the plan's divide rule) and the memory they occupy. */
#include <stdlib.h>
#include <string.h>

#include "impl/engine/engine_internal.h"

static void *sl_engine_ptr(void *base, sl_dtype dt, int64_t i) {
    return (char *)base + (size_t)i * sl_dtype_size(dt);
}

static int64_t sl_engine_bytes(int64_t numel, sl_dtype dt) {
    return numel * (int64_t)sl_dtype_size(dt);
}

static sl_status sl_engine_alloc_zero(sl_engine *e, sl_mem_category c, int64_t bytes, void **out) {
    SL_TRY(sl_engine_alloc(e, SL_SPACE_DEVICE, c, bytes, out));
    if (*out) memset(*out, 0, (size_t)bytes);
    return SL_OK;
}

bool sl_engine_syncs(const sl_engine *e, int micro) {
    return e->plan->accum_mode == SL_ACCUM_REDUCED_SHARD || micro == e->plan->grad_accum_steps - 1;
}

sl_status sl_engine_backward_begin(sl_engine *e, int micro) {
    if (e->accumulates && micro == 0) {
        SL_TRY(sl_engine_alloc_zero(e, SL_MEM_GRADS_UNSHARDED,
                                    sl_engine_bytes(e->model_numel, e->ad), &e->accum));
    }
    if (e->whole_model_grads) {
        SL_TRY(sl_engine_alloc_zero(e, SL_MEM_GRADS_UNSHARDED,
                                    sl_engine_bytes(e->model_numel, e->ugd), &e->grads_model));
    } else {
        /* the root's: the output end's backward comes first */
        SL_TRY(sl_engine_unit_grads_alloc(e, 0));
    }
    sl_engine_bind_views(e);
    return SL_OK;
}

sl_status sl_engine_unit_grads_alloc(sl_engine *e, int unit) {
    if (e->whole_model_grads || e->grads_unit[unit]) return SL_OK;
    SL_TRY(sl_engine_alloc_zero(e, SL_MEM_GRADS_UNSHARDED,
                                sl_engine_bytes(e->unit_numel[unit], e->pd), &e->grads_unit[unit]));
    sl_engine_bind_views(e);
    return SL_OK;
}

static void sl_engine_unit_grads_free(sl_engine *e, int unit) {
    if (e->whole_model_grads || !e->grads_unit[unit]) return;
    sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_GRADS_UNSHARDED,
                   sl_engine_bytes(e->unit_numel[unit], e->pd), e->grads_unit[unit]);
    e->grads_unit[unit] = NULL;
    sl_engine_bind_views(e);
}

/* no_sync over k > 1: the micro-step gradient joins the accumulator in accum_dtype. */
static void sl_engine_keep_local(sl_engine *e, int unit, int micro) {
    const sl_unit_desc *u = &e->desc->units[unit];
    for (int i = 0; i < u->n_params; i++) {
        const int p = u->params[i];
        const int b = e->loc[p].buffer;
        void *acc = sl_engine_ptr(e->accum, e->ad, e->model_off[b] + e->loc[p].flat);
        const void *g = e->grads[p].data;
        const sl_dtype gdt = e->grads[p].dtype;
        const int64_t n = e->desc->params[p].numel;
        for (int64_t j = 0; j < n; j++) {
            const float x = sl_round_to(sl_engine_get(g, gdt, j), e->ad);
            sl_engine_set(acc, e->ad, j, micro == 0 ? x : sl_engine_get(acc, e->ad, j) + x);
        }
    }
}

/* The full local gradient of buffer b (numel_padded elements) and its dtype. */
static const void *sl_engine_grad_source(const sl_engine *e, int b, sl_dtype *dt) {
    if (e->accumulates) {
        *dt = e->ad;
        return sl_engine_ptr(e->accum, e->ad, e->model_off[b]);
    }
    if (e->whole_model_grads) {
        *dt = e->ugd;
        return sl_engine_ptr(e->grads_model, e->ugd, e->model_off[b]);
    }
    *dt = e->pd;
    return sl_engine_ptr(e->grads_unit[e->plan->buffers[b].unit], e->pd, e->unit_off[b]);
}

/* Elements handled per pass of the conversions below (a stack buffer of f32). */
#define SL_ENGINE_RUN 512

/* dst (n, reduce_dtype) = elements [first, first + n) of buffer b's local gradient as the
 * reduction reads it: no_sync gradients pass through accum_dtype first (ref keep_local). */
static void sl_engine_stage(const sl_engine *e, int b, int64_t first, int64_t n, void *dst) {
    sl_dtype sdt;
    const void *src = sl_engine_grad_source(e, b, &sdt);
    const bool via_accum = e->plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED && !e->accumulates &&
                           e->ad != SL_DTYPE_F32 && e->ad != sdt;
    if (sdt == e->rd && !via_accum) {
        memcpy(dst, sl_engine_ptr((void *)src, sdt, first), (size_t)sl_engine_bytes(n, sdt));
        return;
    }
    float x[SL_ENGINE_RUN];
    for (int64_t j0 = 0; j0 < n; j0 += SL_ENGINE_RUN) {
        const int64_t m = n - j0 < SL_ENGINE_RUN ? n - j0 : SL_ENGINE_RUN;
        sl_convert_to_f32(x, sl_engine_ptr((void *)src, sdt, first + j0), sdt, (size_t)m);
        for (int64_t i = 0; via_accum && i < m; i++)
            x[i] = sl_round_to(x[i], e->ad);
        sl_convert_from_f32(sl_engine_ptr(dst, e->rd, j0), e->rd, x, (size_t)m);
    }
}

/* Elements [j0, j0 + n) of the grad shard receive the reduced values x (ref/reduce.c modes);
 * x is modified. */
static void sl_engine_apply_run(sl_engine *e, int64_t j0, float *x, int64_t n, int micro) {
    void *dst = sl_engine_ptr(e->grad_shard, e->gsd, j0);
    if (e->plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED) {
        sl_convert_from_f32(dst, e->gsd, x, (size_t)n); /* rounded to master_dtype */
        return;
    }
    for (int64_t i = 0; e->ad != SL_DTYPE_F32 && i < n; i++)
        x[i] = sl_round_to(x[i], e->ad);
    if (micro > 0) {
        float acc[SL_ENGINE_RUN];
        for (int64_t i0 = 0; i0 < n; i0 += SL_ENGINE_RUN) {
            const int64_t m = n - i0 < SL_ENGINE_RUN ? n - i0 : SL_ENGINE_RUN;
            sl_convert_to_f32(acc, sl_engine_ptr(dst, e->gsd, i0), e->gsd, (size_t)m);
            for (int64_t i = 0; i < m; i++)
                x[i0 + i] = acc[i] + x[i0 + i];
        }
    }
    sl_convert_from_f32(dst, e->gsd, x, (size_t)n);
}

/* Applies n reduced values stored in reduce_dtype at src to grad-shard elements from j0. */
static void sl_engine_apply_from(sl_engine *e, int64_t j0, const void *src, int64_t n, int micro) {
    float x[SL_ENGINE_RUN];
    for (int64_t i0 = 0; i0 < n; i0 += SL_ENGINE_RUN) {
        const int64_t m = n - i0 < SL_ENGINE_RUN ? n - i0 : SL_ENGINE_RUN;
        sl_convert_to_f32(x, sl_engine_ptr((void *)src, e->rd, i0), e->rd, (size_t)m);
        sl_engine_apply_run(e, j0 + i0, x, m, micro);
    }
}

static sl_comm_opts sl_engine_ropts(const sl_engine *e, int micro, int unit) {
    sl_comm_opts o = e->reduce_opts;
    o.phase = SL_PHASE_BACKWARD;
    o.micro_step = micro;
    o.unit = unit;
    return o;
}

/* Whether the reduce-scatter of buffers list[0..n) can deliver straight into the grad shard and
 * be left in flight: FSDP's units (their all-gathers stage in place, so its staging is the only
 * comm buffer live), no replica all-reduce to follow, the grad shard stored in reduce_dtype with
 * this unit's elements back to back, and nothing to add them to (a sync without accumulation, or
 * the first micro-step of a reduced-shard accumulation: every divide rule's result is stored
 * as it is then). */
static bool sl_engine_reduce_direct(const sl_engine *e, const int *list, int n, int micro) {
    const sl_plan *plan = e->plan;
    if (e->replica_comm || e->rd != e->gsd || e->whole_model_grads) return false;
    if (plan->layout != SL_LAYOUT_FLAT_PER_UNIT && plan->layout != SL_LAYOUT_PER_PARAM_DIM0)
        return false;
    if (plan->accum_mode != SL_ACCUM_LOCAL_UNSHARDED && micro != 0) return false;
    for (int i = 1; i < n; i++) {
        if (e->shard_off[list[i]] !=
            e->shard_off[list[i - 1]] + plan->buffers[list[i - 1]].shard_numel)
            return false;
    }
    return true;
}

/* One reduce-scatter of buffers list[0..n) over the shard group (then, with hybrid sharding,
 * the all-reduce of the shard across replicas), into this rank's grad shard. The input is
 * staged rank-major — rank r's chunk holds its shard of every listed buffer — in reduce_dtype;
 * the result lands in the grad shard itself when sl_engine_reduce_direct, and the collective
 * then stays in flight through the next unit's backward (completed before the next reduction
 * stages its input, or at the end of backward); otherwise in the unit's local gradient storage,
 * dead once staged, and is applied from there. */
static sl_status sl_engine_reduce_scatter(sl_engine *e, const int *list, int n, int unit,
                                          int micro) {
    const sl_plan *plan = e->plan;
    const int G = plan->shard_group_size;
    SL_TRY(sl_engine_reduce_finish(e)); /* the previous unit's: one staging buffer at a time */
    int64_t S = 0, cap = 0;
    for (int i = 0; i < n; i++) {
        S += plan->buffers[list[i]].shard_numel;
        cap += plan->buffers[list[i]].numel_padded;
    }
    const int64_t stage_bytes = sl_engine_bytes((int64_t)G * S, e->rd);
    void *stage = NULL;
    SL_TRY(sl_engine_alloc(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, stage_bytes, &stage));
    int64_t off = 0;
    for (int r = 0; r < G; r++) {
        for (int i = 0; i < n; i++) {
            const int64_t sn = plan->buffers[list[i]].shard_numel;
            sl_engine_stage(e, list[i], (int64_t)r * sn, sn, sl_engine_ptr(stage, e->rd, off));
            off += sn;
        }
    }
    sl_comm_opts o = sl_engine_ropts(e, micro, unit);
    if (sl_engine_reduce_direct(e, list, n, micro)) {
        sl_comm_request *req = NULL;
        void *recv = sl_engine_ptr(e->grad_shard, e->gsd, e->shard_off[list[0]]);
        const sl_status st =
            sl_comm_reduce_scatter(e->shard_comm, stage, recv, (size_t)S, e->rd, &o, &req);
        if (st != SL_OK) {
            sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, stage_bytes, stage);
            return st;
        }
        sl_engine_note_collective(e, e->shard_comm);
        sl_engine_reduce_pending(e, req, stage, stage_bytes);
        return SL_OK;
    }
    void *recv = NULL, *own = NULL;
    const int64_t recv_bytes = sl_engine_bytes(S, e->rd);
    if (!e->whole_model_grads && sl_engine_bytes(cap, e->pd) >= recv_bytes) {
        recv = sl_engine_ptr(e->grads_unit[unit], e->pd, e->unit_off[list[0]]);
    } else {
        sl_status st = sl_engine_alloc(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, recv_bytes, &own);
        if (st != SL_OK) {
            sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, stage_bytes, stage);
            return st;
        }
        recv = own;
    }
    o.skip_post_divide = e->replica_comm != NULL;
    const double t0 = sl_engine_now();
    sl_status st = sl_comm_reduce_scatter(e->shard_comm, stage, recv, (size_t)S, e->rd, &o, NULL);
    if (st == SL_OK) sl_engine_note_collective(e, e->shard_comm);
    if (st == SL_OK && e->replica_comm) {
        o = sl_engine_ropts(e, micro, unit);
        o.skip_pre_divide = true;
        st = sl_comm_all_reduce(e->replica_comm, recv, recv, (size_t)S, e->rd, &o, NULL);
        if (st == SL_OK) sl_engine_note_collective(e, e->replica_comm);
    }
    sl_engine_comm_blocked(e, t0);
    off = 0;
    for (int i = 0; st == SL_OK && i < n; i++) {
        const int b = list[i];
        const int64_t sn = plan->buffers[b].shard_numel;
        sl_engine_apply_from(e, e->shard_off[b], sl_engine_ptr(recv, e->rd, off), sn, micro);
        off += sn;
    }
    if (own) sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, recv_bytes, own);
    sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, stage_bytes, stage);
    return st;
}

/* One all-reduce over the world of `count` leading elements of the listed buffers' gradients,
 * concatenated (NO_SHARD per unit; ZeRO-1/2's whole model, DeepSpeed's buckets taken as one);
 * this rank keeps the elements of its shards. */
static sl_status sl_engine_all_reduce(sl_engine *e, const int *list, int n, int64_t count, int unit,
                                      int micro) {
    const sl_plan *plan = e->plan;
    const int64_t bytes = sl_engine_bytes(count, e->rd);
    void *stage = NULL;
    SL_TRY(sl_engine_alloc(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, bytes, &stage));
    int64_t off = 0;
    for (int i = 0; i < n && off < count; i++) {
        int64_t take = plan->buffers[list[i]].numel_padded;
        if (take > count - off) take = count - off;
        sl_engine_stage(e, list[i], 0, take, sl_engine_ptr(stage, e->rd, off));
        off += take;
    }
    sl_comm_opts o = sl_engine_ropts(e, micro, unit);
    const double t0 = sl_engine_now();
    sl_status st = sl_comm_all_reduce(e->world_comm, stage, stage, (size_t)count, e->rd, &o, NULL);
    sl_engine_comm_blocked(e, t0);
    if (st == SL_OK) sl_engine_note_collective(e, e->world_comm);
    off = 0; /* the staged position of each buffer's element 0 */
    for (int i = 0; st == SL_OK && i < n; i++) {
        const int b = list[i];
        const int64_t sn = plan->buffers[b].shard_numel;
        /* a shard that is the whole buffer (NO_SHARD) starts at element 0 on every rank */
        const int64_t first = sn == plan->buffers[b].numel_padded ? 0 : (int64_t)e->shard_rank * sn;
        /* elements staged (at < count), then the zero padding beyond the model's last one */
        int64_t have = count - (off + first);
        have = have < 0 ? 0 : (have > sn ? sn : have);
        sl_engine_apply_from(e, e->shard_off[b], sl_engine_ptr(stage, e->rd, off + first), have,
                             micro);
        float zero[SL_ENGINE_RUN] = {0};
        for (int64_t j = have; j < sn; j += SL_ENGINE_RUN) {
            const int64_t m = sn - j < SL_ENGINE_RUN ? sn - j : SL_ENGINE_RUN;
            sl_engine_apply_run(e, e->shard_off[b] + j, zero, m, micro);
            memset(zero, 0, sizeof zero);
        }
        off += plan->buffers[b].numel_padded;
    }
    sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, bytes, stage);
    return st;
}

/* A world of one rank: no collective and no staging; each element is its staged value (every
 * divide rule divides by 1), in runs through a small fixed buffer. */
static void sl_engine_reduce_alone(sl_engine *e, const int *list, int n, int micro) {
    float chunk[SL_ENGINE_RUN]; /* room for SL_ENGINE_RUN elements of any reduce dtype */
    float x[SL_ENGINE_RUN];
    for (int i = 0; i < n; i++) {
        const int b = list[i];
        const int64_t sn = e->plan->buffers[b].shard_numel;
        for (int64_t j0 = 0; j0 < sn; j0 += SL_ENGINE_RUN) {
            const int64_t m = sn - j0 < SL_ENGINE_RUN ? sn - j0 : SL_ENGINE_RUN;
            sl_engine_stage(e, b, j0, m, chunk);
            sl_convert_to_f32(x, chunk, e->rd, (size_t)m);
            sl_engine_apply_run(e, e->shard_off[b] + j0, x, m, micro);
        }
    }
}

/* The reduction of one unit: FSDP's one reduce-scatter of the unit's buffers, ZeRO-3's one per
 * parameter in reverse, NO_SHARD's all-reduce. */
static sl_status sl_engine_reduce_unit(sl_engine *e, int unit, int micro) {
    const sl_plan *plan = e->plan;
    e->obs.dtype_table[SL_STAGE_GRADIENT_REDUCTION] = e->rd;
    if (plan->layout == SL_LAYOUT_PER_PARAM_FLAT) {
        const sl_unit_desc *u = &e->desc->units[unit];
        for (int i = u->n_params - 1; i >= 0; i--) {
            const int b = e->loc[u->params[i]].buffer;
            if (e->world == 1) {
                sl_engine_reduce_alone(e, &b, 1, micro);
            } else {
                SL_TRY(sl_engine_reduce_scatter(e, &b, 1, unit, micro));
            }
        }
        return SL_OK;
    }
    int list[64], n = 0;
    int64_t numel = 0;
    for (int b = 0; b < plan->n_buffers; b++) {
        if (plan->buffers[b].unit != unit) continue;
        if (n == (int)(sizeof list / sizeof list[0])) {
            return sl_error_set(SL_ERR_INTERNAL, "engine: unit %d has more than %d buffers", unit,
                                n);
        }
        list[n++] = b;
        numel += plan->buffers[b].numel_padded;
    }
    if (n == 0) return SL_OK;
    if (e->world == 1) {
        sl_engine_reduce_alone(e, list, n, micro);
        return SL_OK;
    }
    if (plan->layout == SL_LAYOUT_REPLICATED)
        return sl_engine_all_reduce(e, list, n, numel, unit, micro);
    return sl_engine_reduce_scatter(e, list, n, unit, micro);
}

sl_status sl_engine_unit_backward_done(sl_engine *e, int unit, int micro) {
    const sl_plan *plan = e->plan;
    const bool sync = sl_engine_syncs(e, micro);
    /* Backward prefetch: the next unit's all-gather is issued before this unit's reduction —
     * here for BACKWARD_POST, before this unit's compute for BACKWARD_PRE (a no-op here then). It
     * completes before the reduction stages its input, so that the two staging buffers are never
     * live together (the plan's comm_buffers peak is the larger of them). */
    const bool prefetch =
        plan->backward_prefetch && unit - 1 >= 1 &&
        (plan->strategy == SL_STRATEGY_FULL_SHARD || plan->strategy == SL_STRATEGY_HYBRID_SHARD);
    if (prefetch) SL_TRY(sl_engine_prefetch(e, unit - 1, SL_PHASE_BACKWARD, micro));
    /* FSDP1 keeps SHARD_GRAD_OP parameters gathered after a no_sync backward. */
    const bool keep = plan->dialect == SL_DIALECT_FSDP1 && !sync &&
                      (plan->strategy == SL_STRATEGY_SHARD_GRAD_OP ||
                       plan->strategy == SL_STRATEGY_HYBRID_SHARD_ZERO2);
    if (!keep) sl_engine_release(e, unit);
    if (e->accumulates) sl_engine_keep_local(e, unit, micro);
    if (prefetch) SL_TRY(sl_engine_gather(e, unit - 1, SL_PHASE_BACKWARD, micro));
    if (sync && plan->layout != SL_LAYOUT_FLAT_GLOBAL)
        SL_TRY(sl_engine_reduce_unit(e, unit, micro));
    sl_engine_unit_grads_free(e, unit);
    return SL_OK;
}

sl_status sl_engine_backward_end(sl_engine *e, int micro) {
    const sl_plan *plan = e->plan;
    const bool sync = sl_engine_syncs(e, micro);
    SL_TRY(sl_engine_reduce_finish(e)); /* the grad shard is complete from here */
    if (sync && plan->layout == SL_LAYOUT_FLAT_GLOBAL) {
        if (plan->n_buffers != 1) {
            return sl_error_set(SL_ERR_INTERNAL, "engine: FLAT_GLOBAL plan with %d buffers",
                                plan->n_buffers);
        }
        e->obs.dtype_table[SL_STAGE_GRADIENT_REDUCTION] = e->rd;
        const int b = 0;
        if (e->world == 1) {
            sl_engine_reduce_alone(e, &b, 1, micro);
        } else {
            SL_TRY(sl_engine_all_reduce(e, &b, 1, e->desc->total_numel, -1, micro));
        }
    }
    if (e->whole_model_grads) {
        sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_GRADS_UNSHARDED,
                       sl_engine_bytes(e->model_numel, e->ugd), e->grads_model);
        e->grads_model = NULL;
        sl_engine_bind_views(e);
    }
    if (e->accumulates && sync) {
        sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_GRADS_UNSHARDED,
                       sl_engine_bytes(e->model_numel, e->ad), e->accum);
        e->accum = NULL;
    }
    return SL_OK;
}
