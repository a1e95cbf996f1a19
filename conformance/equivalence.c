/* The equivalence matrix and its report (equivalence.h). */
#include "conformance/equivalence.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/gnuplot.h"
#include "conformance/compare_side.h"
#include "conformance/equivalence_internal.h"
#include "shardlab/log.h"

/* W = 4 so that reversing the rank order of a reduction changes its rounding (at W = 2, a + b
 * and b + a are the same float and the noise floor would be 0); gpt-tiny with 2 × 64 tokens per
 * rank keeps one run at a few seconds in the reference. */
const char *const sl_equiv_run_flags =
    "--num_processes 4 --micro_batch_size 2 --seq_len 64 --lr 1e-3 --seed 1234 "
    "--deterministic true";

typedef struct sl_equiv_pair {
    const char *key, *title, *fsdp, *ds;
} sl_equiv_pair;

static const sl_equiv_pair sl_pairs[] = {
    {"full_shard", "FULL_SHARD ↔ ZeRO-3", "--use_fsdp --fsdp_sharding_strategy FULL_SHARD",
     "--use_deepspeed --zero_stage 3"},
    {"shard_grad_op", "SHARD_GRAD_OP ↔ ZeRO-2", "--use_fsdp --fsdp_sharding_strategy SHARD_GRAD_OP",
     "--use_deepspeed --zero_stage 2"},
    {"no_shard", "NO_SHARD ↔ ZeRO-0", "--use_fsdp --fsdp_sharding_strategy NO_SHARD",
     "--use_deepspeed --zero_stage 0"},
    {"hybrid_shard", "HYBRID_SHARD ↔ ZeRO++ hpZ (ZeRO-3, zero_hpz_partition_size 2)",
     "--use_fsdp --fsdp_sharding_strategy HYBRID_SHARD --num_machines 2",
     "--use_deepspeed --zero_stage 3 --zero_hpz_partition_size 2 --num_machines 2"},
};

typedef struct sl_equiv_prec {
    const char *key, *title, *fsdp, *ds;
} sl_equiv_prec;

static const sl_equiv_prec sl_precs[] = {
    {"fp32", "fp32", "--mixed_precision no", "--mixed_precision no"},
    {"bf16", "bf16 (FSDP loads fp32, bf16 mixed precision)", "--mixed_precision bf16",
     "--mixed_precision bf16"},
    {"fp16", "fp16 (loss scaling)", "--mixed_precision fp16", "--mixed_precision fp16"},
    {"bf16load", "FSDP loads bf16, no mixed precision; DeepSpeed bf16",
     "--load_dtype bf16 --mixed_precision no", "--mixed_precision bf16"},
};

#define SL_N_PAIRS (sizeof sl_pairs / sizeof sl_pairs[0])
#define SL_N_PRECS (sizeof sl_precs / sizeof sl_precs[0])

sl_status sl_equiv_ablate(const char *a, const char *b, const char *extra, int steps,
                          sl_sample_mode sampling, bool knobs, sl_ablation *out) {
    memset(out, 0, sizeof *out);
    /* the shared run shape first, so that a side's own flags (k, b, ...) override it */
    char common[512], full_a[1024], full_b[1024];
    snprintf(common, sizeof common, "--max_steps %d %s", steps, extra);
    snprintf(full_a, sizeof full_a, "%s %s", sl_equiv_run_flags, a);
    snprintf(full_b, sizeof full_b, "%s %s", sl_equiv_run_flags, b);
    sl_gpt2_config gcfg;
    SL_TRY(sl_gpt2_config_from_name("gpt-tiny", &gcfg));
    sl_model_desc *model = NULL;
    SL_TRY(sl_model_desc_create_gpt2(&gcfg, &model));
    sl_compare_side sa = {0}, sb = {0};
    sl_status st = sl_compare_side_open(&sa, 'A', full_a, common, model);
    if (st == SL_OK) st = sl_compare_side_open(&sb, 'B', full_b, common, model);
    const sl_compare_run_opts ro = {.sampling = sampling};
    if (st == SL_OK) st = sl_ablation_run(sa.cfg, sb.cfg, model, &ro, knobs, out);
    sl_compare_side_close(&sa);
    sl_compare_side_close(&sb);
    sl_model_desc_destroy(model);
    return st;
}

