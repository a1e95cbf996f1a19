/* Human-readable views of a result file (tables.h). */
#include "bench/tables.h"

#include <math.h>
#include <string.h>

bool sl_bench_coll_family(const char *name, char *buf, size_t cap) {
    if (strncmp(name, "coll/", 5) != 0) return false;
    const char *b = strstr(name, "/bytes:");
    const size_t len = b ? (size_t)(b - name) : strlen(name);
    snprintf(buf, cap, "%.*s", (int)len, name);
    return true;
}

static double sl_median_of(const sl_bench_result *run, const char *key) {
    sl_bench_stat s;
    return sl_bench_run_stat(run, key, &s) ? s.median : NAN;
}

double sl_bench_memcpy_gbps(const sl_bench_results *r, int64_t bytes) {
    char prefix[64];
    const int n = snprintf(prefix, sizeof prefix, "memcpy/bytes:%lld", (long long)bytes);
    for (int i = 0; i < r->n_runs; i++) {
        const char *name = r->runs[i].name;
        if (strncmp(name, prefix, (size_t)n) != 0 || (name[n] && name[n] != '/')) continue;
        const double g = sl_median_of(&r->runs[i], "gbps");
        return isfinite(g) ? g : 0;
    }
    return 0;
}

/* nccl-tests' spellings of the types */
static const char *sl_nccl_type(const char *family) {
    if (strstr(family, "/bf16/")) return "bfloat16";
    if (strstr(family, "/fp16/")) return "half";
    return "float";
}

static bool sl_is_reduction(const char *family) {
    return strstr(family, "/all_reduce/") || strstr(family, "/reduce_scatter/");
}

int sl_bench_print_collectives(const sl_bench_results *r, FILE *f) {
    int lines = 0;
    char family[128], current[128] = "";
    for (int i = 0; i < r->n_runs; i++) {
        const sl_bench_result *run = &r->runs[i];
        if (!sl_bench_coll_family(run->name, family, sizeof family)) continue;
        if (strcmp(family, current) != 0) {
            snprintf(current, sizeof current, "%s", family);
            fprintf(f, "\n# %s\n", family);
            fprintf(f, "#%11s %13s %9s %7s %6s %9s %7s %7s %6s %8s\n", "size", "count", "type",
                    "redop", "root", "time", "algbw", "busbw", "#wrong", "%memcpy");
            fprintf(f, "#%11s %13s %9s %7s %6s %9s %7s %7s %6s %8s\n", "(B)", "(elements)", "", "",
                    "", "(us)", "(GB/s)", "(GB/s)", "", "");
        }
        if (run->error) {
            fprintf(f, "# %s failed: %s\n", run->name, run->error);
            continue;
        }
        sl_bench_stat wrong = {0};
        sl_bench_run_stat(run, "wrong", &wrong);
        const double size = sl_median_of(run, "size"), busbw = sl_median_of(run, "busbw");
        const double mc = sl_bench_memcpy_gbps(r, (int64_t)size);
        char ratio[16] = "-";
        if (mc > 0) snprintf(ratio, sizeof ratio, "%.1f", 100 * busbw / mc);
        fprintf(f, "%12.0f %13.0f %9s %7s %6d %9.2f %7.2f %7.2f %6.0f %8s\n", size,
                sl_median_of(run, "count"), sl_nccl_type(family),
                sl_is_reduction(family) ? "sum" : "none", strstr(family, "/broadcast/") ? 0 : -1,
                sl_median_of(run, "time_us"), sl_median_of(run, "algbw"), busbw, wrong.hi, ratio);
        lines++;
    }
    return lines;
}

