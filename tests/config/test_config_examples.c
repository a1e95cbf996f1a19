/* Every file in examples/configs loads and compiles, and together they cover each dialect,
 * each strategy, each precision and the multi-model form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "shardlab/config_file.h"
#include "shardlab/log.h"
#include "tests/config/config_harness.h"

#define EXAMPLES SL_SOURCE_DIR "/examples/configs"

static int ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* The flags a user runs the file with: an Accelerate file alone, a bare DeepSpeed JSON with
 * --use_deepspeed and a world. */
static void flags_for(const char *path, char *flags, size_t cap) {
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sl_file_read_all(path, &text, &len), SL_OK);
    const int deepspeed = ends_with(path, ".json") && !strstr(text, "\"distributed_type\"");
    free(text);
    if (deepspeed) {
        snprintf(flags, cap, "--use_deepspeed --num_processes 2 --deepspeed_config_file %s", path);
    } else {
        snprintf(flags, cap, "--config_file %s", path);
    }
}

static void test_every_example_loads_and_compiles_and_all_are_covered(void **state) {
    (void)state;
    DIR *dir = opendir(EXAMPLES);
    assert_non_null(dir);
    int n_files = 0;
    int dialects[4] = {0}, strategies[6] = {0}, dtypes[3] = {0};
    bool offload = false, multi_model = false, accumulation = false;
    for (struct dirent *e; (e = readdir(dir));) {
        if (!ends_with(e->d_name, ".yaml") && !ends_with(e->d_name, ".json")) continue;
        char path[1024], flags[1400];
        snprintf(path, sizeof path, "%s/%s", EXAMPLES, e->d_name);
        flags_for(path, flags, sizeof flags);
        sl_plan *plan = NULL;
        if (harness_plan(flags, &plan) != SL_OK) {
            fail_msg("%s: %s", e->d_name, sl_error_message());
        }
        n_files++;
        dialects[plan->dialect]++;
        strategies[plan->strategy]++;
        dtypes[plan->precision.param_dtype == SL_DTYPE_F32   ? 0
               : plan->precision.param_dtype == SL_DTYPE_F16 ? 1
                                                             : 2]++;
        offload |= plan->offload_optimizer;
        accumulation |= plan->grad_accum_steps > 1;
        sl_plan_destroy(plan);

        char **names = NULL;
        size_t n = 0;
        assert_int_equal(sl_config_file_plan_names(path, &names, &n), SL_OK);
        for (size_t i = 0; i < n; i++) {
            char named[1500];
            snprintf(named, sizeof named, "%s --plan_name %s", flags, names[i]);
            if (harness_plan(named, &plan) != SL_OK) {
                fail_msg("%s plan %s: %s", e->d_name, names[i], sl_error_message());
            }
            sl_plan_destroy(plan);
            multi_model = true;
        }
        sl_config_plan_names_free(names, n);
    }
    closedir(dir);
    assert_true(n_files >= 12);
    for (int d = 0; d < 4; d++) {
        if (!dialects[d]) fail_msg("no example for dialect %s", sl_dialect_name((sl_dialect)d));
    }
    for (int s = 0; s < 6; s++) {
        if (!strategies[s])
            fail_msg("no example for strategy %s", sl_strategy_name((sl_strategy)s));
    }
    for (int t = 0; t < 3; t++) {
        if (!dtypes[t]) fail_msg("no example computing in dtype #%d (fp32, fp16, bf16)", t);
    }
    assert_true(offload);
    assert_true(multi_model);
    assert_true(accumulation);
}

int main(void) {
    sl_log_set_level(SL_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_example_loads_and_compiles_and_all_are_covered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
