/* Flat buffers and who owns what (DESIGN.md §5). G is the shard group size; rank r of the group
 * owns [r·shard_numel, (r+1)·shard_numel) of every buffer.
 *
 *   REPLICATED      one buffer per unit, the unit's params back to back, no padding; every rank
 *                   owns all of it (shard_numel = numel_padded = N).
 *   FLAT_PER_UNIT   FSDP1 (_flat_param.py): one buffer per unit, params in the unit's order. With
 *                   use_orig_params a param starts at a multiple of 16 bytes of param_dtype: pad
 *                   elements go before a param (never the first) when the running total is not
 *                   a multiple of 16 / size(param_dtype). The total N' (pads included) is padded
 *                   at the end to G·ceil(N'/G). Without use_orig_params there are no inner pads and
 *                   torch pads each shard's tail instead: the same numbers.
 *   PER_PARAM_DIM0  FSDP2 (_fsdp_param.py): one buffer per param; rank r owns rows
 *                   [r·ceil(d0/G), (r+1)·ceil(d0/G)), the buffer is G·ceil(d0/G) rows.
 *   FLAT_GLOBAL     ZeRO-1/2 (stage_1_and_2.py): one buffer of every param in registration order,
 *                   no padding between, zero-padded at the end to a multiple of 2·G.
 *   PER_PARAM_FLAT  ZeRO-3 (partition_parameters.py): one buffer per param of G·ceil(numel/G)
 *                   elements; persistent when numel <= stage3_param_persistence_threshold.
 * Buffers of one param follow registration order; unit buffers follow unit order. */
#include <stdlib.h>

#include "common/plan_internal.h"

static int64_t sl_ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

/* Appends a segment; `segments` has room (callers size it from the param count). */
static void sl_buffer_push(sl_flat_buffer *b, int param, int64_t param_offset, int64_t numel) {
    if (numel <= 0) return;
    const int64_t at = b->n_segments ? b->segments[b->n_segments - 1].flat_offset +
                                           b->segments[b->n_segments - 1].numel
                                     : 0;
    b->segments[b->n_segments++] = (sl_segment){
        .param = param, .param_offset = param_offset, .flat_offset = at, .numel = numel};
}

static int64_t sl_buffer_end(const sl_flat_buffer *b) {
    if (!b->n_segments) return 0;
    return b->segments[b->n_segments - 1].flat_offset + b->segments[b->n_segments - 1].numel;
}

/* Pads the buffer's tail to `padded` elements and sets the shard size for G ranks. */
static void sl_buffer_finish(sl_flat_buffer *b, int64_t padded, int G) {
    sl_buffer_push(b, -1, 0, padded - sl_buffer_end(b));
    b->numel_padded = padded;
    b->shard_numel = G > 0 ? padded / G : padded;
}

static sl_status sl_plan_alloc_buffers(sl_plan *plan, int n, int max_segments) {
    plan->buffers = calloc((size_t)n, sizeof *plan->buffers);
    if (!plan->buffers) return sl_error_set(SL_ERR_OOM, "out of memory building the plan layout");
    plan->n_buffers = n;
    for (int b = 0; b < n; b++) {
        plan->buffers[b].segments = calloc((size_t)max_segments, sizeof(sl_segment));
        if (!plan->buffers[b].segments) {
            return sl_error_set(SL_ERR_OOM, "out of memory building the plan layout");
        }
    }
    return SL_OK;
}

static sl_status sl_layout_per_unit(sl_plan *plan, const sl_model_desc *model, bool fsdp1) {
    int max_params = 0;
    for (int u = 0; u < model->n_units; u++) {
        if (model->units[u].n_params > max_params) max_params = model->units[u].n_params;
    }
    SL_TRY(sl_plan_alloc_buffers(plan, model->n_units, 2 * max_params + 1));
    const int G = fsdp1 ? plan->shard_group_size : 1;
    const int64_t align = fsdp1 && plan->use_orig_params
                              ? 16 / (int64_t)sl_dtype_size(plan->precision.param_dtype)
                              : 1;
    for (int u = 0; u < model->n_units; u++) {
        sl_flat_buffer *b = &plan->buffers[u];
        b->unit = u;
        for (int i = 0; i < model->units[u].n_params; i++) {
            const int p = model->units[u].params[i];
            const int64_t total = sl_buffer_end(b);
            if (i > 0 && total % align != 0) sl_buffer_push(b, -1, 0, align - total % align);
            sl_buffer_push(b, p, 0, model->params[p].numel);
        }
        sl_buffer_finish(b, G * sl_ceil_div(sl_buffer_end(b), G), G);
        if (!fsdp1) b->shard_numel = b->numel_padded;
    }
    return SL_OK;
}

