/* `shardlab compare` (compare.h). */
#include "conformance/compare.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/gnuplot.h"
#include "common/plan_diff.h"
#include "conformance/compare_ablate.h"
#include "conformance/compare_impl.h"
#include "conformance/compare_run.h"
#include "conformance/compare_side.h"

static const char *const sl_stage_titles[SL_STAGE_COUNT] = {
    "preparation (flat/master params)", "optimizer states", "training step (forward/backward)",
    "gradient reduction", "optimizer step"};

sl_compare_opts sl_compare_opts_default(void) {
    return (sl_compare_opts){
        .model = "gpt-tiny", .steps = 20, .seed = 1234, .sampling = SL_SAMPLE_PACKED};
}

static sl_status sl_make_dir(const char *dir) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        return sl_error_set(SL_ERR_IO, "cannot create directory %s: %s", dir, strerror(errno));
    }
    return SL_OK;
}

static void sl_print_dtypes(const sl_compare_side *a, const sl_compare_side *b, FILE *f) {
    sl_dtype ta[SL_STAGE_COUNT], tb[SL_STAGE_COUNT];
    sl_plan_dtype_table(a->plan, ta);
    sl_plan_dtype_table(b->plan, tb);
    fprintf(f, "dtype table (Accelerate's \"Moving between FSDP and DeepSpeed\")\n");
    fprintf(f, "  %-34s %-10s %-10s\n", "stage", "A", "B");
    for (int s = 0; s < SL_STAGE_COUNT; s++) {
        fprintf(f, "  %-34s %-10s %-10s%s\n", sl_stage_titles[s], sl_dtype_name(ta[s]),
                sl_dtype_name(tb[s]), ta[s] != tb[s] ? "  <- differs" : "");
    }
    fprintf(f, "\n");
}

static void sl_print_diffs(const sl_compare_side *a, const sl_compare_side *b, FILE *f) {
    sl_plan_difference d[160];
    const size_t n = sl_plan_diff(a->plan, b->plan, d, sizeof d / sizeof d[0]);
    if (n == 0) {
        fprintf(f, "plan fields that differ: none (the plans are identical)\n\n");
        return;
    }
    fprintf(f, "plan fields that differ: %zu\n", n);
    for (size_t i = 0; i < n && i < sizeof d / sizeof d[0]; i++)
        fprintf(f, "  %-32s %-24s %s\n", d[i].field, d[i].a, d[i].b);
    fprintf(f, "\n");
}

static void sl_print_curves(const sl_compare_result *a, const sl_compare_result *b, FILE *f) {
    const int n = a->traj.n_steps < b->traj.n_steps ? a->traj.n_steps : b->traj.n_steps;
    const int stride = n > 40 ? (n + 39) / 40 : 1;
    fprintf(f, "loss per step and divergence |loss A - loss B|\n");
    fprintf(f, "  %6s %12s %12s %12s %6s %6s\n", "step", "loss A", "loss B", "|dL|", "skipA",
            "skipB");
    for (int i = 0; i < n; i++) {
        if (i % stride != 0 && i + 1 != n) continue;
        const sl_trajectory_step *x = &a->traj.steps[i], *y = &b->traj.steps[i];
        fprintf(f, "  %6d %12.6f %12.6f %12.3g %6s %6s\n", i + 1, x->loss, y->loss,
                sl_compare_loss_gap(a, b, i), x->skipped ? "yes" : "", y->skipped ? "yes" : "");
    }
    fprintf(f,
            "final: loss A %.6f, B %.6f; max relative loss divergence %.3g; final parameter "
            "divergence ||thetaA - thetaB|| / ||thetaB|| = %.3g\n\n",
            sl_compare_final_loss(a), sl_compare_final_loss(b), sl_compare_loss_div(a, b),
            sl_compare_param_div(a, b));
}

/* Peak bytes of category c in space s, the largest over ranks. */
static int64_t sl_peak(const sl_observation *o, int s, int c) {
    int64_t m = 0;
    for (int r = 0; r < o->world_size; r++)
        if (o->memory[r].peak[s][c] > m) m = o->memory[r].peak[s][c];
    return m;
}

