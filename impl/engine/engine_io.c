/* What leaves the engine: full parameters and step-1 gradients gathered to rank 0 (over an
 * unrecorded copy of the shard group: saving is not part of the training schedule), the model
 * file and the Hugging Face export, and the observation gathered from every rank. */
#include <stdlib.h>
#include <string.h>

#include "common/hf_model.h"
#include "common/param_file.h"
#include "impl/engine/engine_internal.h"

/* full (numel_padded f32) = buffer b of `src` (an owned-layout array of dtype dt) from every
 * rank of the shard group. */
static sl_status sl_engine_gather_buffer_f32(sl_engine *e, int b, const void *src, sl_dtype dt,
                                             float *shard, float *full) {
    const int64_t sn = e->plan->buffers[b].shard_numel;
    for (int64_t j = 0; j < sn; j++)
        shard[j] = sl_engine_get(src, dt, e->shard_off[b] + j);
    if (sl_comm_size(e->aux_comm) == 1 || sn == e->plan->buffers[b].numel_padded) {
        memcpy(full, shard, (size_t)sn * sizeof(float));
        return SL_OK;
    }
    sl_status st =
        sl_comm_all_gather(e->aux_comm, shard, full, (size_t)sn, SL_DTYPE_F32, NULL, NULL);
    sl_comm_reset_stats(e->aux_comm);
    return st;
}

sl_status sl_engine_gather_full(sl_engine *e, sl_engine_state which, int root, float **arrays) {
    const sl_plan *plan = e->plan;
    if (which == SL_ENGINE_STEP1_GRADS && !e->step1_grads) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "engine: step-1 gradients were not kept; create the engine with "
                            "keep_step1_grads and run one optimizer step first");
    }
    const bool moments = which == SL_ENGINE_EXP_AVG || which == SL_ENGINE_EXP_AVG_SQ;
    if (moments && e->opt.inference_only) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "engine: an inference-only engine has no optimizer state to gather");
    }
    const void *src = which == SL_ENGINE_MASTERS      ? e->master
                      : which == SL_ENGINE_EXP_AVG    ? e->m
                      : which == SL_ENGINE_EXP_AVG_SQ ? e->v
                                                      : e->step1_grads;
    const sl_dtype dt = which == SL_ENGINE_MASTERS ? e->md : moments ? e->od : SL_DTYPE_F32;
    int64_t largest = 1;
    for (int b = 0; b < plan->n_buffers; b++) {
        if (plan->buffers[b].numel_padded > largest) largest = plan->buffers[b].numel_padded;
    }
    /* output staging of one buffer at a time, outside the training categories */
    float *full = malloc((size_t)largest * sizeof *full);
    float *shard = malloc((size_t)largest * sizeof *shard);
    sl_status st = full && shard ? SL_OK : sl_error_set(SL_ERR_OOM, "engine: out of memory saving");
    for (int b = 0; st == SL_OK && b < plan->n_buffers; b++) {
        st = sl_engine_gather_buffer_f32(e, b, src, dt, shard, full);
        if (st != SL_OK || e->rank != root) continue;
        const sl_flat_buffer *buf = &plan->buffers[b];
        for (int s = 0; s < buf->n_segments; s++) {
            const sl_segment *sg = &buf->segments[s];
            if (sg->param < 0) continue;
            memcpy(arrays[sg->param] + sg->param_offset, full + sg->flat_offset,
                   (size_t)sg->numel * sizeof(float));
        }
    }
    free(full);
    free(shard);
    return st;
}

sl_status sl_engine_save_model(sl_engine *e, const char *path) {
    float **arrays = NULL;
    if (e->rank == 0) {
        arrays = sl_param_arrays_alloc(e->desc);
        if (!arrays) return sl_error_set(SL_ERR_OOM, "engine: out of memory saving %s", path);
    }
    sl_status st = sl_engine_gather_full(e, SL_ENGINE_MASTERS, 0, arrays);
    if (st == SL_OK && e->rank == 0)
        st = sl_param_file_write(e->desc, arrays, "shardlab impl", path);
    sl_param_arrays_free(e->desc, arrays);
    return st;
}

sl_status sl_engine_save_model_hf(sl_engine *e, const char *dir,
                                  const sl_engine_export_options *opt) {
    sl_hf_save_options so = sl_hf_save_options_default();
    so.producer = "shardlab impl";
    if (opt && opt->max_shard_size > 0) so.max_shard_size = opt->max_shard_size;
    if (opt && opt->save_16bit) {
        const sl_dtype pd = e->plan->precision.param_dtype;
        so.dtype = pd == SL_DTYPE_BF16 || pd == SL_DTYPE_F16 ? pd : SL_DTYPE_BF16;
    }
    float **arrays = NULL;
    if (e->rank == 0) {
        arrays = sl_param_arrays_alloc(e->desc);
        if (!arrays) return sl_error_set(SL_ERR_OOM, "engine: out of memory exporting to %s", dir);
    }
    sl_status st = sl_engine_gather_full(e, SL_ENGINE_MASTERS, 0, arrays);
    if (st == SL_OK && e->rank == 0) st = sl_hf_model_save(e->desc, arrays, &so, dir);
    sl_param_arrays_free(e->desc, arrays);
    return st;
}

int64_t sl_engine_kernel_scratch_bytes(const sl_engine *e) {
    return e->k->workspace_bytes(e->ctx);
}

sl_status sl_engine_observation(sl_engine *e, sl_observation *out) {
    SL_TRY(sl_observation_init(out, e->plan->world_size));
    memcpy(out->dtype_table, e->obs.dtype_table, sizeof out->dtype_table);
    for (int i = 0; i < e->obs.n_collectives; i++) {
        SL_TRY(sl_observation_add_collective(out, &e->obs.collectives[i]));
    }
    sl_mem_usage mine = e->obs.memory[e->rank];
    const size_t count = sizeof mine / sizeof(int64_t);
    sl_comm *world = sl_session_comm(e->session);
    if (sl_comm_size(world) == 1) {
        out->memory[0] = mine;
        return SL_OK;
    }
    sl_status st = sl_comm_all_gather(world, &mine, out->memory, count, SL_DTYPE_I64, NULL, NULL);
    sl_comm_reset_stats(world);
    return st;
}
