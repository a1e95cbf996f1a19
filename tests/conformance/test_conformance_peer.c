/* T5 compares the right things: the run's step-1 loss and every tensor of its grads_step1 against
 * the peer's file, each tensor on its own scale. A peer file equal to the run passes; one
 * gradient element off, a loss off, every gradient scaled by 2 (a missed 1/k) or a missing
 * tensor each FAIL, naming what differs. The tolerance is the stated 2·γ_n. With torch
 * installed, the real peer_check.py on a real run passes. Also: `shardlab ref
 * --reverse_reduction_order` changes the summation order and `shardlab train` rejects it by
 * name. Runs are gpt-tiny, one step. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fileio.h"
#include "conformance/divergence.h"
#include "conformance/peer.h"
#include "shardlab/safetensors.h"
#include "tests/support/support.h"

static char root[256];
static char run_dir[SL_CONF_PATH_MAX];
static sl_conf_result run;

static sl_status make_run(sl_conf_run_spec *spec, const char *name, sl_conf_result *r) {
    snprintf(spec->out_dir, sizeof spec->out_dir, "%s/%s", root, name);
    spec->timeout_s = 120.0;
    return sl_conf_run(spec, r);
}

static int setup(void **state) {
    (void)state;
    sl_ts_mkdtemp("conformance-peer", root, sizeof root);
    char label[128];
    sl_conf_run_spec spec;
    sl_conf_peer_plan(1, label, sizeof label, &spec); /* W = 2, k = 2 */
    const sl_status st = make_run(&spec, "ref", &run);
    if (st != SL_OK) fprintf(stderr, "reference run: %s\n", sl_error_message());
    snprintf(run_dir, sizeof run_dir, "%s", spec.out_dir);
    return st == SL_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    sl_conf_result_free(&run);
    sl_ts_rmtree(root);
    return 0;
}

/* Edits of the peer file made from the run's own numbers. */
typedef struct peer_edit {
    double loss_factor; /* the peer's loss = run's × this */
    double grad_factor; /* every gradient × this */
    const char *bump;   /* this tensor's largest element × (1 + bump_by) */
    double bump_by;
    const char *drop; /* this tensor left out */
} peer_edit;

static void write_peer(const peer_edit *e, const char *path) {
    sl_safetensors_writer *w = NULL;
    assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
    float loss = (float)(run.steps[0].loss * e->loss_factor);
    const int64_t one = 1;
    assert_int_equal(sl_safetensors_writer_add_f32(w, "loss", SL_DTYPE_F32, &one, 1, &loss), SL_OK);
    float **copies = calloc((size_t)run.grads.n, sizeof *copies);
    assert_non_null(copies);
    for (int t = 0; t < run.grads.n; t++) {
        if (e->drop && !strcmp(e->drop, run.grads.names[t])) continue;
        const size_t n = run.grads.numel[t];
        copies[t] = malloc(n * sizeof(float));
        assert_non_null(copies[t]);
        size_t big = 0;
        for (size_t i = 0; i < n; i++) {
            copies[t][i] = (float)(run.grads.data[t][i] * e->grad_factor);
            if (fabsf(copies[t][i]) > fabsf(copies[t][big])) big = i;
        }
        if (e->bump && !strcmp(e->bump, run.grads.names[t]))
            copies[t][big] = (float)(copies[t][big] * (1.0 + e->bump_by));
        const int64_t shape = (int64_t)n;
        assert_int_equal(sl_safetensors_writer_add_f32(w, run.grads.names[t], SL_DTYPE_F32, &shape,
                                                       1, copies[t]),
                         SL_OK);
    }
    assert_int_equal(sl_safetensors_writer_write(w, path), SL_OK);
    sl_safetensors_writer_destroy(w);
    for (int t = 0; t < run.grads.n; t++)
        free(copies[t]);
    free(copies);
}

static sl_conf_check compare(const peer_edit *e) {
    char path[512];
    snprintf(path, sizeof path, "%s/edited_peer.safetensors", root);
    write_peer(e, path);
    sl_conf_check c = sl_conf_check_make("T5", "peer", "test");
    sl_conf_peer_compare(&run, path, &c);
    return c;
}

static const peer_edit same = {.loss_factor = 1.0, .grad_factor = 1.0};

static void test_tolerance_is_twice_gamma_n_of_the_longest_f32_sum(void **state) {
    (void)state;
    /* gpt-tiny (V 256, C 64), 256 tokens: n = max(256, 256, 4·64) = 256, u = 2^-24 */
    const double u = ldexp(1.0, -24);
    const double expected = 2.0 * 256.0 * u / (1.0 - 256.0 * u);
    assert_true(fabs(sl_conf_peer_tolerance(&run) - expected) <= 1e-12 * expected);
}

static void test_peer_equal_to_the_run_passes(void **state) {
    (void)state;
    const sl_conf_check c = compare(&same);
    if (c.verdict != SL_CONF_PASS) fail_msg("%s", c.detail);
    /* the loss goes through f32 in the peer file: 2^-24 relative at most */
    assert_true(c.measured <= ldexp(1.0, -24));
}

