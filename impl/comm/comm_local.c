/* The local backend: a job of one rank. Every collective is a copy (or nothing, in place) that
 * completes inside the call; the generic layer still applies the divide rules and counts. */
#include <stdlib.h>
#include <string.h>

#include "impl/comm/comm_internal.h"

static void sl_local_copy(void *dst, const void *src, size_t count, sl_dtype dt) {
    if (dst != src && count) memmove(dst, src, count * sl_dtype_size(dt));
}

static sl_status sl_local_split(void *impl, int color, int key, void **out, int *rank, int *size) {
    (void)impl;
    (void)color;
    (void)key;
    *out = NULL;
    *rank = 0;
    *size = 1;
    return SL_OK;
}

static void sl_local_destroy(void *impl) {
    (void)impl;
}

static void *sl_local_alloc(size_t bytes) {
    return malloc(bytes);
}

static void sl_local_release(void *p) {
    free(p);
}

static sl_status sl_local_all_gather(void *impl, sl_comm_channel ch, const void *send, void *recv,
                                     size_t count, sl_dtype dt, void **h) {
    (void)impl;
    (void)ch;
    if (send) sl_local_copy(recv, send, count, dt);
    *h = NULL;
    return SL_OK;
}

static sl_status sl_local_all_gatherv(void *impl, sl_comm_channel ch, void *recv,
                                      const size_t *counts, const size_t *displs, sl_dtype dt,
                                      void **h) {
    (void)impl;
    (void)ch;
    (void)recv;
    (void)counts;
    (void)displs;
    (void)dt;
    *h = NULL;
    return SL_OK;
}

static sl_status sl_local_all_to_all(void *impl, sl_comm_channel ch, const void *send, void *recv,
                                     size_t count, sl_dtype dt, void **h) {
    (void)impl;
    (void)ch;
    sl_local_copy(recv, send, count, dt);
    *h = NULL;
    return SL_OK;
}

static sl_status sl_local_all_to_allv(void *impl, sl_comm_channel ch, const void *send,
                                      const size_t *send_counts, const size_t *send_displs,
                                      void *recv, const size_t *recv_counts,
                                      const size_t *recv_displs, sl_dtype dt, void **h) {
    (void)impl;
    (void)ch;
    (void)recv_counts;
    const size_t esize = sl_dtype_size(dt);
    sl_local_copy((char *)recv + recv_displs[0] * esize,
                  (const char *)send + send_displs[0] * esize, send_counts[0], dt);
    *h = NULL;
    return SL_OK;
}

static sl_status sl_local_broadcast(void *impl, void *buf, size_t count, sl_dtype dt, int root,
                                    void **h) {
    (void)impl;
    (void)buf;
    (void)count;
    (void)dt;
    (void)root;
    *h = NULL;
    return SL_OK;
}

static sl_status sl_local_barrier(void *impl, void **h) {
    (void)impl;
    *h = NULL;
    return SL_OK;
}

static sl_status sl_local_sum(void *impl, const void *send, void *recv, size_t count, sl_dtype dt,
                              void **h) {
    (void)impl;
    sl_local_copy(recv, send, count, dt);
    *h = NULL;
    return SL_OK;
}

static sl_status sl_local_test(void *impl, void *h, bool *done) {
    (void)impl;
    (void)h;
    *done = true;
    return SL_OK;
}

/* Nothing can be waiting on another rank here, so the watchdog never fires. */
static void sl_local_abort_job(void *impl, int code) {
    (void)impl;
    (void)code;
}

const sl_comm_backend sl_comm_backend_local = {
    .name = "local",
    .split = sl_local_split,
    .destroy = sl_local_destroy,
    .alloc = sl_local_alloc,
    .release = sl_local_release,
    .sum_ranks = sl_comm_sum_ranks,
    .divide_array = sl_comm_divide_array,
    .post_divide = sl_comm_post_divide,
    .all_gather = sl_local_all_gather,
    .all_gatherv = sl_local_all_gatherv,
    .all_to_all = sl_local_all_to_all,
    .all_to_allv = sl_local_all_to_allv,
    .broadcast = sl_local_broadcast,
    .barrier = sl_local_barrier,
    .reduce_scatter_sum = sl_local_sum,
    .all_reduce_sum = sl_local_sum,
    .test = sl_local_test,
    .abort_job = sl_local_abort_job,
};
