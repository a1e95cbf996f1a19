/* Gathering and releasing sharding units on this rank (ref/units.c for one rank): a unit's
 * all-gather before its compute — issued ahead and overlapped with the compute before it when
 * the plan prefetches —, its release per the strategy (FULL_SHARD frees after forward except the
 * root; SHARD_GRAD_OP keeps it until backward), and the resident copies refreshed after the
 * optimizer step (ZeRO-1/2's whole module, ZeRO-3's persistent parameters). The time a rank
 * spends blocked in the engine's collectives is kept here too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "impl/engine/engine_internal.h"
#include "shardlab/log.h"

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

/* An all-gather issued and not yet completed: the unit it fills, its request, its staged send
 * shard, and what putting the received elements in buffer order needs (n > 1). */
typedef struct sl_engine_pending {
    int unit; /* -1: the slot is free */
    sl_comm_request *req;
    void *stage;
    int64_t stage_bytes;
    int n;
    int64_t S;
    int64_t *off, *sn; /* [n] each buffer's offset and size in the send shard */
    void *dst;
    bool progressed; /* the progress hook ran while it was in flight: compute overlapped it */
} sl_engine_pending;

/* FSDP1's rate limiter allows two all-gathers in flight; the engine prefetches one unit ahead,
 * so two slots are all it can use (limit_all_gathers or not). */
#define SL_ENGINE_MAX_PENDING 2

struct sl_engine_overlap {
    sl_engine_pending slot[SL_ENGINE_MAX_PENDING];
    double wait_s;      /* blocked in the engine's collectives */
    int64_t issued;     /* all-gathers issued ahead of their unit */
    int64_t overlapped; /* ... of which compute ran while they were in flight */
    sl_status error;    /* a failure of the progress hook, reported when a collective completes */
    char error_text[256];
    sl_comm_request *reduce; /* a gradient reduce-scatter in flight (sl_engine_reduce_pending) */
    void *reduce_stage;
    int64_t reduce_stage_bytes;
    bool reduce_progressed;
    int64_t reduces, reduces_overlapped; /* as issued / overlapped, for reduce-scatters */
};

double sl_engine_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void sl_engine_comm_blocked(sl_engine *e, double since) {
    if (e->overlap) e->overlap->wait_s += sl_engine_now() - since;
}

double sl_engine_comm_wait_seconds(const sl_engine *e) {
    return e->overlap ? e->overlap->wait_s : 0.0;
}

void sl_engine_prefetch_counts(const sl_engine *e, int64_t *issued, int64_t *overlapped) {
    *issued = e->overlap ? e->overlap->issued : 0;
    *overlapped = e->overlap ? e->overlap->overlapped : 0;
}

void sl_engine_reduce_counts(const sl_engine *e, int64_t *issued, int64_t *overlapped) {
    *issued = e->overlap ? e->overlap->reduces : 0;
    *overlapped = e->overlap ? e->overlap->reduces_overlapped : 0;
}

/* Between kernels: advances the collectives in flight (MPI moves them only inside MPI calls). */
static void sl_engine_progress_hook(void *arg) {
    sl_engine *e = arg;
    struct sl_engine_overlap *ov = e->overlap;
    bool any = ov->reduce != NULL;
    for (int i = 0; i < SL_ENGINE_MAX_PENDING; i++)
        any = any || ov->slot[i].unit >= 0;
    if (!any || ov->error != SL_OK) return;
    for (int i = 0; i < SL_ENGINE_MAX_PENDING; i++)
        ov->slot[i].progressed = ov->slot[i].progressed || ov->slot[i].unit >= 0;
    ov->reduce_progressed = ov->reduce_progressed || ov->reduce != NULL;
    const sl_status st = sl_comm_progress(e->shard_comm);
    if (st != SL_OK) {
        ov->error = st;
        snprintf(ov->error_text, sizeof ov->error_text, "%s", sl_error_message());
    }
}

sl_status sl_engine_overlap_create(sl_engine *e) {
    e->overlap = calloc(1, sizeof *e->overlap);
    if (!e->overlap) return sl_error_set(SL_ERR_OOM, "engine: out of memory (prefetch state)");
    for (int i = 0; i < SL_ENGINE_MAX_PENDING; i++)
        e->overlap->slot[i].unit = -1;
    sl_kctx_set_progress(e->ctx, sl_engine_progress_hook, e);
    return SL_OK;
}

static sl_status sl_engine_gather_finish(sl_engine *e, sl_engine_pending *p);

void sl_engine_reduce_pending(sl_engine *e, sl_comm_request *req, void *stage, int64_t bytes) {
    e->overlap->reduce = req;
    e->overlap->reduce_stage = stage;
    e->overlap->reduce_stage_bytes = bytes;
    e->overlap->reduce_progressed = false;
    e->overlap->reduces++;
}

