/* The MPI backend (Open MPI; one machine or many). Every operation is MPI's non-blocking variant,
 * blocking calls included: the generic layer polls it, which is what lets the watchdog see a
 * collective that never completes. Each communicator holds two duplicates of its MPI
 * communicator, one per channel (comm_internal.h), and returns MPI errors instead of aborting. */
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>

#include "impl/comm/comm_internal.h"
#include "impl/comm/comm_mpi_ops.h"

typedef struct sl_mpi_comm {
    MPI_Comm chan[2]; /* indexed by sl_comm_channel */
} sl_mpi_comm;

/* An operation in flight; ints holds the count and displacement arrays of the v-variants, which
 * MPI reads until the operation completes. */
typedef struct sl_mpi_op {
    MPI_Request req;
    int *ints;
} sl_mpi_op;

static int sl_mpi_live;       /* MPI communicators alive in this process */
static bool sl_mpi_owns_init; /* MPI_Init was ours, so MPI_Finalize is too */

static sl_status sl_mpi_check(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return SL_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = '\0';
    return sl_error_set(SL_ERR_IO, "MPI: %s failed: %s", what, len ? msg : "unknown error");
}

static sl_status sl_mpi_int(size_t v, const char *what, int *out) {
    if (v > (size_t)INT_MAX) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "%s: %zu elements exceed MPI's count limit of %d; split the buffer",
                            what, v, INT_MAX);
    }
    *out = (int)v;
    return SL_OK;
}

/* Both channels from one MPI communicator, which the result takes over. */
static sl_status sl_mpi_wrap(MPI_Comm base, void **out, int *rank, int *size) {
    *out = NULL;
    sl_mpi_comm *m = calloc(1, sizeof *m);
    if (!m) {
        MPI_Comm_free(&base);
        return sl_error_set(SL_ERR_OOM, "out of memory creating an MPI communicator");
    }
    m->chan[SL_COMM_CHAN_ISSUE] = base;
    sl_status st =
        sl_mpi_check(MPI_Comm_set_errhandler(base, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    if (st == SL_OK) {
        st = sl_mpi_check(MPI_Comm_dup(base, &m->chan[SL_COMM_CHAN_DEFERRED]), "MPI_Comm_dup");
    }
    if (st == SL_OK) st = sl_mpi_check(MPI_Comm_rank(base, rank), "MPI_Comm_rank");
    if (st == SL_OK) st = sl_mpi_check(MPI_Comm_size(base, size), "MPI_Comm_size");
    if (st != SL_OK) {
        MPI_Comm_free(&m->chan[SL_COMM_CHAN_ISSUE]);
        if (m->chan[SL_COMM_CHAN_DEFERRED] != MPI_COMM_NULL) {
            MPI_Comm_free(&m->chan[SL_COMM_CHAN_DEFERRED]);
        }
        free(m);
        return st;
    }
    sl_mpi_live++;
    *out = m;
    return SL_OK;
}

sl_status sl_comm_mpi_open_world(void **impl, int *rank, int *size, int *world_rank) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (finalized) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "MPI was finalised when the last MPI communicator of this process was "
                            "destroyed and cannot start again; keep one communicator alive for "
                            "the whole run");
    }
    if (!initialized) {
        int provided = 0;
        SL_TRY(sl_mpi_check(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided),
                            "MPI_Init_thread"));
        sl_mpi_owns_init = true;
    }
    if (sl_mpi_live == 0) SL_TRY(sl_comm_mpi_ops_create());
    SL_TRY(sl_mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, world_rank), "MPI_Comm_rank"));
    MPI_Comm dup = MPI_COMM_NULL;
    SL_TRY(sl_mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &dup), "MPI_Comm_dup of MPI_COMM_WORLD"));
    return sl_mpi_wrap(dup, impl, rank, size);
}

static sl_status sl_mpi_split(void *impl, int color, int key, void **out, int *rank, int *size) {
    sl_mpi_comm *m = impl;
    MPI_Comm part = MPI_COMM_NULL;
    SL_TRY(sl_mpi_check(MPI_Comm_split(m->chan[SL_COMM_CHAN_ISSUE], color, key, &part),
                        "MPI_Comm_split"));
    return sl_mpi_wrap(part, out, rank, size);
}

static void sl_mpi_destroy(void *impl) {
    sl_mpi_comm *m = impl;
    MPI_Comm_free(&m->chan[SL_COMM_CHAN_ISSUE]);
    MPI_Comm_free(&m->chan[SL_COMM_CHAN_DEFERRED]);
    free(m);
    if (--sl_mpi_live > 0) return;
    sl_comm_mpi_ops_free();
    if (sl_mpi_owns_init) MPI_Finalize();
}

static void *sl_mpi_alloc(size_t bytes) {
    return malloc(bytes);
}