void sl_bench_print_busbw_targets(const sl_bench_results *r, FILE *f, bool markdown) {
    char family[128];
    bool header = false;
    for (int i = 0; i < r->n_runs; i++) {
        if (!sl_bench_coll_family(r->runs[i].name, family, sizeof family)) continue;
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) {
            char other[128];
            seen = sl_bench_coll_family(r->runs[j].name, other, sizeof other) &&
                   !strcmp(other, family);
        }
        if (seen) continue;
        double worst = INFINITY, worst_size = 0, worst_busbw = 0, worst_mc = 0;
        for (int j = i; j < r->n_runs; j++) {
            char other[128];
            const sl_bench_result *run = &r->runs[j];
            if (!sl_bench_coll_family(run->name, other, sizeof other) || strcmp(other, family))
                continue;
            const double size = sl_median_of(run, "size"), busbw = sl_median_of(run, "busbw");
            const double mc = sl_bench_memcpy_gbps(r, (int64_t)size);
            if (!(size >= (double)SL_BENCH_TARGET_MIN_BYTES) || mc <= 0 || !isfinite(busbw))
                continue;
            if (busbw / mc < worst) {
                worst = busbw / mc;
                worst_size = size;
                worst_busbw = busbw;
                worst_mc = mc;
            }
        }
        if (!isfinite(worst)) continue;
        const char *verdict = worst >= SL_BENCH_TARGET_MEMCPY_RATIO ? "met" : "not met";
        if (!header) {
            if (markdown) {
                fprintf(f, "| collective | lowest busbw / memcpy at >= 16 MiB | at size | busbw "
                           "(GB/s) | memcpy (GB/s) | target 50%% |\n|---|---|---|---|---|---|\n");
            } else {
                fprintf(f, "\nbusbw / memcpy bandwidth for messages >= 16 MiB (target >= 50%%):\n");
            }
            header = true;
        }
        if (markdown) {
            fprintf(f, "| %s | %.1f%% | %.0f MiB | %.2f | %.2f | %s |\n", family, 100 * worst,
                    worst_size / 1048576, worst_busbw, worst_mc, verdict);
        } else {
            fprintf(f,
                    "  %-44s lowest %5.1f%% (at %.0f MiB: busbw %.2f GB/s, memcpy %.2f GB/s): %s\n",
                    family, 100 * worst, worst_size / 1048576, worst_busbw, worst_mc, verdict);
        }
    }
}

static bool sl_is_kernel(const char *name) {
    return strncmp(name, "coll/", 5) && strncmp(name, "memcpy/", 7) && !sl_bench_is_step(name);
}

bool sl_bench_is_step(const char *name) {
    return !strncmp(name, "e2e/", 4) || !strncmp(name, "peer/", 5);
}

void sl_bench_print_kernels(const sl_bench_results *r, FILE *f, bool markdown) {
    bool header = false;
    for (int i = 0; i < r->n_runs; i++) {
        const sl_bench_result *run = &r->runs[i];
        if (!sl_is_kernel(run->name)) continue;
        if (!header) {
            if (markdown) {
                fprintf(f, "| kernel | shape | time | GFLOP/s | %% of sgemm peak | GB/s |\n"
                           "|---|---|---|---|---|---|\n");
            } else {
                fprintf(f, "%-40s %12s %9s %7s %8s  %s\n", "kernel", "time (us)", "GFLOP/s",
                        "%peak", "GB/s", "shape");
            }
            header = true;
        }
        char name[160];
        sl_bench_name_base(run->name, name, sizeof name);
        if (run->error) {
            fprintf(f, markdown ? "| %s | failed: %s | | | | |\n" : "%-40s failed: %s\n", name,
                    run->error);
            continue;
        }
        const double t = sl_median_of(run, "real_time") / 1e3;
        const double g = sl_median_of(run, "gflops"), p = sl_median_of(run, "pct_peak");
        const double b = sl_median_of(run, "gbps");
        char gs[16] = "", ps[16] = "", bs[16] = "";
        if (isfinite(g)) snprintf(gs, sizeof gs, "%.1f", g);
        if (isfinite(p)) snprintf(ps, sizeof ps, "%.1f", p);
        if (isfinite(b)) snprintf(bs, sizeof bs, "%.2f", b);
        if (markdown) {
            fprintf(f, "| %s | %s | %.1f us | %s | %s | %s |\n", name, run->label, t, gs, ps, bs);
        } else {
            fprintf(f, "%-40s %12.1f %9s %7s %8s  %s\n", name, t, gs, ps, bs, run->label);
        }
    }
}

/* ---- end-to-end steps ---- */

