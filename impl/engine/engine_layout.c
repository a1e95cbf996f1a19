/* Where everything of one rank lives: the offsets of every buffer in the unit, gathered,
 * whole-model and resident layouts, the parameter and gradient views the model computes on, and
 * the initial shards (DESIGN.md §5). */
#include <stdlib.h>
#include <string.h>

#include "common/hf_model.h"
#include "impl/engine/engine_internal.h"

float sl_engine_get(const void *buf, sl_dtype dt, int64_t i) {
    switch (dt) {
    case SL_DTYPE_BF16: return sl_bf16_to_f32(((const uint16_t *)buf)[i]);
    case SL_DTYPE_F16: return sl_f16_to_f32(((const uint16_t *)buf)[i]);
    default: return ((const float *)buf)[i];
    }
}

void sl_engine_set(void *buf, sl_dtype dt, int64_t i, float x) {
    switch (dt) {
    case SL_DTYPE_BF16: ((uint16_t *)buf)[i] = sl_f32_to_bf16(x); break;
    case SL_DTYPE_F16: ((uint16_t *)buf)[i] = sl_f32_to_f16(x); break;
    default: ((float *)buf)[i] = x; break;
    }
}

static sl_status sl_engine_locate_params(sl_engine *e) {
    const sl_plan *plan = e->plan;
    for (int p = 0; p < e->desc->n_params; p++)
        e->loc[p].buffer = -1;
    for (int b = 0; b < plan->n_buffers; b++) {
        const sl_flat_buffer *buf = &plan->buffers[b];
        for (int s = 0; s < buf->n_segments; s++) {
            const sl_segment *sg = &buf->segments[s];
            if (sg->param < 0) continue;
            const sl_param_desc *pd = &e->desc->params[sg->param];
            if (sg->param_offset != 0 || sg->numel != pd->numel || e->loc[sg->param].buffer >= 0) {
                return sl_error_set(SL_ERR_INTERNAL,
                                    "engine: parameter '%s' is split across segments of the %s "
                                    "layout; the engine expects each parameter contiguous in one "
                                    "buffer",
                                    pd->name, sl_layout_name(plan->layout));
            }
            e->loc[sg->param] = (sl_engine_param_loc){.buffer = b, .flat = sg->flat_offset};
        }
    }
    for (int p = 0; p < e->desc->n_params; p++) {
        if (e->loc[p].buffer < 0) {
            return sl_error_set(SL_ERR_INTERNAL,
                                "engine: parameter '%s' is in no buffer of the plan",
                                e->desc->params[p].name);
        }
    }
    return SL_OK;
}

