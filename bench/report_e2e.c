/* The training-step part of the benchmark report (report.h): per model, tokens/s of every
 * strategy against W and rank 0's memory per category against W under ZeRO-3 (log scale); the
 * MFU of every run is in the table. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/report.h"
#include "bench/tables.h"
#include "common/fileio.h"

#define SL_E2E_MAX_MODELS 8
#define SL_E2E_MAX_STRATEGIES 16

typedef struct sl_e2e_run {
    char model[32], strategy[32];
    int world;
    const sl_bench_result *run;
} sl_e2e_run;

typedef struct sl_e2e_plot {
    const sl_bench_results *r;
    const char *model;
} sl_e2e_plot;

static bool sl_e2e_parse(const sl_bench_result *run, sl_e2e_run *out) {
    char base[160], dt[16];
    if (run->error || strncmp(run->name, "e2e/", 4) != 0) return false;
    sl_bench_name_base(run->name, base, sizeof base);
    out->run = run;
    return sscanf(base, "e2e/%31[^/]/%31[^/]/%15[^/]/W:%d", out->model, out->strategy, dt,
                  &out->world) == 4;
}

static double sl_e2e_median(const sl_bench_result *run, const char *key) {
    sl_bench_stat s;
    return sl_bench_run_stat(run, key, &s) ? s.median : NAN;
}

int sl_bench_report_e2e_models(const sl_bench_results *r, char (*models)[32], int cap) {
    int n = 0;
    for (int i = 0; i < r->n_runs; i++) {
        sl_e2e_run e;
        if (!sl_e2e_parse(&r->runs[i], &e)) continue;
        bool seen = false;
        for (int k = 0; k < n; k++)
            seen = seen || !strcmp(models[k], e.model);
        if (!seen && n < cap) snprintf(models[n++], 32, "%s", e.model);
    }
    return n;
}

/* The model's strategies in order of appearance, "single" (W = 1) left out. */
static int sl_e2e_strategies(const sl_bench_results *r, const char *model, char (*out)[32]) {
    int n = 0;
    for (int i = 0; i < r->n_runs; i++) {
        sl_e2e_run e;
        if (!sl_e2e_parse(&r->runs[i], &e) || strcmp(e.model, model) || e.world == 1) continue;
        bool seen = false;
        for (int k = 0; k < n; k++)
            seen = seen || !strcmp(out[k], e.strategy);
        if (!seen && n < SL_E2E_MAX_STRATEGIES) snprintf(out[n++], 32, "%s", e.strategy);
    }
    return n;
}

/* The value of key for (model, strategy, W); W = 1 reads the single-rank plan. */
static double sl_e2e_value(const sl_bench_results *r, const char *model, const char *strategy,
                           int world, const char *key) {
    for (int i = 0; i < r->n_runs; i++) {
        sl_e2e_run e;
        if (!sl_e2e_parse(&r->runs[i], &e) || strcmp(e.model, model) || e.world != world) continue;
        if (world == 1 || !strcmp(e.strategy, strategy)) return sl_e2e_median(e.run, key);
    }
    return NAN;
}

static const int sl_e2e_worlds[] = {1, 2, 4, 8, 16};

static sl_status sl_tokens_dat(FILE *f, void *ctx) {
    const sl_e2e_plot *p = ctx;
    char strategies[SL_E2E_MAX_STRATEGIES][32];
    const int n = sl_e2e_strategies(p->r, p->model, strategies);
    for (int s = 0; s < n; s++) {
        fprintf(f, "%s# %s %s: W, tokens/s (W = 1: the single-rank plan)\n", s ? "\n\n" : "",
                p->model, strategies[s]);
        for (size_t w = 0; w < sizeof sl_e2e_worlds / sizeof sl_e2e_worlds[0]; w++) {
            const double v =
                sl_e2e_value(p->r, p->model, strategies[s], sl_e2e_worlds[w], "tokens_per_s");
            if (isfinite(v)) fprintf(f, "%d %.3f\n", sl_e2e_worlds[w], v);
        }
    }
    return SL_OK;
}

static sl_status sl_tokens_gp(FILE *f, void *ctx) {
    const sl_e2e_plot *p = ctx;
    char strategies[SL_E2E_MAX_STRATEGIES][32];
    const int n = sl_e2e_strategies(p->r, p->model, strategies);
    fprintf(f,
            "# tokens/s per strategy against W, %s (data: bench-e2e-tokens-%s.dat)\n"
            "set terminal pngcairo size 900,550 noenhanced\n"
            "set output 'bench-e2e-tokens-%s.png'\n"
            "set title '%s: training throughput per strategy'\n"
            "set xlabel 'W (ranks)'\nset ylabel 'tokens/s'\nset xtics (1, 2, 4, 8, 16)\n"
            "set logscale x 2\nset yrange [0:*]\nset key outside right top\nset grid\nplot \\\n",
            p->model, p->model, p->model, p->model);
    for (int s = 0; s < n; s++) {
        fprintf(f, "  'bench-e2e-tokens-%s.dat' index %d using 1:2 with linespoints title '%s'%s\n",
                p->model, s, strategies[s], s + 1 < n ? ", \\" : "");
    }
    return SL_OK;
}

