/* Deterministic reductions (DESIGN.md §4.5): every element is the sequential sum over the ranks
 * 0..n-1 of the communicator, each addition rounded to the dtype — the reference's order, so the
 * result is bit-identical to it for any n.
 *
 * reduce-scatter (send: n chunks of `count`): an all-to-all hands rank r chunk r of every rank,
 *   stacked in rank order (n × count staging elements); r sums them locally in rank order.
 * all-reduce (any count): the buffer is cut into n chunks of count/n elements, the first
 *   count % n of them one longer; an all-to-all-v and a local sum reduce chunk r on rank r, the
 *   post divide is applied to that chunk, and an all-gather-v (on the deferred channel, started
 *   once the sum is done) assembles the result. Bytes sent per rank: (n-1)/n of the buffer for
 *   each exchange, as a ring all-reduce. */
#include <stdlib.h>

#include "impl/comm/comm_internal.h"

static sl_status sl_comm_det_rs_sum(sl_comm_request *r) {
    sl_comm *c = r->comm;
    c->be->sum_ranks(r->recv, r->scratch, r->count, c->size, r->count, r->dt, r->div.pre_div);
    c->be->post_divide(r->recv, r->count, r->dt, &r->div);
    return SL_OK;
}

sl_status sl_comm_det_reduce_scatter_start(sl_comm_request *r) {
    sl_comm *c = r->comm;
    SL_TRY(sl_comm_request_scratch(r, (size_t)c->size * r->count * sl_dtype_size(r->dt)));
    r->on_complete = sl_comm_det_rs_sum;
    return c->be->all_to_all(c->impl, SL_COMM_CHAN_ISSUE, r->send, r->scratch, r->count, r->dt,
                             &r->handle);
}

/* Sums this rank's chunk into its place in recv, then starts the all-gather-v. */
static sl_status sl_comm_det_ar_sum(sl_comm_request *r) {
    sl_comm *c = r->comm;
    const size_t mine = r->counts[c->rank];
    void *chunk = (char *)r->recv + r->displs[c->rank] * sl_dtype_size(r->dt);
    c->be->sum_ranks(chunk, r->scratch, mine, c->size, mine, r->dt, r->div.pre_div);
    c->be->post_divide(chunk, mine, r->dt, &r->div);
    return c->be->all_gatherv(c->impl, SL_COMM_CHAN_DEFERRED, r->recv, r->counts, r->displs, r->dt,
                              &r->handle);
}

sl_status sl_comm_det_all_reduce_start(sl_comm_request *r) {
    sl_comm *c = r->comm;
    const size_t n = (size_t)c->size;
    r->counts = calloc(4 * n, sizeof *r->counts);
    if (!r->counts) return sl_error_set(SL_ERR_OOM, "out of memory starting an all_reduce");
    r->displs = r->counts + n;
    r->recv_counts = r->counts + 2 * n;
    r->recv_displs = r->counts + 3 * n;
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        r->counts[i] = r->count / n + (i < r->count % n ? 1 : 0);
        r->displs[i] = offset;
        offset += r->counts[i];
    }
    const size_t mine = r->counts[c->rank];
    for (size_t i = 0; i < n; i++) {
        r->recv_counts[i] = mine;
        r->recv_displs[i] = i * mine;
    }
    SL_TRY(sl_comm_request_scratch(r, n * mine * sl_dtype_size(r->dt)));
    r->on_complete = sl_comm_det_ar_sum;
    r->defers = true;
    return c->be->all_to_allv(c->impl, SL_COMM_CHAN_ISSUE, r->send, r->counts, r->displs,
                              r->scratch, r->recv_counts, r->recv_displs, r->dt, &r->handle);
}
