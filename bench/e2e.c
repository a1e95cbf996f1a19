/* The end-to-end suite: whole optimizer steps of the engine (include/shardlab/engine.h) on GPT-2,
 * one process per rank under `shardlab launch`, per model, sharding strategy and world size.
 *
 * One iteration is one optimizer step (k = 1): step_begin, forward and backward of this rank's
 * micro-batch, optimizer step. Batches are token ids from a counter-based hash — every rank
 * knows every rank's batch, so the global token count needs no collective — and a warm-up step
 * runs untimed first. Per run:
 *   tokens_per_s   global tokens of a step (W·B·T) / the mean step time over steps and ranks
 *   step_ms, optimizer_ms   that mean, and the part spent in sl_engine_optimizer_step (clipping,
 *                  the norm's and ZeRO's collectives, AdamW); the rest is forward, backward and
 *                  their exposed communication
 *   comm_wait_ms   of step_ms, the time the rank was blocked in the engine's collectives
 *                  (exposed communication); fsdp1_full_shard runs without prefetch and
 *                  fsdp1_prefetch (FULL_SHARD) with forward_prefetch and BACKWARD_PRE, so the two
 *                  rows show what overlapping the all-gathers with compute saves
 *   mfu            model FLOPs per second / the machine's sgemm peak, in %: (6·N + 12·L·C·T)
 *                  FLOPs per token (N parameters without wpe, as nanoGPT counts them), all
 *                  ranks together against the peak of all cores measured in the same run
 *   mem_MiB, pred_MiB and mem_<category>_MiB, pred_<category>_MiB
 *                  rank 0's peak bytes per memory category (host and device together) as the
 *                  engine accounted them, next to the plan's prediction (`estimate-memory`) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "bench/benchmark_c/benchmark_c.h"
#include "bench/suites.h"
#include "shardlab/engine.h"

typedef struct sl_e2e_strategy {
    const char *name;
    const char *keys[6][2]; /* config keys beyond the common ones */
} sl_e2e_strategy;

static const sl_e2e_strategy sl_e2e_strategies[] = {
    {"single", {{"use_fsdp", "false"}, {"use_deepspeed", "false"}}},
    {"fsdp1_no_shard",
     {{"use_fsdp", "true"}, {"fsdp_version", "1"}, {"fsdp_sharding_strategy", "NO_SHARD"}}},
    {"fsdp1_full_shard",
     {{"use_fsdp", "true"},
      {"fsdp_version", "1"},
      {"fsdp_sharding_strategy", "FULL_SHARD"},
      {"fsdp_backward_prefetch", "NO_PREFETCH"}}},
    {"fsdp1_prefetch",
     {{"use_fsdp", "true"},
      {"fsdp_version", "1"},
      {"fsdp_sharding_strategy", "FULL_SHARD"},
      {"fsdp_forward_prefetch", "true"},
      {"fsdp_backward_prefetch", "BACKWARD_PRE"}}},
    {"fsdp1_shard_grad_op",
     {{"use_fsdp", "true"}, {"fsdp_version", "1"}, {"fsdp_sharding_strategy", "SHARD_GRAD_OP"}}},
    {"fsdp2", {{"use_fsdp", "true"}, {"fsdp_version", "2"}}},
    {"zero1", {{"use_deepspeed", "true"}, {"zero_stage", "1"}}},
    {"zero2", {{"use_deepspeed", "true"}, {"zero_stage", "2"}}},
    {"zero3", {{"use_deepspeed", "true"}, {"zero_stage", "3"}}},
};
#define SL_E2E_N_STRATEGIES (int)(sizeof sl_e2e_strategies / sizeof sl_e2e_strategies[0])

typedef struct sl_e2e_case {
    const char *model;
    int B, T;
    const sl_e2e_strategy *strategy;
    int steps;
    char name[96];
} sl_e2e_case;