void sl_equiv_verdict(const sl_ablation *ab, char *buf, size_t cap) {
    snprintf(buf, cap, "%s: loss gap %.2g (floor %.2g), params %.2g (floor %.2g)",
             sl_ablation_equivalent(ab) ? "**equivalent**" : "**not equivalent**", ab->loss_div,
             ab->floor_loss, ab->param_div, ab->floor_param);
}

sl_status sl_equiv_render(const sl_equiv_opts *o, const char *name) {
    if (!o->plots || !sl_gnuplot_available()) return SL_OK;
    char gp[256];
    snprintf(gp, sizeof gp, "%s.gp", name);
    return sl_gnuplot_render(o->dir, gp);
}

sl_status sl_equiv_plot_curves(const sl_equiv_opts *o, const char *name, const char *title,
                               const sl_ablation *ab, const char *label_a, const char *label_b) {
    const int n = ab->a.traj.n_steps;
    double *x = calloc((size_t)n + 1, sizeof *x), *ya = calloc((size_t)n + 1, sizeof *ya);
    double *yb = calloc((size_t)n + 1, sizeof *yb);
    sl_status st = x && ya && yb ? SL_OK : sl_error_set(SL_ERR_OOM, "plot %s", name);
    for (int i = 0; st == SL_OK && i < n; i++) {
        x[i] = i + 1;
        ya[i] = ab->a.traj.steps[i].loss;
        yb[i] = i < ab->b.traj.n_steps ? ab->b.traj.steps[i].loss : NAN;
    }
    const sl_plot_series s[2] = {{label_a, n, x, ya}, {label_b, n, x, yb}};
    const sl_plot p = {.name = name,
                       .title = title,
                       .xlabel = "step",
                       .ylabel = "loss",
                       .n_series = 2,
                       .series = s};
    if (st == SL_OK) st = sl_plot_write(o->dir, &p);
    if (st == SL_OK) st = sl_equiv_render(o, name);
    free(x);
    free(ya);
    free(yb);
    return st;
}

void sl_report_context(FILE *f) {
    char date[64] = "unknown date", host[256] = "unknown host", cpu[256] = "unknown CPU";
    const time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tm);
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown host");
    host[sizeof host - 1] = '\0';
    int n_cpus = 0;
    FILE *c = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (c && fgets(line, sizeof line, c)) {
        if (!strncmp(line, "processor", 9)) n_cpus++;
        const char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon && !strcmp(cpu, "unknown CPU")) {
            snprintf(cpu, sizeof cpu, "%s", colon + 2);
            cpu[strcspn(cpu, "\n")] = '\0';
        }
    }
    if (c) fclose(c);
    fprintf(f, "Generated on %s on `%s` (%s, %d logical CPUs).\n", date, host, cpu, n_cpus);
}

typedef struct sl_equiv_state {
    const sl_equiv_opts *o;
    sl_ablation cells[SL_N_PAIRS][SL_N_PRECS];
} sl_equiv_state;