sl_status sl_engine_layout_create(sl_engine *e) {
    const sl_plan *plan = e->plan;
    const int nb = plan->n_buffers, nu = e->desc->n_units, np = e->desc->n_params;
    e->loc = calloc((size_t)np, sizeof *e->loc);
    e->shard_off = calloc((size_t)nb, sizeof *e->shard_off);
    e->n_pieces = calloc((size_t)nb, sizeof *e->n_pieces);
    e->pieces = calloc((size_t)nb, sizeof *e->pieces);
    e->unit_off = calloc((size_t)nb, sizeof *e->unit_off);
    e->gather_off = calloc((size_t)nb, sizeof *e->gather_off);
    e->model_off = calloc((size_t)nb, sizeof *e->model_off);
    e->resident_off = calloc((size_t)nb, sizeof *e->resident_off);
    e->unit_numel = calloc((size_t)nu, sizeof *e->unit_numel);
    e->gather_numel = calloc((size_t)nu, sizeof *e->gather_numel);
    e->gathered = calloc((size_t)nu, sizeof *e->gathered);
    e->held = calloc((size_t)nu, sizeof *e->held);
    e->grads_unit = calloc((size_t)nu, sizeof *e->grads_unit);
    e->params = calloc((size_t)np, sizeof *e->params);
    e->grads = calloc((size_t)np, sizeof *e->grads);
    if (!e->loc || !e->shard_off || !e->n_pieces || !e->pieces || !e->unit_off || !e->gather_off ||
        !e->model_off || !e->resident_off || !e->unit_numel || !e->gather_numel || !e->gathered ||
        !e->held || !e->grads_unit || !e->params || !e->grads) {
        return sl_error_set(SL_ERR_OOM, "engine: out of memory building the layout");
    }
    SL_TRY(sl_engine_locate_params(e));
    const bool replicated = plan->layout == SL_LAYOUT_REPLICATED;
    const bool flat_global = plan->layout == SL_LAYOUT_FLAT_GLOBAL;
    e->resident_is_master = replicated && e->pd == e->md;
    for (int b = 0; b < nb; b++) {
        const sl_flat_buffer *buf = &plan->buffers[b];
        e->shard_off[b] = e->owned;
        e->owned += buf->shard_numel;
        e->model_off[b] = e->model_numel;
        e->model_numel += buf->numel_padded;
        e->pieces[b] = calloc((size_t)buf->n_segments + 1, sizeof *e->pieces[b]);
        if (!e->pieces[b]) return sl_error_set(SL_ERR_OOM, "engine: out of memory (pieces)");
        int64_t pad = 0;
        e->n_pieces[b] = sl_plan_shard_pieces(buf, e->shard_rank, e->pieces[b], &pad);
        e->unit_off[b] = e->gather_off[b] = -1;
        if (buf->unit >= 0) {
            e->unit_off[b] = e->unit_numel[buf->unit];
            e->unit_numel[buf->unit] += buf->numel_padded;
            if (!buf->persistent) {
                e->gather_off[b] = e->gather_numel[buf->unit];
                e->gather_numel[buf->unit] += buf->numel_padded;
            }
        }
        const bool resident = flat_global || (replicated && !e->resident_is_master) ||
                              (e->per_unit && buf->persistent);
        e->resident_off[b] = -1;
        if (resident) {
            e->resident_off[b] = e->resident_numel;
            e->resident_numel += buf->numel_padded;
        }
    }
    return SL_OK;
}

void sl_engine_layout_destroy(sl_engine *e) {
    for (int b = 0; e->pieces && b < e->plan->n_buffers; b++)
        free(e->pieces[b]);
    free(e->pieces);
    free(e->loc);
    free(e->shard_off);
    free(e->n_pieces);
    free(e->unit_off);
    free(e->gather_off);
    free(e->model_off);
    free(e->resident_off);
    free(e->unit_numel);
    free(e->gather_numel);
    free(e->gathered);
    free(e->held);
    free(e->grads_unit);
    free(e->params);
    free(e->grads);
}

static void *sl_engine_at(void *base, sl_dtype dt, int64_t i) {
    return base ? (char *)base + (size_t)i * sl_dtype_size(dt) : NULL;
}

void sl_engine_bind_views(sl_engine *e) {
    for (int p = 0; p < e->desc->n_params; p++) {
        const sl_param_desc *pdsc = &e->desc->params[p];
        const int b = e->loc[p].buffer;
        const int64_t f = e->loc[p].flat;
        const int u = e->plan->buffers[b].unit;
        void *data = NULL;
        if (e->resident_is_master) {
            data = sl_engine_at(e->master, e->md, e->shard_off[b] + f);
        } else if (e->resident_off[b] >= 0) {
            data = sl_engine_at(e->resident, e->pd, e->resident_off[b] + f);
        } else if (u >= 0) {
            data = sl_engine_at(e->gathered[u], e->pd, e->gather_off[b] + f);
        }
        sl_tensor t = {.data = data, .dtype = e->pd, .ndim = pdsc->ndim, .name = pdsc->name};
        memcpy(t.shape, pdsc->shape, sizeof t.shape);
        e->params[p] = t;
        void *g = NULL;
        t.dtype = e->whole_model_grads ? e->ugd : e->pd;
        if (e->whole_model_grads) {
            g = sl_engine_at(e->grads_model, e->ugd, e->model_off[b] + f);
        } else if (u >= 0) {
            g = sl_engine_at(e->grads_unit[u], e->pd, e->unit_off[b] + f);
        }
        t.data = g;
        e->grads[p] = t;
    }
}