static void sl_print_memory(const sl_compare_result *a, const sl_compare_result *b, FILE *f) {
    fprintf(f, "peak memory per rank (KiB, the largest rank; device + host)\n");
    fprintf(f, "  %-18s %18s %18s\n", "category", "A", "B");
    for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++) {
        char va[40], vb[40];
        snprintf(va, sizeof va, "%.1f + %.1f", sl_peak(&a->obs, 0, c) / 1024.0,
                 sl_peak(&a->obs, 1, c) / 1024.0);
        snprintf(vb, sizeof vb, "%.1f + %.1f", sl_peak(&b->obs, 0, c) / 1024.0,
                 sl_peak(&b->obs, 1, c) / 1024.0);
        fprintf(f, "  %-18s %18s %18s\n", sl_mem_category_name((sl_mem_category)c), va, vb);
    }
    fprintf(f, "tokens/s (training loop wall time, %s): A %.0f, B %.0f\n\n", a->producer,
            a->tokens_per_s, b->tokens_per_s);
}

static sl_status sl_compare_plots(const char *dir, const sl_compare_result *a,
                                  const sl_compare_result *b, FILE *f) {
    const int n = a->traj.n_steps < b->traj.n_steps ? a->traj.n_steps : b->traj.n_steps;
    double *x = calloc((size_t)n + 1, sizeof *x), *la = calloc((size_t)n + 1, sizeof *la);
    double *lb = calloc((size_t)n + 1, sizeof *lb), *gap = calloc((size_t)n + 1, sizeof *gap);
    sl_status st = x && la && lb && gap ? SL_OK : sl_error_set(SL_ERR_OOM, "compare plots");
    bool positive = false;
    for (int i = 0; st == SL_OK && i < n; i++) {
        x[i] = i + 1;
        la[i] = a->traj.steps[i].loss;
        lb[i] = b->traj.steps[i].loss;
        gap[i] = sl_compare_loss_gap(a, b, i);
        positive = positive || gap[i] > 0;
        if (!(gap[i] > 0)) gap[i] = NAN; /* log scale: an exact agreement has no point */
    }
    const sl_plot_series curves[2] = {{"A", n, x, la}, {"B", n, x, lb}};
    const sl_plot loss = {.name = "compare-loss",
                          .title = "loss per step",
                          .xlabel = "step",
                          .ylabel = "loss",
                          .n_series = 2,
                          .series = curves};
    const sl_plot_series gaps[1] = {{"|loss A - loss B|", n, x, gap}};
    const sl_plot div = {.name = "compare-divergence",
                         .title = "loss divergence per step",
                         .xlabel = "step",
                         .ylabel = "|loss A - loss B| (log scale)",
                         .log_y = true,
                         .n_series = 1,
                         .series = gaps};
    if (st == SL_OK) st = sl_plot_write(dir, &loss);
    if (st == SL_OK && positive) st = sl_plot_write(dir, &div);
    if (st == SL_OK && sl_gnuplot_available()) {
        st = sl_gnuplot_render(dir, "compare-loss.gp");
        if (st == SL_OK && positive) st = sl_gnuplot_render(dir, "compare-divergence.gp");
        if (st == SL_OK) {
            fprintf(f, "plots: %s/compare-loss.png%s%s\n", dir, positive ? ", " : "",
                    positive ? "compare-divergence.png"
                             : " (the runs agree exactly: no divergence plot)");
        }
    } else if (st == SL_OK) {
        fprintf(f, "plots: gnuplot not found; scripts written to %s (run gnuplot on them)\n", dir);
    }
    free(x);
    free(la);
    free(lb);
    free(gap);
    return st;
}

typedef struct sl_compare_ctx {
    const sl_compare_opts *o;
    const sl_model_desc *model;
    sl_compare_side a, b;
    char common[256];
    char base[4096]; /* the runs' directory */
    bool scratch;    /* base is a temporary directory */
    sl_compare_result ra, rb;
} sl_compare_ctx;

static sl_status sl_compare_train(sl_compare_ctx *c) {
    const sl_compare_opts *o = c->o;
    if (o->ref_only) {
        const sl_compare_run_opts ro = {.sampling = o->sampling};
        SL_TRY(sl_compare_ref_run(c->a.plan, c->model, &ro, &c->ra));
        return sl_compare_ref_run(c->b.plan, c->model, &ro, &c->rb);
    }
    char model_flags[64], dir_a[4200], dir_b[4200];
    snprintf(model_flags, sizeof model_flags, "--model %s", o->model);
    snprintf(dir_a, sizeof dir_a, "%s/A", c->base);
    snprintf(dir_b, sizeof dir_b, "%s/B", c->base);
    sl_compare_impl_opts io = {.model_flags = model_flags,
                               .steps = o->steps,
                               .sampling = o->sampling,
                               .common = c->common,
                               .dir = dir_a};
    sl_status st = sl_compare_impl_run(&c->a, c->model, &io, &c->ra);
    io.dir = dir_b;
    if (st == SL_OK) st = sl_compare_impl_run(&c->b, c->model, &io, &c->rb);
    if (c->scratch) {
        sl_compare_remove_run_dir(dir_a);
        sl_compare_remove_run_dir(dir_b);
    }
    return st;
}

