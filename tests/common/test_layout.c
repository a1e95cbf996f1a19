/* Flat buffers and shard ownership (DESIGN.md §5) for awkward sizes, against ranges worked out by
 * hand from the framework rules. The model is synthetic so sizes can be awkward:
 *
 *   registration order  a (5,)  c (2,)  d (7, 3)  b (3, 2)
 *   units               root = {a, b}   u1 = {c, d}
 *
 * Each expected shard is written "piece piece ...", a piece being name[start,end) of a parameter
 * or "pad N", in flat order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/plan_internal.h"
#include "shardlab/config.h"
#include "shardlab/plan.h"

static sl_model_desc *synthetic_model(void) {
    static const struct {
        const char *name;
        int ndim;
        int64_t d0, d1;
        int unit;
    } ps[] = {{"a", 1, 5, 0, 0}, {"c", 1, 2, 0, 1}, {"d", 2, 7, 3, 1}, {"b", 2, 3, 2, 0}};
    sl_model_desc *m = calloc(1, sizeof *m);
    assert_non_null(m);
    snprintf(m->kind, sizeof m->kind, "gpt2");
    m->gpt2 =
        (sl_gpt2_config){.n_layer = 1, .n_embd = 4, .n_head = 1, .block_size = 64, .vocab_size = 8};
    m->n_params = 4;
    m->params = calloc(4, sizeof *m->params);
    m->n_units = 2;
    m->units = calloc(2, sizeof *m->units);
    assert_non_null(m->params);
    assert_non_null(m->units);
    for (int u = 0; u < 2; u++) {
        m->units[u].params = calloc(2, sizeof(int));
        assert_non_null(m->units[u].params);
        snprintf(m->units[u].name, SL_MAX_NAME, "%s", u ? "u1" : "root");
    }
    m->units[0].is_root = 1;
    for (int p = 0; p < 4; p++) {
        sl_param_desc *d = &m->params[p];
        snprintf(d->name, SL_MAX_NAME, "%s", ps[p].name);
        d->ndim = ps[p].ndim;
        d->shape[0] = ps[p].d0;
        d->shape[1] = ps[p].d1;
        d->numel = ps[p].ndim == 2 ? ps[p].d0 * ps[p].d1 : ps[p].d0;
        d->unit = ps[p].unit;
        sl_unit_desc *u = &m->units[ps[p].unit];
        u->params[u->n_params++] = p;
        m->total_numel += d->numel;
    }
    return m;
}

static sl_plan *compile(const sl_model_desc *model, const char *flags) {
    char buf[512], *argv[32], *rest[32];
    int argc = 0, n_rest = 0;
    snprintf(buf, sizeof buf, "%s", flags);
    for (char *t = strtok(buf, " "); t; t = strtok(NULL, " "))
        argv[argc++] = t;
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    assert_int_equal(sl_config_parse_args(cfg, argc, argv, rest, &n_rest), SL_OK);
    assert_int_equal(n_rest, 0);
    sl_plan *plan = NULL;
    if (sl_plan_compile(cfg, model, &plan) != SL_OK) fail_msg("%s: %s", flags, sl_error_message());
    sl_config_destroy(cfg);
    return plan;
}

/* What shard rank s owns of buffer b, walking the segments (independently of the library's
 * sl_plan_shard_pieces). */
static void describe_shard(const sl_plan *plan, const sl_model_desc *model, int b, int s, char *out,
                           size_t cap) {
    const sl_flat_buffer *buf = &plan->buffers[b];
    const int64_t lo = s * buf->shard_numel, hi = lo + buf->shard_numel;
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < buf->n_segments && n < cap; i++) {
        const sl_segment *g = &buf->segments[i];
        const int64_t a = g->flat_offset > lo ? g->flat_offset : lo;
        const int64_t e = g->flat_offset + g->numel < hi ? g->flat_offset + g->numel : hi;
        if (a >= e) continue;
        if (g->param < 0) {
            n += (size_t)snprintf(out + n, cap - n, "%spad %lld", n ? " " : "", (long long)(e - a));
        } else {
            n += (size_t)snprintf(out + n, cap - n, "%s%s[%lld,%lld)", n ? " " : "",
                                  model->params[g->param].name,
                                  (long long)(g->param_offset + a - g->flat_offset),
                                  (long long)(g->param_offset + e - g->flat_offset));
        }
    }
}