static sl_status sl_equiv_divergence_plot(const sl_equiv_state *s, size_t p) {
    const sl_equiv_opts *o = s->o;
    const int n = o->steps;
    double *x = calloc((size_t)n, sizeof *x), *y = calloc((size_t)n * SL_N_PRECS, sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        return sl_error_set(SL_ERR_OOM, "divergence plot");
    }
    sl_plot_series series[SL_N_PRECS];
    for (size_t q = 0; q < SL_N_PRECS; q++) {
        const sl_ablation *ab = &s->cells[p][q];
        for (int i = 0; i < n; i++) {
            x[i] = i + 1;
            const double gap = sl_compare_loss_gap(&ab->a, &ab->b, i);
            y[q * (size_t)n + (size_t)i] = gap > 0 ? gap : NAN; /* log scale */
        }
        series[q] = (sl_plot_series){sl_precs[q].key, n, x, y + q * (size_t)n};
    }
    char name[64], title[160];
    snprintf(name, sizeof name, "equiv-%s-divergence", sl_pairs[p].key);
    snprintf(title, sizeof title, "%s: |loss FSDP - loss DeepSpeed| per step", sl_pairs[p].title);
    const sl_plot plot = {.name = name,
                          .title = title,
                          .xlabel = "step",
                          .ylabel = "|loss gap| (log scale)",
                          .log_y = true,
                          .n_series = (int)SL_N_PRECS,
                          .series = series};
    sl_status st = sl_plot_write(o->dir, &plot);
    if (st == SL_OK) st = sl_equiv_render(o, name);
    free(x);
    free(y);
    return st;
}

static void sl_equiv_matrix(const sl_equiv_state *s, FILE *f) {
    fprintf(f, "| pair |");
    for (size_t q = 0; q < SL_N_PRECS; q++)
        fprintf(f, " %s |", sl_precs[q].key);
    fprintf(f, "\n|---|");
    for (size_t q = 0; q < SL_N_PRECS; q++)
        fprintf(f, "---|");
    fprintf(f, "\n");
    for (size_t p = 0; p < SL_N_PAIRS; p++) {
        fprintf(f, "| %s |", sl_pairs[p].title);
        for (size_t q = 0; q < SL_N_PRECS; q++) {
            const sl_ablation *ab = &s->cells[p][q];
            fprintf(f, " %s, final loss gap %.2g |",
                    sl_ablation_equivalent(ab) ? "equivalent" : "**differs**",
                    fabs(ab->loss_a - ab->loss_b));
        }
        fprintf(f, "\n");
    }
}

static sl_status sl_equiv_cells(sl_equiv_state *s, FILE *f) {
    const sl_equiv_opts *o = s->o;
    for (size_t p = 0; p < SL_N_PAIRS; p++) {
        for (size_t q = 0; q < SL_N_PRECS; q++) {
            char a[512], b[512];
            snprintf(a, sizeof a, "%s %s", sl_pairs[p].fsdp, sl_precs[q].fsdp);
            snprintf(b, sizeof b, "%s %s", sl_pairs[p].ds, sl_precs[q].ds);
            SL_LOG_INFO("equivalence: %s, %s", sl_pairs[p].title, sl_precs[q].key);
            sl_ablation *ab = &s->cells[p][q];
            SL_TRY(sl_equiv_ablate(a, b, "", o->steps, SL_SAMPLE_PACKED, false, ab));
            if (!sl_ablation_equivalent(ab)) {
                sl_ablation_free(ab);
                SL_TRY(sl_equiv_ablate(a, b, "", o->steps, SL_SAMPLE_PACKED, true, ab));
            }
            char name[96], title[256], verdict[256];
            snprintf(name, sizeof name, "equiv-%s-%s-loss", sl_pairs[p].key, sl_precs[q].key);
            snprintf(title, sizeof title, "%s, %s", sl_pairs[p].title, sl_precs[q].title);
            SL_TRY(sl_equiv_plot_curves(o, name, title, ab, "FSDP (A)", "DeepSpeed (B)"));
            sl_equiv_verdict(ab, verdict, sizeof verdict);
            fprintf(f, "### %s, %s\n\nA = `%s`, B = `%s`: %s.\n\n![%s](%s.png)\n\n",
                    sl_pairs[p].title, sl_precs[q].title, a, b, verdict, name, name);
            sl_ablation_print(ab, f, true);
            fprintf(f, "\n");
        }
        SL_TRY(sl_equiv_divergence_plot(s, p));
        fprintf(f, "![divergence per step, %s](equiv-%s-divergence.png)\n\n", sl_pairs[p].title,
                sl_pairs[p].key);
    }
    return SL_OK;
}

