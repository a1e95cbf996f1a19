/* Native reductions: the backend's own sum (MPI_Reduce_scatter_block / MPI_Allreduce, the bf16
 * and f16 ones through user-defined operations), with the divide rule around it: the pre divide
 * on a staging copy of the input, the post divide on the result once the sum has completed. The
 * order of additions is the backend's, so results are not bit-stable across world sizes. */
#include "impl/comm/comm_internal.h"

static sl_status sl_comm_native_post(sl_comm_request *r) {
    r->comm->be->post_divide(r->recv, r->count, r->dt, &r->div);
    return SL_OK;
}

static bool sl_comm_has_post(const sl_comm_divide *d) {
    return d->post_div != 0.0f || d->post_mul != 0.0f;
}

/* The input the backend sums: send itself, or a pre-divided copy of its n elements. */
static sl_status sl_comm_native_input(sl_comm_request *r, size_t n, const void **input) {
    *input = r->send;
    if (r->div.pre_div == 0.0f) return SL_OK;
    SL_TRY(sl_comm_request_scratch(r, n * sl_dtype_size(r->dt)));
    r->comm->be->divide_array(r->scratch, r->send, n, r->dt, r->div.pre_div);
    *input = r->scratch;
    return SL_OK;
}

sl_status sl_comm_native_reduce_scatter_start(sl_comm_request *r) {
    sl_comm *c = r->comm;
    const void *input = NULL;
    SL_TRY(sl_comm_native_input(r, (size_t)c->size * r->count, &input));
    if (sl_comm_has_post(&r->div)) r->on_complete = sl_comm_native_post;
    return c->be->reduce_scatter_sum(c->impl, input, r->recv, r->count, r->dt, &r->handle);
}

sl_status sl_comm_native_all_reduce_start(sl_comm_request *r) {
    sl_comm *c = r->comm;
    const void *input = NULL;
    SL_TRY(sl_comm_native_input(r, r->count, &input));
    if (sl_comm_has_post(&r->div)) r->on_complete = sl_comm_native_post;
    return c->be->all_reduce_sum(c->impl, input, r->recv, r->count, r->dt, &r->handle);
}
