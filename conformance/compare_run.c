/* In-process reference runs and divergence measures (compare_run.h). */
#include "conformance/compare_run.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ref/trainer.h"
#include "shardlab/safetensors.h"

static const char *const sl_run_files[] = {"trajectory.json", "init.safetensors",
                                           "final.safetensors", "grads_step1.safetensors",
                                           "batch_step1.safetensors"};

static void sl_run_dir_remove(const char *dir) {
    for (size_t i = 0; i < sizeof sl_run_files / sizeof sl_run_files[0]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, sl_run_files[i]);
        unlink(path);
    }
    rmdir(dir);
}

sl_status sl_compare_read_params(const char *path, const sl_model_desc *model,
                                 sl_compare_result *out) {
    free(out->params);
    out->n_values = model->total_numel;
    out->params = malloc((size_t)model->total_numel * sizeof *out->params);
    if (!out->params) return sl_error_set(SL_ERR_OOM, "%s: no memory for the parameters", path);
    sl_safetensors *st = NULL;
    SL_TRY(sl_safetensors_open(path, &st));
    sl_status status = SL_OK;
    int64_t at = 0;
    for (int p = 0; p < model->n_params && status == SL_OK; p++) {
        const int64_t n = model->params[p].numel;
        status = sl_safetensors_read_f32(st, model->params[p].name, out->params + at, (size_t)n);
        at += n;
    }
    sl_safetensors_close(st);
    return status;
}

sl_status sl_compare_ref_run(const sl_plan *plan, const sl_model_desc *model,
                             const sl_compare_run_opts *opt, sl_compare_result *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->producer, sizeof out->producer, "ref");
    sl_trajectory_init(&out->traj, "ref");
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/shardlab-compare-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        return sl_error_set(SL_ERR_IO,
                            "cannot create a scratch directory %s for a reference run; "
                            "set TMPDIR to a writable directory",
                            dir);
    }
    sl_ref_options ro = sl_ref_options_default();
    ro.sampling = opt->sampling;
    ro.reverse_reduction_order = opt->reverse_reduction_order;
    ro.out_dir = dir;
    sl_status st = sl_observation_init(&out->obs, plan->world_size);
    if (st == SL_OK) st = sl_ref_train(plan, model, &ro, &out->traj, &out->obs);
    if (st == SL_OK) {
        char path[4200];
        snprintf(path, sizeof path, "%s/final.safetensors", dir);
        st = sl_compare_read_params(path, model, out);
    }
    if (st == SL_OK && out->traj.seconds > 0) {
        int64_t tokens = 0;
        for (int i = 0; i < out->traj.n_steps; i++)
            tokens += out->traj.steps[i].tokens;
        out->tokens_per_s = (double)tokens / out->traj.seconds;
    }
    sl_run_dir_remove(dir);
    return st;
}

void sl_compare_result_free(sl_compare_result *r) {
    sl_trajectory_free(&r->traj);
    sl_observation_free(&r->obs);
    free(r->params);
    memset(r, 0, sizeof *r);
}

double sl_compare_loss_gap(const sl_compare_result *a, const sl_compare_result *b, int i) {
    if (i < 0 || i >= a->traj.n_steps || i >= b->traj.n_steps) return NAN;
    return fabs(a->traj.steps[i].loss - b->traj.steps[i].loss);
}

double sl_compare_loss_div(const sl_compare_result *a, const sl_compare_result *b) {
    if (a->traj.n_steps != b->traj.n_steps || a->traj.n_steps == 0) return NAN;
    double worst = 0.0;
    for (int i = 0; i < a->traj.n_steps; i++) {
        const double d = sl_compare_loss_gap(a, b, i) / fabs(b->traj.steps[i].loss);
        if (!(d <= worst)) worst = d; /* NaN sticks */
    }
    return worst;
}

double sl_compare_param_div(const sl_compare_result *a, const sl_compare_result *b) {
    if (!a->params || !b->params || a->n_values != b->n_values) return NAN;
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < a->n_values; i++) {
        const double d = (double)a->params[i] - (double)b->params[i];
        num += d * d;
        den += (double)b->params[i] * (double)b->params[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

double sl_compare_final_loss(const sl_compare_result *r) {
    return r->traj.n_steps ? r->traj.steps[r->traj.n_steps - 1].loss : NAN;
}

void sl_compare_remove_run_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}
