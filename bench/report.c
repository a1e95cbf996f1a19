/* The benchmark report (report.h). */
#include "bench/report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/tables.h"
#include "common/fileio.h"

#define SL_REPORT_MAX_WORLDS 8

static double sl_median(const sl_bench_result *run, const char *key) {
    sl_bench_stat s;
    return sl_bench_run_stat(run, key, &s) ? s.median : NAN;
}

/* The world sizes of the collective runs, ascending. */
static int sl_report_worlds(const sl_bench_results *r, int *w) {
    int n = 0;
    for (int i = 0; i < r->n_runs; i++) {
        if (strncmp(r->runs[i].name, "coll/", 5) != 0) continue;
        const double x = sl_median(&r->runs[i], "world");
        if (!isfinite(x)) continue;
        bool seen = false;
        for (int k = 0; k < n; k++)
            seen = seen || w[k] == (int)x;
        if (seen || n == SL_REPORT_MAX_WORLDS) continue;
        int k = n++;
        for (; k > 0 && w[k - 1] > (int)x; k--)
            w[k] = w[k - 1];
        w[k] = (int)x;
    }
    return n;
}

/* ---- busbw against message size, one plot per world size ---- */

typedef struct sl_busbw_ctx {
    const sl_bench_results *r;
    int world;
    int blocks;
    char titles[32][128];
} sl_busbw_ctx;

static sl_status sl_busbw_dat(FILE *f, void *ctx) {
    sl_busbw_ctx *c = ctx;
    c->blocks = 0;
    bool have_memcpy = false;
    for (int i = 0; i < c->r->n_runs; i++) {
        const sl_bench_result *run = &c->r->runs[i];
        if (strncmp(run->name, "memcpy/", 7) != 0) continue;
        if (!have_memcpy) fprintf(f, "# memcpy, one thread: size (B), GB/s\n");
        have_memcpy = true;
        fprintf(f, "%.0f %.4f\n", sl_median(run, "size"), sl_median(run, "gbps"));
    }
    if (have_memcpy) snprintf(c->titles[c->blocks++], sizeof c->titles[0], "memcpy (1 thread)");
    char current[128] = "";
    for (int i = 0; i < c->r->n_runs; i++) {
        const sl_bench_result *run = &c->r->runs[i];
        char family[128];
        if (!sl_bench_coll_family(run->name, family, sizeof family) || run->error) continue;
        if ((int)sl_median(run, "world") != c->world) continue;
        if (strcmp(family, current) != 0) {
            if (c->blocks == 32) break;
            snprintf(current, sizeof current, "%s", family);
            if (c->blocks > 0) fprintf(f, "\n\n");
            fprintf(f, "# %s: size (B), busbw (GB/s)\n", family);
            /* "coll/all_reduce/fp32/native/W:2" -> "all_reduce fp32 native" */
            char t[128];
            snprintf(t, sizeof t, "%s", family + 5);
            char *w = strstr(t, "/W:");
            if (w) *w = '\0';
            for (char *s = t; *s; s++)
                if (*s == '/' || *s == '_') *s = ' ';
            snprintf(c->titles[c->blocks++], sizeof c->titles[0], "%s", t);
        }
        fprintf(f, "%.0f %.4f\n", sl_median(run, "size"), sl_median(run, "busbw"));
    }
    return SL_OK;
}

static sl_status sl_busbw_gp(FILE *f, void *ctx) {
    const sl_busbw_ctx *c = ctx;
    fprintf(f,
            "# busbw against message size at W = %d (data: bench-busbw-w%d.dat)\n"
            "set terminal pngcairo size 1100,650 noenhanced\n"
            "set output 'bench-busbw-w%d.png'\n"
            "set title 'bus bandwidth, W = %d ranks (memcpy bandwidth for reference)'\n"
            "set logscale x 2\nset format x '%%.0b %%BB'\nset logscale y 10\n"
            "set xlabel 'message size'\nset ylabel 'GB/s (log scale)'\n"
            "set key outside right top\nset grid\n",
            c->world, c->world, c->world, c->world);
    fprintf(f, "plot \\\n");
    for (int b = 0; b < c->blocks; b++) {
        fprintf(f, "  'bench-busbw-w%d.dat' index %d using 1:2 with linespoints %stitle '%s'%s\n",
                c->world, b, b == 0 ? "lw 3 dt 2 " : "", c->titles[b],
                b + 1 < c->blocks ? ", \\" : "");
    }
    return SL_OK;
}

/* ---- kernel GFLOP/s ---- */

typedef struct sl_kernel_row {
    char what[96];    /* "gpt-small fc matmul_fwd" */
    double gflops[2]; /* fp32, bf16 */
} sl_kernel_row;

typedef struct sl_kernels_ctx {
    sl_kernel_row rows[128];
    int n;
    double peak;
} sl_kernels_ctx;

