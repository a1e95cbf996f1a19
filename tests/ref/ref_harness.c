#include "ref_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shardlab/config.h"
#include "shardlab/safetensors.h"

sl_model_desc *harness_model(void) {
    sl_gpt2_config c = {
        .n_layer = 2, .n_embd = 32, .n_head = 2, .block_size = 32, .vocab_size = 256};
    sl_model_desc *m = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&c, &m), SL_OK);
    return m;
}

static void harness_fail(const char *what, const char *flags) {
    print_error("%s failed for flags '%s': %s\n", what, flags, sl_error_message());
    fail();
}

void harness_run(const sl_model_desc *model, const char *flags, const sl_ref_options *opt,
                 ref_result *out) {
    memset(out, 0, sizeof *out);
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", flags);
    char *argv[128];
    int argc = 0;
    for (char *tok = strtok(buf, " "); tok && argc < 128; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    char *rest[128];
    int n_rest = 0;
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    if (sl_config_parse_args(cfg, argc, argv, rest, &n_rest) != SL_OK) harness_fail("parse", flags);
    if (n_rest != 0) {
        print_error("unexpected argument '%s' in '%s'\n", rest[0], flags);
        fail();
    }
    if (sl_plan_compile(cfg, model, &out->plan) != SL_OK) harness_fail("compile", flags);
    sl_config_destroy(cfg);

    snprintf(out->dir, sizeof out->dir, "/tmp/shardlab-test-XXXXXX");
    assert_non_null(mkdtemp(out->dir));
    sl_ref_options o = *opt;
    o.out_dir = out->dir;
    sl_trajectory_init(&out->traj, "ref");
    assert_int_equal(sl_observation_init(&out->obs, out->plan->world_size), SL_OK);
    if (sl_ref_train(out->plan, model, &o, &out->traj, &out->obs) != SL_OK)
        harness_fail("train", flags);

    char path[512];
    snprintf(path, sizeof path, "%s/final.safetensors", out->dir);
    sl_safetensors *st = NULL;
    assert_int_equal(sl_safetensors_open(path, &st), SL_OK);
    out->final = calloc((size_t)model->n_params, sizeof *out->final);
    for (int p = 0; p < model->n_params; p++) {
        out->final[p] = calloc((size_t)model->params[p].numel, sizeof(float));
        assert_int_equal(sl_safetensors_read_f32(st, model->params[p].name, out->final[p],
                                                 (size_t)model->params[p].numel),
                         SL_OK);
    }
    sl_safetensors_close(st);
}

void harness_free(const sl_model_desc *model, ref_result *r) {
    static const char *const files[] = {"trajectory.json", "init.safetensors", "final.safetensors",
                                        "grads_step1.safetensors", "batch_step1.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", r->dir, files[i]);
        unlink(path);
    }
    rmdir(r->dir);
    for (int p = 0; r->final && p < model->n_params; p++)
        free(r->final[p]);
    free(r->final);
    sl_trajectory_free(&r->traj);
    sl_observation_free(&r->obs);
    sl_plan_destroy(r->plan);
}

double harness_loss_divergence(const ref_result *a, const ref_result *b) {
    assert_int_equal(a->traj.n_steps, b->traj.n_steps);
    double worst = 0.0;
    for (int i = 0; i < a->traj.n_steps; i++) {
        double la = a->traj.steps[i].loss, lb = b->traj.steps[i].loss;
        double d = fabs(la - lb) / fabs(lb);
        if (!(d <= worst)) worst = d; /* NaN propagates as a failure */
    }
    return worst;
}

double harness_param_divergence(const sl_model_desc *model, const ref_result *a,
                                const ref_result *b) {
    double worst = 0.0;
    for (int p = 0; p < model->n_params; p++) {
        for (int64_t i = 0; i < model->params[p].numel; i++) {
            double x = a->final[p][i], y = b->final[p][i];
            double d = fabs(x - y) / (fabs(y) + 1e-3);
            if (!(d <= worst)) worst = d;
        }
    }
    return worst;
}

long harness_param_bits_differ(const sl_model_desc *model, const ref_result *a,
                               const ref_result *b) {
    long n = 0;
    for (int p = 0; p < model->n_params; p++) {
        n += memcmp(a->final[p], b->final[p], (size_t)model->params[p].numel * sizeof(float)) != 0;
    }
    return n;
}