static void sl_mpi_release(void *p) {
    free(p);
}

/* A request to start an operation into, with room for n ints (the v-variants' arrays). */
static sl_status sl_mpi_op_new(size_t n_ints, sl_mpi_op **out) {
    sl_mpi_op *op = calloc(1, sizeof *op);
    if (op && n_ints) op->ints = malloc(n_ints * sizeof *op->ints);
    if (!op || (n_ints && !op->ints)) {
        free(op);
        *out = NULL;
        return sl_error_set(SL_ERR_OOM, "out of memory starting an MPI operation");
    }
    *out = op;
    return SL_OK;
}

static void sl_mpi_op_free(sl_mpi_op *op) {
    free(op->ints);
    free(op);
}

/* Hands a started operation to the caller, or frees it when the start failed. */
static sl_status sl_mpi_started(int rc, const char *what, sl_mpi_op *op, void **h) {
    const sl_status st = sl_mpi_check(rc, what);
    if (st != SL_OK) {
        sl_mpi_op_free(op);
        *h = NULL;
        return st;
    }
    *h = op;
    return SL_OK;
}

/* dst[i] = (int)src[i] for i < n, each within MPI's int range. */
static sl_status sl_mpi_ints(int *dst, const size_t *src, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        SL_TRY(sl_mpi_int(src[i], what, &dst[i]));
    return SL_OK;
}

static int sl_mpi_size(const sl_mpi_comm *m) {
    int n = 0;
    MPI_Comm_size(m->chan[SL_COMM_CHAN_ISSUE], &n);
    return n;
}

static sl_status sl_mpi_all_gather(void *impl, sl_comm_channel ch, const void *send, void *recv,
                                   size_t count, sl_dtype dt, void **h) {
    sl_mpi_comm *m = impl;
    int n = 0;
    SL_TRY(sl_mpi_int(count, "all_gather", &n));
    sl_mpi_op *op = NULL;
    SL_TRY(sl_mpi_op_new(0, &op));
    const MPI_Datatype t = sl_comm_mpi_type(dt);
    const int rc =
        MPI_Iallgather(send ? send : MPI_IN_PLACE, n, t, recv, n, t, m->chan[ch], &op->req);
    return sl_mpi_started(rc, "MPI_Iallgather", op, h);
}

static sl_status sl_mpi_all_gatherv(void *impl, sl_comm_channel ch, void *recv,
                                    const size_t *counts, const size_t *displs, sl_dtype dt,
                                    void **h) {
    sl_mpi_comm *m = impl;
    const size_t n = (size_t)sl_mpi_size(m);
    sl_mpi_op *op = NULL;
    SL_TRY(sl_mpi_op_new(2 * n, &op));
    sl_status st = sl_mpi_ints(op->ints, counts, n, "all_gatherv");
    if (st == SL_OK) st = sl_mpi_ints(op->ints + n, displs, n, "all_gatherv");
    if (st != SL_OK) {
        sl_mpi_op_free(op);
        return st;
    }
    const MPI_Datatype t = sl_comm_mpi_type(dt);
    const int rc =
        MPI_Iallgatherv(MPI_IN_PLACE, 0, t, recv, op->ints, op->ints + n, t, m->chan[ch], &op->req);
    return sl_mpi_started(rc, "MPI_Iallgatherv", op, h);
}

static sl_status sl_mpi_all_to_all(void *impl, sl_comm_channel ch, const void *send, void *recv,
                                   size_t count, sl_dtype dt, void **h) {
    sl_mpi_comm *m = impl;
    int n = 0;
    SL_TRY(sl_mpi_int(count, "all_to_all", &n));
    sl_mpi_op *op = NULL;
    SL_TRY(sl_mpi_op_new(0, &op));
    const MPI_Datatype t = sl_comm_mpi_type(dt);
    const int rc = MPI_Ialltoall(send, n, t, recv, n, t, m->chan[ch], &op->req);
    return sl_mpi_started(rc, "MPI_Ialltoall", op, h);
}

static sl_status sl_mpi_all_to_allv(void *impl, sl_comm_channel ch, const void *send,
                                    const size_t *send_counts, const size_t *send_displs,
                                    void *recv, const size_t *recv_counts,
                                    const size_t *recv_displs, sl_dtype dt, void **h) {
    sl_mpi_comm *m = impl;
    const size_t n = (size_t)sl_mpi_size(m);
    sl_mpi_op *op = NULL;
    SL_TRY(sl_mpi_op_new(4 * n, &op));
    int *sc = op->ints, *sd = sc + n, *rc_ = sd + n, *rd = rc_ + n;
    sl_status st = sl_mpi_ints(sc, send_counts, n, "all_to_allv");
    if (st == SL_OK) st = sl_mpi_ints(sd, send_displs, n, "all_to_allv");
    if (st == SL_OK) st = sl_mpi_ints(rc_, recv_counts, n, "all_to_allv");
    if (st == SL_OK) st = sl_mpi_ints(rd, recv_displs, n, "all_to_allv");
    if (st != SL_OK) {
        sl_mpi_op_free(op);
        return st;
    }
    const MPI_Datatype t = sl_comm_mpi_type(dt);
    const int rc = MPI_Ialltoallv(send, sc, sd, t, recv, rc_, rd, t, m->chan[ch], &op->req);
    return sl_mpi_started(rc, "MPI_Ialltoallv", op, h);
}