/* ---- initial values ---------------------------------------------------------------------- */

/* The loaded value of parameter p (load_dtype values in f32), all of it: from init_from, or the
 * description's init rule with the plan's seed — the reference's initial values. */
static sl_status sl_engine_load_param(const sl_engine *e, const sl_hf_model *st, int p,
                                      float *out) {
    const sl_param_desc *pd = &e->desc->params[p];
    if (st) {
        SL_TRY(sl_hf_model_read(st, p, out)); /* names and shapes checked by sl_hf_model_open */
    } else {
        sl_model_init_range(e->desc, p, e->plan->seed, 0, pd->numel, out);
    }
    sl_round_array(out, (size_t)pd->numel, e->plan->precision.load_dtype);
    return SL_OK;
}

/* The master value of a loaded value: DeepSpeed rounds to the compute dtype first (ROUNDED). */
static float sl_engine_master_value(const sl_engine *e, float x) {
    if (e->plan->precision.master_init == SL_MASTER_ROUNDED) x = sl_round_to(x, e->pd);
    return sl_round_to(x, e->md);
}

static void sl_engine_init_param(sl_engine *e, int p, const float *full) {
    const int b = e->loc[p].buffer;
    for (int i = 0; i < e->n_pieces[b]; i++) {
        const sl_shard_piece *pc = &e->pieces[b][i];
        if (pc->param != p) continue;
        for (int64_t j = 0; j < pc->end - pc->start; j++) {
            sl_engine_set(e->master, e->md, e->shard_off[b] + pc->shard_offset + j,
                          sl_engine_master_value(e, full[pc->start + j]));
        }
    }
    if (e->resident_off[b] >= 0) { /* a resident copy holds every element of its buffer */
        const int64_t at = e->resident_off[b] + e->loc[p].flat;
        for (int64_t j = 0; j < e->desc->params[p].numel; j++) {
            sl_engine_set(e->resident, e->pd, at + j,
                          sl_round_to(sl_engine_master_value(e, full[j]), e->pd));
        }
    }
}

sl_status sl_engine_init_shards(sl_engine *e) {
    sl_hf_model *st = NULL;
    if (e->opt.init_from) SL_TRY(sl_hf_model_open(e->opt.init_from, e->desc, &st));
    int64_t largest = 1;
    for (int p = 0; p < e->desc->n_params; p++) {
        if (e->desc->params[p].numel > largest) largest = e->desc->params[p].numel;
    }
    /* one parameter at a time: a transient of the largest parameter, not of the model */
    float *full = malloc((size_t)largest * sizeof *full);
    sl_status status = full ? SL_OK : sl_error_set(SL_ERR_OOM, "engine: out of memory (init)");
    for (int p = 0; status == SL_OK && p < e->desc->n_params; p++) {
        status = sl_engine_load_param(e, st, p, full);
        if (status == SL_OK) sl_engine_init_param(e, p, full);
    }
    free(full);
    sl_hf_model_close(st);
    return status;
}

sl_status sl_engine_initial_values(sl_engine *e, float **arrays) {
    sl_hf_model *st = NULL;
    if (e->opt.init_from) SL_TRY(sl_hf_model_open(e->opt.init_from, e->desc, &st));
    sl_status status = SL_OK;
    for (int p = 0; status == SL_OK && p < e->desc->n_params; p++) {
        status = sl_engine_load_param(e, st, p, arrays[p]);
    }
    sl_hf_model_close(st);
    return status;
}