static void expect_buffer(const sl_plan *plan, const sl_model_desc *model, int b, int unit,
                          int64_t numel_padded, int64_t shard_numel, int n_shards,
                          const char *const *shards) {
    const sl_flat_buffer *buf = &plan->buffers[b];
    if (buf->unit != unit || buf->numel_padded != numel_padded || buf->shard_numel != shard_numel) {
        fail_msg("buffer %d: unit %d, numel_padded %lld, shard %lld; expected %d, %lld, %lld", b,
                 buf->unit, (long long)buf->numel_padded, (long long)buf->shard_numel, unit,
                 (long long)numel_padded, (long long)shard_numel);
    }
    for (int s = 0; s < n_shards; s++) {
        char got[512];
        describe_shard(plan, model, b, s, got, sizeof got);
        if (strcmp(got, shards[s]) != 0) {
            fail_msg("buffer %d shard rank %d owns \"%s\", expected \"%s\"", b, s, got, shards[s]);
        }
    }
}

#define EXPECT(plan, model, b, unit, padded, shard, ...)                                           \
    do {                                                                                           \
        const char *const shards_[] = {__VA_ARGS__};                                               \
        expect_buffer(plan, model, b, unit, padded, shard,                                         \
                      (int)(sizeof shards_ / sizeof shards_[0]), shards_);                         \
    } while (0)

/* Segments tile [0, numel_padded) in order and cover every parameter exactly once. */
static void assert_segments_tile(const sl_plan *plan, const sl_model_desc *model) {
    int64_t *covered = calloc((size_t)model->n_params, sizeof *covered);
    assert_non_null(covered);
    for (int b = 0; b < plan->n_buffers; b++) {
        const sl_flat_buffer *buf = &plan->buffers[b];
        int64_t at = 0;
        for (int i = 0; i < buf->n_segments; i++) {
            assert_int_equal(buf->segments[i].flat_offset, at);
            assert_true(buf->segments[i].numel > 0);
            at += buf->segments[i].numel;
            if (buf->segments[i].param >= 0)
                covered[buf->segments[i].param] += buf->segments[i].numel;
        }
        assert_int_equal(at, buf->numel_padded);
        assert_int_equal(buf->numel_padded % (buf->shard_numel ? buf->shard_numel : 1), 0);
    }
    for (int p = 0; p < model->n_params; p++)
        assert_int_equal(covered[p], model->params[p].numel);
    free(covered);
}

/* FSDP1 use_orig_params, fp32 (4-element alignment), W = 3.
 * root: a [0,5), pad 3 (5 % 4 != 0), b [8,14); N' = 14 → 3·ceil(14/3) = 15, shards of 5.
 * u1:   c [0,2), pad 2, d [4,25); N' = 25 → 27, shards of 9. */
static void test_fsdp1_orig_params_aligns_and_pads_w3(void **state) {
    (void)state;
    sl_model_desc *m = synthetic_model();
    sl_plan *plan = compile(m, "--use_fsdp --num_processes 3");
    assert_int_equal(plan->layout, SL_LAYOUT_FLAT_PER_UNIT);
    assert_int_equal(plan->n_buffers, 2);
    EXPECT(plan, m, 0, 0, 15, 5, "a[0,5)", "pad 3 b[0,2)", "b[2,6) pad 1");
    EXPECT(plan, m, 1, 1, 27, 9, "c[0,2) pad 2 d[0,5)", "d[5,14)", "d[14,21) pad 2");
    assert_segments_tile(plan, m);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
}

/* Without use_orig_params: no alignment; N = 11 → shards of 4 (12), N = 23 → shards of 8 (24). */
static void test_fsdp1_without_orig_params_pads_only_the_tail_w3(void **state) {
    (void)state;
    sl_model_desc *m = synthetic_model();
    sl_plan *plan = compile(m, "--use_fsdp --num_processes 3 --fsdp_use_orig_params false");
    EXPECT(plan, m, 0, 0, 12, 4, "a[0,4)", "a[4,5) b[0,3)", "b[3,6) pad 1");
    EXPECT(plan, m, 1, 1, 24, 8, "c[0,2) d[0,6)", "d[6,14)", "d[14,21) pad 1");
    assert_segments_tile(plan, m);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
}

