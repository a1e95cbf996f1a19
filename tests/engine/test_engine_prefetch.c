/* FSDP1's forward_prefetch, backward_prefetch (BACKWARD_PRE, BACKWARD_POST) and
 * limit_all_gathers in the engine, on real ranks started by `shardlab launch`. What is promised:
 *  - prefetching changes when all-gathers run, never what is computed: with deterministic
 *    reductions every variant's losses and final weights are bit-identical to the run without
 *    prefetch;
 *  - the collectives of a step are issued in the order the plan predicts for that variant, and
 *    every memory category's peak equals the plan's (either prefetch holds two adjacent units
 *    at once, as the plan counts);
 *  - the prefetched all-gathers really overlap compute: each one issued ahead is still in flight
 *    when the next kernel boundary advances it, and none is issued without prefetch; and with the
 *    grad shard in reduce_dtype (fp32) each unit's gradient reduce-scatter is left in flight
 *    through the next unit's backward, prefetch or not.
 * The test executable is its own worker program. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/param_file.h"
#include "impl/engine/engine_internal.h"
#include "tests/engine/engine_harness.h"
#include "tests/engine/engine_worker.h"

static char out[512 * 1024];

static const char *const ep_variants[] = {
    "--fsdp_backward_prefetch NO_PREFETCH --fsdp_limit_all_gathers false",
    "--fsdp_forward_prefetch true --fsdp_backward_prefetch NO_PREFETCH",
    "--fsdp_backward_prefetch BACKWARD_PRE --fsdp_limit_all_gathers false",
    "--fsdp_backward_prefetch BACKWARD_POST",
    "--fsdp_forward_prefetch true --fsdp_backward_prefetch BACKWARD_PRE --fsdp_limit_all_gathers "
    "true",
};
#define EP_N_VARIANTS (int)(sizeof ep_variants / sizeof ep_variants[0])

static int ep_compare(const char *flags, const sl_plan *plan, const sl_observation *obs) {
    const sl_observation *pred = &plan->predicted;
    int bad = 0;
    if (pred->n_collectives != obs->n_collectives) {
        printf("%s: %d collectives predicted, %d observed\n", flags, pred->n_collectives,
               obs->n_collectives);
        bad++;
    }
    for (int i = 0; !bad && i < pred->n_collectives; i++) {
        const sl_collective_record *p = &pred->collectives[i], *o = &obs->collectives[i];
        if (p->op == o->op && p->group == o->group && p->phase == o->phase &&
            p->micro_step == o->micro_step && p->unit == o->unit && p->dtype == o->dtype &&
            p->elements == o->elements)
            continue;
        printf("%s: collective %d: predicted %s unit %d phase %s, observed %s unit %d phase %s\n",
               flags, i, sl_coll_op_name(p->op), p->unit, sl_phase_name(p->phase),
               sl_coll_op_name(o->op), o->unit, sl_phase_name(o->phase));
        bad++;
    }
    for (int r = 0; r < obs->world_size; r++) {
        for (int sp = 0; sp < SL_SPACE_COUNT; sp++) {
            for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++) {
                const int64_t want = plan->predicted.memory[r].peak[sp][c];
                const int64_t got = obs->memory[r].peak[sp][c];
                if (want == got) continue;
                printf("%s: rank %d %s peak: predicted %lld, observed %lld bytes\n", flags, r,
                       sl_mem_category_name((sl_mem_category)c), (long long)want, (long long)got);
                bad++;
            }
        }
    }
    return bad;
}

/* Every variant of one base plan: bit-identical results, the plan's collectives and memory. */
static int ep_identical(sl_session *s, const char *base) {
    sl_model_desc *model = eh_model();
    const bool root = sl_session_rank(s) == 0;
    enum { STEPS = 2 };
    double losses[EP_N_VARIANTS][STEPS];
    float **final[EP_N_VARIANTS] = {0};
    int bad = 0;
    for (int v = 0; v < EP_N_VARIANTS && !bad; v++) {
        char flags[1024];
        snprintf(flags, sizeof flags, "%s %s --micro_batch_size 2 --seq_len 16 --seed 3", base,
                 ep_variants[v]);
        final[v] = root ? sl_param_arrays_alloc(model) : NULL;
        sl_observation obs = {0};
        sl_plan *plan = NULL;
        sl_status st = ew_train(s, model, flags, STEPS, losses[v], true, final[v], &obs, &plan);
        if (st != SL_OK) {
            printf("%s: %s\n", flags, sl_error_message());
            bad++;
        } else if (root) {
            bad += ep_compare(flags, plan, &obs);
            if (v > 0 && memcmp(losses[v], losses[0], sizeof losses[0]) != 0) {
                printf("%s: losses differ from the run without prefetch\n", flags);
                bad++;
            }
            for (int p = 0; v > 0 && p < model->n_params; p++) {
                if (memcmp(final[v][p], final[0][p],
                           (size_t)model->params[p].numel * sizeof(float)) != 0) {
                    printf("%s: final '%s' differs from the run without prefetch\n", flags,
                           model->params[p].name);
                    bad++;
                    break;
                }
            }
        }
        sl_observation_free(&obs);
        sl_plan_destroy(plan);
    }
    for (int v = 0; v < EP_N_VARIANTS; v++)
        sl_param_arrays_free(model, final[v]);
    sl_model_desc_destroy(model);
    if (root) printf("identical %s: %d mismatches\n", base, bad);
    return bad;
}

