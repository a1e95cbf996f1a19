/* shardlab bench compare / bench report: read Google Benchmark JSON result files back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/compare.h"
#include "bench/report.h"
#include "bench/results.h"
#include "cli/bench_cli.h"
#include "cli/commands.h"
#include "common/json.h"

static const char *const sl_compare_usage =
    "usage: shardlab bench compare BASELINE.json NEW.json [--threshold 5%] [--all]\n"
    "Compares two Google Benchmark JSON files run by run on the median real time over the\n"
    "repetitions. A run regressed when it is slower by more than the threshold and by more\n"
    "than the noise (the larger relative spread, (max - min) / median, of its repetitions in\n"
    "either file): run with --repetitions 3 or more for the noise to mean something. A run\n"
    "that failed or computed wrong results (#wrong > 0) in NEW fails the comparison too.\n"
    "Prints the runs that moved (--all: every run) and a summary.\n"
    "Exit status: 0 no regression, 1 a regression or a failed run, 2 bad arguments or a file\n"
    "that cannot be read.\n"
    "  --threshold T  smallest change that counts, in percent: 5%, 2.5 (default 5%)\n"
    "  --all          list unchanged runs too\n";

static const char *const sl_report_usage =
    "usage: shardlab bench report RESULTS.json... [--dir DIR] [--comparison FILE]\n"
    "Writes DIR/benchmarks.md (default DIR: reports) from result files (several: their runs\n"
    "together, e.g. one suite measured again beside an older full run): the machine, kernel\n"
    "GFLOP/s and GB/s, busbw against memcpy bandwidth, the collectives as nccl-tests prints\n"
    "them; and the gnuplot scripts and data of its plots (DIR/bench-*.gp: run gnuplot in DIR\n"
    "to draw the PNGs). --comparison FILE includes `bench compare` output saved in FILE.\n";

/* "5%", "5", "2.5%" -> 0.05, 0.05, 0.025 */
static sl_status sl_parse_threshold(const char *v, double *out) {
    char *end = NULL;
    const double x = v ? strtod(v, &end) : -1;
    if (!v || end == v || (*end && strcmp(end, "%") != 0) || !(x >= 0 && x < 1000)) {
        return sl_error_set(SL_ERR_CONFIG,
                            "--threshold: expected a percentage such as 5%% or 2.5, found '%s'",
                            v ? v : "(nothing)");
    }
    *out = x / 100;
    return SL_OK;
}

/* Reading failures are bad input here (exit 2), kept apart from a regression (exit 1). */
static int sl_compare_report(sl_status st) {
    sl_cli_report(st);
    return 2;
}

int sl_bench_cmd_compare(int argc, char **argv) {
    const char *files[2] = {NULL, NULL};
    int n_files = 0;
    double threshold = 0.05;
    bool all = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sl_compare_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--threshold")) {
            const sl_status st = sl_parse_threshold(i + 1 < argc ? argv[++i] : NULL, &threshold);
            if (st != SL_OK) return sl_compare_report(st);
        } else if (!strcmp(argv[i], "--all")) {
            all = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return sl_compare_report(sl_cli_unknown_flag(argv[i], sl_compare_usage));
        } else if (n_files < 2) {
            files[n_files++] = argv[i];
        } else {
            return sl_compare_report(
                sl_error_set(SL_ERR_CONFIG,
                             "bench compare: one baseline and one new file, found a third "
                             "'%s'\n%s",
                             argv[i], sl_compare_usage));
        }
    }
    if (n_files != 2) {
        return sl_compare_report(sl_error_set(
            SL_ERR_CONFIG, "bench compare: expected BASELINE.json NEW.json\n%s", sl_compare_usage));
    }
    sl_bench_results base, cur;
    sl_status st = sl_bench_results_load(files[0], &base);
    if (st != SL_OK) return sl_compare_report(st);
    st = sl_bench_results_load(files[1], &cur);
    if (st != SL_OK) {
        sl_bench_results_free(&base);
        return sl_compare_report(st);
    }
    const char *hb = sl_bench_results_context(&base, "host_name");
    const char *hc = sl_bench_results_context(&cur, "host_name");
    const char *cb = sl_bench_results_context(&base, "cpu_model");
    const char *cc = sl_bench_results_context(&cur, "cpu_model");
    if ((hb && hc && strcmp(hb, hc)) || (cb && cc && strcmp(cb, cc))) {
        printf("note: the files come from different machines (%s, %s / %s, %s): timings are "
               "not comparable across machines\n",
               hb ? hb : "?", cb ? cb : "?", hc ? hc : "?", cc ? cc : "?");
    }
    sl_bench_comparison c;
    st = sl_bench_compare(&base, &cur, threshold, &c);
    int rc = 0;
    if (st == SL_OK) {
        printf("baseline: %s\nnew:      %s\n", files[0], files[1]);
        sl_bench_comparison_print(&c, threshold, all, stdout);
        rc = sl_bench_comparison_failed(&c) ? 1 : 0;
        sl_bench_comparison_free(&c);
    } else {
        rc = sl_compare_report(st);
    }
    sl_bench_results_free(&base);
    sl_bench_results_free(&cur);
    return rc;
}