/* bf16 compute: alignment is 16 bytes / 2 = 8 elements. W = 5.
 * root: a [0,5), pad 3, b [8,14); N' = 14 → 15, shards of 3.
 * u1:   c [0,2), pad 6, d [8,29); N' = 29 → 30, shards of 6. */
static void test_fsdp1_alignment_follows_param_dtype_w5(void **state) {
    (void)state;
    sl_model_desc *m = synthetic_model();
    sl_plan *plan = compile(m, "--use_fsdp --num_processes 5 --mixed_precision bf16");
    EXPECT(plan, m, 0, 0, 15, 3, "a[0,3)", "a[3,5) pad 1", "pad 2 b[0,1)", "b[1,4)",
           "b[4,6) pad 1");
    EXPECT(plan, m, 1, 1, 30, 6, "c[0,2) pad 4", "pad 2 d[0,4)", "d[4,10)", "d[10,16)",
           "d[16,21) pad 1");
    assert_segments_tile(plan, m);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
}

/* FSDP2: one buffer per param in registration order, rows chunked by ceil(d0/W).
 * W = 3: a 5 rows → 2 per rank; c 2 rows → 1 (rank 2 empty); d 7 rows of 3 → 3 rows = 9
 * elements; b 3 rows of 2 → 1 row. */
static void test_fsdp2_chunks_rows_w3(void **state) {
    (void)state;
    sl_model_desc *m = synthetic_model();
    sl_plan *plan = compile(m, "--use_fsdp --fsdp_version 2 --num_processes 3");
    assert_int_equal(plan->layout, SL_LAYOUT_PER_PARAM_DIM0);
    assert_int_equal(plan->n_buffers, 4);
    EXPECT(plan, m, 0, 0, 6, 2, "a[0,2)", "a[2,4)", "a[4,5) pad 1");
    EXPECT(plan, m, 1, 1, 3, 1, "c[0,1)", "c[1,2)", "pad 1");
    EXPECT(plan, m, 2, 1, 27, 9, "d[0,9)", "d[9,18)", "d[18,21) pad 6");
    EXPECT(plan, m, 3, 0, 6, 2, "b[0,2)", "b[2,4)", "b[4,6)");
    assert_segments_tile(plan, m);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
}

/* W = 5: d has 7 rows → 2 per rank (6 elements): ranks 0-2 full, rank 3 one row, rank 4 none. */
static void test_fsdp2_chunks_rows_w5(void **state) {
    (void)state;
    sl_model_desc *m = synthetic_model();
    sl_plan *plan = compile(m, "--use_fsdp --fsdp_version 2 --num_processes 5");
    EXPECT(plan, m, 0, 0, 5, 1, "a[0,1)", "a[1,2)", "a[2,3)", "a[3,4)", "a[4,5)");
    EXPECT(plan, m, 1, 1, 5, 1, "c[0,1)", "c[1,2)", "pad 1", "pad 1", "pad 1");
    EXPECT(plan, m, 2, 1, 30, 6, "d[0,6)", "d[6,12)", "d[12,18)", "d[18,21) pad 3", "pad 6");
    EXPECT(plan, m, 3, 0, 10, 2, "b[0,2)", "b[2,4)", "b[4,6)", "pad 2", "pad 2");
    assert_segments_tile(plan, m);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
}

/* ZeRO-2, W = 3: a c d b back to back (34), padded to a multiple of 2W = 6 → 36, shards of 12. */
static void test_zero2_flat_global_pads_to_two_w_w3(void **state) {
    (void)state;
    sl_model_desc *m = synthetic_model();
    sl_plan *plan = compile(m, "--use_deepspeed --zero_stage 2 --num_processes 3");
    assert_int_equal(plan->layout, SL_LAYOUT_FLAT_GLOBAL);
    assert_int_equal(plan->n_buffers, 1);
    EXPECT(plan, m, 0, -1, 36, 12, "a[0,5) c[0,2) d[0,5)", "d[5,17)", "d[17,21) b[0,6) pad 2");
    assert_segments_tile(plan, m);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
}

