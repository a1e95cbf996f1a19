/* The files a reference run writes into its output directory (all atomically). */
#include <stdio.h>

#include "common/param_file.h"
#include "ref/run.h"
#include "shardlab/safetensors.h"

static sl_status sl_ref_out_path(const sl_ref_run *run, const char *name, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s/%s", run->opt->out_dir, name);
    if (n < 0 || (size_t)n >= cap) {
        return sl_error_set(SL_ERR_INVALID_ARG, "--out path '%s' is too long", run->opt->out_dir);
    }
    return SL_OK;
}

/* Writes per-parameter f32 arrays under their Hugging Face names. */
static sl_status sl_ref_write_params(const sl_ref_run *run, float *const *arrays,
                                     const char *name) {
    char path[4096];
    SL_TRY(sl_ref_out_path(run, name, path, sizeof path));
    return sl_param_file_write(run->model, arrays, "shardlab ref", path);
}

sl_status sl_ref_run_write_initial(sl_ref_run *run) {
    if (!run->opt->out_dir) return SL_OK;
    return sl_ref_write_params(run, run->initial, "init.safetensors");
}

sl_status sl_ref_run_write_step1(sl_ref_run *run) {
    if (!run->opt->out_dir) return SL_OK;
    const sl_plan *plan = run->plan;
    SL_TRY(sl_ref_write_params(run, run->step1_grads, "grads_step1.safetensors"));
    char path[4096];
    SL_TRY(sl_ref_out_path(run, "batch_step1.safetensors", path, sizeof path));
    const int64_t shape[4] = {plan->world_size, plan->grad_accum_steps, plan->micro_batch_size,
                              plan->seq_len};
    sl_safetensors_writer *w = NULL;
    SL_TRY(sl_safetensors_writer_create(&w));
    sl_status st = sl_safetensors_writer_add(w, "inputs", SL_DTYPE_I32, shape, 4, run->inputs);
    if (st == SL_OK)
        st = sl_safetensors_writer_add(w, "targets", SL_DTYPE_I32, shape, 4, run->targets);
    if (st == SL_OK) st = sl_safetensors_writer_write(w, path);
    sl_safetensors_writer_destroy(w);
    return st;
}

sl_status sl_ref_run_write_final(sl_ref_run *run, const sl_trajectory *traj) {
    if (!run->opt->out_dir) return SL_OK;
    sl_ref_shards_masters(run->shards, run->params);
    SL_TRY(sl_ref_write_params(run, run->params, "final.safetensors"));
    char path[4096];
    SL_TRY(sl_ref_out_path(run, "trajectory.json", path, sizeof path));
    return sl_trajectory_write_json(traj, run->plan, run->model, run->obs, path);
}
