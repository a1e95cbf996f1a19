/* The regression gate (compare.h). */
#include "bench/compare.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *sl_bench_verdict_name(sl_bench_verdict v) {
    static const char *const names[] = {"same",   "noise", "faster", "SLOWER",
                                        "FAILED", "new",   "gone"};
    return names[v];
}

static double sl_spread(const sl_bench_stat *s) {
    return s->median > 0 ? (s->hi - s->lo) / s->median : 0;
}

/* FAILED's reason, or NULL. */
static const char *sl_failure(const sl_bench_result *run) {
    if (run->error) return run->error;
    sl_bench_stat w;
    if (sl_bench_run_stat(run, "wrong", &w) && w.hi > 0) return "wrong results (#wrong > 0)";
    return NULL;
}

static void sl_judge(sl_bench_change *c, const sl_bench_result *b, const sl_bench_result *n,
                     double threshold) {
    c->why = sl_failure(n);
    if (!sl_bench_run_cpu_share(n, &c->new_cpu_share)) c->new_cpu_share = 1;
    sl_bench_stat sb, sn;
    const bool have_b = sl_bench_run_stat(b, "real_time", &sb);
    const bool have_n = sl_bench_run_stat(n, "real_time", &sn);
    if (have_b && have_n) {
        c->base_ns = sb.median;
        c->new_ns = sn.median;
        c->base_n = sb.n;
        c->new_n = sn.n;
        c->base_spread = sl_spread(&sb);
        c->new_spread = sl_spread(&sn);
        c->change = sb.median > 0 ? sn.median / sb.median - 1 : 0;
    }
    if (c->why || !have_n) {
        c->verdict = SL_BENCH_FAILED;
        if (!c->why) c->why = "no time measured";
        return;
    }
    if (!have_b) { /* the baseline failed: nothing to compare against */
        c->verdict = SL_BENCH_NEW;
        return;
    }
    const double noise = fmax(c->base_spread, c->new_spread);
    if (fabs(c->change) <= threshold)
        c->verdict = SL_BENCH_SAME;
    else if (fabs(c->change) <= noise)
        c->verdict = SL_BENCH_NOISY;
    else
        c->verdict = c->change > 0 ? SL_BENCH_SLOWER : SL_BENCH_FASTER;
}

sl_status sl_bench_compare(const sl_bench_results *base, const sl_bench_results *cur,
                           double threshold, sl_bench_comparison *out) {
    memset(out, 0, sizeof *out);
    const int cap = base->n_runs + cur->n_runs;
    out->rows = calloc(cap ? (size_t)cap : 1, sizeof *out->rows);
    if (!out->rows) return sl_error_set(SL_ERR_OOM, "comparing %d benchmark runs", cap);
    for (int i = 0; i < base->n_runs; i++) {
        const sl_bench_result *b = &base->runs[i];
        const sl_bench_result *n = sl_bench_results_find(cur, b->name);
        sl_bench_change *c = &out->rows[out->n++];
        c->name = b->name;
        c->new_cpu_share = 1;
        if (n)
            sl_judge(c, b, n, threshold);
        else
            c->verdict = SL_BENCH_GONE;
    }
    for (int i = 0; i < cur->n_runs; i++) {
        const sl_bench_result *n = &cur->runs[i];
        if (sl_bench_results_find(base, n->name)) continue;
        sl_bench_change *c = &out->rows[out->n++];
        c->name = n->name;
        c->new_cpu_share = 1;
        c->why = sl_failure(n);
        c->verdict = c->why ? SL_BENCH_FAILED : SL_BENCH_NEW;
    }
    for (int i = 0; i < out->n; i++)
        out->count[out->rows[i].verdict]++;
    return SL_OK;
}

void sl_bench_comparison_free(sl_bench_comparison *c) {
    free(c->rows);
    memset(c, 0, sizeof *c);
}

bool sl_bench_comparison_failed(const sl_bench_comparison *c) {
    return c->count[SL_BENCH_SLOWER] > 0 || c->count[SL_BENCH_FAILED] > 0;
}

/* A time in ns with a unit that keeps 3-4 significant digits. */
static void sl_fmt_time(char *buf, size_t cap, double ns) {
    if (ns >= 1e9)
        snprintf(buf, cap, "%.3g s", ns / 1e9);
    else if (ns >= 1e6)
        snprintf(buf, cap, "%.4g ms", ns / 1e6);
    else if (ns >= 1e3)
        snprintf(buf, cap, "%.4g us", ns / 1e3);
    else
        snprintf(buf, cap, "%.4g ns", ns);
}

void sl_bench_comparison_print(const sl_bench_comparison *c, double threshold, bool all, FILE *f) {
    int width = 9;
    for (int i = 0; i < c->n; i++) {
        const int len = (int)strlen(c->rows[i].name);
        if (len > width) width = len;
    }
    bool header = false;
    for (int i = 0; i < c->n; i++) {
        const sl_bench_change *r = &c->rows[i];
        if (!all && r->verdict == SL_BENCH_SAME) continue;
        if (!header) {
            fprintf(f, "%-*s  %11s  %11s  %8s  %7s  %s\n", width, "benchmark", "baseline", "new",
                    "change", "noise", "verdict");
            header = true;
        }
        char tb[32] = "-", tn[32] = "-", ch[32] = "-", no[32] = "-";
        if (r->base_n > 0) sl_fmt_time(tb, sizeof tb, r->base_ns);
        if (r->new_n > 0) sl_fmt_time(tn, sizeof tn, r->new_ns);
        if (r->base_n > 0 && r->new_n > 0) {
            snprintf(ch, sizeof ch, "%+.1f%%", 100 * r->change);
            snprintf(no, sizeof no, "%.1f%%", 100 * fmax(r->base_spread, r->new_spread));
        }
        fprintf(f, "%-*s  %11s  %11s  %8s  %7s  %s", width, r->name, tb, tn, ch, no,
                sl_bench_verdict_name(r->verdict));
        if (r->why) fprintf(f, ": %s", r->why);
        if (r->new_cpu_share < SL_BENCH_CONTENDED && r->verdict != SL_BENCH_SAME)
            fprintf(f, " (contended: the new run got %.0f%% of a CPU)", 100 * r->new_cpu_share);
        fprintf(f, "\n");
    }
    fprintf(f,
            "%d compared at a %.1f%% threshold: %d slower, %d faster, %d moved within noise, "
            "%d unchanged, %d failed; %d only in the baseline, %d new\n",
            c->n - c->count[SL_BENCH_NEW] - c->count[SL_BENCH_GONE], 100 * threshold,
            c->count[SL_BENCH_SLOWER], c->count[SL_BENCH_FASTER], c->count[SL_BENCH_NOISY],
            c->count[SL_BENCH_SAME], c->count[SL_BENCH_FAILED], c->count[SL_BENCH_GONE],
            c->count[SL_BENCH_NEW]);
}