/* ZeRO-1, W = 5: 34 → multiple of 10 → 40, shards of 8. */
static void test_zero1_flat_global_w5(void **state) {
    (void)state;
    sl_model_desc *m = synthetic_model();
    sl_plan *plan = compile(m, "--use_deepspeed --zero_stage 1 --num_processes 5");
    EXPECT(plan, m, 0, -1, 40, 8, "a[0,5) c[0,2) d[0,1)", "d[1,9)", "d[9,17)", "d[17,21) b[0,4)",
           "b[4,6) pad 6");
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
}

/* ZeRO-3, W = 3, threshold 5: ceil(numel/3) elements per rank; a (5) and c (2) persistent. */
static void test_zero3_per_param_flat_w3(void **state) {
    (void)state;
    sl_model_desc *m = synthetic_model();
    sl_plan *plan = compile(m, "--use_deepspeed --zero_stage 3 --num_processes 3 "
                               "--stage3_param_persistence_threshold 5");
    assert_int_equal(plan->layout, SL_LAYOUT_PER_PARAM_FLAT);
    EXPECT(plan, m, 0, 0, 6, 2, "a[0,2)", "a[2,4)", "a[4,5) pad 1");
    EXPECT(plan, m, 1, 1, 3, 1, "c[0,1)", "c[1,2)", "pad 1");
    EXPECT(plan, m, 2, 1, 21, 7, "d[0,7)", "d[7,14)", "d[14,21)");
    EXPECT(plan, m, 3, 0, 6, 2, "b[0,2)", "b[2,4)", "b[4,6)");
    assert_true(plan->buffers[0].persistent);
    assert_true(plan->buffers[1].persistent);
    assert_false(plan->buffers[2].persistent);
    assert_false(plan->buffers[3].persistent);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
}

/* ZeRO-3, W = 5: d (21) → 5 per rank, rank 4 holds one element and 4 pad; element-wise, unlike
 * FSDP2's rows. The default threshold (1e5) makes every param persistent. */
static void test_zero3_per_param_flat_w5(void **state) {
    (void)state;
    sl_model_desc *m = synthetic_model();
    sl_plan *plan = compile(m, "--use_deepspeed --zero_stage 3 --num_processes 5");
    EXPECT(plan, m, 2, 1, 25, 5, "d[0,5)", "d[5,10)", "d[10,15)", "d[15,20)", "d[20,21) pad 4");
    EXPECT(plan, m, 3, 0, 10, 2, "b[0,2)", "b[2,4)", "b[4,6)", "pad 2", "pad 2");
    for (int b = 0; b < 4; b++)
        assert_true(plan->buffers[b].persistent);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
}

/* DDP, FSDP1 NO_SHARD and ZeRO-0: one buffer per unit, unpadded, owned whole by every rank. */
static void test_replicated_layouts_are_unpadded_per_unit(void **state) {
    (void)state;
    const char *configs[] = {"--num_processes 3",
                             "--use_fsdp --fsdp_sharding_strategy NO_SHARD --num_processes 3",
                             "--use_deepspeed --zero_stage 0 --num_processes 5"};
    for (int i = 0; i < 3; i++) {
        sl_model_desc *m = synthetic_model();
        sl_plan *plan = compile(m, configs[i]);
        assert_int_equal(plan->layout, SL_LAYOUT_REPLICATED);
        EXPECT(plan, m, 0, 0, 11, 11, "a[0,5) b[0,6)");
        EXPECT(plan, m, 1, 1, 23, 23, "c[0,2) d[0,21)");
        sl_plan_destroy(plan);
        sl_model_desc_destroy(m);
    }
}

/* HYBRID_SHARD with W = 6 on 2 machines shards over G = 3 exactly like W = 3; ranks 0 and 3 own
 * shard 0. */