int sl_bench_print_e2e(const sl_bench_results *r, FILE *f, bool markdown) {
    int n = 0;
    for (int i = 0; i < r->n_runs; i++) {
        const sl_bench_result *run = &r->runs[i];
        if (!sl_bench_is_step(run->name)) continue;
        char name[160];
        sl_bench_name_base(run->name, name, sizeof name);
        if (n++ == 0) {
            if (markdown) {
                fprintf(f, "| run | tokens/s | step (ms) | optimizer (ms) | exposed comm (ms) | "
                           "MFU %% | rank 0 peak MiB | predicted MiB | shape |\n"
                           "|---|---|---|---|---|---|---|---|---|\n");
            } else {
                fprintf(f, "\n%-44s %10s %10s %9s %9s %6s %10s %10s\n", "training steps",
                        "tokens/s", "step ms", "optim ms", "comm ms", "MFU%", "mem MiB",
                        "pred MiB");
            }
        }
        if (run->error) {
            fprintf(f, markdown ? "| %s | failed: %s | | | | | | | |\n" : "%-44s failed: %s\n",
                    name, run->error);
            continue;
        }
        const double tok = sl_median_of(run, "tokens_per_s"), step = sl_median_of(run, "step_ms");
        const double opt = sl_median_of(run, "optimizer_ms"), mfu = sl_median_of(run, "mfu");
        const double mem = sl_median_of(run, "mem_MiB"), pred = sl_median_of(run, "pred_MiB");
        /* time blocked in the engine's collectives (comm_wait_ms: exposed communication) */
        const double comm = sl_median_of(run, "comm_wait_ms");
        /* a peer row has no optimizer split, no collectives and no accounted memory: blank, not
         * "nan" */
        char cells[5][16];
        const double vals[5] = {opt, comm, mfu, mem, pred};
        for (int c = 0; c < 5; c++) {
            if (isfinite(vals[c]))
                snprintf(cells[c], sizeof cells[c], "%.1f", vals[c]);
            else
                snprintf(cells[c], sizeof cells[c], markdown ? "" : "-");
        }
        if (markdown) {
            fprintf(f, "| %s | %.0f | %.1f | %s | %s | %s | %s | %s | %s |\n", name, tok, step,
                    cells[0], cells[1], cells[2], cells[3], cells[4], run->label);
        } else {
            fprintf(f, "%-44s %10.0f %10.1f %9s %9s %6s %10s %10s\n", name, tok, step, cells[0],
                    cells[1], cells[2], cells[3], cells[4]);
        }
    }
    return n;
}

/* The run whose base name is `want`, or NULL (failed runs too). */
static const sl_bench_result *sl_run_named(const sl_bench_results *r, const char *want) {
    char name[160];
    for (int i = 0; i < r->n_runs; i++) {
        sl_bench_name_base(r->runs[i].name, name, sizeof name);
        if (!strcmp(name, want) && !r->runs[i].error) return &r->runs[i];
    }
    return NULL;
}

void sl_bench_print_peer_targets(const sl_bench_results *r, FILE *f, bool markdown) {
    for (int i = 0; i < r->n_runs; i++) {
        const sl_bench_result *peer = &r->runs[i];
        char base[160], model[32], dt[16];
        sl_bench_name_base(peer->name, base, sizeof base);
        if (peer->error || sscanf(base, "peer/torch_eager/%31[^/]/%15[^/]/W:1", model, dt) != 2)
            continue;
        /* the engine's e2e suite runs fp32 only: both peer dtypes are held against it */
        char want[128];
        snprintf(want, sizeof want, "e2e/%s/single/fp32/W:1", model);
        const sl_bench_result *engine = sl_run_named(r, want);
        if (!engine) continue;
        const double e = sl_median_of(engine, "tokens_per_s"),
                     t = sl_median_of(peer, "tokens_per_s");
        fprintf(f,
                "%s%s at W = 1: engine fp32 %.0f tokens/s, PyTorch eager %s %.0f tokens/s "
                "(%.2fx; target: ahead): %s\n",
                markdown ? "- " : "  ", model, e, dt, t, e / t, e > t ? "met" : "not met");
    }
}