#define SL_E2E_MAX_CASES 32
static sl_e2e_case sl_e2e_cases[SL_E2E_MAX_CASES];
static int sl_n_e2e;
static sl_session *sl_e2e_session;
static double sl_e2e_peak; /* GFLOP/s of the whole machine */

/* Token ids of rank r's micro-batch at step s: every rank can compute every rank's. */
static void sl_e2e_batch(int step, int rank, int n, int vocab, int32_t *inputs, int32_t *targets) {
    for (int i = 0; i < n; i++) {
        uint64_t h = ((uint64_t)step << 40) ^ ((uint64_t)rank << 32) ^ (uint64_t)i;
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
        h ^= h >> 31;
        inputs[i] = (int32_t)(h % (uint64_t)vocab);
        targets[i] = (int32_t)((h >> 32) % (uint64_t)vocab);
    }
}

static sl_status sl_e2e_plan(const sl_e2e_case *c, const sl_model_desc *desc, int world,
                             sl_plan **plan) {
    sl_config *cfg = NULL;
    SL_TRY(sl_config_create(&cfg));
    char w[16], b[16], t[16];
    snprintf(w, sizeof w, "%d", world);
    snprintf(b, sizeof b, "%d", c->B);
    snprintf(t, sizeof t, "%d", c->T);
    const char *common[][2] = {{"num_processes", w},
                               {"micro_batch_size", b},
                               {"seq_len", t},
                               {"gradient_accumulation_steps", "1"},
                               {"mixed_precision", "no"}};
    const sl_source src = {.kind = SL_SOURCE_FLAG};
    sl_status st = SL_OK;
    for (size_t i = 0; st == SL_OK && i < sizeof common / sizeof common[0]; i++)
        st = sl_config_set(cfg, common[i][0], common[i][1], &src);
    for (int i = 0; st == SL_OK && i < 6 && c->strategy->keys[i][0]; i++)
        st = sl_config_set(cfg, c->strategy->keys[i][0], c->strategy->keys[i][1], &src);
    if (st == SL_OK) st = sl_plan_compile(cfg, desc, plan);
    sl_config_destroy(cfg);
    if (st != SL_OK) return sl_error_prefix(st, "%s: ", c->name);
    return SL_OK;
}

/* One optimizer step; *opt_s receives the seconds of the optimizer step. */
static sl_status sl_e2e_step(sl_engine *e, const sl_e2e_case *c, int step, int rank, int world,
                             int vocab, int32_t *inputs, int32_t *targets, double *opt_s) {
    const int n = c->B * c->T;
    sl_e2e_batch(step, rank, n, vocab, inputs, targets);
    SL_TRY(sl_engine_step_begin(e, (int64_t)world * n));
    const sl_batch batch = {.inputs = inputs, .targets = targets, .B = c->B, .T = c->T};
    SL_TRY(sl_engine_micro_step(e, 0, &batch, NULL));
    const double t0 = sl_bench_now();
    sl_trajectory_step rec;
    SL_TRY(sl_engine_optimizer_step(e, &rec));
    *opt_s = sl_bench_now() - t0;
    return SL_OK;
}

static void sl_e2e_memory_counters(sl_bench_state *st, const sl_observation *obs,
                                   const sl_plan *plan) {
    double seen_total = 0, pred_total = 0;
    for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++) {
        double seen = 0, pred = 0;
        for (int s = 0; s < SL_SPACE_COUNT; s++) {
            seen += (double)obs->memory[0].peak[s][c];
            pred += (double)plan->predicted.memory[0].peak[s][c];
        }
        char name[64];
        snprintf(name, sizeof name, "mem_%s_MiB", sl_mem_category_name((sl_mem_category)c));
        sl_bench_set_counter(st, name, seen / 1048576, SL_BENCH_COUNTER_PLAIN);
        snprintf(name, sizeof name, "pred_%s_MiB", sl_mem_category_name((sl_mem_category)c));
        sl_bench_set_counter(st, name, pred / 1048576, SL_BENCH_COUNTER_PLAIN);
        seen_total += seen;
        pred_total += pred;
    }
    sl_bench_set_counter(st, "mem_MiB", seen_total / 1048576, SL_BENCH_COUNTER_PLAIN);
    sl_bench_set_counter(st, "pred_MiB", pred_total / 1048576, SL_BENCH_COUNTER_PLAIN);
}

