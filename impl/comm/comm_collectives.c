/* The collective calls: check the arguments, run the debug signature check, count the call, then
 * start the backend operations (comm_native.c, comm_deterministic.c for reductions) and either
 * hand the request back or wait for it. */
#include <stdint.h>

#include "impl/comm/comm_internal.h"

static sl_status sl_comm_check_dtype(int op, sl_dtype dt, bool reduction) {
    if ((int)dt < 0 || dt >= SL_DTYPE_COUNT) {
        return sl_error_set(SL_ERR_INVALID_ARG, "%s: unknown dtype %d", sl_comm_op_name(op),
                            (int)dt);
    }
    if (reduction && !sl_comm_dtype_reducible(dt)) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "%s: cannot sum %s buffers; reductions take fp32, bf16 or fp16",
                            sl_comm_op_name(op), sl_dtype_name(dt));
    }
    return SL_OK;
}

static sl_status sl_comm_check_opts(int op, const sl_comm_opts *o) {
    if (o->divide_world < 0 || (int)o->divide < SL_DIVIDE_PRE_POST_POW2 ||
        o->divide > SL_DIVIDE_POST) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "%s: invalid divide options (divide_world %d, rule %d); expected "
                            "divide_world >= 0 (0: plain sum) and an sl_grad_divide rule",
                            sl_comm_op_name(op), o->divide_world, (int)o->divide);
    }
    return SL_OK;
}

static sl_status sl_comm_check_buffers(int op, const void *send, const void *recv, size_t count) {
    if (count > 0 && (!send || !recv)) {
        return sl_error_set(SL_ERR_INVALID_ARG, "%s: a NULL buffer for %zu elements",
                            sl_comm_op_name(op), count);
    }
    return SL_OK;
}

static bool sl_comm_overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes) {
    const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return a_bytes && b_bytes && pa < pb + b_bytes && pb < pa + a_bytes;
}

/* Creates the request, checks signatures in debug mode and makes room for the call's record. */
static sl_status sl_comm_begin(sl_comm *c, int op, sl_dtype dt, size_t count, int root,
                               const sl_comm_opts *o, sl_comm_request **out) {
    SL_TRY(sl_comm_request_create(c, op, dt, count, root, out));
    sl_status st = SL_OK;
    if (c->debug) st = sl_comm_debug_check(c, op, dt, count, root, o, (*out)->seq);
    if (st == SL_OK) st = sl_comm_count_reserve(c);
    if (st != SL_OK) {
        sl_comm_request_submit(*out, st, NULL);
        *out = NULL;
    }
    return st;
}

sl_status sl_comm_all_gather(sl_comm *comm, const void *send, void *recv, size_t count, sl_dtype dt,
                             const sl_comm_opts *opts, sl_comm_request **req) {
    const sl_comm_opts o = opts ? *opts : sl_comm_opts_default();
    const int op = SL_COLL_ALL_GATHER;
    SL_TRY(sl_comm_check_dtype(op, dt, false));
    SL_TRY(sl_comm_check_buffers(op, send, recv, count));
    const size_t esize = sl_dtype_size(dt);
    const bool in_place =
        count > 0 && send == (const char *)recv + (size_t)comm->rank * count * esize;
    if (!in_place &&
        sl_comm_overlap(send, count * esize, recv, (size_t)comm->size * count * esize)) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "all_gather: send overlaps recv without being this rank's chunk "
                            "(recv + rank * count); pass that chunk or a separate buffer");
    }
    sl_comm_request *r = NULL;
    SL_TRY(sl_comm_begin(comm, op, dt, count, -1, &o, &r));
    const sl_status st = comm->be->all_gather(comm->impl, SL_COMM_CHAN_ISSUE,
                                              in_place ? NULL : send, recv, count, dt, &r->handle);
    if (st == SL_OK) sl_comm_count(comm, op, dt, count, &o);
    return sl_comm_request_submit(r, st, req);
}

