/* Helpers shared by the plan tests: compile a plan from a flag string on the GPT-2 sizes. Include
 * after <cmocka.h>. */
#ifndef SHARDLAB_TESTS_PLAN_FIXTURE_H
#define SHARDLAB_TESTS_PLAN_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardlab/config.h"
#include "shardlab/plan.h"

static inline sl_config *fixture_config(const char *flags) {
    char buf[1024], *argv[64], *rest[64];
    int argc = 0, n_rest = 0;
    snprintf(buf, sizeof buf, "%s", flags);
    for (char *t = strtok(buf, " "); t; t = strtok(NULL, " "))
        argv[argc++] = t;
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    if (sl_config_parse_args(cfg, argc, argv, rest, &n_rest) != SL_OK) {
        fail_msg("%s: %s", flags, sl_error_message());
    }
    assert_int_equal(n_rest, 0);
    return cfg;
}

static inline sl_model_desc *fixture_model(const char *name) {
    sl_gpt2_config g;
    assert_int_equal(sl_gpt2_config_from_name(name, &g), SL_OK);
    sl_model_desc *m = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&g, &m), SL_OK);
    return m;
}

/* A compiled plan and the gpt-tiny model it was compiled for. */
typedef struct fixture {
    sl_model_desc *model;
    sl_plan *plan;
} fixture;

static inline fixture fixture_compile(const char *flags) {
    fixture fx = {.model = fixture_model("gpt-tiny")};
    sl_config *cfg = fixture_config(flags);
    if (sl_plan_compile(cfg, fx.model, &fx.plan) != SL_OK) {
        fail_msg("%s: %s", flags, sl_error_message());
    }
    sl_config_destroy(cfg);
    return fx;
}

static inline void fixture_free(fixture *fx) {
    sl_plan_destroy(fx->plan);
    sl_model_desc_destroy(fx->model);
}

/* The status of compiling `flags`; the message stays in sl_error_message(). */
static inline sl_status fixture_compile_status(const char *flags) {
    sl_model_desc *m = fixture_model("gpt-tiny");
    sl_config *cfg = fixture_config(flags);
    sl_plan *plan = NULL;
    sl_status st = sl_plan_compile(cfg, m, &plan);
    assert_true(st != SL_OK || plan != NULL);
    sl_plan_destroy(plan);
    sl_config_destroy(cfg);
    sl_model_desc_destroy(m);
    return st;
}

static inline void fixture_assert_contains(const char *haystack, const char *needle) {
    if (!strstr(haystack, needle)) fail_msg("expected \"%s\" in: %s", needle, haystack);
}

#endif