/* Rows from runs named OP/DT/MODEL[/LAYER] with a gflops counter. */
static void sl_kernel_rows(const sl_bench_results *r, sl_kernels_ctx *k) {
    for (int i = 0; i < r->n_runs; i++) {
        const sl_bench_result *run = &r->runs[i];
        const double g = sl_median(run, "gflops");
        if (!isfinite(g)) continue;
        if (!strncmp(run->name, "peak/", 5)) {
            if (g > k->peak) k->peak = g;
            continue;
        }
        char base[160], op[32] = "", dt[16] = "", model[32] = "", layer[32] = "";
        sl_bench_name_base(run->name, base, sizeof base);
        if (sscanf(base, "%31[^/]/%15[^/]/%31[^/]/%31s", op, dt, model, layer) < 3) continue;
        const int col = !strcmp(dt, "bf16") ? 1 : !strcmp(dt, "fp32") ? 0 : -1;
        if (col < 0) continue;
        char what[96];
        snprintf(what, sizeof what, "%s %s%s%s", model, layer, layer[0] ? " " : "", op);
        int j = 0;
        while (j < k->n && strcmp(k->rows[j].what, what) != 0)
            j++;
        if (j == k->n) {
            if (k->n == 128) continue;
            k->n++;
            snprintf(k->rows[j].what, sizeof k->rows[j].what, "%s", what);
            k->rows[j].gflops[0] = k->rows[j].gflops[1] = NAN;
        }
        k->rows[j].gflops[col] = g;
    }
}

static sl_status sl_kernels_dat(FILE *f, void *ctx) {
    const sl_kernels_ctx *k = ctx;
    fprintf(f, "# kernel, GFLOP/s fp32, GFLOP/s bf16 (NaN: not measured)\n");
    for (int i = 0; i < k->n; i++)
        fprintf(f, "\"%s\" %.3f %.3f\n", k->rows[i].what, k->rows[i].gflops[0],
                k->rows[i].gflops[1]);
    return SL_OK;
}

static sl_status sl_kernels_gp(FILE *f, void *ctx) {
    const sl_kernels_ctx *k = ctx;
    fprintf(f, "# kernel GFLOP/s (data: bench-kernels.dat)\n"
               "set terminal pngcairo size 1300,650 noenhanced\n"
               "set output 'bench-kernels.png'\n"
               "set style data histograms\nset style histogram clustered gap 1\n"
               "set style fill solid 0.8 border -1\nset boxwidth 0.9\n"
               "set xtics rotate by -60 scale 0 font ',8'\nset ylabel 'GFLOP/s'\n"
               "set grid ytics\nset key top center horizontal\nset datafile missing 'nan'\n");
    if (k->peak > 0) {
        fprintf(f,
                "set title 'kernels at GPT shapes, GFLOP/s (dashed: measured sgemm peak %.1f "
                "GFLOP/s)'\nset yrange [0:%.3f]\n"
                "set arrow from graph 0, first %.3f to graph 1, first %.3f nohead lw 2 dt 2\n",
                k->peak, 1.15 * k->peak, k->peak, k->peak);
    } else {
        fprintf(f, "set title 'kernels at GPT shapes, GFLOP/s'\nset yrange [0:*]\n");
    }
    fprintf(f, "plot 'bench-kernels.dat' using 2:xtic(1) title 'fp32', '' using 3 title 'bf16'\n");
    return SL_OK;
}

/* ---- the markdown ---- */

typedef struct sl_md_ctx {
    const sl_bench_results *r;
    const sl_bench_report_opts *o;
    const int *worlds;
    int n_worlds;
    bool kernels, kernels_plot;
    double peak;
} sl_md_ctx;

static void sl_md_context(FILE *f, const sl_bench_results *r) {
    const sl_json *c = sl_json_get(r->doc, "context");
    const char *keys[][2] = {{"date", "date"},
                             {"host_name", "host"},
                             {"cpu_model", "CPU"},
                             {"kernel_isa", "kernel ISA path"},
                             {"kernel_threads", "kernel threads"},
                             {"openblas", "OpenBLAS"},
                             {"shardlab_suite_size", "suite size"},
                             {"library_build_type", "libbenchmark build"}};
    fprintf(f, "| | |\n|---|---|\n");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = sl_bench_results_context(r, keys[i][0]);
        if (v) fprintf(f, "| %s | %s |\n", keys[i][1], v);
    }
    const sl_json *cpus = sl_json_get(c, "num_cpus"), *mhz = sl_json_get(c, "mhz_per_cpu");
    if (cpus && mhz) {
        fprintf(f, "| CPUs | %.0f at %.0f MHz |\n", sl_json_number(cpus), sl_json_number(mhz));
    }
    const sl_json *load = sl_json_get(c, "load_avg");
    if (load && sl_json_type_of(load) == SL_JSON_ARRAY && sl_json_count(load) == 3) {
        fprintf(f, "| load average at start (1, 5, 15 min) | %.2f, %.2f, %.2f |\n",
                sl_json_number(sl_json_at(load, 0)), sl_json_number(sl_json_at(load, 1)),
                sl_json_number(sl_json_at(load, 2)));
    }
}

