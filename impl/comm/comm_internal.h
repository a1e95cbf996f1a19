/* Inside sl_comm: the backend interface, the communicator and the request state machine.
 *
 * The generic layer (comm*.c) owns everything a backend should not repeat: argument checks,
 * counting, the debug signature check, the watchdog, the divide rules and the deterministic
 * algorithms, which it composes from a backend's data-movement primitives and arithmetic. A
 * backend supplies those primitives; an NCCL backend would supply device versions of the same
 * functions (its arithmetic as kernels, its staging memory on the device) and nothing else. */
#ifndef SHARDLAB_IMPL_COMM_INTERNAL_H
#define SHARDLAB_IMPL_COMM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/comm/comm_reduce.h"
#include "shardlab/comm.h"

/* Internal op code next to sl_coll_op for the one operation outside the record schema. */
#define SL_COMM_OP_BARRIER ((int)SL_COLL_OP_COUNT)
const char *sl_comm_op_name(int op);

/* Operations started by a collective call go on the ISSUE channel, in program order. Second
 * stages (the all-gather of a deterministic all-reduce) start later, while requests are being
 * progressed; they go on the DEFERRED channel, always in request order (comm_request.c), so both
 * channels see the same sequence on every rank, as MPI requires. */
typedef enum sl_comm_channel { SL_COMM_CHAN_ISSUE, SL_COMM_CHAN_DEFERRED } sl_comm_channel;

/* A backend. `impl` is its per-communicator state; `*h` receives an operation in flight, or NULL
 * when the operation completed inside the call. Counts are in elements of dt. */
typedef struct sl_comm_backend {
    const char *name;
    sl_status (*split)(void *impl, int color, int key, void **out, int *rank, int *size);
    void (*destroy)(void *impl);

    /* staging memory in the backend's memory space */
    void *(*alloc)(size_t bytes);
    void (*release)(void *p);

    /* arithmetic on that memory (comm_reduce.h for host memory) */
    void (*sum_ranks)(void *out, const void *in, size_t n, int n_ranks, size_t stride, sl_dtype dt,
                      float pre_div);
    void (*divide_array)(void *dst, const void *src, size_t n, sl_dtype dt, float div);
    void (*post_divide)(void *buf, size_t n, sl_dtype dt, const sl_comm_divide *d);

    /* data movement; send == NULL in all_gather: this rank's chunk is already in place */
    sl_status (*all_gather)(void *impl, sl_comm_channel ch, const void *send, void *recv,
                            size_t count, sl_dtype dt, void **h);
    /* in place: rank r's counts[r] elements are already at recv + displs[r] */
    sl_status (*all_gatherv)(void *impl, sl_comm_channel ch, void *recv, const size_t *counts,
                             const size_t *displs, sl_dtype dt, void **h);
    sl_status (*all_to_all)(void *impl, sl_comm_channel ch, const void *send, void *recv,
                            size_t count, sl_dtype dt, void **h);
    sl_status (*all_to_allv)(void *impl, sl_comm_channel ch, const void *send,
                             const size_t *send_counts, const size_t *send_displs, void *recv,
                             const size_t *recv_counts, const size_t *recv_displs, sl_dtype dt,
                             void **h);
    sl_status (*broadcast)(void *impl, void *buf, size_t count, sl_dtype dt, int root, void **h);
    sl_status (*barrier)(void *impl, void **h);

    /* native sums: the backend's own algorithm, each addition rounded to dt; send == recv is in
     * place (all_reduce only) */
    sl_status (*reduce_scatter_sum)(void *impl, const void *send, void *recv, size_t count,
                                    sl_dtype dt, void **h);
    sl_status (*all_reduce_sum)(void *impl, const void *send, void *recv, size_t count, sl_dtype dt,
                                void **h);

    /* sets *done and releases h once the operation has completed */
    sl_status (*test)(void *impl, void *h, bool *done);

    /* ends the whole job (the watchdog's last resort); may return if it cannot */
    void (*abort_job)(void *impl, int code);
} sl_comm_backend;

extern const sl_comm_backend sl_comm_backend_local;
extern const sl_comm_backend sl_comm_backend_mpi;

/* MPI's world communicator as a backend impl (initialising MPI if needed); world_rank is this
 * process's rank in MPI_COMM_WORLD. */
sl_status sl_comm_mpi_open_world(void **impl, int *rank, int *size, int *world_rank);

struct sl_comm {
    const sl_comm_backend *be;
    void *impl;
    int rank, size;
    int world_rank; /* for messages: the rank the job's output names */
    sl_coll_group group;
    bool debug;
    double timeout_s;
    uint64_t seq;                 /* collectives issued, barriers included */
    sl_comm_request *head, *tail; /* requests not yet released, in issue order */

    sl_comm_totals totals;
    int64_t scratch_bytes;
    int n_records, cap_records;
    sl_collective_record *records;
};

typedef sl_status (*sl_comm_step_fn)(sl_comm_request *r);

struct sl_comm_request {
    sl_comm *comm;
    sl_comm_request *next;
    int op;
    sl_dtype dt;
    size_t count;
    int root;
    uint64_t seq;

    void *handle;                /* the backend operation in flight, or NULL */
    sl_comm_step_fn on_complete; /* runs once handle is done: starts the next stage or finishes */
    bool defers;                 /* on_complete starts an operation on the DEFERRED channel */
    bool done;
    sl_status status;
    char *error; /* the failure's message, kept until the caller collects it */

    const void *send;
    void *recv;
    void *scratch;
    size_t scratch_bytes;
    size_t *counts, *displs, *recv_counts, *recv_displs; /* [size] each, for the v-variants */
    sl_comm_divide div;
};

/* comm_request.c */
sl_status sl_comm_request_create(sl_comm *c, int op, sl_dtype dt, size_t count, int root,
                                 sl_comm_request **out);
/* Links a started request into the comm's queue and hands it to the caller (req != NULL) or
 * waits for it. A start that failed releases the request and returns the failure. */
sl_status sl_comm_request_submit(sl_comm_request *r, sl_status start, sl_comm_request **req);
sl_status sl_comm_request_scratch(sl_comm_request *r, size_t bytes);
/* Waits for one backend operation that is not part of a request (the debug exchange), under the
 * watchdog; `what` names it in the watchdog's message. */
sl_status sl_comm_wait_handle(sl_comm *c, void *h, const char *what);

/* comm_debug.c: the signature exchange of SHARDLAB_COMM_DEBUG. */
sl_status sl_comm_debug_check(sl_comm *c, int op, sl_dtype dt, size_t count, int root,
                              const sl_comm_opts *o, uint64_t seq);

/* comm.c: makes room for one record, then (once the call has started) adds the call to the
 * totals and records. */
sl_status sl_comm_count_reserve(sl_comm *c);
void sl_comm_count(sl_comm *c, int op, sl_dtype dt, size_t count, const sl_comm_opts *o);

/* comm_deterministic.c, comm_native.c: start a reduction on a created request. */
sl_status sl_comm_det_reduce_scatter_start(sl_comm_request *r);
sl_status sl_comm_det_all_reduce_start(sl_comm_request *r);
sl_status sl_comm_native_reduce_scatter_start(sl_comm_request *r);
sl_status sl_comm_native_all_reduce_start(sl_comm_request *r);

#endif