static sl_status sl_layout_per_param(sl_plan *plan, const sl_model_desc *model, bool dim0) {
    SL_TRY(sl_plan_alloc_buffers(plan, model->n_params, 2));
    const int G = plan->shard_group_size;
    for (int p = 0; p < model->n_params; p++) {
        const sl_param_desc *pd = &model->params[p];
        sl_flat_buffer *b = &plan->buffers[p];
        b->unit = pd->unit;
        sl_buffer_push(b, p, 0, pd->numel);
        if (dim0) {
            const int64_t row = pd->numel / pd->shape[0];
            sl_buffer_finish(b, G * sl_ceil_div(pd->shape[0], G) * row, G);
        } else {
            sl_buffer_finish(b, G * sl_ceil_div(pd->numel, G), G);
            b->persistent = pd->numel <= plan->persistence_threshold;
        }
    }
    return SL_OK;
}

static sl_status sl_layout_flat_global(sl_plan *plan, const sl_model_desc *model) {
    SL_TRY(sl_plan_alloc_buffers(plan, 1, model->n_params + 1));
    const int G = plan->shard_group_size;
    sl_flat_buffer *b = &plan->buffers[0];
    b->unit = -1;
    for (int p = 0; p < model->n_params; p++)
        sl_buffer_push(b, p, 0, model->params[p].numel);
    sl_buffer_finish(b, 2 * G * sl_ceil_div(sl_buffer_end(b), 2 * (int64_t)G), G);
    return SL_OK;
}

sl_status sl_plan_build_layout(sl_plan *plan, const sl_model_desc *model) {
    if (plan->strategy == SL_STRATEGY_NO_SHARD) {
        plan->layout = SL_LAYOUT_REPLICATED;
        return sl_layout_per_unit(plan, model, false);
    }
    switch (plan->dialect) {
    case SL_DIALECT_FSDP1:
        plan->layout = SL_LAYOUT_FLAT_PER_UNIT;
        return sl_layout_per_unit(plan, model, true);
    case SL_DIALECT_FSDP2:
        plan->layout = SL_LAYOUT_PER_PARAM_DIM0;
        return sl_layout_per_param(plan, model, true);
    case SL_DIALECT_DEEPSPEED:
        if (plan->zero_stage == 3) {
            plan->layout = SL_LAYOUT_PER_PARAM_FLAT;
            return sl_layout_per_param(plan, model, false);
        }
        plan->layout = SL_LAYOUT_FLAT_GLOBAL;
        return sl_layout_flat_global(plan, model);
    case SL_DIALECT_DDP: break;
    }
    return sl_error_set(SL_ERR_INTERNAL, "plan layout: %s has no sharded layout for %s",
                        sl_dialect_name(plan->dialect), sl_strategy_name(plan->strategy));
}

int64_t sl_plan_unit_gather_numel(const sl_plan *plan, int unit) {
    int64_t n = 0;
    for (int b = 0; b < plan->n_buffers; b++) {
        if (plan->buffers[b].unit == unit && !plan->buffers[b].persistent) {
            n += plan->buffers[b].numel_padded;
        }
    }
    return n;
}

int sl_plan_shards_grads(const sl_plan *plan) {
    return plan->strategy != SL_STRATEGY_NO_SHARD;
}

int sl_plan_shard_pieces(const sl_flat_buffer *b, int shard_rank, sl_shard_piece *pieces,
                         int64_t *pad) {
    const int64_t lo = b->shard_numel == b->numel_padded ? 0 : shard_rank * b->shard_numel;
    const int64_t hi = lo + b->shard_numel;
    int n = 0;
    *pad = 0;
    for (int i = 0; i < b->n_segments; i++) {
        const sl_segment *seg = &b->segments[i];
        const int64_t a = seg->flat_offset > lo ? seg->flat_offset : lo;
        const int64_t e = seg->flat_offset + seg->numel < hi ? seg->flat_offset + seg->numel : hi;
        if (a >= e) continue;
        if (seg->param < 0) {
            *pad += e - a;
        } else {
            pieces[n++] = (sl_shard_piece){.param = seg->param,
                                           .start = seg->param_offset + (a - seg->flat_offset),
                                           .end = seg->param_offset + (e - seg->flat_offset),
                                           .shard_offset = a - lo};
        }
    }
    return n;
}
