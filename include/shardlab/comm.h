/* sl_comm: the collectives of the engine (DESIGN.md §4.4, §4.5, §6, §8).
 *
 * A communicator is an opaque handle over a backend: `local` (one rank, no MPI) or `mpi` (Open
 * MPI, one machine or many). A device backend (NCCL) plugs in behind the same calls
 * (impl/comm/comm_internal.h): it is created from an MPI communicator, which broadcasts rank 0's
 * ncclUniqueId, and supplies device versions of the data movement and arithmetic.
 *
 * Buffers hold elements in their storage dtype: f32 arrays, or uint16_t arrays holding bf16 / f16
 * bits. Every collective takes an optional `req`: NULL runs it to completion (blocking);
 * otherwise *req receives a request to finish with sl_comm_wait() or sl_comm_test(), and the
 * buffers must stay untouched until then; requests may be finished in any order. All ranks of a
 * communicator must issue the same collectives (op, dtype, count, options) in the same order.
 * Only the thread that created the communicator may call it (MPI_THREAD_FUNNELED).
 *
 * Reductions (reduce_scatter, all_reduce) sum in the buffer's dtype, each addition rounded to it
 * (bf16/f16: widened to f32, added, rounded back), and apply the gradient divide rule of §4.4:
 *   x_r = round(x_r / pre) for every rank r   (PRE: pre = W; PRE_POST_POW2: pre = pow2 factor)
 *   s   = x_0 (+) x_1 (+) ... (+) x_{n-1}      (each (+) rounded to the dtype)
 *   s   = round(s / post) or round(s * (1/W)) (AVG: post = W; PRE_POST_POW2: post = W / pre;
 *                                              POST: multiply by f32(1/W))
 * In deterministic mode the sum runs in rank order 0..n-1 of the communicator, bit for bit the
 * reference's order for any n (reduce-scatter = an all-to-all exchange of chunks then a local
 * sequential sum; all-reduce = that, then an all-gather). In native mode the backend's algorithm
 * decides the order (MPI_Reduce_scatter_block / MPI_Allreduce; bf16 and f16 through user-defined
 * MPI operations that add in f32 and round each addition): faster, not bit-stable across n.
 *
 * Every collective is counted in the sl_collective_record schema of observe.h (op, group, group
 * size, dtype, elements in nccl-tests' convention, bytes a ring sends per rank) — see
 * sl_comm_records() and sl_comm_get_totals().
 *
 * Environment (read by sl_comm_create_from_env; children of sl_comm_split inherit the settings):
 *   SHARDLAB_COMM_BACKEND  local | mpi: overrides the detection below.
 *   SHARDLAB_COMM_DEBUG    1: before each collective the ranks exchange its signature (op, dtype,
 *                          count, options, sequence number); a mismatch fails the call on every
 *                          rank with SL_ERR_MISMATCH naming both signatures, instead of a hang.
 *                          The exchange blocks, so debug mode serialises non-blocking calls.
 *   SHARDLAB_COMM_TIMEOUT  seconds a blocking collective or sl_comm_wait() may take (default 600;
 *                          0 disables). On expiry the watchdog logs the rank and the collective
 *                          and aborts the whole job (MPI_Abort): a peer that never arrives cannot
 *                          be recovered from, and returning would leave the other ranks hanging.
 *                          This is the one place the library ends the process. */
#ifndef SHARDLAB_COMM_H
#define SHARDLAB_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shardlab/dtype.h"
#include "shardlab/observe.h"
#include "shardlab/plan.h"
#include "shardlab/status.h"

typedef struct sl_comm sl_comm;
typedef struct sl_comm_request sl_comm_request;

/* Per-call options. A NULL options pointer means sl_comm_opts_default(). */
typedef struct sl_comm_opts {
    /* reductions only */
    bool deterministic; /* rank-order sum (§4.5); false: the backend's native algorithm */
    int divide_world;   /* W of the divide rule (the whole data-parallel size, also under hybrid
                           sharding); 0: plain SUM, no divide */
    sl_grad_divide divide;
    bool skip_pre_divide;  /* hybrid sharding: the cross-replica all-reduce (already pre-divided) */
    bool skip_post_divide; /* hybrid sharding: the in-group reduce-scatter (post comes later) */
    /* copied into the collective's record */
    sl_phase phase;
    int micro_step;
    int unit; /* model unit, or -1 */
} sl_comm_opts;

/* SUM, native order, no divide, phase STEP, micro-step 0, unit -1. */
sl_comm_opts sl_comm_opts_default(void);

/* The backend the launch environment asks for: SHARDLAB_COMM_BACKEND if set; else `mpi` when the
 * process was started by mpirun or `shardlab launch` (OMPI_COMM_WORLD_SIZE or PMIX_RANK set);
 * else `local`. MPI is initialised on first use (MPI_THREAD_FUNNELED: only the thread that
 * created the communicator calls it) and finalised when the last MPI communicator is destroyed;
 * MPI cannot start again in the same process afterwards. The world communicator records its
 * collectives as SL_GROUP_WORLD. */