sl_status sl_engine_reduce_finish(sl_engine *e) {
    struct sl_engine_overlap *ov = e->overlap;
    if (!ov || !ov->reduce_stage) return SL_OK;
    sl_status st = SL_OK;
    ov->reduces_overlapped += ov->reduce_progressed;
    if (ov->reduce) {
        const double t0 = sl_engine_now();
        st = sl_comm_wait(&ov->reduce);
        sl_engine_comm_blocked(e, t0);
    }
    if (st == SL_OK && ov->error != SL_OK) {
        st = sl_error_set(ov->error, "engine: advancing a gradient reduce-scatter failed: %s",
                          ov->error_text);
    }
    sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, ov->reduce_stage_bytes,
                   ov->reduce_stage);
    ov->reduce = NULL;
    ov->reduce_stage = NULL;
    return st;
}

void sl_engine_overlap_destroy(sl_engine *e) {
    if (!e->overlap) return;
    /* the requests write into gathered storage: complete them before anything is freed */
    for (int i = 0; i < SL_ENGINE_MAX_PENDING; i++) {
        if (e->overlap->slot[i].unit >= 0) (void)sl_engine_gather_finish(e, &e->overlap->slot[i]);
    }
    (void)sl_engine_reduce_finish(e);
    if (e->ctx) sl_kctx_set_progress(e->ctx, NULL, NULL);
    free(e->overlap);
    e->overlap = NULL;
}

/* Completes p: waits for the collective, releases the send shard, and puts the elements of
 * several buffers in buffer order. Frees the slot whatever happens. */
static sl_status sl_engine_gather_finish(sl_engine *e, sl_engine_pending *p) {
    sl_status st = SL_OK;
    if (p->req) {
        e->overlap->issued++;
        e->overlap->overlapped += p->progressed;
        const double t0 = sl_engine_now();
        st = sl_comm_wait(&p->req);
        sl_engine_comm_blocked(e, t0);
    }
    if (st == SL_OK && e->overlap->error != SL_OK) {
        st = sl_error_set(e->overlap->error,
                          "engine: advancing a prefetched all-gather of unit %d "
                          "failed: %s",
                          p->unit, e->overlap->error_text);
    }
    if (p->stage) sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, p->stage_bytes, p->stage);
    if (st == SL_OK && p->n > 1) {
        const int G = e->plan->shard_group_size;
        const int64_t seen_bytes = ((int64_t)G * p->S + 7) / 8;
        void *seen = NULL;
        st = sl_engine_alloc(e, SL_SPACE_DEVICE, SL_MEM_WORKSPACE, seen_bytes, &seen);
        if (st == SL_OK) {
            memset(seen, 0, (size_t)seen_bytes);
            sl_engine_unscramble(p->dst, sl_dtype_size(e->pd), G, p->S, p->off, p->sn, p->n, seen);
            sl_engine_free(e, SL_SPACE_DEVICE, SL_MEM_WORKSPACE, seen_bytes, seen);
        }
    }
    free(p->off);
    free(p->sn);
    *p = (sl_engine_pending){.unit = -1};
    return st;
}

/* Issues the all-gather of buffers list[0..n) of the shard group into dst[i] (numel_padded
 * elements of param_dtype each, lying back to back) as ONE collective from a staged send shard:
 * rank-major into the destination, put in buffer order in place when it completes — so the
 * staging is the send shard alone, as the plan counts it. With `async` the collective stays in
 * flight in p; otherwise it completes here. A shard group of one is a local cast. */
static sl_status sl_engine_gather_start(sl_engine *e, const int *list, int n, void **dst,
                                        sl_phase phase, int micro, int unit, bool async,
                                        sl_engine_pending *p) {
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
    *p = (sl_engine_pending){.unit = unit, .n = n, .S = S, .dst = dst[0]};
    p->off = calloc((size_t)n, sizeof *p->off);
    p->sn = calloc((size_t)n, sizeof *p->sn);
    sl_status st = p->off && p->sn ? SL_OK
                                   : sl_error_set(SL_ERR_OOM,
                                                  "engine: out of memory gathering "
                                                  "parameters of unit %d",
                                                  unit);
    for (int i = 0; st == SL_OK && i < n; i++) {
        p->sn[i] = plan->buffers[list[i]].shard_numel;
        p->off[i] = i ? p->off[i - 1] + p->sn[i - 1] : 0;
        if ((char *)dst[i] != (char *)dst[0] + (size_t)((int64_t)G * p->off[i]) * psize) {
            st = sl_error_set(SL_ERR_INTERNAL, "engine: gathered buffers are not contiguous");
        }
    }
    /* FSDP's units: the send shard is staged in place, at this rank's position of the
     * destination, so that no staging buffer is live beside a reduce-scatter in flight (its
     * staging, G times a unit's shard, is the comm_buffers peak the plan predicts). */
    const bool in_place = unit >= 0 && (plan->layout == SL_LAYOUT_FLAT_PER_UNIT ||
                                        plan->layout == SL_LAYOUT_PER_PARAM_DIM0);
    void *send = (char *)dst[0] + (size_t)((int64_t)sl_comm_rank(e->shard_comm) * S) * psize;
    p->stage_bytes = in_place ? 0 : S * (int64_t)psize;
    if (st == SL_OK && !in_place) {
        st = sl_engine_alloc(e, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, p->stage_bytes, &p->stage);
        send = p->stage;
    }
    for (int i = 0; st == SL_OK && i < n; i++) {
        sl_engine_convert(sl_engine_ptr(send, e->pd, p->off[i]), e->pd,
                          sl_engine_ptr(e->master, e->md, e->shard_off[list[i]]), e->md, p->sn[i]);
    }
    if (st == SL_OK) {
        sl_comm_opts o = sl_comm_opts_default();
        o.phase = phase;
        o.micro_step = micro;
        o.unit = unit;
        const double t0 = sl_engine_now();
        st = sl_comm_all_gather(e->shard_comm, send, dst[0], (size_t)S, e->pd, &o,
                                async ? &p->req : NULL);
        if (!async) sl_engine_comm_blocked(e, t0);
    }
    if (st == SL_OK) sl_engine_note_collective(e, e->shard_comm);
    if (st != SL_OK || !async) {
        const sl_status fin = sl_engine_gather_finish(e, p);
        return st != SL_OK ? st : fin;
    }
    return SL_OK;
}

