/* Communicators: creation from the launch environment, splitting, settings, and the counters
 * every collective goes through (DESIGN.md §6). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "impl/comm/comm_internal.h"
#include "shardlab/log.h"

#define SL_COMM_DEFAULT_TIMEOUT_S 600.0

sl_comm_opts sl_comm_opts_default(void) {
    return (sl_comm_opts){.deterministic = false,
                          .divide_world = 0,
                          .divide = SL_DIVIDE_AVG,
                          .phase = SL_PHASE_STEP,
                          .micro_step = 0,
                          .unit = -1};
}

const char *sl_comm_op_name(int op) {
    return op == SL_COMM_OP_BARRIER ? "barrier" : sl_coll_op_name((sl_coll_op)op);
}

/* SHARDLAB_COMM_DEBUG and SHARDLAB_COMM_TIMEOUT; a malformed value is a configuration error
 * rather than a silent default. */
static sl_status sl_comm_read_env(bool *debug, double *timeout_s) {
    const char *d = getenv("SHARDLAB_COMM_DEBUG");
    *debug = false;
    if (d && *d) {
        if (!strcmp(d, "1") || !strcmp(d, "true") || !strcmp(d, "on")) {
            *debug = true;
        } else if (strcmp(d, "0") != 0 && strcmp(d, "false") != 0 && strcmp(d, "off") != 0) {
            return sl_error_set(SL_ERR_CONFIG,
                                "$SHARDLAB_COMM_DEBUG = \"%s\": expected 1/true/on or 0/false/off",
                                d);
        }
    }
    *timeout_s = SL_COMM_DEFAULT_TIMEOUT_S;
    const char *t = getenv("SHARDLAB_COMM_TIMEOUT");
    if (t && *t) {
        char *end = NULL;
        errno = 0;
        const double v = strtod(t, &end);
        if (errno || end == t || *end || !(v >= 0.0)) {
            return sl_error_set(
                SL_ERR_CONFIG,
                "$SHARDLAB_COMM_TIMEOUT = \"%s\": expected a number of seconds >= 0 "
                "(0 disables the watchdog)",
                t);
        }
        *timeout_s = v;
    }
    return SL_OK;
}

static sl_status sl_comm_wrap(const sl_comm_backend *be, void *impl, int rank, int size,
                              int world_rank, sl_coll_group group, sl_comm **out) {
    sl_comm *c = calloc(1, sizeof *c);
    if (!c) {
        be->destroy(impl);
        return sl_error_set(SL_ERR_OOM, "out of memory creating a communicator");
    }
    c->be = be;
    c->impl = impl;
    c->rank = rank;
    c->size = size;
    c->world_rank = world_rank;
    c->group = group;
    *out = c;
    return SL_OK;
}

static sl_status sl_comm_open(const sl_comm_backend *be, sl_comm **out) {
    *out = NULL;
    bool debug;
    double timeout_s;
    SL_TRY(sl_comm_read_env(&debug, &timeout_s));
    void *impl = NULL;
    int rank = 0, size = 1, world_rank = 0;
    if (be == &sl_comm_backend_mpi)
        SL_TRY(sl_comm_mpi_open_world(&impl, &rank, &size, &world_rank));
    SL_TRY(sl_comm_wrap(be, impl, rank, size, world_rank, SL_GROUP_WORLD, out));
    (*out)->debug = debug;
    (*out)->timeout_s = timeout_s;
    return SL_OK;
}

sl_status sl_comm_create_local(sl_comm **out) {
    return sl_comm_open(&sl_comm_backend_local, out);
}

sl_status sl_comm_create_mpi(sl_comm **out) {
    return sl_comm_open(&sl_comm_backend_mpi, out);
}

sl_status sl_comm_create_from_env(sl_comm **out) {
    const char *b = getenv("SHARDLAB_COMM_BACKEND");
    if (b && *b) {
        if (!strcmp(b, "local")) return sl_comm_create_local(out);
        if (!strcmp(b, "mpi")) return sl_comm_create_mpi(out);
        *out = NULL;
        return sl_error_set(SL_ERR_CONFIG,
                            "$SHARDLAB_COMM_BACKEND = \"%s\": expected \"local\" or \"mpi\"", b);
    }
    /* mpirun (and so `shardlab launch`) gives every rank these; a process started by hand
     * is a job of one */
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK")) return sl_comm_create_mpi(out);
    return sl_comm_create_local(out);
}