sl_status sl_comm_create_from_env(sl_comm **out);
sl_status sl_comm_create_local(sl_comm **out);
sl_status sl_comm_create_mpi(sl_comm **out);

/* Collective over `comm`: ranks with the same color form one new communicator, ordered by key
 * (then by rank in comm). `group` labels the new communicator's records. */
sl_status sl_comm_split(sl_comm *comm, int color, int key, sl_coll_group group, sl_comm **out);

/* Hybrid sharding's groups for a shard-group size G dividing comm's size (plan.h: rank =
 * replica·G + shard_rank): *shard holds the G ranks of this rank's replica, ordered by shard
 * rank; *replica holds the size/G ranks with this rank's shard rank, ordered by replica. */
sl_status sl_comm_split_hybrid(sl_comm *comm, int shard_group_size, sl_comm **shard,
                               sl_comm **replica);

/* Waits for the requests still in flight (releasing them: the caller's request pointers become
 * invalid), then releases the handle. */
void sl_comm_destroy(sl_comm *comm);

int sl_comm_rank(const sl_comm *comm);
int sl_comm_size(const sl_comm *comm);

/* Ends the whole job with exit status `code`, for a rank that fails alone: the other ranks may be
 * waiting in a collective this rank will never join, and a failed rank that destroys its world
 * communicator instead would wait for them in MPI_Finalize for ever. MPI: MPI_Abort; the
 * launcher then ends every rank within about a second. Returns (doing nothing) when comm has one
 * rank, where nobody waits: the caller exits as usual. */
void sl_comm_abort(sl_comm *comm, int code);

const char *sl_comm_backend_name(const sl_comm *comm); /* "local", "mpi" */

void sl_comm_set_debug(sl_comm *comm, bool on);
void sl_comm_set_timeout(sl_comm *comm, double seconds); /* 0 disables the watchdog */

/* recv (size·count elements) = every rank's send (count elements) in rank order. send may be
 * recv + rank·count (in place). Any dtype. */
sl_status sl_comm_all_gather(sl_comm *comm, const void *send, void *recv, size_t count, sl_dtype dt,
                             const sl_comm_opts *opts, sl_comm_request **req);

/* recv (count elements) = the reduction of elements [rank·count, (rank+1)·count) of every rank's
 * send (size·count elements). send and recv must not overlap. F32, BF16, F16. */
sl_status sl_comm_reduce_scatter(sl_comm *comm, const void *send, void *recv, size_t count,
                                 sl_dtype dt, const sl_comm_opts *opts, sl_comm_request **req);

/* recv (count elements, any count) = the reduction of every rank's send. send == recv is allowed.
 * F32, BF16, F16. */
sl_status sl_comm_all_reduce(sl_comm *comm, const void *send, void *recv, size_t count, sl_dtype dt,
                             const sl_comm_opts *opts, sl_comm_request **req);

/* buf (count elements) on every rank = buf on `root`. Any dtype. */
sl_status sl_comm_broadcast(sl_comm *comm, void *buf, size_t count, sl_dtype dt, int root,
                            const sl_comm_opts *opts, sl_comm_request **req);

sl_status sl_comm_barrier(sl_comm *comm, sl_comm_request **req);

/* Completes *req (subject to the watchdog), releases it and sets *req = NULL. The result of a
 * reduction is written by the time this returns. A failed request is released too. */
sl_status sl_comm_wait(sl_comm_request **req);

/* Advances *req without blocking; when it has completed sets *done, releases it and sets
 * *req = NULL. */
sl_status sl_comm_test(sl_comm_request **req, bool *done);

/* Advances every request in flight on comm without blocking. MPI moves non-blocking collectives
 * mostly inside MPI calls (bench/NOTES.md), so a caller overlapping communication with compute
 * calls this between kernels. */
sl_status sl_comm_progress(sl_comm *comm);

/* Totals since creation or the last reset. calls/elements/bytes_sent are indexed by sl_coll_op;
 * bytes_sent sums sl_collective_bytes_sent() of each call. */
typedef struct sl_comm_totals {
    int64_t calls[SL_COLL_OP_COUNT];
    int64_t elements[SL_COLL_OP_COUNT];
    int64_t bytes_sent[SL_COLL_OP_COUNT];
    int64_t barriers;
    int64_t scratch_bytes_peak; /* comm-owned staging buffers (the comm_buffers category) */
} sl_comm_totals;

void sl_comm_get_totals(const sl_comm *comm, sl_comm_totals *out);

/* The records of every collective since creation or the last reset, in issue order, one per
 * call (barriers are not collectives of the schema and are only counted in the totals). A call on
 * a one-rank communicator is recorded with bytes_sent_per_rank 0; the plan's schedule leaves such
 * calls out, so an engine comparing against it skips or filters them. Valid until the next
 * collective or reset on comm. */
const sl_collective_record *sl_comm_records(const sl_comm *comm, int *n);

void sl_comm_reset_stats(sl_comm *comm);

#endif