/* The unit's non-persistent buffers and where each lands in its gathered storage. */
static int sl_engine_unit_buffers(sl_engine *e, int unit, int *list, void **dst) {
    int n = 0;
    for (int b = 0; b < e->plan->n_buffers; b++) {
        if (e->plan->buffers[b].unit != unit || e->plan->buffers[b].persistent) continue;
        list[n] = b;
        dst[n++] = sl_engine_ptr(e->gathered[unit], e->pd, e->gather_off[b]);
    }
    return n;
}

static sl_engine_pending *sl_engine_pending_of(sl_engine *e, int unit) {
    for (int i = 0; i < SL_ENGINE_MAX_PENDING; i++) {
        if (e->overlap->slot[i].unit == unit) return &e->overlap->slot[i];
    }
    return NULL;
}

/* Gathers `unit` (held from here on): completed now, or left in flight in slot p. */
static sl_status sl_engine_gather_unit(sl_engine *e, int unit, sl_phase phase, int micro,
                                       sl_engine_pending *p) {
    e->held[unit] = true;
    if (!e->per_unit) return SL_OK; /* parameters are resident */
    const sl_plan *plan = e->plan;
    SL_TRY(sl_engine_alloc(e, SL_SPACE_DEVICE, SL_MEM_PARAMS_GATHERED,
                           e->gather_numel[unit] * (int64_t)sl_dtype_size(e->pd),
                           &e->gathered[unit]));
    int *list = calloc((size_t)plan->n_buffers, sizeof *list);
    void **dst = calloc((size_t)plan->n_buffers, sizeof *dst);
    if (!list || !dst) {
        free(list);
        free(dst);
        return sl_error_set(SL_ERR_OOM, "engine: out of memory gathering unit %d", unit);
    }
    const int n = sl_engine_unit_buffers(e, unit, list, dst);
    sl_engine_pending local = {.unit = -1};
    sl_status st =
        n ? sl_engine_gather_start(e, list, n, dst, phase, micro, unit, p != NULL, p ? p : &local)
          : SL_OK;
    free(list);
    free(dst);
    if (!p || p->unit < 0) sl_engine_bind_views(e);
    return st;
}

sl_status sl_engine_gather(sl_engine *e, int unit, sl_phase phase, int micro) {
    e->obs.dtype_table[SL_STAGE_TRAINING] = e->pd;
    sl_engine_pending *p = sl_engine_pending_of(e, unit);
    if (p) {
        const sl_status st = sl_engine_gather_finish(e, p);
        sl_engine_bind_views(e);
        return st;
    }
    if (e->held[unit]) return SL_OK;
    return sl_engine_gather_unit(e, unit, phase, micro, NULL);
}

sl_status sl_engine_prefetch(sl_engine *e, int unit, sl_phase phase, int micro) {
    if (unit < 0 || unit >= e->desc->n_units || e->held[unit]) return SL_OK;
    e->obs.dtype_table[SL_STAGE_TRAINING] = e->pd;
    sl_engine_pending *p = sl_engine_pending_of(e, -1);
    if (!p) {
        return sl_error_set(SL_ERR_INTERNAL,
                            "engine: prefetching unit %d with %d all-gathers already in flight",
                            unit, SL_ENGINE_MAX_PENDING);
    }
    return sl_engine_gather_unit(e, unit, phase, micro, p);
}

void sl_engine_release(sl_engine *e, int unit) {
    if (!e->held[unit]) return;
    sl_engine_pending *p = sl_engine_pending_of(e, unit);
    if (p && sl_engine_gather_finish(e, p) != SL_OK) {
        /* a unit released unused (a failed micro-step): its values no longer matter */
        SL_LOG_WARN("engine: %s", sl_error_message());
    }
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
    sl_engine_pending p = {.unit = -1};
    sl_status st = sl_engine_gather_start(e, list, n, dst, SL_PHASE_STEP,
                                          plan->grad_accum_steps - 1, -1, false, &p);
    free(list);
    free(dst);
    return st;
}