/* One step of each variant on gpt-tiny-sized GPT-2 with a synthetic batch; the engine's own
 * counts of prefetched all-gathers and of those that compute overlapped. */
static int ep_overlap(sl_session *s) {
    sl_model_desc *model = eh_model();
    int bad = 0;
    for (int v = 0; v < EP_N_VARIANTS && !bad; v++) {
        char flags[1024];
        snprintf(flags, sizeof flags,
                 "--use_fsdp --fsdp_sharding_strategy FULL_SHARD %s --micro_batch_size 2 "
                 "--seq_len 16 --num_processes %d --max_steps 1",
                 ep_variants[v], sl_session_world_size(s));
        sl_plan *plan = eh_plan(model, flags);
        sl_engine *e = NULL;
        sl_status st = sl_engine_create_gpt2(s, plan, model, NULL, &e);
        int32_t in[32], tg[32];
        for (int i = 0; i < 32; i++) {
            in[i] = (i * 11) % 256;
            tg[i] = (i * 5 + 1) % 256;
        }
        const sl_batch b = {.inputs = in, .targets = tg, .B = 2, .T = 16};
        sl_trajectory_step rec;
        if (st == SL_OK) st = sl_engine_step_begin(e, 32 * (int64_t)sl_session_world_size(s));
        if (st == SL_OK) st = sl_engine_micro_step(e, 0, &b, NULL);
        if (st == SL_OK) st = sl_engine_optimizer_step(e, &rec);
        int64_t issued = 0, overlapped = 0, reduces = 0, reduces_overlapped = 0;
        if (st == SL_OK) sl_engine_prefetch_counts(e, &issued, &overlapped);
        if (st == SL_OK) sl_engine_reduce_counts(e, &reduces, &reduces_overlapped);
        /* Units: 0 the root, 1 and 2 the blocks. Forward prefetch issues unit 1's gather during
         * the embedding (one kernel: no boundary inside to advance it) and unit 2's during block
         * 1; backward prefetch issues unit 2's during the head's backward, and unit 1's during
         * block 2's backward (BACKWARD_PRE) or after it, completed at once before the reduction
         * (BACKWARD_POST). */
        const bool fwd = plan->forward_prefetch, bwd = plan->backward_prefetch != 0;
        const int64_t want = (fwd ? 2 : 0) + (bwd ? 2 : 0);
        const int64_t want_overlapped =
            (fwd ? 1 : 0) + (bwd ? 1 : 0) + (plan->backward_prefetch == 1 ? 1 : 0);
        if (st != SL_OK) {
            printf("%s: %s\n", flags, sl_error_message());
            bad++;
        } else if (reduces != 3 || reduces_overlapped != 1) {
            /* fp32: the grad shard is in reduce_dtype, so each unit's reduce-scatter is left in
             * flight; block 2's overlaps block 1's backward, block 1's and the root's overlap
             * the embedding's single kernel and the end of backward, which have no boundary */
            printf("%s: %lld reduce-scatters left in flight (expected 3), %lld overlapped by "
                   "compute (expected 1)\n",
                   flags, (long long)reduces, (long long)reduces_overlapped);
            bad++;
        } else if (issued != want || overlapped != want_overlapped) {
            printf("%s: %lld all-gathers issued ahead (expected %lld), %lld overlapped by "
                   "compute (expected %lld)\n",
                   flags, (long long)issued, (long long)want, (long long)overlapped,
                   (long long)want_overlapped);
            bad++;
        }
        sl_engine_destroy(e);
        sl_plan_destroy(plan);
    }
    sl_model_desc_destroy(model);
    if (sl_session_rank(s) == 0) printf("overlap: %d mismatches\n", bad);
    return bad;
}