/* FLOPs of one token's forward and backward: 6 per parameter (wpe excluded: a lookup) and
 * 12·L·C·T for the attention scores and their use (PaLM's appendix B, nanoGPT's estimate). */
static double sl_e2e_flops_per_token(const sl_model_desc *d, int T) {
    const sl_gpt2_config *g = &d->gpt2;
    const double n = (double)d->total_numel - (double)g->block_size * g->n_embd;
    return 6 * n + 12.0 * g->n_layer * g->n_embd * T;
}

static sl_status sl_e2e_run(sl_bench_state *st, const sl_e2e_case *c) {
    sl_session *s = sl_e2e_session;
    const int rank = sl_session_rank(s), world = sl_session_world_size(s);
    sl_gpt2_config g;
    SL_TRY(sl_gpt2_config_from_name(c->model, &g));
    sl_model_desc *desc = NULL;
    sl_plan *plan = NULL;
    sl_engine *e = NULL;
    int32_t *inputs = NULL, *targets = NULL;
    sl_observation obs = {0};
    sl_status r = sl_model_desc_create_gpt2(&g, &desc);
    if (r == SL_OK) r = sl_e2e_plan(c, desc, world, &plan);
    if (r == SL_OK) r = sl_engine_create_gpt2(s, plan, desc, NULL, &e);
    const size_t n = (size_t)c->B * (size_t)c->T;
    if (r == SL_OK &&
        (!(inputs = malloc(n * sizeof *inputs)) || !(targets = malloc(n * sizeof *targets)))) {
        r = sl_error_set(SL_ERR_OOM, "%s: batch of %zu tokens", c->name, n);
    }
    /* Σ step seconds, Σ optimizer seconds, Σ seconds blocked in collectives */
    double opt = 0, times[3] = {0, 0, 0};
    int step = 0;
    if (r == SL_OK) r = sl_e2e_step(e, c, step++, rank, world, g.vocab_size, inputs, targets, &opt);
    const double waited = e ? sl_engine_comm_wait_seconds(e) : 0;
    while (r == SL_OK && sl_bench_keep_running(st)) {
        const double t0 = sl_bench_now();
        r = sl_e2e_step(e, c, step++, rank, world, g.vocab_size, inputs, targets, &opt);
        const double dt = sl_bench_now() - t0;
        sl_bench_set_iteration_time(st, dt);
        times[0] += dt;
        times[1] += opt;
    }
    if (r == SL_OK) times[2] = sl_engine_comm_wait_seconds(e) - waited;
    if (r == SL_OK) r = sl_session_sum_f64(s, times, 3);
    if (r == SL_OK) r = sl_engine_observation(e, &obs);
    if (r == SL_OK) {
        const double steps = (double)sl_bench_iterations(st) * world;
        const double t = times[0] / steps, tokens = (double)world * (double)n;
        const double flops = sl_e2e_flops_per_token(desc, c->T) * tokens;
        sl_bench_set_counter(st, "tokens_per_s", tokens / t, SL_BENCH_COUNTER_PLAIN);
        sl_bench_set_counter(st, "step_ms", 1e3 * t, SL_BENCH_COUNTER_PLAIN);
        sl_bench_set_counter(st, "optimizer_ms", 1e3 * times[1] / steps, SL_BENCH_COUNTER_PLAIN);
        sl_bench_set_counter(st, "comm_wait_ms", 1e3 * times[2] / steps, SL_BENCH_COUNTER_PLAIN);
        if (sl_e2e_peak > 0)
            sl_bench_set_counter(st, "mfu", 100 * flops / t / (sl_e2e_peak * 1e9),
                                 SL_BENCH_COUNTER_PLAIN);
        sl_bench_set_counter(st, "world", world, SL_BENCH_COUNTER_PLAIN);
        sl_e2e_memory_counters(st, &obs, plan);
        char label[64];
        snprintf(label, sizeof label, "B=%d T=%d W=%d threads=%d", c->B, c->T, world,
                 sl_kernels_threads());
        sl_bench_set_label(st, label);
    }
    sl_observation_free(&obs);
    free(inputs);
    free(targets);
    sl_engine_destroy(e);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(desc);
    return r;
}

