/* The GPT-2 model description (common/model.c) and its initialisation: Hugging Face names,
 * shapes and order; units; GPT-2's init rule; and the counter-based property that a rank
 * generating only its shard — under every layout — gets exactly the values of a full
 * initialisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "plan_fixture.h"
#include "shardlab/model.h"

static void test_gpt2_names_shapes_and_order_are_hugging_face(void **state) {
    (void)state;
    sl_model_desc *m = fixture_model("gpt-tiny"); /* L2 C64 H4 T64 V256 */
    assert_int_equal(m->n_params, 4 + 12 * 2);
    assert_string_equal(m->params[0].name, "transformer.wte.weight");
    assert_int_equal(m->params[0].shape[0], 256);
    assert_int_equal(m->params[0].shape[1], 64);
    assert_string_equal(m->params[1].name, "transformer.wpe.weight");
    assert_int_equal(m->params[1].shape[0], 64);
    assert_string_equal(m->params[2].name, "transformer.h.0.ln_1.weight");
    /* Conv1D keeps (in, out): c_attn is (C, 3C), mlp.c_proj is (4C, C). */
    const int c_attn = sl_model_find_param(m, "transformer.h.1.attn.c_attn.weight");
    assert_true(c_attn > 0);
    assert_int_equal(m->params[c_attn].shape[0], 64);
    assert_int_equal(m->params[c_attn].shape[1], 192);
    const int fc_proj = sl_model_find_param(m, "transformer.h.1.mlp.c_proj.weight");
    assert_int_equal(m->params[fc_proj].shape[0], 256);
    assert_int_equal(m->params[fc_proj].shape[1], 64);
    assert_string_equal(m->params[m->n_params - 1].name, "transformer.ln_f.bias");
    assert_int_equal(sl_model_find_param(m, "lm_head.weight"), -1); /* tied to wte */
    /* 2·(12·64² + 13·64) + 256·64 + 64·64 + 2·64 parameters, as GPT2LMHeadModel counts them. */
    assert_int_equal(m->total_numel, 2 * (12 * 64 * 64 + 13 * 64) + 256 * 64 + 64 * 64 + 2 * 64);
    /* units: the root (wte, wpe, ln_f) first, then one per block, in execution order */
    assert_int_equal(m->n_units, 3);
    assert_true(m->units[0].is_root);
    assert_int_equal(m->units[0].n_params, 4);
    assert_int_equal(m->units[0].params[2], sl_model_find_param(m, "transformer.ln_f.weight"));
    assert_string_equal(m->units[2].name, "transformer.h.1");
    assert_int_equal(m->units[2].n_params, 12);
    sl_model_desc_destroy(m);
}

static void test_invalid_sizes_name_the_flag(void **state) {
    (void)state;
    sl_gpt2_config c = {.n_layer = 2, .n_embd = 65, .n_head = 4, .block_size = 8, .vocab_size = 16};
    sl_model_desc *m = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&c, &m), SL_ERR_CONFIG);
    fixture_assert_contains(sl_error_message(), "--n_head");
    c.n_embd = 64;
    c.n_layer = 0;
    assert_int_equal(sl_model_desc_create_gpt2(&c, &m), SL_ERR_CONFIG);
    fixture_assert_contains(sl_error_message(), "--n_layer");
    assert_int_equal(sl_gpt2_config_from_name("gpt-huge", &c), SL_ERR_CONFIG);
    fixture_assert_contains(sl_error_message(), "gpt-huge");
}

/* GPT-2's rule: N(0, 0.02) weights, c_proj weights N(0, 0.02/sqrt(2L)), zero biases, LayerNorm
 * (1, 0). The sample std of n normal draws has relative standard error 1/sqrt(2n); with
 * n ≥ 4096 that is ≤ 1.1%, so 6% is more than 5 standard errors. */
