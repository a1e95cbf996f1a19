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

/* dst (n, reduce_dtype) = elements [first, first + n) of buffer b's local gradient as the
 * reduction reads it: no_sync gradients pass through accum_dtype first (ref keep_local). */
static void sl_engine_stage(const sl_engine *e, int b, int64_t first, int64_t n, void *dst) {
    sl_dtype sdt;
    const void *src = sl_engine_grad_source(e, b, &sdt);
    const bool via_accum = e->plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED && !e->accumulates;
    for (int64_t i = 0; i < n; i++) {
        float x = sl_engine_get(src, sdt, first + i);
        if (via_accum) x = sl_round_to(x, e->ad);
        sl_engine_set(dst, e->rd, i, x);
    }
}

/* Element j of the grad shard receives the reduced value x (ref/reduce.c modes). */
static void sl_engine_apply(sl_engine *e, int64_t j, float x, int micro) {
    if (e->plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED) {
        sl_engine_set(e->grad_shard, e->gsd, j, x); /* rounded to master_dtype */
        return;
    }
    const float y = sl_round_to(x, e->ad);
    sl_engine_set(e->grad_shard, e->gsd, j,
                  micro == 0 ? y : sl_engine_get(e->grad_shard, e->gsd, j) + y);
}

static sl_comm_opts sl_engine_ropts(const sl_engine *e, int micro, int unit) {
    sl_comm_opts o = e->reduce_opts;
    o.phase = SL_PHASE_BACKWARD;
    o.micro_step = micro;
    o.unit = unit;
    return o;
}

/* One reduce-scatter of buffers list[0..n) over the shard group (then, with hybrid sharding,
 * the all-reduce of the shard across replicas), into this rank's grad shard. The input is
 * staged rank-major — rank r's chunk holds its shard of every listed buffer — in reduce_dtype;
 * the result lands in the unit's local gradient storage, dead once staged. */
static sl_status sl_engine_reduce_scatter(sl_engine *e, const int *list, int n, int unit,
                                          int micro) {
    const sl_plan *plan = e->plan;
    const int G = plan->shard_group_size;
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
    sl_comm_opts o = sl_engine_ropts(e, micro, unit);
    o.skip_post_divide = e->replica_comm != NULL;
    sl_status st = sl_comm_reduce_scatter(e->shard_comm, stage, recv, (size_t)S, e->rd, &o, NULL);
    if (st == SL_OK) sl_engine_note_collective(e, e->shard_comm);
    if (st == SL_OK && e->replica_comm) {
        o = sl_engine_ropts(e, micro, unit);
        o.skip_pre_divide = true;
        st = sl_comm_all_reduce(e->replica_comm, recv, recv, (size_t)S, e->rd, &o, NULL);
        if (st == SL_OK) sl_engine_note_collective(e, e->replica_comm);
    }
    off = 0;
    for (int i = 0; st == SL_OK && i < n; i++) {
        const int b = list[i];
        const int64_t sn = plan->buffers[b].shard_numel;
        for (int64_t j = 0; j < sn; j++) {
            sl_engine_apply(e, e->shard_off[b] + j, sl_engine_get(recv, e->rd, off + j), micro);
        }
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
    sl_status st = sl_comm_all_reduce(e->world_comm, stage, stage, (size_t)count, e->rd, &o, NULL);
    if (st == SL_OK) sl_engine_note_collective(e, e->world_comm);
    off = 0; /* the staged position of each buffer's element 0 */
    for (int i = 0; st == SL_OK && i < n; i++) {
        const int b = list[i];
        const int64_t sn = plan->buffers[b].shard_numel;
        /* a shard that is the whole buffer (NO_SHARD) starts at element 0 on every rank */
        const int64_t first = sn == plan->buffers[b].numel_padded ? 0 : (int64_t)e->shard_rank * sn;
        for (int64_t j = 0; j < sn; j++) {
            const int64_t at = off + first + j;
            const float x = at < count ? sl_engine_get(stage, e->rd, at) : 0.0f;
            sl_engine_apply(e, e->shard_off[b] + j, x, micro);
        }
        off += plan->buffers[b].numel_padded;
    }
    sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, bytes, stage);
    return st;
}

/* A world of one rank: no collective and no staging; each element is its staged value (every
 * divide rule divides by 1), in chunks through a small fixed buffer. */
static void sl_engine_reduce_alone(sl_engine *e, const int *list, int n, int micro) {
    float chunk[256]; /* room for 256 elements of any reduce dtype */
    for (int i = 0; i < n; i++) {
        const int b = list[i];
        const int64_t sn = e->plan->buffers[b].shard_numel;
        for (int64_t j0 = 0; j0 < sn; j0 += 256) {
            const int64_t m = sn - j0 < 256 ? sn - j0 : 256;
            sl_engine_stage(e, b, j0, m, chunk);
            for (int64_t j = 0; j < m; j++) {
                sl_engine_apply(e, e->shard_off[b] + j0 + j, sl_engine_get(chunk, e->rd, j), micro);
            }
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
    /* Backward prefetch: the next unit's all-gather is issued before this unit's reduction. */
    if (plan->backward_prefetch && unit - 1 >= 1 &&
        (plan->strategy == SL_STRATEGY_FULL_SHARD || plan->strategy == SL_STRATEGY_HYBRID_SHARD)) {
        SL_TRY(sl_engine_gather(e, unit - 1, SL_PHASE_BACKWARD, micro));
    }
    /* FSDP1 keeps SHARD_GRAD_OP parameters gathered after a no_sync backward. */
    const bool keep = plan->dialect == SL_DIALECT_FSDP1 && !sync &&
                      (plan->strategy == SL_STRATEGY_SHARD_GRAD_OP ||
                       plan->strategy == SL_STRATEGY_HYBRID_SHARD_ZERO2);
    if (!keep) sl_engine_release(e, unit);
    if (e->accumulates) sl_engine_keep_local(e, unit, micro);
    if (sync && plan->layout != SL_LAYOUT_FLAT_GLOBAL)
        SL_TRY(sl_engine_reduce_unit(e, unit, micro));
    sl_engine_unit_grads_free(e, unit);
    return SL_OK;
}

sl_status sl_engine_backward_end(sl_engine *e, int micro) {
    const sl_plan *plan = e->plan;
    const bool sync = sl_engine_syncs(e, micro);
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