static const char *const sl_e2e_categories[] = {
    "params_master", "params_gathered", "grads_sharded", "grads_unsharded",
    "optim_states",  "activations",     "comm_buffers",  "workspace"};
#define SL_E2E_N_CATEGORIES 8

static sl_status sl_memory_dat(FILE *f, void *ctx) {
    const sl_e2e_plot *p = ctx;
    for (int c = 0; c < SL_E2E_N_CATEGORIES; c++) {
        char key[64];
        snprintf(key, sizeof key, "mem_%s_MiB", sl_e2e_categories[c]);
        fprintf(f, "%s# %s zero3, rank 0: W, %s MiB (0 written as nan: log scale)\n",
                c ? "\n\n" : "", p->model, sl_e2e_categories[c]);
        for (size_t w = 0; w < sizeof sl_e2e_worlds / sizeof sl_e2e_worlds[0]; w++) {
            const double v = sl_e2e_value(p->r, p->model, "zero3", sl_e2e_worlds[w], key);
            if (isfinite(v)) fprintf(f, "%d %.4f\n", sl_e2e_worlds[w], v > 0 ? v : NAN);
        }
    }
    return SL_OK;
}

static sl_status sl_memory_gp(FILE *f, void *ctx) {
    const sl_e2e_plot *p = ctx;
    fprintf(f,
            "# rank 0's peak memory per category against W under ZeRO-3, %s\n"
            "set terminal pngcairo size 900,550 noenhanced\n"
            "set output 'bench-e2e-memory-%s.png'\n"
            "set title '%s, ZeRO-3: rank 0 peak memory per category (W = 1: single rank)'\n"
            "set xlabel 'W (ranks)'\nset ylabel 'MiB (log scale)'\nset xtics (1, 2, 4, 8, 16)\n"
            "set logscale x 2\nset logscale y 10\nset key outside right top\nset grid\n"
            "set datafile missing 'nan'\nplot \\\n",
            p->model, p->model, p->model);
    for (int c = 0; c < SL_E2E_N_CATEGORIES; c++) {
        fprintf(f, "  'bench-e2e-memory-%s.dat' index %d using 1:2 with linespoints title '%s'%s\n",
                p->model, c, sl_e2e_categories[c], c + 1 < SL_E2E_N_CATEGORIES ? ", \\" : "");
    }
    return SL_OK;
}

static sl_status sl_e2e_file(const char *dir, const char *kind, const char *model, const char *ext,
                             sl_file_write_fn fn, sl_e2e_plot *p) {
    char path[1024];
    snprintf(path, sizeof path, "%s/bench-e2e-%s-%s.%s", dir, kind, model, ext);
    return sl_file_write_atomic(path, fn, p);
}

/* ---- MFU per configuration: one bar per training-step run with an mfu counter ---- */

/* "e2e/gpt-small/zero3/fp32/W:2" -> "gpt-small zero3 W=2"; "peer/torch_eager/gpt-small/bf16/W:1"
 * -> "gpt-small torch eager bf16" */
static bool sl_mfu_label(const sl_bench_result *run, char *buf, size_t cap) {
    char base[160], model[32], what[32], dt[16];
    int w;
    if (run->error) return false;
    sl_bench_name_base(run->name, base, sizeof base);
    if (sscanf(base, "e2e/%31[^/]/%31[^/]/%15[^/]/W:%d", model, what, dt, &w) == 4) {
        snprintf(buf, cap, "%s %s W=%d", model, what, w);
        return true;
    }
    if (sscanf(base, "peer/torch_eager/%31[^/]/%15[^/]/W:%d", model, dt, &w) == 3) {
        snprintf(buf, cap, "%s torch eager %s", model, dt);
        return true;
    }
    return false;
}

static sl_status sl_mfu_dat(FILE *f, void *ctx) {
    const sl_bench_results *r = ctx;
    fprintf(f, "# run, MFU %% of the sgemm peak (engine: fp32; torch eager rows: PyTorch)\n");
    for (int i = 0; i < r->n_runs; i++) {
        char label[128];
        const double mfu = sl_e2e_median(&r->runs[i], "mfu");
        if (sl_mfu_label(&r->runs[i], label, sizeof label) && isfinite(mfu))
            fprintf(f, "\"%s\" %.3f\n", label, mfu);
    }
    return SL_OK;
}