static void sl_bm_e2e(sl_bench_state *st, void *user) {
    if (sl_e2e_run(st, user) != SL_OK) sl_bench_skip_with_error(st, sl_error_message());
}

static sl_status sl_e2e_add(const char *model, int B, int T, const sl_e2e_strategy *s, int steps,
                            int reps, int world) {
    if (sl_n_e2e == SL_E2E_MAX_CASES) {
        return sl_error_set(SL_ERR_INTERNAL, "e2e benchmarks: more than %d cases",
                            SL_E2E_MAX_CASES);
    }
    sl_e2e_case *c = &sl_e2e_cases[sl_n_e2e++];
    *c = (sl_e2e_case){.model = model, .B = B, .T = T, .strategy = s, .steps = steps};
    snprintf(c->name, sizeof c->name, "e2e/%s/%s/fp32/W:%d", model, s->name, world);
    sl_bench *b;
    SL_TRY(sl_bench_register(c->name, sl_bm_e2e, c, &b));
    SL_TRY(sl_bench_set_iterations(b, steps));
    if (reps > 0) SL_TRY(sl_bench_set_repetitions(b, reps));
    SL_TRY(sl_bench_use_manual_time(b));
    sl_bench_set_time_unit(b, SL_BENCH_MS);
    return SL_OK;
}

sl_status sl_bench_e2e_register(sl_session *s, const sl_bench_suite_opts *o, double peak_gflops) {
    sl_e2e_session = s;
    sl_e2e_peak = peak_gflops;
    sl_n_e2e = 0;
    const int w = sl_session_world_size(s);
    /* Steps of gpt-small take about a second and gpt2-124m's ten or more on a small machine:
     * those run two timed steps once (no repetitions: `bench compare` judges them by the
     * threshold alone), and gpt2-124m only under ZeRO-3, whose memory per rank is what its size
     * is about. */
    const struct {
        const char *model;
        int B, T, steps, reps;
        bool all_strategies;
    } models[] = {{"gpt-tiny", 8, 64, 10, 0, true},
                  {"gpt-small", 4, 256, 2, 1, true},
                  {"gpt2-124m", 1, 1024, 2, 1, false}};
    const int n_models = o->quick ? 1 : 3;
    for (int m = 0; m < n_models; m++) {
        for (int i = 0; i < SL_E2E_N_STRATEGIES; i++) {
            const sl_e2e_strategy *st = &sl_e2e_strategies[i];
            const bool single = !strcmp(st->name, "single");
            if (single != (w == 1)) continue; /* one rank: one plan; more: the strategies */
            const bool zero3 = !strcmp(st->name, "zero3");
            const bool quick_set = zero3 || !strcmp(st->name, "fsdp1_full_shard") ||
                                   !strcmp(st->name, "fsdp1_prefetch");
            if (!single && !models[m].all_strategies && !zero3) continue;
            if (o->quick && !single && !quick_set) continue;
            SL_TRY(sl_e2e_add(models[m].model, models[m].B, models[m].T, st,
                              o->quick ? 2 : models[m].steps, models[m].reps, w));
        }
    }
    return SL_OK;
}