static sl_status sl_write_text(FILE *f, void *ctx) {
    fputs(ctx, f);
    return SL_OK;
}

static sl_status sl_equiv_body(sl_equiv_state *s, FILE *f) {
    const sl_equiv_opts *o = s->o;
    fprintf(f, "# FSDP ↔ DeepSpeed equivalence\n\n");
    sl_report_context(f);
    fprintf(f,
            "Regenerate with `shardlab report` (this file: `shardlab report --only equivalence`)."
            "\n\nEvery run: GPT `gpt-tiny`, `%s`, %d optimizer steps, the embedded data, trained "
            "by the reference trainer (W logical ranks in one process; the engine matches it "
            "within its own tests' tolerances). A pair is **equivalent** when both the largest "
            "relative loss gap over all steps and the final parameter divergence ‖θA − θB‖/‖θB‖ "
            "are within %.0f× the noise floor: the same divergence between A and A with every "
            "reduction summed in the opposite rank order (DESIGN.md §9). When a pair is not "
            "equivalent, the final divergence is attributed to the plan fields where A and B "
            "differ by switching them one at a time from A (method under each table). ZeRO++ "
            "hierarchical partitioning: `zero_hpz_partition_size` is validated but its secondary "
            "partition is not modelled (README, known limits), so numerically the DeepSpeed side "
            "of that pair is ZeRO-3 over all W ranks; its layout differences sit in the "
            "`structure` knob.\n\n",
            sl_equiv_run_flags, o->steps, SL_EQUIV_FLOOR_MULTIPLE);
    SL_TRY(sl_equiv_cells(s, f));
    return SL_OK;
}

sl_status sl_equiv_report(const sl_equiv_opts *o) {
    if (o->steps < 1) return sl_error_set(SL_ERR_INVALID_ARG, "equivalence: steps must be >= 1");
    sl_equiv_state *s = calloc(1, sizeof *s);
    if (!s) return sl_error_set(SL_ERR_OOM, "equivalence report");
    s->o = o;
    char *cells = NULL, *facts = NULL;
    size_t n_cells = 0, n_facts = 0;
    FILE *mc = open_memstream(&cells, &n_cells);
    FILE *mf = open_memstream(&facts, &n_facts);
    sl_status st = mc && mf ? SL_OK : sl_error_set(SL_ERR_OOM, "equivalence report buffer");
    if (st == SL_OK) st = sl_equiv_body(s, mc);
    if (st == SL_OK) st = sl_equiv_facts(o, mf);
    if (mc) fclose(mc);
    if (mf) fclose(mf);
    char *doc = NULL;
    size_t n_doc = 0;
    FILE *md = st == SL_OK ? open_memstream(&doc, &n_doc) : NULL;
    if (md) {
        /* the summary first, then the facts, then the per-cell detail */
        const char *detail = strstr(cells, "### ");
        fwrite(cells, 1, detail ? (size_t)(detail - cells) : n_cells, md);
        fprintf(md, "## Summary\n\n");
        sl_equiv_matrix(s, md);
        fprintf(md, "\n%s\n## Every pair and precision\n\n%s", facts, detail ? detail : "");
        fclose(md);
        char path[4096];
        snprintf(path, sizeof path, "%s/equivalence.md", o->dir);
        st = sl_file_write_atomic(path, sl_write_text, doc);
    }
    for (size_t p = 0; p < SL_N_PAIRS; p++)
        for (size_t q = 0; q < SL_N_PRECS; q++)
            sl_ablation_free(&s->cells[p][q]);
    free(cells);
    free(facts);
    free(doc);
    free(s);
    return st;
}