static void sl_md_file(FILE *f, const char *path) {
    char *text = NULL;
    size_t len = 0;
    if (sl_file_read_all(path, &text, &len) != SL_OK) {
        fprintf(f, "(cannot read %s: %s)\n", path, sl_error_message());
        return;
    }
    fwrite(text, 1, len, f);
    if (len && text[len - 1] != '\n') fputc('\n', f);
    free(text);
}

static sl_status sl_md_write(FILE *f, void *ctx) {
    const sl_md_ctx *m = ctx;
    fprintf(f,
            "# Benchmarks\n\nGenerated by `shardlab bench report %s` from %s. Reproduce with "
            "`ci/nightly.sh`, or `shardlab bench --out FILE` then `shardlab bench report FILE "
            "--dir reports`; compare two files with `shardlab bench compare BASELINE NEW`. "
            "Timings are medians over the repetitions.\n\n",
            m->o->results,
            m->o->sources ? "these Google Benchmark JSON files (the table below is the first "
                            "file's machine and context)"
                          : "that Google Benchmark JSON file");
    if (m->o->sources) fprintf(f, "%s\n", m->o->sources);
    sl_md_context(f, m->r);
    if (m->o->comparison) {
        fprintf(f, "\n## Against the baseline\n\n```text\n");
        sl_md_file(f, m->o->comparison);
        fprintf(f, "```\n");
    }
    if (m->kernels) {
        fprintf(f, "\n## Kernels\n\n");
        if (m->peak > 0) {
            fprintf(f,
                    "Measured OpenBLAS sgemm peak: **%.1f GFLOP/s** (`peak/sgemm_f32`); "
                    "`%% of sgemm peak` is relative to it.\n\n",
                    m->peak);
        }
        if (m->kernels_plot) fprintf(f, "![kernel GFLOP/s](bench-kernels.png)\n\n");
        sl_bench_print_kernels(m->r, f, true);
    }
    if (m->n_worlds > 0) {
        fprintf(f, "\n## Collectives\n\nBus bandwidth as nccl-tests defines it (DESIGN.md §6), "
                   "against the memcpy bandwidth of one thread measured in the same run.\n\n");
        for (int i = 0; i < m->n_worlds; i++)
            fprintf(f, "![busbw, W = %d](bench-busbw-w%d.png)\n\n", m->worlds[i], m->worlds[i]);
        sl_bench_print_busbw_targets(m->r, f, true);
        fprintf(f, "\nAs nccl-tests prints them (out-of-place; time is the mean over iterations "
                   "and ranks):\n\n```text");
        sl_bench_print_collectives(m->r, f);
        fprintf(f, "```\n");
    }
    sl_bench_report_e2e_md(m->r, f);
    fprintf(f, "\n## Not measured yet\n\nThe reference's time for the same step (the impl/ref "
               "ratio is measured by hand: README, Performance).\n");
    return SL_OK;
}

static sl_status sl_report_file(const sl_bench_report_opts *o, const char *name,
                                sl_file_write_fn fn, void *ctx) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", o->dir, name);
    return sl_file_write_atomic(path, fn, ctx);
}

sl_status sl_bench_report_write(const sl_bench_results *r, const sl_bench_report_opts *o,
                                int *n_plots) {
    *n_plots = 0;
    int worlds[SL_REPORT_MAX_WORLDS];
    const int n_worlds = sl_report_worlds(r, worlds);
    for (int i = 0; i < n_worlds; i++) {
        sl_busbw_ctx c = {.r = r, .world = worlds[i]};
        char dat[64], gp[64];
        snprintf(dat, sizeof dat, "bench-busbw-w%d.dat", worlds[i]);
        snprintf(gp, sizeof gp, "bench-busbw-w%d.gp", worlds[i]);
        SL_TRY(sl_report_file(o, dat, sl_busbw_dat, &c));
        SL_TRY(sl_report_file(o, gp, sl_busbw_gp, &c));
        ++*n_plots;
    }
    sl_kernels_ctx *k = calloc(1, sizeof *k);
    if (!k) return sl_error_set(SL_ERR_OOM, "benchmark report: kernel table");
    sl_kernel_rows(r, k);
    sl_status st = SL_OK;
    if (k->n > 0) {
        st = sl_report_file(o, "bench-kernels.dat", sl_kernels_dat, k);
        if (st == SL_OK) st = sl_report_file(o, "bench-kernels.gp", sl_kernels_gp, k);
        if (st == SL_OK) ++*n_plots;
    }
    sl_md_ctx m = {.r = r,
                   .o = o,
                   .worlds = worlds,
                   .n_worlds = n_worlds,
                   .kernels_plot = k->n > 0,
                   .peak = k->peak};
    for (int i = 0; i < r->n_runs; i++) {
        const char *name = r->runs[i].name;
        if (strncmp(name, "coll/", 5) && strncmp(name, "memcpy/", 7) && !sl_bench_is_step(name))
            m.kernels = true;
    }
    free(k);
    SL_TRY(st);
    SL_TRY(sl_bench_report_e2e_plots(r, o->dir, n_plots));
    return sl_report_file(o, "benchmarks.md", sl_md_write, &m);
}
