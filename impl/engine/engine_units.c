/* Gathering and releasing sharding units on this rank (ref/units.c for one rank): a unit's
 * all-gather before its compute, its release per the strategy (FULL_SHARD frees after forward
 * except the root; SHARD_GRAD_OP keeps it until backward), and the resident copies refreshed
 * after the optimizer step (ZeRO-1/2's whole module, ZeRO-3's persistent parameters). */
#include <stdlib.h>
#include <string.h>

#include "impl/engine/engine_internal.h"

/* dst (n elements of ddt) = src (n elements of sdt), rounded once to ddt. */
static void sl_engine_convert(void *dst, sl_dtype ddt, const void *src, sl_dtype sdt, int64_t n) {
    if (ddt == sdt) {
        memcpy(dst, src, (size_t)n * sl_dtype_size(ddt));
    } else if (sdt == SL_DTYPE_F32) {
        sl_convert_from_f32(dst, ddt, src, (size_t)n);
    } else if (ddt == SL_DTYPE_F32) {
        sl_convert_to_f32(dst, src, sdt, (size_t)n);
    } else {
        for (int64_t i = 0; i < n; i++)
            sl_engine_set(dst, ddt, i, sl_engine_get(src, sdt, i));
    }
}

static void *sl_engine_ptr(void *base, sl_dtype dt, int64_t i) {
    return (char *)base + (size_t)i * sl_dtype_size(dt);
}

/* Buffer i of `list` receives its all-gathered elements: q = r·S + off_i + j (rank-major, as the
 * collective delivers them) belongs at G·off_i + r·sn_i + j (buffer after buffer). Moves the
 * elements (psize bytes each) along the permutation's cycles in place; `seen` marks finished
 * positions. */
static void sl_engine_unscramble(char *x, size_t psize, int G, int64_t S, const int64_t *off,
                                 const int64_t *sn, int n, uint8_t *seen) {
    const int64_t N = (int64_t)G * S;
    for (int64_t q0 = 0; q0 < N; q0++) {
        if (seen[q0 >> 3] & (1u << (q0 & 7))) continue;
        unsigned char carry[8], tmp[8];
        memcpy(carry, x + (size_t)q0 * psize, psize);
        int64_t cur = q0;
        do {
            const int64_t r = cur / S, w = cur % S;
            int lo = 0, hi = n - 1; /* the buffer whose shard holds w */
            while (lo < hi) {
                const int mid = (lo + hi + 1) / 2;
                if (off[mid] <= w)
                    lo = mid;
                else
                    hi = mid - 1;
            }
            const int64_t t = (int64_t)G * off[lo] + r * sn[lo] + (w - off[lo]);
            memcpy(tmp, x + (size_t)t * psize, psize);
            memcpy(x + (size_t)t * psize, carry, psize);
            memcpy(carry, tmp, psize);
            seen[t >> 3] |= (uint8_t)(1u << (t & 7));
            cur = t;
        } while (cur != q0);
    }
}

/* Several buffers, one collective: the rank's shards staged back to back (S elements), gathered
 * rank-major straight into the destination (the buffers lie back to back there), then put in
 * buffer order in place — so the staging is the send shard alone, as the plan counts it. */
static sl_status sl_engine_gather_many(sl_engine *e, const int *list, int n, void **dst, int64_t S,
                                       const sl_comm_opts *o) {
    const sl_plan *plan = e->plan;
    const int G = plan->shard_group_size;
    const size_t psize = sl_dtype_size(e->pd);
    int64_t *off = calloc((size_t)n, sizeof *off), *sn = calloc((size_t)n, sizeof *sn);
    if (!off || !sn) {
        free(off);
        free(sn);
        return sl_error_set(SL_ERR_OOM, "engine: out of memory gathering parameters");
    }
    sl_status st = SL_OK;
    for (int i = 0; i < n; i++) {
        sn[i] = plan->buffers[list[i]].shard_numel;
        off[i] = i ? off[i - 1] + sn[i - 1] : 0;
        if ((char *)dst[i] != (char *)dst[0] + (size_t)((int64_t)G * off[i]) * psize) {
            st = sl_error_set(SL_ERR_INTERNAL, "engine: gathered buffers are not contiguous");
        }
    }
    void *stage = NULL, *seen = NULL;
    const int64_t bytes = S * (int64_t)psize, seen_bytes = ((int64_t)G * S + 7) / 8;
    if (st == SL_OK) st = sl_engine_alloc(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, bytes, &stage);
    for (int i = 0; st == SL_OK && i < n; i++) {
        sl_engine_convert(sl_engine_ptr(stage, e->pd, off[i]), e->pd,
                          sl_engine_ptr(e->master, e->md, e->shard_off[list[i]]), e->md, sn[i]);
    }
    if (st == SL_OK)
        st = sl_comm_all_gather(e->shard_comm, stage, dst[0], (size_t)S, e->pd, o, NULL);
    if (stage) sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, bytes, stage);
    if (st == SL_OK) st = sl_engine_alloc(e, SL_SPACE_DEVICE, SL_MEM_WORKSPACE, seen_bytes, &seen);
    if (st == SL_OK) {
        memset(seen, 0, (size_t)seen_bytes);
        sl_engine_unscramble(dst[0], psize, G, S, off, sn, n, seen);
        sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_WORKSPACE, seen_bytes, seen);
    }
    free(off);
    free(sn);
    return st;
}