static sl_status sl_compare_report(sl_compare_ctx *c, FILE *f) {
    const sl_compare_opts *o = c->o;
    fprintf(f, "compare\n  A = %s\n  B = %s\n", o->a, o->b);
    fprintf(f,
            "runs: %s, %s, %d steps, seed %lld, %s sampling, deterministic reductions; both from "
            "the same initial weights (seed) on the same data\n  A: %s %s, W = %d\n  B: %s %s, W "
            "= %d\n\n",
            o->ref_only ? "reference trainer (W logical ranks in one process)"
                        : "engine (shardlab launch --num_processes W shardlab train)",
            o->model, o->steps, o->seed,
            o->sampling == SL_SAMPLE_DOCUMENTS ? "documents" : "packed",
            sl_dialect_name(c->a.plan->dialect), sl_strategy_name(c->a.plan->strategy),
            c->a.plan->world_size, sl_dialect_name(c->b.plan->dialect),
            sl_strategy_name(c->b.plan->strategy), c->b.plan->world_size);
    sl_print_dtypes(&c->a, &c->b, f);
    sl_print_diffs(&c->a, &c->b, f);
    sl_print_curves(&c->ra, &c->rb, f);
    sl_print_memory(&c->ra, &c->rb, f);
    if (o->out_dir) SL_TRY(sl_compare_plots(o->out_dir, &c->ra, &c->rb, f));
    if (!o->ablate) return SL_OK;
    const sl_compare_run_opts ro = {.sampling = o->sampling};
    sl_ablation ab;
    sl_status st = sl_ablation_run(c->a.cfg, c->b.cfg, c->model, &ro, true, &ab);
    if (st == SL_OK) {
        fprintf(f, "\n");
        sl_ablation_print(&ab, f, false);
    }
    sl_ablation_free(&ab);
    return st;
}

static sl_status sl_write_text(FILE *f, void *ctx) {
    fputs(ctx, f);
    return SL_OK;
}

static sl_status sl_compare_body(sl_compare_ctx *c, FILE *f) {
    const sl_compare_opts *o = c->o;
    int n = snprintf(c->common, sizeof c->common, "--max_steps %d --seed %lld --deterministic true",
                     o->steps, o->seed);
    if (o->world > 0)
        snprintf(c->common + n, sizeof c->common - (size_t)n, " --num_processes %d", o->world);
    SL_TRY(sl_compare_side_open(&c->a, 'A', o->a, c->common, c->model));
    SL_TRY(sl_compare_side_open(&c->b, 'B', o->b, c->common, c->model));
    if (o->out_dir) {
        SL_TRY(sl_make_dir(o->out_dir));
        snprintf(c->base, sizeof c->base, "%s", o->out_dir);
    } else if (!o->ref_only) {
        const char *tmp = getenv("TMPDIR");
        snprintf(c->base, sizeof c->base, "%s/shardlab-compare-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(c->base)) {
            return sl_error_set(SL_ERR_IO,
                                "cannot create a scratch directory %s; set TMPDIR or "
                                "give --out",
                                c->base);
        }
        c->scratch = true;
    }
    SL_TRY(sl_compare_train(c));
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) return sl_error_set(SL_ERR_OOM, "compare: cannot buffer the report");
    sl_status st = sl_compare_report(c, mem);
    fclose(mem);
    if (text) fputs(text, f);
    if (st == SL_OK && o->out_dir) {
        char path[4200];
        snprintf(path, sizeof path, "%s/compare.txt", o->out_dir);
        st = sl_file_write_atomic(path, sl_write_text, text);
    }
    free(text);
    return st;
}

sl_status sl_compare(const sl_compare_opts *o, FILE *f) {
    if (o->steps < 1) {
        return sl_error_set(SL_ERR_INVALID_ARG, "compare: --steps must be at least 1 (got %d)",
                            o->steps);
    }
    sl_gpt2_config gcfg;
    SL_TRY(sl_gpt2_config_from_name(o->model, &gcfg));
    sl_compare_ctx c = {.o = o};
    sl_model_desc *model = NULL;
    SL_TRY(sl_model_desc_create_gpt2(&gcfg, &model));
    c.model = model;
    const sl_status st = sl_compare_body(&c, f);
    if (c.scratch) rmdir(c.base);
    sl_compare_result_free(&c.ra);
    sl_compare_result_free(&c.rb);
    sl_compare_side_close(&c.a);
    sl_compare_side_close(&c.b);
    sl_model_desc_destroy(model);
    return st;
}
