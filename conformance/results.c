/* Loading what a run wrote (runner.h): trajectory.json's steps, plan prediction and observation,
 * and the final and step-1 gradient safetensors files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "conformance/observation_read.h"
#include "conformance/runner.h"
#include "shardlab/safetensors.h"

void sl_conf_tensors_free(sl_conf_tensors *t) {
    for (int i = 0; i < t->n; i++) {
        free(t->names ? t->names[i] : NULL);
        free(t->data ? t->data[i] : NULL);
    }
    free(t->names);
    free(t->numel);
    free(t->data);
    memset(t, 0, sizeof *t);
}

sl_status sl_conf_tensors_read(const char *path, sl_conf_tensors *out) {
    memset(out, 0, sizeof *out);
    sl_safetensors *st = NULL;
    SL_TRY(sl_safetensors_open(path, &st));
    const int n = (int)sl_safetensors_count(st);
    out->names = calloc((size_t)n + 1, sizeof *out->names);
    out->numel = calloc((size_t)n + 1, sizeof *out->numel);
    out->data = calloc((size_t)n + 1, sizeof *out->data);
    sl_status status = SL_OK;
    if (!out->names || !out->numel || !out->data) {
        status = sl_error_set(SL_ERR_OOM, "%s: out of memory reading %d tensors", path, n);
    }
    for (int i = 0; status == SL_OK && i < n; i++) {
        const sl_safetensors_tensor *t = sl_safetensors_at(st, (size_t)i);
        out->n = i + 1;
        out->names[i] = strdup(t->name);
        out->numel[i] = t->numel;
        out->data[i] = malloc((t->numel ? t->numel : 1) * sizeof(float));
        if (!out->names[i] || !out->data[i]) {
            status =
                sl_error_set(SL_ERR_OOM, "%s: out of memory reading tensor '%s'", path, t->name);
        } else {
            status = sl_safetensors_read_f32(st, t->name, out->data[i], t->numel);
        }
    }
    sl_safetensors_close(st);
    if (status != SL_OK) sl_conf_tensors_free(out);
    return status;
}

void sl_conf_result_free(sl_conf_result *r) {
    free(r->steps);
    sl_conf_tensors_free(&r->final);
    sl_conf_tensors_free(&r->grads);
    sl_observation_free(&r->predicted);
    sl_observation_free(&r->observed);
    free(r->layout_json);
    r->steps = NULL;
    r->layout_json = NULL;
    r->n_steps = 0;
}

/* A number, or the strings trajectory.json writes for non-finite values. */
static double sl_conf_number(const sl_json *v) {
    if (!v) return NAN;
    if (sl_json_type_of(v) == SL_JSON_NUMBER) return sl_json_number(v);
    if (sl_json_type_of(v) == SL_JSON_STRING) {
        const char *s = sl_json_string(v);
        if (!strcmp(s, "Infinity")) return INFINITY;
        if (!strcmp(s, "-Infinity")) return -INFINITY;
    }
    return NAN;
}

static sl_status sl_conf_read_steps(const sl_json *root, const char *path, sl_conf_result *r) {
    const sl_json *steps = sl_json_get(root, "steps");
    if (!steps || sl_json_type_of(steps) != SL_JSON_ARRAY) {
        return sl_error_set(SL_ERR_FORMAT, "%s: expected a \"steps\" array at the top level", path);
    }
    const int n = (int)sl_json_count(steps);
    r->steps = calloc((size_t)n + 1, sizeof *r->steps);
    if (!r->steps) return sl_error_set(SL_ERR_OOM, "%s: out of memory (%d steps)", path, n);
    for (int i = 0; i < n; i++) {
        const sl_json *s = sl_json_at(steps, (size_t)i);
        SL_TRY(sl_json_expect(s, SL_JSON_OBJECT, "steps[]"));
        int64_t step = 0, tokens = 0;
        if (!sl_json_get(s, "loss") || !sl_json_int64(sl_json_get(s, "step"), &step)) {
            return sl_error_set(SL_ERR_FORMAT, "%s:%d: steps[%d]: expected \"step\" and \"loss\"",
                                path, sl_json_line(s), i);
        }
        sl_json_int64(sl_json_get(s, "tokens"), &tokens);
        sl_trajectory_step *t = &r->steps[i];
        t->step = (int)step;
        t->loss = sl_conf_number(sl_json_get(s, "loss"));
        t->grad_norm = sl_conf_number(sl_json_get(s, "grad_norm"));
        t->loss_scale = sl_conf_number(sl_json_get(s, "loss_scale"));
        t->skipped = sl_json_bool(sl_json_get(s, "skipped"));
        t->lr = sl_conf_number(sl_json_get(s, "lr"));
        t->tokens = tokens;
        t->eval_loss = sl_conf_number(sl_json_get(s, "eval_loss"));
    }
    r->n_steps = n;
    return SL_OK;
}