static sl_status sl_mpi_broadcast(void *impl, void *buf, size_t count, sl_dtype dt, int root,
                                  void **h) {
    sl_mpi_comm *m = impl;
    int n = 0;
    SL_TRY(sl_mpi_int(count, "broadcast", &n));
    sl_mpi_op *op = NULL;
    SL_TRY(sl_mpi_op_new(0, &op));
    const int rc =
        MPI_Ibcast(buf, n, sl_comm_mpi_type(dt), root, m->chan[SL_COMM_CHAN_ISSUE], &op->req);
    return sl_mpi_started(rc, "MPI_Ibcast", op, h);
}

static sl_status sl_mpi_barrier(void *impl, void **h) {
    sl_mpi_comm *m = impl;
    sl_mpi_op *op = NULL;
    SL_TRY(sl_mpi_op_new(0, &op));
    const int rc = MPI_Ibarrier(m->chan[SL_COMM_CHAN_ISSUE], &op->req);
    return sl_mpi_started(rc, "MPI_Ibarrier", op, h);
}

static sl_status sl_mpi_reduce_scatter_sum(void *impl, const void *send, void *recv, size_t count,
                                           sl_dtype dt, void **h) {
    sl_mpi_comm *m = impl;
    int n = 0;
    SL_TRY(sl_mpi_int(count, "reduce_scatter", &n));
    sl_mpi_op *op = NULL;
    SL_TRY(sl_mpi_op_new(0, &op));
    const int rc =
        MPI_Ireduce_scatter_block(send, recv, n, sl_comm_mpi_type(dt), sl_comm_mpi_sum(dt),
                                  m->chan[SL_COMM_CHAN_ISSUE], &op->req);
    return sl_mpi_started(rc, "MPI_Ireduce_scatter_block", op, h);
}

static sl_status sl_mpi_all_reduce_sum(void *impl, const void *send, void *recv, size_t count,
                                       sl_dtype dt, void **h) {
    sl_mpi_comm *m = impl;
    int n = 0;
    SL_TRY(sl_mpi_int(count, "all_reduce", &n));
    sl_mpi_op *op = NULL;
    SL_TRY(sl_mpi_op_new(0, &op));
    const int rc = MPI_Iallreduce(send == recv ? MPI_IN_PLACE : send, recv, n, sl_comm_mpi_type(dt),
                                  sl_comm_mpi_sum(dt), m->chan[SL_COMM_CHAN_ISSUE], &op->req);
    return sl_mpi_started(rc, "MPI_Iallreduce", op, h);
}

static sl_status sl_mpi_test(void *impl, void *h, bool *done) {
    (void)impl;
    sl_mpi_op *op = h;
    int flag = 0;
    const int rc = MPI_Test(&op->req, &flag, MPI_STATUS_IGNORE);
    *done = flag != 0 || rc != MPI_SUCCESS;
    if (*done) sl_mpi_op_free(op);
    return sl_mpi_check(rc, "MPI_Test");
}

static void sl_mpi_abort_job(void *impl, int code) {
    (void)impl;
    MPI_Abort(MPI_COMM_WORLD, code);
}

const sl_comm_backend sl_comm_backend_mpi = {
    .name = "mpi",
    .split = sl_mpi_split,
    .destroy = sl_mpi_destroy,
    .alloc = sl_mpi_alloc,
    .release = sl_mpi_release,
    .sum_ranks = sl_comm_sum_ranks,
    .divide_array = sl_comm_divide_array,
    .post_divide = sl_comm_post_divide,
    .all_gather = sl_mpi_all_gather,
    .all_gatherv = sl_mpi_all_gatherv,
    .all_to_all = sl_mpi_all_to_all,
    .all_to_allv = sl_mpi_all_to_allv,
    .broadcast = sl_mpi_broadcast,
    .barrier = sl_mpi_barrier,
    .reduce_scatter_sum = sl_mpi_reduce_scatter_sum,
    .all_reduce_sum = sl_mpi_all_reduce_sum,
    .test = sl_mpi_test,
    .abort_job = sl_mpi_abort_job,
};
