#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/config/config_harness.h"

static char harness_tmp[256];

static void harness_cleanup(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", harness_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", harness_tmp);
}

const char *harness_dir(void) {
    if (!harness_tmp[0]) {
        snprintf(harness_tmp, sizeof harness_tmp, "/tmp/shardlab_config_test.XXXXXX");
        if (!mkdtemp(harness_tmp)) fail_msg("mkdtemp failed");
        atexit(harness_cleanup);
    }
    return harness_tmp;
}

const char *harness_write(const char *name, const char *text) {
    static char paths[64][512];
    static int next;
    char *path = paths[next++ % 64];
    snprintf(path, 512, "%s/%s", harness_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return path;
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

void harness_contains(const char *haystack, const char *needle) {
    if (!strstr(haystack, needle)) fail_msg("expected \"%s\" in:\n%s", needle, haystack);
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
        harness_contains(sl_error_message(), *n);
}

harness_run_result harness_run(const char *args, const char *input, int merge_stderr) {
    const char *bin = getenv("SHARDLAB_BIN");
    if (!bin) skip();
    const char *in_path = harness_write("stdin.txt", input ? input : "");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s < '%s' %s", harness_dir(), bin, args, in_path,
             merge_stderr ? "2>&1" : "2>/dev/null");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    harness_run_result r = {0};
    size_t cap = 0;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
        if (r.len + n + 1 > cap) {
            cap = 2 * (r.len + n + 1);
            r.out = realloc(r.out, cap);
            assert_non_null(r.out);
        }
        memcpy(r.out + r.len, buf, n);
        r.len += n;
    }
    if (!r.out) r.out = calloc(1, 1);
    r.out[r.len] = '\0';
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}
