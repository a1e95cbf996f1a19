/* Checkpoint test helpers (ckpt_harness.h). */
#include "tests/ckpt/ckpt_harness.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"
#include "common/param_file.h"
#include "shardlab/safetensors.h"

static char ch_out[256 * 1024];

sl_model_desc *ch_model(void) {
    const sl_gpt2_config cfg = {
        .n_layer = 2, .n_embd = 32, .n_head = 2, .block_size = 32, .vocab_size = 256};
    sl_model_desc *m = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&cfg, &m), SL_OK);
    return m;
}

const char *ch_output(void) {
    return ch_out;
}

static int ch_start(int W, const char *launch_flags, bool self, const char *args,
                    char *const *env) {
    static char text[4096];
    snprintf(text, sizeof text, "%s", launch_flags ? launch_flags : "");
    char *argv[256];
    int a = 0;
    char np[16];
    snprintf(np, sizeof np, "%d", W);
    if (W > 1 || self) {
        argv[a++] = sl_ts_shardlab_bin();
        argv[a++] = "launch";
        argv[a++] = "--num_processes";
        argv[a++] = np;
        for (char *tok = strtok(text, " "); tok && a < 64; tok = strtok(NULL, " "))
            argv[a++] = tok;
    }
    if (self) {
        argv[a++] = sl_ts_self();
        argv[a++] = "--worker";
    } else {
        argv[a++] = sl_ts_shardlab_bin();
        argv[a++] = "train";
    }
    static char words[4096];
    snprintf(words, sizeof words, "%s", args);
    for (char *tok = strtok(words, " "); tok && a < 250; tok = strtok(NULL, " "))
        argv[a++] = tok;
    argv[a] = NULL;
    const sl_ts_spawn how = {.env = env};
    return sl_ts_run(argv, &how, 120.0, ch_out, sizeof ch_out, NULL);
}

int ch_train(int W, const char *launch_flags, const char *args, char *const *env) {
    return ch_start(W, launch_flags, false, args, env);
}

int ch_launch_self(int W, const char *launch_flags, const char *args) {
    return ch_start(W, launch_flags, true, args, NULL);
}

const char *ch_read_text(const char *dir, const char *name) {
    static char text[4096];
    sl_ts_read_into(sl_ts_join(dir, name), text, sizeof text);
    for (size_t i = strlen(text); i > 0 && text[i - 1] == '\n'; i--)
        text[i - 1] = '\0';
    return text;
}

int ch_read_trajectory(const char *dir, int *step, double *loss, int cap) {
    char path[4096];
    snprintf(path, sizeof path, "%s/trajectory.json", dir);
    sl_json *root = NULL;
    if (sl_json_parse_file(path, &root) != SL_OK) fail_msg("%s", sl_error_message());
    const sl_json *steps = sl_json_get(root, "steps");
    assert_non_null(steps);
    const int n = (int)sl_json_count(steps);
    assert_true(n <= cap);
    for (int i = 0; i < n; i++) {
        const sl_json *s = sl_json_at(steps, (size_t)i);
        step[i] = (int)sl_json_number(sl_json_get(s, "step"));
        loss[i] = sl_json_number(sl_json_get(s, "loss"));
    }
    sl_json_free(root);
    return n;
}

float **ch_read_params(const sl_model_desc *model, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sl_safetensors *st = NULL;
    if (sl_safetensors_open(path, &st) != SL_OK) fail_msg("%s", sl_error_message());
    float **a = sl_param_arrays_alloc(model);
    assert_non_null(a);
    for (int p = 0; p < model->n_params; p++) {
        if (sl_safetensors_read_f32(st, model->params[p].name, a[p],
                                    (size_t)model->params[p].numel) != SL_OK) {
            fail_msg("%s", sl_error_message());
        }
    }
    sl_safetensors_close(st);
    return a;
}

bool ch_params_equal(const sl_model_desc *model, float **a, float **b) {
    for (int p = 0; p < model->n_params; p++) {
        if (memcmp(a[p], b[p], (size_t)model->params[p].numel * sizeof(float)) != 0) return false;
    }
    return true;
}

double ch_params_divergence(const sl_model_desc *model, float **a, float **b) {
    double diff = 0.0, scale = 0.0;
    for (int p = 0; p < model->n_params; p++) {
        for (int64_t i = 0; i < model->params[p].numel; i++) {
            const double d = fabs((double)a[p][i] - (double)b[p][i]);
            if (!(d <= diff)) diff = d; /* a NaN wins */
            if (fabs((double)b[p][i]) > scale) scale = fabs((double)b[p][i]);
        }
    }
    return scale > 0.0 ? diff / scale : diff;
}