sl_status sl_comm_reduce_scatter(sl_comm *comm, const void *send, void *recv, size_t count,
                                 sl_dtype dt, const sl_comm_opts *opts, sl_comm_request **req) {
    const sl_comm_opts o = opts ? *opts : sl_comm_opts_default();
    const int op = SL_COLL_REDUCE_SCATTER;
    SL_TRY(sl_comm_check_dtype(op, dt, true));
    SL_TRY(sl_comm_check_opts(op, &o));
    SL_TRY(sl_comm_check_buffers(op, send, recv, count));
    const size_t esize = sl_dtype_size(dt);
    if (sl_comm_overlap(send, (size_t)comm->size * count * esize, recv, count * esize)) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "reduce_scatter: send (%d x %zu elements) and recv (%zu elements) "
                            "overlap; use separate buffers",
                            comm->size, count, count);
    }
    sl_comm_request *r = NULL;
    SL_TRY(sl_comm_begin(comm, op, dt, count, -1, &o, &r));
    r->send = send;
    r->recv = recv;
    r->div = sl_comm_divide_resolve(&o);
    const sl_status st = o.deterministic ? sl_comm_det_reduce_scatter_start(r)
                                         : sl_comm_native_reduce_scatter_start(r);
    if (st == SL_OK) sl_comm_count(comm, op, dt, count, &o);
    return sl_comm_request_submit(r, st, req);
}

sl_status sl_comm_all_reduce(sl_comm *comm, const void *send, void *recv, size_t count, sl_dtype dt,
                             const sl_comm_opts *opts, sl_comm_request **req) {
    const sl_comm_opts o = opts ? *opts : sl_comm_opts_default();
    const int op = SL_COLL_ALL_REDUCE;
    SL_TRY(sl_comm_check_dtype(op, dt, true));
    SL_TRY(sl_comm_check_opts(op, &o));
    SL_TRY(sl_comm_check_buffers(op, send, recv, count));
    const size_t bytes = count * sl_dtype_size(dt);
    if (send != recv && sl_comm_overlap(send, bytes, recv, bytes)) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "all_reduce: send and recv overlap without being the same buffer");
    }
    sl_comm_request *r = NULL;
    SL_TRY(sl_comm_begin(comm, op, dt, count, -1, &o, &r));
    r->send = send;
    r->recv = recv;
    r->div = sl_comm_divide_resolve(&o);
    const sl_status st =
        o.deterministic ? sl_comm_det_all_reduce_start(r) : sl_comm_native_all_reduce_start(r);
    if (st == SL_OK) sl_comm_count(comm, op, dt, count, &o);
    return sl_comm_request_submit(r, st, req);
}

sl_status sl_comm_broadcast(sl_comm *comm, void *buf, size_t count, sl_dtype dt, int root,
                            const sl_comm_opts *opts, sl_comm_request **req) {
    const sl_comm_opts o = opts ? *opts : sl_comm_opts_default();
    const int op = SL_COLL_BROADCAST;
    SL_TRY(sl_comm_check_dtype(op, dt, false));
    SL_TRY(sl_comm_check_buffers(op, buf, buf, count));
    if (root < 0 || root >= comm->size) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "broadcast: root %d is not a rank of this %d-rank "
                            "communicator",
                            root, comm->size);
    }
    sl_comm_request *r = NULL;
    SL_TRY(sl_comm_begin(comm, op, dt, count, root, &o, &r));
    const sl_status st = comm->be->broadcast(comm->impl, buf, count, dt, root, &r->handle);
    if (st == SL_OK) sl_comm_count(comm, op, dt, count, &o);
    return sl_comm_request_submit(r, st, req);
}

sl_status sl_comm_barrier(sl_comm *comm, sl_comm_request **req) {
    const sl_comm_opts o = sl_comm_opts_default();
    sl_comm_request *r = NULL;
    SL_TRY(sl_comm_begin(comm, SL_COMM_OP_BARRIER, SL_DTYPE_F32, 0, -1, &o, &r));
    const sl_status st = comm->be->barrier(comm->impl, &r->handle);
    if (st == SL_OK) sl_comm_count(comm, SL_COMM_OP_BARRIER, SL_DTYPE_F32, 0, &o);
    return sl_comm_request_submit(r, st, req);
}