enum { SL_REPORT_MAX_FILES = 8 };

/* One line per result file: its name, date and the load average when it started, for a report
 * made of several runs. */
static sl_status sl_report_sources(const char *const *files, int n, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k < n; k++) {
        sl_bench_results r;
        SL_TRY(sl_bench_results_load(files[k], &r));
        const char *date = sl_bench_results_context(&r, "date");
        const sl_json *load = sl_json_get(sl_json_get(r.doc, "context"), "load_avg");
        char load_text[64] = "";
        if (load && sl_json_type_of(load) == SL_JSON_ARRAY && sl_json_count(load) == 3) {
            snprintf(load_text, sizeof load_text, ", load average at start %.2f",
                     sl_json_number(sl_json_at(load, 0)));
        }
        const int w = snprintf(buf + used, cap - used, "- `%s`: %s, %d runs%s\n", files[k],
                               date ? date : "(no date)", r.n_runs, load_text);
        sl_bench_results_free(&r);
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
    }
    return SL_OK;
}

int sl_bench_cmd_report(int argc, char **argv) {
    const char *files[SL_REPORT_MAX_FILES];
    int n_files = 0;
    sl_bench_report_opts o = {.dir = "reports"};
    for (int i = 0; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sl_report_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--dir") && v) {
            o.dir = argv[++i];
        } else if (!strcmp(argv[i], "--comparison") && v) {
            o.comparison = argv[++i];
        } else if (argv[i][0] == '-') {
            return sl_cli_report(sl_cli_unknown_flag(argv[i], sl_report_usage));
        } else if (n_files < SL_REPORT_MAX_FILES) {
            files[n_files++] = argv[i];
        } else {
            return sl_cli_report(sl_error_set(SL_ERR_CONFIG,
                                              "bench report: at most %d result files, found "
                                              "another '%s'\n%s",
                                              SL_REPORT_MAX_FILES, argv[i], sl_report_usage));
        }
    }
    if (n_files == 0) {
        return sl_cli_report(sl_error_set(SL_ERR_CONFIG, "bench report: expected RESULTS.json\n%s",
                                          sl_report_usage));
    }
    char names[4096] = "", sources[4096] = "", merged[4096];
    for (int k = 0; k < n_files; k++) {
        const size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, "%s%s", k ? " " : "", files[k]);
    }
    o.results = names;
    const char *load_from = files[0];
    sl_status st = SL_OK;
    if (n_files > 1) {
        /* the runs of every file in one results set (the first file's context), staged beside
         * the report */
        snprintf(merged, sizeof merged, "%s/.bench-report-merged.json", o.dir);
        st = sl_report_sources(files, n_files, sources, sizeof sources);
        if (st == SL_OK) st = sl_bench_results_merge(files, n_files, merged);
        if (st != SL_OK) return sl_cli_report(st);
        o.sources = sources;
        load_from = merged;
    }
    sl_bench_results r;
    st = sl_bench_results_load(load_from, &r);
    if (n_files > 1) remove(merged);
    if (st != SL_OK) return sl_cli_report(st);
    int plots = 0;
    st = sl_bench_report_write(&r, &o, &plots);
    sl_bench_results_free(&r);
    if (st != SL_OK) return sl_cli_report(st);
    printf("wrote %s/benchmarks.md and %d gnuplot script%s (%s/bench-*.gp)\n", o.dir, plots,
           plots == 1 ? "" : "s", o.dir);
    return 0;
}