static void test_hybrid_layout_uses_the_shard_group(void **state) {
    (void)state;
    sl_model_desc *m = synthetic_model();
    sl_plan *plan = compile(m, "--use_fsdp --num_processes 6 --num_machines 2 "
                               "--fsdp_sharding_strategy HYBRID_SHARD");
    assert_int_equal(plan->shard_group_size, 3);
    EXPECT(plan, m, 1, 1, 27, 9, "c[0,2) pad 2 d[0,5)", "d[5,14)", "d[14,21) pad 2");
    assert_int_equal(sl_plan_shard_rank(plan, 3), 0);
    assert_int_equal(sl_plan_shard_rank(plan, 5), 2);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
}

/* The library's per-rank pieces agree with the hand-worked ranges and count all padding. */
static void test_shard_pieces_match_hand_ranges(void **state) {
    (void)state;
    sl_model_desc *m = synthetic_model();
    sl_plan *plan = compile(m, "--use_fsdp --num_processes 3");
    sl_shard_piece pieces[8];
    int64_t pad = -1;
    assert_int_equal(sl_plan_shard_pieces(&plan->buffers[1], 0, pieces, &pad), 2);
    assert_int_equal(pad, 2);
    assert_int_equal(pieces[0].param, 1);
    assert_int_equal(pieces[0].start, 0);
    assert_int_equal(pieces[0].end, 2);
    assert_int_equal(pieces[1].param, 2);
    assert_int_equal(pieces[1].start, 0);
    assert_int_equal(pieces[1].end, 5);
    assert_int_equal(sl_plan_shard_pieces(&plan->buffers[0], 2, pieces, &pad), 1);
    assert_int_equal(pad, 1);
    assert_int_equal(pieces[0].param, 3);
    assert_int_equal(pieces[0].start, 2);
    assert_int_equal(pieces[0].end, 6);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
}

/* GPT-2 with C = 6, fp32, W = 4, use_orig_params: the root flattens wte (256·6 = 1536), wpe
 * (64·6 = 384), ln_f.weight (6) at 1920, then 2 pad (1926 % 4 = 2) before ln_f.bias at 1928;
 * N' = 1934 → 4·ceil(1934/4) = 1936. */
static void test_fsdp1_gpt2_root_alignment(void **state) {
    (void)state;
    const sl_gpt2_config g = {
        .n_layer = 1, .n_embd = 6, .n_head = 2, .block_size = 64, .vocab_size = 256};
    sl_model_desc *m = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&g, &m), SL_OK);
    sl_plan *plan = compile(m, "--use_fsdp --num_processes 4");
    const sl_flat_buffer *root = &plan->buffers[0];
    assert_int_equal(root->numel_padded, 1936);
    assert_int_equal(root->shard_numel, 484);
    const int64_t flat[] = {0, 1536, 1920, 1926, 1928, 1934};
    const int64_t numel[] = {1536, 384, 6, 2, 6, 2};
    const int param[] = {0, 1, m->n_params - 2, -1, m->n_params - 1, -1};
    assert_int_equal(root->n_segments, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(root->segments[i].flat_offset, flat[i]);
        assert_int_equal(root->segments[i].numel, numel[i]);
        assert_int_equal(root->segments[i].param, param[i]);
    }
    assert_segments_tile(plan, m);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fsdp1_orig_params_aligns_and_pads_w3),
        cmocka_unit_test(test_fsdp1_without_orig_params_pads_only_the_tail_w3),
        cmocka_unit_test(test_fsdp1_alignment_follows_param_dtype_w5),
        cmocka_unit_test(test_fsdp2_chunks_rows_w3),
        cmocka_unit_test(test_fsdp2_chunks_rows_w5),
        cmocka_unit_test(test_zero2_flat_global_pads_to_two_w_w3),
        cmocka_unit_test(test_zero1_flat_global_w5),
        cmocka_unit_test(test_zero3_per_param_flat_w3),
        cmocka_unit_test(test_zero3_per_param_flat_w5),
        cmocka_unit_test(test_replicated_layouts_are_unpadded_per_unit),
        cmocka_unit_test(test_hybrid_layout_uses_the_shard_group),
        cmocka_unit_test(test_shard_pieces_match_hand_ranges),
        cmocka_unit_test(test_fsdp1_gpt2_root_alignment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
