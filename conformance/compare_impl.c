/* One side of `compare` through the engine (compare_impl.h). */
#include "conformance/compare_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "conformance/runner.h"

/* The final parameters in the model's order (the file's order may differ). */
static sl_status sl_impl_params(const sl_conf_tensors *t, const sl_model_desc *model,
                                const char *dir, sl_compare_result *out) {
    out->n_values = model->total_numel;
    out->params = malloc((size_t)model->total_numel * sizeof *out->params);
    if (!out->params) return sl_error_set(SL_ERR_OOM, "%s: no memory for the parameters", dir);
    int64_t at = 0;
    for (int p = 0; p < model->n_params; p++) {
        const sl_param_desc *pd = &model->params[p];
        int k = 0;
        while (k < t->n && strcmp(t->names[k], pd->name) != 0)
            k++;
        if (k == t->n || t->numel[k] != (size_t)pd->numel) {
            return sl_error_set(SL_ERR_MISMATCH,
                                "%s/final.safetensors: tensor %s %s (expected %lld elements); "
                                "was the run made with the same model flags?",
                                dir, pd->name, k == t->n ? "is missing" : "has the wrong size",
                                (long long)pd->numel);
        }
        memcpy(out->params + at, t->data[k], (size_t)pd->numel * sizeof(float));
        at += pd->numel;
    }
    return SL_OK;
}

/* The training loop's wall time is in trajectory.json ("seconds"); the runner's own time
 * includes process start-up and is not what tokens/s should divide by. */
static double sl_impl_seconds(const char *dir) {
    char path[1100];
    snprintf(path, sizeof path, "%s/trajectory.json", dir);
    sl_json *doc = NULL;
    if (sl_json_parse_file(path, &doc) != SL_OK) return 0.0;
    const sl_json *s = sl_json_get(doc, "seconds");
    const double seconds = s ? sl_json_number(s) : 0.0;
    sl_json_free(doc);
    return seconds;
}

sl_status sl_compare_impl_run(const sl_compare_side *side, const sl_model_desc *model,
                              const sl_compare_impl_opts *o, sl_compare_result *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->producer, sizeof out->producer, "impl");
    sl_trajectory_init(&out->traj, "impl");
    sl_conf_run_spec spec = sl_conf_run_spec_default();
    spec.tool = SL_CONF_TOOL_TRAIN;
    spec.world_size = side->plan->world_size;
    char flags[sizeof side->flags + 512];
    snprintf(flags, sizeof flags, "%s %s", side->flags, o->common);
    if (strlen(flags) >= sizeof spec.plan_flags) {
        return sl_error_set(SL_ERR_CONFIG,
                            "compare: %c: the plan flags are longer than %zu "
                            "characters; put them in a config file",
                            side->name, sizeof spec.plan_flags - 1);
    }
    memcpy(spec.plan_flags, flags, strlen(flags) + 1);
    snprintf(spec.config_file, sizeof spec.config_file, "%s", side->config_file);
    snprintf(spec.model_flags, sizeof spec.model_flags, "%s", o->model_flags);
    spec.steps = o->steps;
    snprintf(spec.extra_flags, sizeof spec.extra_flags, "%s",
             o->sampling == SL_SAMPLE_DOCUMENTS ? "--sampling documents" : "");
    spec.deterministic = true;
    snprintf(spec.out_dir, sizeof spec.out_dir, "%s", o->dir);
    spec.timeout_s = 600;
    sl_conf_result r;
    sl_status st = sl_conf_run(&spec, &r);
    if (st != SL_OK) {
        char cmd[2048];
        sl_conf_run_spec_describe(&spec, cmd, sizeof cmd);
        st = sl_error_set(st, "compare: %c (%s): the engine run failed: %s\n  command: %s",
                          side->name, side->spec, r.error, cmd);
    }
    for (int i = 0; st == SL_OK && i < r.n_steps; i++)
        st = sl_trajectory_append(&out->traj, &r.steps[i]);
    if (st == SL_OK) st = sl_impl_params(&r.final, model, o->dir, out);
    if (st == SL_OK) st = sl_observation_init(&out->obs, r.observed.world_size);
    if (st == SL_OK) {
        memcpy(out->obs.dtype_table, r.observed.dtype_table, sizeof out->obs.dtype_table);
        for (int k = 0; k < r.observed.world_size; k++)
            out->obs.memory[k] = r.observed.memory[k];
        out->traj.seconds = sl_impl_seconds(o->dir);
        int64_t tokens = 0;
        for (int i = 0; i < out->traj.n_steps; i++)
            tokens += out->traj.steps[i].tokens;
        out->tokens_per_s = out->traj.seconds > 0 ? (double)tokens / out->traj.seconds : 0.0;
    }
    sl_conf_result_free(&r);
    return st;
}