static int ep_worker(int argc, char **argv) {
    sl_session *s = NULL;
    if (sl_session_create_from_env(&s) != SL_OK) {
        printf("worker: %s\n", sl_error_message());
        return 2;
    }
    int bad = 0;
    if (argc >= 1 && !strcmp(argv[0], "identical")) {
        bad += ep_identical(s, "--use_fsdp --fsdp_sharding_strategy FULL_SHARD "
                               "--mixed_precision bf16 --deterministic true");
        bad += ep_identical(s, "--use_fsdp --fsdp_sharding_strategy FULL_SHARD "
                               "--mixed_precision no --gradient_accumulation_steps 2 "
                               "--deterministic true");
    } else if (argc >= 1 && !strcmp(argv[0], "identical-hybrid")) {
        bad += ep_identical(s, "--use_fsdp --fsdp_sharding_strategy HYBRID_SHARD "
                               "--num_machines 2 --mixed_precision fp16 --deterministic true");
    } else if (argc >= 1 && !strcmp(argv[0], "overlap")) {
        bad += ep_overlap(s);
    } else {
        bad = 1;
    }
    fflush(stdout);
    sl_session_destroy(s);
    return bad ? 1 : 0;
}

static void launch_worker(int w, const char *scenario) {
    char np[16], sc[64];
    snprintf(np, sizeof np, "%d", w);
    snprintf(sc, sizeof sc, "%s", scenario);
    char *argv[] = {
        sl_ts_shardlab_bin(), "launch", "--num_processes", np, sl_ts_self(), "--worker", sc, NULL};
    const int st = sl_ts_run(argv, NULL, 300.0, out, sizeof out, NULL);
    if (st != 0) fail_msg("W = %d %s: exit status %d; output:\n%s", w, scenario, st, out);
}

static void test_prefetch_variants_are_bit_identical_and_as_planned_w2(void **state) {
    (void)state;
    launch_worker(2, "identical");
}

static void test_prefetch_variants_are_bit_identical_and_as_planned_hybrid_w4(void **state) {
    (void)state;
    launch_worker(4, "identical-hybrid");
}

static void test_prefetched_all_gathers_overlap_compute_w2(void **state) {
    (void)state;
    launch_worker(2, "overlap");
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "--worker")) return ep_worker(argc - 2, argv + 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefetch_variants_are_bit_identical_and_as_planned_w2),
        cmocka_unit_test(test_prefetch_variants_are_bit_identical_and_as_planned_hybrid_w4),
        cmocka_unit_test(test_prefetched_all_gathers_overlap_compute_w2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