sl_status sl_comm_split(sl_comm *comm, int color, int key, sl_coll_group group, sl_comm **out) {
    *out = NULL;
    if (color < 0) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sl_comm_split: color must be >= 0, found %d (rank %d)", color,
                            comm->rank);
    }
    void *impl = NULL;
    int rank = 0, size = 1;
    SL_TRY(comm->be->split(comm->impl, color, key, &impl, &rank, &size));
    SL_TRY(sl_comm_wrap(comm->be, impl, rank, size, comm->world_rank, group, out));
    (*out)->debug = comm->debug;
    (*out)->timeout_s = comm->timeout_s;
    return SL_OK;
}

sl_status sl_comm_split_hybrid(sl_comm *comm, int shard_group_size, sl_comm **shard,
                               sl_comm **replica) {
    *shard = *replica = NULL;
    const int g = shard_group_size;
    if (g < 1 || comm->size % g != 0) {
        return sl_error_set(
            SL_ERR_INVALID_ARG,
            "sl_comm_split_hybrid: the shard group size %d must divide the %d ranks "
            "of the communicator",
            g, comm->size);
    }
    SL_TRY(sl_comm_split(comm, comm->rank / g, comm->rank % g, SL_GROUP_SHARD, shard));
    sl_status st = sl_comm_split(comm, comm->rank % g, comm->rank / g, SL_GROUP_REPLICA, replica);
    if (st != SL_OK) {
        sl_comm_destroy(*shard);
        *shard = NULL;
    }
    return st;
}

void sl_comm_destroy(sl_comm *comm) {
    if (!comm) return;
    while (comm->head) {
        sl_comm_request *r = comm->head;
        const int op = r->op;
        if (sl_comm_wait(&r) != SL_OK) {
            SL_LOG_WARN("a %s still in flight when its communicator was destroyed failed: %s",
                        sl_comm_op_name(op), sl_error_message());
        }
    }
    comm->be->destroy(comm->impl);
    free(comm->records);
    free(comm);
}

int sl_comm_rank(const sl_comm *comm) {
    return comm->rank;
}

int sl_comm_size(const sl_comm *comm) {
    return comm->size;
}

void sl_comm_abort(sl_comm *comm, int code) {
    if (comm && comm->size > 1) comm->be->abort_job(comm->impl, code);
}

const char *sl_comm_backend_name(const sl_comm *comm) {
    return comm->be->name;
}

void sl_comm_set_debug(sl_comm *comm, bool on) {
    comm->debug = on;
}

void sl_comm_set_timeout(sl_comm *comm, double seconds) {
    comm->timeout_s = seconds > 0.0 ? seconds : 0.0;
}

/* nccl-tests' count: the whole gathered / unreduced buffer. */
static int64_t sl_comm_elements(int op, size_t count, int size) {
    if (op == SL_COLL_ALL_GATHER || op == SL_COLL_REDUCE_SCATTER) return (int64_t)count * size;
    return (int64_t)count;
}

sl_status sl_comm_count_reserve(sl_comm *c) {
    if (c->n_records < c->cap_records) return SL_OK;
    const int cap = c->cap_records ? 2 * c->cap_records : 64;
    sl_collective_record *grown = realloc(c->records, (size_t)cap * sizeof *grown);
    if (!grown) return sl_error_set(SL_ERR_OOM, "out of memory recording collectives");
    c->records = grown;
    c->cap_records = cap;
    return SL_OK;
}

void sl_comm_count(sl_comm *c, int op, sl_dtype dt, size_t count, const sl_comm_opts *o) {
    if (op == SL_COMM_OP_BARRIER) {
        c->totals.barriers++;
        return;
    }
    const int64_t elements = sl_comm_elements(op, count, c->size);
    const int64_t bytes = sl_collective_bytes_sent((sl_coll_op)op, c->size, elements, dt);
    c->records[c->n_records++] = (sl_collective_record){.op = (sl_coll_op)op,
                                                        .group = c->group,
                                                        .group_size = c->size,
                                                        .phase = o->phase,
                                                        .micro_step = o->micro_step,
                                                        .unit = o->unit,
                                                        .dtype = dt,
                                                        .elements = elements,
                                                        .bytes_sent_per_rank = bytes};
    c->totals.calls[op]++;
    c->totals.elements[op] += elements;
    c->totals.bytes_sent[op] += bytes;
}

void sl_comm_get_totals(const sl_comm *comm, sl_comm_totals *out) {
    *out = comm->totals;
}

const sl_collective_record *sl_comm_records(const sl_comm *comm, int *n) {
    *n = comm->n_records;
    return comm->records;
}

void sl_comm_reset_stats(sl_comm *comm) {
    memset(&comm->totals, 0, sizeof comm->totals);
    comm->totals.scratch_bytes_peak = comm->scratch_bytes;
    comm->n_records = 0;
}