static void test_one_gradient_element_off_fails_naming_the_tensor(void **state) {
    (void)state;
    /* 1e-3 of the tensor's largest magnitude: 30x the tolerance */
    const peer_edit e = {.loss_factor = 1.0,
                         .grad_factor = 1.0,
                         .bump = "transformer.h.1.mlp.c_proj.bias",
                         .bump_by = 1e-3};
    const sl_conf_check c = compare(&e);
    assert_int_equal(c.verdict, SL_CONF_FAIL);
    assert_string_equal(c.quantity, "grads_step1");
    assert_non_null(strstr(c.detail, "transformer.h.1.mlp.c_proj.bias"));
    assert_true(c.measured > 0.9e-3 / 1.001 && c.measured < 1.1e-3);
}

static void test_gradients_scaled_by_two_fail(void **state) {
    (void)state;
    const peer_edit e = {.loss_factor = 1.0, .grad_factor = 2.0};
    const sl_conf_check c = compare(&e);
    assert_int_equal(c.verdict, SL_CONF_FAIL);
    /* |g - 2g| / |2g| = 1/2 in every tensor */
    assert_true(fabs(c.measured - 0.5) < 1e-6);
}

static void test_loss_off_fails_naming_the_loss(void **state) {
    (void)state;
    const peer_edit e = {.loss_factor = 1.0 + 1e-3, .grad_factor = 1.0};
    const sl_conf_check c = compare(&e);
    assert_int_equal(c.verdict, SL_CONF_FAIL);
    assert_string_equal(c.quantity, "loss");
}

static void test_missing_gradient_fails_naming_it(void **state) {
    (void)state;
    const peer_edit e = {.loss_factor = 1.0, .grad_factor = 1.0, .drop = "transformer.wpe.weight"};
    const sl_conf_check c = compare(&e);
    assert_int_equal(c.verdict, SL_CONF_FAIL);
    assert_non_null(strstr(c.detail, "transformer.wpe.weight"));
}

static void test_unreadable_peer_file_fails_naming_it(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/not-safetensors", root);
    assert_int_equal(sl_file_write_atomic_bytes(path, "{}", 2), SL_OK);
    sl_conf_check c = sl_conf_check_make("T5", "peer", "test");
    sl_conf_peer_compare(&run, path, &c);
    assert_int_equal(c.verdict, SL_CONF_FAIL);
    assert_non_null(strstr(c.detail, "not-safetensors"));
}

static void test_real_peer_check_passes_when_torch_is_installed(void **state) {
    (void)state;
    sl_conf_peer_env env;
    sl_conf_peer_env_find(&env);
    if (!env.ok) {
        printf("T5 not exercised: %s\n", env.why);
        skip();
    }
    sl_conf_check c = sl_conf_check_make("T5", "peer", "test");
    sl_conf_peer_check(&env, run_dir, &run, 120.0, &c);
    if (c.verdict != SL_CONF_PASS) fail_msg("%s", c.detail);
    assert_true(c.measured < c.tolerance);
}

static void test_ref_reverse_reduction_order_changes_the_sums_and_train_rejects_it(void **state) {
    (void)state;
    /* at W = 4 the order of a 4-term f32 sum shows in some gradient bit (at W = 2, a + b = b + a)
     */
    sl_conf_run_spec spec = sl_conf_run_spec_default();
    spec.world_size = 4;
    spec.steps = 1;
    snprintf(spec.plan_flags, sizeof spec.plan_flags, "--use_fsdp --micro_batch_size 1 --seed 3");
    sl_conf_result fwd, rev;
    if (make_run(&spec, "fwd", &fwd) != SL_OK) fail_msg("%s", sl_error_message());
    spec.reverse_reduction_order = true;
    if (make_run(&spec, "rev", &rev) != SL_OK) fail_msg("%s", sl_error_message());
    char line[2048];
    sl_conf_run_spec_describe(&spec, line, sizeof line);
    assert_non_null(strstr(line, " ref --reverse_reduction_order"));
    double d = 0.0;
    assert_int_equal(sl_conf_tensors_divergence(&rev.grads, &fwd.grads, &d), SL_OK);
    assert_true(d > 0.0);
    assert_true(d < 1e-5); /* a reordering, not another computation */
    sl_conf_result_free(&fwd);
    sl_conf_result_free(&rev);

    spec.tool = SL_CONF_TOOL_TRAIN;
    spec.world_size = 1;
    sl_conf_result tr;
    assert_int_not_equal(make_run(&spec, "train", &tr), SL_OK);
    sl_conf_result_free(&tr);
    char *log = NULL;
    size_t len = 0;
    char path[512];
    snprintf(path, sizeof path, "%s/train/run.log", root);
    assert_int_equal(sl_file_read_all(path, &log, &len), SL_OK);
    if (!strstr(log, "--reverse_reduction_order: only `shardlab ref`")) fail_msg("%s", log);
    free(log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tolerance_is_twice_gamma_n_of_the_longest_f32_sum),
        cmocka_unit_test(test_peer_equal_to_the_run_passes),
        cmocka_unit_test(test_one_gradient_element_off_fails_naming_the_tensor),
        cmocka_unit_test(test_gradients_scaled_by_two_fail),
        cmocka_unit_test(test_loss_off_fails_naming_the_loss),
        cmocka_unit_test(test_missing_gradient_fails_naming_it),
        cmocka_unit_test(test_unreadable_peer_file_fails_naming_it),
        cmocka_unit_test(test_real_peer_check_passes_when_torch_is_installed),
        cmocka_unit_test(test_ref_reverse_reduction_order_changes_the_sums_and_train_rejects_it),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