static sl_status sl_mfu_gp(FILE *f, void *ctx) {
    (void)ctx;
    fprintf(f, "# model FLOPs utilisation per configuration (data: bench-e2e-mfu.dat)\n"
               "set terminal pngcairo size 1100,600 noenhanced\n"
               "set output 'bench-e2e-mfu.png'\n"
               "set title 'MFU per configuration: model FLOPs/s against the measured sgemm peak "
               "(dashed: the 60%% target)'\n"
               "set style data histograms\nset style fill solid 0.8 border -1\n"
               "set boxwidth 0.8\nset xtics rotate by -50 scale 0 font ',8'\n"
               "set ylabel 'MFU (%% of sgemm peak)'\nset yrange [0:100]\nset grid ytics\n"
               "set arrow from graph 0, first 60 to graph 1, first 60 nohead lw 2 dt 2\n"
               "plot 'bench-e2e-mfu.dat' using 2:xtic(1) notitle\n");
    return SL_OK;
}

static int sl_mfu_count(const sl_bench_results *r) {
    int n = 0;
    for (int i = 0; i < r->n_runs; i++) {
        char label[128];
        n += sl_mfu_label(&r->runs[i], label, sizeof label) &&
             isfinite(sl_e2e_median(&r->runs[i], "mfu"));
    }
    return n;
}

sl_status sl_bench_report_e2e_plots(const sl_bench_results *r, const char *dir, int *n_plots) {
    if (sl_mfu_count(r) > 0) {
        char path[1024];
        snprintf(path, sizeof path, "%s/bench-e2e-mfu.dat", dir);
        SL_TRY(sl_file_write_atomic(path, sl_mfu_dat, (void *)r));
        snprintf(path, sizeof path, "%s/bench-e2e-mfu.gp", dir);
        SL_TRY(sl_file_write_atomic(path, sl_mfu_gp, NULL));
        ++*n_plots;
    }
    char models[SL_E2E_MAX_MODELS][32];
    const int n = sl_bench_report_e2e_models(r, models, SL_E2E_MAX_MODELS);
    for (int m = 0; m < n; m++) {
        sl_e2e_plot p = {.r = r, .model = models[m]};
        char strategies[SL_E2E_MAX_STRATEGIES][32];
        if (sl_e2e_strategies(r, models[m], strategies) > 0) {
            SL_TRY(sl_e2e_file(dir, "tokens", models[m], "dat", sl_tokens_dat, &p));
            SL_TRY(sl_e2e_file(dir, "tokens", models[m], "gp", sl_tokens_gp, &p));
            ++*n_plots;
        }
        SL_TRY(sl_e2e_file(dir, "memory", models[m], "dat", sl_memory_dat, &p));
        SL_TRY(sl_e2e_file(dir, "memory", models[m], "gp", sl_memory_gp, &p));
        ++*n_plots;
    }
    return SL_OK;
}

void sl_bench_report_e2e_md(const sl_bench_results *r, FILE *f) {
    char models[SL_E2E_MAX_MODELS][32];
    const int n = sl_bench_report_e2e_models(r, models, SL_E2E_MAX_MODELS);
    if (n == 0) return;
    fprintf(f, "\n## Training steps\n\nOptimizer steps of the engine (`e2e/...`), one process "
               "per rank through `shardlab launch`, fp32, one micro-step per step. MFU: model "
               "FLOPs ((6·N + 12·L·C·T) per token) per second of all ranks against the sgemm "
               "peak of the whole machine; memory: rank 0's peak bytes per category as the "
               "engine accounted them, next to the plan's prediction (`estimate-memory`). "
               "`peer/torch_eager/...` rows, when PyTorch was installed: the same model, batch "
               "and thread count trained by PyTorch eager (bench/peer/gpt2_peer.py) in fp32 and "
               "in bf16 autocast, with its version in the shape column.\n\n");
    if (sl_mfu_count(r) > 0) fprintf(f, "![MFU per configuration](bench-e2e-mfu.png)\n\n");
    for (int m = 0; m < n; m++) {
        char strategies[SL_E2E_MAX_STRATEGIES][32];
        if (sl_e2e_strategies(r, models[m], strategies) > 0)
            fprintf(f, "![%s tokens/s](bench-e2e-tokens-%s.png)\n", models[m], models[m]);
        fprintf(f, "![%s memory](bench-e2e-memory-%s.png)\n\n", models[m], models[m]);
    }
    sl_bench_print_e2e(r, f, true);
    sl_bench_print_e2e_targets(r, f, true);
}
