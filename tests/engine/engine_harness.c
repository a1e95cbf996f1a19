/* Engine test helpers (engine_harness.h). */
#include "tests/engine/engine_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "conformance/divergence.h"

sl_model_desc *eh_model(void) {
    const sl_gpt2_config cfg = {
        .n_layer = 2, .n_embd = 32, .n_head = 2, .block_size = 32, .vocab_size = 256};
    sl_model_desc *m = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&cfg, &m), SL_OK);
    return m;
}

sl_plan *eh_plan(const sl_model_desc *model, const char *flags) {
    char storage[2048];
    char *argv[128];
    const int argc = sl_ts_split(flags, storage, argv, 128);
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    char *rest[128];
    int n_rest = 0;
    sl_status st = sl_config_parse_args(cfg, argc, argv, rest, &n_rest);
    sl_plan *plan = NULL;
    if (st == SL_OK && n_rest) st = sl_error_set(SL_ERR_CONFIG, "unparsed flag %s", rest[0]);
    if (st == SL_OK) st = sl_plan_compile(cfg, model, &plan);
    sl_config_destroy(cfg);
    if (st != SL_OK) fail_msg("plan '%s': %s", flags, sl_error_message());
    return plan;
}

double eh_series_divergence(const double *a, const double *b, int n) {
    return sl_conf_series_divergence(a, b, n);
}