/* plan.precision.<key>.value, a dtype. */
static sl_status sl_conf_read_precision(const sl_json *plan, const char *key, const char *path,
                                        sl_dtype *out) {
    const sl_json *v = sl_json_get(sl_json_get(sl_json_get(plan, "precision"), key), "value");
    if (!v || sl_json_type_of(v) != SL_JSON_STRING ||
        sl_dtype_parse(sl_json_string(v), key, out) != SL_OK) {
        return sl_error_set(SL_ERR_FORMAT, "%s: expected precision.%s.value, a dtype", path, key);
    }
    return SL_OK;
}

/* The prediction, param_dtype and layout of a plan document (explain --json's top level). */
static sl_status sl_conf_read_plan(const sl_json *plan, const char *path, sl_conf_result *r) {
    if (!plan || sl_json_type_of(plan) != SL_JSON_OBJECT) {
        return sl_error_set(SL_ERR_FORMAT, "%s: expected the plan (explain --json) as an object",
                            path);
    }
    SL_TRY(sl_conf_observation_read(plan, "schedule", &r->predicted));
    SL_TRY(sl_conf_read_precision(plan, "param_dtype", path, &r->param_dtype));
    SL_TRY(sl_conf_read_precision(plan, "master_dtype", path, &r->master_dtype));
    const sl_json *layout = sl_json_get(plan, "layout");
    if (!layout) return sl_error_set(SL_ERR_FORMAT, "%s: the plan has no \"layout\"", path);
    r->layout_json = sl_conf_json_compact(layout);
    if (!r->layout_json)
        return sl_error_set(SL_ERR_OOM, "%s: cannot re-serialise the layout", path);
    return SL_OK;
}

static sl_status sl_conf_load_files(sl_conf_tool tool, const char *dir, sl_conf_result *r) {
    char path[SL_CONF_PATH_MAX + 32];
    sl_json *root = NULL;
    if (tool == SL_CONF_TOOL_EXPLAIN) {
        snprintf(path, sizeof path, "%s/explain.json", dir);
        SL_TRY(sl_json_parse_file(path, &root));
        const sl_status st = sl_conf_read_plan(root, path, r);
        sl_json_free(root);
        return st;
    }
    snprintf(path, sizeof path, "%s/trajectory.json", dir);
    SL_TRY(sl_json_parse_file(path, &root));
    sl_status st = sl_conf_read_steps(root, path, r);
    if (st == SL_OK) st = sl_conf_read_plan(sl_json_get(root, "plan"), path, r);
    if (st == SL_OK) {
        const sl_json *obs = sl_json_get(root, "observed");
        if (!obs) {
            st = sl_error_set(SL_ERR_FORMAT, "%s: no \"observed\" member", path);
        } else {
            st = sl_conf_observation_read(obs, "collectives", &r->observed);
        }
    }
    sl_json_free(root);
    if (st != SL_OK) return st;
    snprintf(path, sizeof path, "%s/final.safetensors", dir);
    SL_TRY(sl_conf_tensors_read(path, &r->final));
    snprintf(path, sizeof path, "%s/grads_step1.safetensors", dir);
    if (access(path, F_OK) != 0 && r->n_steps > 0 && r->steps[0].step > 1) {
        return SL_OK; /* a resumed run never took step 1 */
    }
    return sl_conf_tensors_read(path, &r->grads);
}

sl_status sl_conf_result_load(sl_conf_tool tool, const char *dir, sl_conf_result *out) {
    memset(out, 0, sizeof *out);
    out->param_dtype = out->master_dtype = SL_DTYPE_F32;
    snprintf(out->log_path, sizeof out->log_path, "%.500s/run.log", dir);
    out->status = sl_conf_load_files(tool, dir, out);
    if (out->status != SL_OK) {
        snprintf(out->error, sizeof out->error, "%s", sl_error_message());
        sl_conf_result_free(out);
    }
    return out->status;
}