/* All-gathers buffers list[0..n) of the shard group into dst[i] (numel_padded elements of
 * param_dtype each), as ONE collective from a staged send shard. */
static sl_status sl_engine_gather_buffers(sl_engine *e, const int *list, int n, void **dst,
                                          sl_phase phase, int micro, int unit) {
    const sl_plan *plan = e->plan;
    const int G = plan->shard_group_size;
    const size_t psize = sl_dtype_size(e->pd);
    int64_t S = 0;
    for (int i = 0; i < n; i++)
        S += plan->buffers[list[i]].shard_numel;
    if (G == 1 || S == 0) { /* the shard is the whole buffer: a local cast, no collective */
        for (int i = 0; i < n; i++) {
            const int b = list[i];
            sl_engine_convert(dst[i], e->pd, sl_engine_ptr(e->master, e->md, e->shard_off[b]),
                              e->md, plan->buffers[b].shard_numel);
        }
        return SL_OK;
    }
    sl_comm_opts o = sl_comm_opts_default();
    o.phase = phase;
    o.micro_step = micro;
    o.unit = unit;
    sl_status st;
    void *stage = NULL;
    if (n == 1) {
        const int b = list[0];
        const int64_t bytes = S * (int64_t)psize;
        SL_TRY(sl_engine_alloc(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, bytes, &stage));
        sl_engine_convert(stage, e->pd, sl_engine_ptr(e->master, e->md, e->shard_off[b]), e->md, S);
        st = sl_comm_all_gather(e->shard_comm, stage, dst[0], (size_t)S, e->pd, &o, NULL);
        sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, bytes, stage);
    } else {
        SL_TRY(sl_engine_gather_many(e, list, n, dst, S, &o));
        st = SL_OK;
    }
    SL_TRY(st);
    sl_engine_note_collective(e, e->shard_comm);
    return SL_OK;
}

sl_status sl_engine_gather(sl_engine *e, int unit, sl_phase phase, int micro) {
    e->obs.dtype_table[SL_STAGE_TRAINING] = e->pd;
    if (e->held[unit]) return SL_OK;
    e->held[unit] = true;
    if (!e->per_unit) return SL_OK; /* parameters are resident */
    const sl_plan *plan = e->plan;
    const int64_t numel = e->gather_numel[unit];
    SL_TRY(sl_engine_alloc(e, SL_SPACE_DEVICE, SL_MEM_PARAMS_GATHERED,
                           numel * (int64_t)sl_dtype_size(e->pd), &e->gathered[unit]));
    int *list = calloc((size_t)plan->n_buffers, sizeof *list);
    void **dst = calloc((size_t)plan->n_buffers, sizeof *dst);
    if (!list || !dst) {
        free(list);
        free(dst);
        return sl_error_set(SL_ERR_OOM, "engine: out of memory gathering unit %d", unit);
    }
    int n = 0;
    for (int b = 0; b < plan->n_buffers; b++) {
        if (plan->buffers[b].unit != unit || plan->buffers[b].persistent) continue;
        list[n] = b;
        dst[n++] = sl_engine_ptr(e->gathered[unit], e->pd, e->gather_off[b]);
    }
    sl_status st = n ? sl_engine_gather_buffers(e, list, n, dst, phase, micro, unit) : SL_OK;
    free(list);
    free(dst);
    sl_engine_bind_views(e);
    return st;
}

void sl_engine_release(sl_engine *e, int unit) {
    if (!e->held[unit]) return;
    e->held[unit] = false;
    if (!e->per_unit) return;
    sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_PARAMS_GATHERED,
                   e->gather_numel[unit] * (int64_t)sl_dtype_size(e->pd), e->gathered[unit]);
    e->gathered[unit] = NULL;
    sl_engine_bind_views(e);
}

void sl_engine_after_forward(sl_engine *e, int unit) {
    const sl_strategy s = e->plan->strategy;
    const bool reshard = s == SL_STRATEGY_FULL_SHARD || s == SL_STRATEGY_HYBRID_SHARD;
    /* the root stays: its output end's backward comes first */
    if (reshard && !e->desc->units[unit].is_root) sl_engine_release(e, unit);
}

sl_status sl_engine_refresh_resident(sl_engine *e, bool gather) {
    const sl_plan *plan = e->plan;
    for (int u = 0; u < e->desc->n_units; u++)
        sl_engine_release(e, u);
    for (int u = 0; u < e->desc->n_units; u++)
        e->held[u] = false;
    if (!gather || e->resident_is_master || e->resident_numel == 0) return SL_OK;
    if (plan->layout == SL_LAYOUT_REPLICATED) { /* every rank holds every master: a cast */
        sl_engine_convert(e->resident, e->pd, e->master, e->md, e->owned);
        return SL_OK;
    }
    int *list = calloc((size_t)plan->n_buffers, sizeof *list);
    void **dst = calloc((size_t)plan->n_buffers, sizeof *dst);
    if (!list || !dst) {
        free(list);
        free(dst);
        return sl_error_set(SL_ERR_OOM, "engine: out of memory refreshing parameters");
    }
    int n = 0;
    for (int b = 0; b < plan->n_buffers; b++) {
        if (e->resident_off[b] < 0) continue;
        list[n] = b;
        dst[n++] = sl_engine_ptr(e->resident, e->pd, e->resident_off[b]);
    }
    sl_status st =
        sl_engine_gather_buffers(e, list, n, dst, SL_PHASE_STEP, plan->grad_accum_steps - 1, -1);
    free(list);
    free(dst);
    return st;
}