/* The e2e run "e2e/MODEL/STRATEGY/fp32/W:w", or NULL. */
static const sl_bench_result *sl_e2e_find(const sl_bench_results *r, const char *model,
                                          const char *strategy, int w) {
    char want[128], name[160];
    snprintf(want, sizeof want, "e2e/%s/%s/fp32/W:%d", model, strategy, w);
    for (int i = 0; i < r->n_runs; i++) {
        sl_bench_name_base(r->runs[i].name, name, sizeof name);
        if (!strcmp(name, want) && !r->runs[i].error) return &r->runs[i];
    }
    return NULL;
}

static const char *const sl_mem_names[] = {"params_master",   "params_gathered", "grads_sharded",
                                           "grads_unsharded", "optim_states",    "activations",
                                           "comm_buffers",    "workspace"};

void sl_bench_print_e2e_targets(const sl_bench_results *r, FILE *f, bool markdown) {
    const char *item = markdown ? "- " : "  ";
    fprintf(f, markdown ? "\nTargets (measured, not asserted):\n\n" : "\ntargets:\n");
    const sl_bench_result *small = sl_e2e_find(r, "gpt-small", "single", 1);
    if (small) {
        const double mfu = sl_median_of(small, "mfu");
        fprintf(f, "%sgpt-small at W = 1: MFU %.1f%% of the sgemm peak (target >= 60%%): %s\n",
                item, mfu, mfu >= 60 ? "met" : "not met");
    }
    sl_bench_print_peer_targets(r, f, markdown);
    /* memory against the prediction: every category of every run within 5% (zero predicted
     * and zero measured counts as equal) */
    int runs = 0, within = 0;
    double worst = 0;
    char worst_what[200] = "";
    for (int i = 0; i < r->n_runs; i++) {
        const sl_bench_result *run = &r->runs[i];
        if (strncmp(run->name, "e2e/", 4) != 0 || run->error) continue;
        runs++;
        bool ok = true;
        for (size_t c = 0; c < sizeof sl_mem_names / sizeof sl_mem_names[0]; c++) {
            char key[64];
            snprintf(key, sizeof key, "mem_%s_MiB", sl_mem_names[c]);
            const double seen = sl_median_of(run, key);
            snprintf(key, sizeof key, "pred_%s_MiB", sl_mem_names[c]);
            const double pred = sl_median_of(run, key);
            if (!isfinite(seen) || !isfinite(pred) || (seen == 0 && pred == 0)) continue;
            const double off = pred > 0 ? fabs(seen / pred - 1) : INFINITY;
            if (off > 0.05) ok = false;
            if (off > worst) {
                worst = off;
                char name[160];
                sl_bench_name_base(run->name, name, sizeof name);
                snprintf(worst_what, sizeof worst_what, "%s %s: %.1f MiB measured, %.1f predicted",
                         name, sl_mem_names[c], seen, pred);
            }
        }
        within += ok;
    }
    if (runs > 0) {
        fprintf(f, "%speak memory within 5%% of the prediction in every category: %d of %d runs",
                item, within, runs);
        if (worst > 0.05) fprintf(f, "; furthest: %s", worst_what);
        fprintf(f, "\n");
    }
    /* ZeRO-3 state per rank (masters, sharded gradients, moments) against 1/W */
    const char *models[] = {"gpt-tiny", "gpt-small", "gpt2-124m"};
    for (int m = 0; m < 3; m++) {
        const sl_bench_result *lo = sl_e2e_find(r, models[m], "zero3", 2);
        const sl_bench_result *hi = sl_e2e_find(r, models[m], "zero3", 4);
        if (!lo || !hi) continue;
        double s2 = 0, s4 = 0;
        const char *state[] = {"mem_params_master_MiB", "mem_grads_sharded_MiB",
                               "mem_optim_states_MiB"};
        for (int k = 0; k < 3; k++) {
            s2 += sl_median_of(lo, state[k]);
            s4 += sl_median_of(hi, state[k]);
        }
        fprintf(f,
                "%s%s ZeRO-3 sharded state per rank: %.2f MiB at W = 2, %.2f MiB at W = 4 "
                "(ratio %.2f; 1/W predicts 2)\n",
                item, models[m], s2, s4, s4 > 0 ? s2 / s4 : NAN);
    }
}
