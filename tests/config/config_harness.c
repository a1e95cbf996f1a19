#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/config/config_harness.h"
#include "tests/support/support.h"

static char harness_tmp[256];

static void harness_cleanup(void) {
    sl_ts_rmtree(harness_tmp);
}

const char *harness_dir(void) {
    if (!harness_tmp[0]) {
        sl_ts_mkdtemp("config-test", harness_tmp, sizeof harness_tmp);
        atexit(harness_cleanup);
    }
    return harness_tmp;
}

const char *harness_write(const char *name, const char *text) {
    return sl_ts_write(sl_ts_join(harness_dir(), name), text, false);
}

sl_status harness_config(const char *flags, sl_config **out) {
    char buf[2048], *argv[64], *rest[64];
    int argc = 0, n_rest = 0;
    snprintf(buf, sizeof buf, "%s", flags);
    for (char *t = strtok(buf, " "); t && argc < 64; t = strtok(NULL, " "))
        argv[argc++] = t;
    assert_int_equal(sl_config_create(out), SL_OK);
    sl_status st = sl_config_parse_args(*out, argc, argv, rest, &n_rest);
    if (st == SL_OK && n_rest != 0) fail_msg("%s: unexpected argument %s", flags, rest[0]);
    return st;
}

sl_status harness_plan(const char *flags, sl_plan **out) {
    *out = NULL;
    sl_config *cfg = NULL;
    sl_status st = harness_config(flags, &cfg);
    sl_gpt2_config g;
    sl_model_desc *model = NULL;
    assert_int_equal(sl_gpt2_config_from_name("gpt-tiny", &g), SL_OK);
    assert_int_equal(sl_model_desc_create_gpt2(&g, &model), SL_OK);
    if (st == SL_OK) st = sl_plan_compile(cfg, model, out);
    sl_model_desc_destroy(model);
    sl_config_destroy(cfg);
    return st;
}

void harness_expect_error(const char *flags, int format, const char *const *needles) {
    sl_plan *plan = NULL;
    const sl_status st = harness_plan(flags, &plan);
    sl_plan_destroy(plan);
    if (st == SL_OK) fail_msg("%s: expected an error, it compiled", flags);
    if (st != (format ? SL_ERR_FORMAT : SL_ERR_CONFIG)) {
        fail_msg("%s: expected %s, got %s: %s", flags, format ? "SL_ERR_FORMAT" : "SL_ERR_CONFIG",
                 sl_status_name(st), sl_error_message());
    }
    for (const char *const *n = needles; *n; n++)
        sl_ts_expect(sl_error_message(), *n);
}

harness_run_result harness_run(const char *args, const char *input, int merge_stderr) {
    const sl_ts_spawn how = {
        .cwd = harness_dir(), .input = input ? input : "", .drop_stderr = !merge_stderr};
    harness_run_result r = {0};
    /* the commands here read files and answer at once: a minute is a hang */
    r.status = sl_ts_shardlab(args, &how, 60.0, &r.out);
    r.len = strlen(r.out);
    return r;
}