static void test_init_follows_gpt2_rule(void **state) {
    (void)state;
    sl_model_desc *m = fixture_model("gpt-tiny");
    const double proj = 0.02 / sqrt(2.0 * 2);
    for (int p = 0; p < m->n_params; p++) {
        const sl_param_desc *pd = &m->params[p];
        float *x = calloc((size_t)pd->numel, sizeof(float));
        sl_model_init_range(m, p, 42, 0, pd->numel, x);
        double sum = 0.0, sq = 0.0;
        for (int64_t i = 0; i < pd->numel; i++) {
            sum += x[i];
            sq += (double)x[i] * x[i];
        }
        const double mean = sum / (double)pd->numel,
                     sd = sqrt(sq / (double)pd->numel - mean * mean);
        if (strstr(pd->name, "ln_") && strstr(pd->name, ".weight")) {
            assert_true(mean == 1.0 && sd == 0.0);
        } else if (strstr(pd->name, ".bias")) {
            assert_true(mean == 0.0 && sd == 0.0);
        } else {
            const double want = strstr(pd->name, "c_proj.weight") ? proj : 0.02;
            if (fabs(sd - want) > 0.06 * want ||
                fabs(mean) > 6.0 * want / sqrt((double)pd->numel)) {
                fail_msg("%s: mean %.3g sd %.4g, expected N(0, %.4g)", pd->name, mean, sd, want);
            }
        }
        free(x);
    }
    sl_model_desc_destroy(m);
}

static const char *const layouts[] = {
    "--use_fsdp --fsdp_sharding_strategy FULL_SHARD",
    "--use_fsdp --fsdp_sharding_strategy FULL_SHARD --fsdp_use_orig_params false",
    "--use_fsdp --fsdp_version 2",
    "--use_deepspeed --zero_stage 1",
    "--use_deepspeed --zero_stage 3 --stage3_param_persistence_threshold 0",
    "--use_deepspeed --zero_stage 0",
};

static void test_shard_initialisation_equals_full_initialisation_every_layout(void **state) {
    (void)state;
    const uint64_t seed = 7;
    sl_model_desc *m = fixture_model("gpt-tiny");
    float **full = calloc((size_t)m->n_params, sizeof *full);
    for (int p = 0; p < m->n_params; p++) {
        full[p] = calloc((size_t)m->params[p].numel, sizeof(float));
        sl_model_init_range(m, p, seed, 0, m->params[p].numel, full[p]);
    }
    for (size_t l = 0; l < sizeof layouts / sizeof layouts[0]; l++) {
        for (int W = 3; W <= 5; W++) {
            char flags[256];
            snprintf(flags, sizeof flags, "%s --num_processes %d", layouts[l], W);
            fixture fx = fixture_compile(flags);
            int64_t covered = 0;
            for (int b = 0; b < fx.plan->n_buffers; b++) {
                const sl_flat_buffer *buf = &fx.plan->buffers[b];
                sl_shard_piece *pieces = calloc((size_t)buf->n_segments + 1, sizeof *pieces);
                const int ranks =
                    buf->shard_numel == buf->numel_padded ? 1 : fx.plan->shard_group_size;
                for (int r = 0; r < ranks; r++) {
                    int64_t pad = 0;
                    const int n = sl_plan_shard_pieces(buf, r, pieces, &pad);
                    for (int i = 0; i < n; i++) {
                        const int64_t len = pieces[i].end - pieces[i].start;
                        float *mine = calloc((size_t)len, sizeof(float));
                        sl_model_init_range(fx.model, pieces[i].param, seed, pieces[i].start, len,
                                            mine);
                        if (memcmp(mine, full[pieces[i].param] + pieces[i].start,
                                   (size_t)len * sizeof(float))) {
                            fail_msg(
                                "%s: rank %d's piece [%lld, %lld) of %s differs from the full init",
                                flags, r, (long long)pieces[i].start, (long long)pieces[i].end,
                                m->params[pieces[i].param].name);
                        }
                        covered += len;
                        free(mine);
                    }
                }
                free(pieces);
            }
            assert_int_equal(covered, m->total_numel); /* every element exactly once */
            fixture_free(&fx);
        }
    }
    for (int p = 0; p < m->n_params; p++)
        free(full[p]);
    free(full);
    sl_model_desc_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2_names_shapes_and_order_are_hugging_face),
        cmocka_unit_test(test_invalid_sizes_name_the_flag),
        cmocka_unit_test(test_init_follows_gpt2_rule),
        cmocka_unit_test(test_shard_initialisation_equals_full_initialisation_every_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
