/* Requests: the queue of collectives in flight on a communicator, their progress, and the
 * watchdog that ends a job whose collective never completes.
 *
 * A request is a small state machine: a backend operation in flight (`handle`) and the step that
 * runs when it completes (`on_complete`), which either finishes the request or starts the next
 * stage. Progress walks the queue in issue order. A step that starts an operation on the
 * DEFERRED channel runs only once every earlier request has started its own deferred operation,
 * so every rank starts deferred operations in the same order even when ranks wait for their
 * requests in different orders. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "impl/comm/comm_internal.h"
#include "shardlab/log.h"

static double sl_comm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

sl_status sl_comm_request_create(sl_comm *c, int op, sl_dtype dt, size_t count, int root,
                                 sl_comm_request **out) {
    sl_comm_request *r = calloc(1, sizeof *r);
    if (!r) {
        *out = NULL;
        return sl_error_set(SL_ERR_OOM, "out of memory starting a %s", sl_comm_op_name(op));
    }
    r->comm = c;
    r->op = op;
    r->dt = dt;
    r->count = count;
    r->root = root;
    r->seq = c->seq++;
    *out = r;
    return SL_OK;
}

sl_status sl_comm_request_scratch(sl_comm_request *r, size_t bytes) {
    sl_comm *c = r->comm;
    r->scratch = c->be->alloc(bytes ? bytes : 1);
    if (!r->scratch) {
        return sl_error_set(SL_ERR_OOM, "out of memory for %zu bytes of staging for a %s of %zu %s",
                            bytes, sl_comm_op_name(r->op), r->count, sl_dtype_name(r->dt));
    }
    r->scratch_bytes = bytes;
    c->scratch_bytes += (int64_t)bytes;
    if (c->scratch_bytes > c->totals.scratch_bytes_peak)
        c->totals.scratch_bytes_peak = c->scratch_bytes;
    return SL_OK;
}

/* Unlinks r from its comm's queue (if linked) and frees it. */
static void sl_comm_request_release(sl_comm_request *r) {
    sl_comm *c = r->comm;
    sl_comm_request **link = &c->head, *prev = NULL;
    while (*link && *link != r) {
        prev = *link;
        link = &(*link)->next;
    }
    if (*link) {
        *link = r->next;
        if (c->tail == r) c->tail = prev;
    }
    if (r->scratch) {
        c->be->release(r->scratch);
        c->scratch_bytes -= (int64_t)r->scratch_bytes;
    }
    free(r->counts);
    free(r->error);
    free(r);
}

static void sl_comm_request_fail(sl_comm_request *r, sl_status st) {
    r->status = st;
    const char *msg = sl_error_message();
    r->error = malloc(strlen(msg) + 1);
    if (r->error) memcpy(r->error, msg, strlen(msg) + 1);
    r->done = true;
}

/* Runs r's steps as far as they go without blocking. *deferred_blocked is true when an earlier
 * request has still to start its deferred operation. */
static void sl_comm_request_advance(sl_comm_request *r, bool *deferred_blocked) {
    sl_comm *c = r->comm;
    while (!r->done) {
        if (r->handle) {
            bool complete = false;
            const sl_status st = c->be->test(c->impl, r->handle, &complete);
            if (st != SL_OK) {
                r->handle = NULL;
                sl_comm_request_fail(r, st);
                break;
            }
            if (!complete) break;
            r->handle = NULL;
        }
        if (r->defers && *deferred_blocked) break;
        const sl_comm_step_fn step = r->on_complete;
        r->on_complete = NULL;
        r->defers = false;
        if (!step) {
            r->done = true;
            break;
        }
        const sl_status st = step(r);
        if (st != SL_OK) sl_comm_request_fail(r, st);
    }
    if (!r->done && r->defers) *deferred_blocked = true;
}

sl_status sl_comm_progress(sl_comm *comm) {
    bool deferred_blocked = false;
    for (sl_comm_request *r = comm->head; r; r = r->next) {
        sl_comm_request_advance(r, &deferred_blocked);
    }
    return SL_OK;
}

/* Releases a completed request and returns its status, restoring its message. */
static sl_status sl_comm_request_collect(sl_comm_request *r) {
    const sl_status st = r->status;
    if (st != SL_OK) sl_error_set(st, "%s", r->error ? r->error : "collective failed");
    sl_comm_request_release(r);
    return st;
}

sl_status sl_comm_request_submit(sl_comm_request *r, sl_status start, sl_comm_request **req) {
    if (start != SL_OK) {
        sl_comm_request_release(r);
        return start;
    }
    sl_comm *c = r->comm;
    if (c->tail) {
        c->tail->next = r;
    } else {
        c->head = r;
    }
    c->tail = r;
    if (req) {
        *req = r;
        return SL_OK;
    }
    return sl_comm_wait(&r);
}

/* The job cannot continue: a peer never joined the collective `what`. */
static sl_status sl_comm_watchdog_fire(sl_comm *c, const char *what) {
    SL_LOG_ERROR("watchdog: rank %d (world rank %d) of a %d-rank %s communicator waited %g s "
                 "($SHARDLAB_COMM_TIMEOUT) for %s, which did not complete: another rank is "
                 "missing this collective, stuck or dead; aborting the job",
                 c->rank, c->world_rank, c->size, sl_coll_group_name(c->group), c->timeout_s, what);
    c->be->abort_job(c->impl, 1);
    return sl_error_set(SL_ERR_INTERNAL,
                        "watchdog: %s did not complete within %g s and the job could not be "
                        "aborted",
                        what, c->timeout_s);
}

/* Between two unsuccessful polls the rank gives its core away: ranks often share cores with
 * each other and with OpenMP threads (`shardlab launch` oversubscribes). */
static void sl_comm_pause(void) {
    sched_yield();
}

sl_status sl_comm_wait(sl_comm_request **req) {
    sl_comm_request *r = *req;
    *req = NULL;
    sl_comm *c = r->comm;
    const double deadline = sl_comm_now() + c->timeout_s;
    for (;;) {
        sl_comm_progress(c);
        if (r->done) break;
        if (c->timeout_s > 0.0 && sl_comm_now() > deadline) {
            char what[160];
            snprintf(what, sizeof what, "%s #%llu (%s, %zu elements)", sl_comm_op_name(r->op),
                     (unsigned long long)r->seq, sl_dtype_name(r->dt), r->count);
            return sl_comm_watchdog_fire(c, what);
        }
        sl_comm_pause();
    }
    return sl_comm_request_collect(r);
}

sl_status sl_comm_test(sl_comm_request **req, bool *done) {
    sl_comm_request *r = *req;
    sl_comm_progress(r->comm);
    *done = r->done;
    if (!r->done) return SL_OK;
    *req = NULL;
    return sl_comm_request_collect(r);
}

sl_status sl_comm_wait_handle(sl_comm *c, void *h, const char *what) {
    const double deadline = sl_comm_now() + c->timeout_s;
    for (;;) {
        bool complete = false;
        SL_TRY(c->be->test(c->impl, h, &complete));
        if (complete) return SL_OK;
        sl_comm_progress(c);
        if (c->timeout_s > 0.0 && sl_comm_now() > deadline) {
            return sl_comm_watchdog_fire(c, what);
        }
        sl_comm_pause();
    }
}
