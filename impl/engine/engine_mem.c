/* The engine's accounting allocator: every buffer that grows with the model or the batch is
 * allocated here under a memory category of DESIGN.md §6, so the observed peaks are those of
 * the memory actually held (bytes = elements × the buffer's storage dtype size). */
#include <stdlib.h>

#include "impl/engine/engine_internal.h"

sl_status sl_engine_alloc(sl_engine *e, sl_mem_space sp, sl_mem_category c, int64_t bytes,
                          void **out) {
    *out = NULL;
    if (bytes > 0) {
        sl_status st = e->k->alloc(e->ctx, (size_t)bytes, out);
        if (st != SL_OK) {
            return sl_error_prefix(st, "rank %d: %s (%lld bytes): ", e->rank,
                                   sl_mem_category_name(c), (long long)bytes);
        }
    }
    sl_observation_mem_alloc(&e->obs, e->rank, sp, c, bytes);
    return SL_OK;
}

void sl_engine_free(sl_engine *e, sl_mem_space sp, sl_mem_category c, int64_t bytes, void *p) {
    if (p) e->k->release(e->ctx, p);
    sl_observation_mem_free(&e->obs, e->rank, sp, c, bytes);
}

void sl_engine_charge(sl_engine *e, sl_mem_space sp, sl_mem_category c, int64_t bytes, bool on) {
    if (on) {
        sl_observation_mem_alloc(&e->obs, e->rank, sp, c, bytes);
    } else {
        sl_observation_mem_free(&e->obs, e->rank, sp, c, bytes);
    }
}

void sl_engine_note_collective(sl_engine *e, sl_comm *comm) {
    sl_comm_totals t;
    sl_comm_get_totals(comm, &t);
    if (t.scratch_bytes_peak > e->comm_scratch_peak) e->comm_scratch_peak = t.scratch_bytes_peak;
    int n = 0;
    const sl_collective_record *recs = sl_comm_records(comm, &n);
    if (n == 0) return;
    const sl_collective_record rec = recs[n - 1];
    /* Keep the comm's record list short: only the last call is ever read. */
    if (n > 64) sl_comm_reset_stats(comm);
    if (!e->record || rec.group_size < 2) return;
    (void)sl_observation_add_collective(&e->obs, &rec);
}
