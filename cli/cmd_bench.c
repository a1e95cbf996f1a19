/* shardlab bench — run the benchmark suites and write Google Benchmark JSON; `bench compare`,
 * `bench report` (cmd_bench_tools.c) read such files back.
 *
 * The kernel and memcpy benchmarks run in this process. The collectives run under `shardlab
 * launch` once per world size: every rank runs `shardlab bench rank collectives`, rank 0 writes
 * its JSON, and this process merges all parts into one file. */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "bench/benchmark_c/benchmark_c.h"
#include "bench/results.h"
#include "bench/suites.h"
#include "bench/tables.h"
#include "cli/bench_cli.h"
#include "cli/commands.h"
#include "shardlab/kernels.h"

extern char **environ;

static const char *const sl_bench_usage =
    "usage: shardlab bench [--suite kernels|collectives|e2e|all] [--out FILE] [--filter REGEX]\n"
    "                      [--quick] [--repetitions N] [--min_time S] [--threads N]\n"
    "                      [--worlds 1,2,4]\n"
    "       shardlab bench compare BASELINE.json NEW.json [--threshold 5%] [--all]\n"
    "       shardlab bench report RESULTS.json [--dir DIR] [--comparison FILE]\n"
    "Runs benchmarks and prints them (Google Benchmark's table; the collectives also as\n"
    "nccl-tests prints them). Timings are printed, never asserted.\n"
    "  --suite S        kernels: the sgemm peak and the CPU kernels at GPT shapes;\n"
    "                   collectives: memcpy bandwidth, then all_reduce, reduce_scatter,\n"
    "                   all_gather and broadcast from 1 KiB to 256 MiB through `shardlab\n"
    "                   launch` at each W of --worlds, results checked (#wrong);\n"
    "                   e2e: optimizer steps of the engine on gpt-tiny, gpt-small and\n"
    "                   gpt2-124m through `shardlab launch` at each W of --worlds, every\n"
    "                   strategy: tokens/s, MFU against the sgemm peak, memory per category\n"
    "                   next to the plan's prediction; then, when `python3 -c \"import\n"
    "                   torch\"` works, PyTorch eager on the single-rank shapes\n"
    "                   (bench/peer/gpt2_peer.py, fp32 and bf16) as peer rows;\n"
    "                   all (default): the three\n"
    "  --out FILE       write the results as one Google Benchmark JSON file (what `bench\n"
    "                   compare`, `bench report` and Google Benchmark's compare.py read)\n"
    "  --filter REGEX   run only the benchmarks whose name matches (extended regex; -REGEX\n"
    "                   excludes), e.g. 'matmul_fwd/.*/gpt-small' or 'coll/all_reduce'\n"
    "  --quick          gpt-tiny shapes, messages up to 1 MiB, FULL_SHARD and ZeRO-3 only,\n"
    "                   short runs: a smoke test\n"
    "  --repetitions N  repetitions of every measurement (default 3, --quick 1); `bench\n"
    "                   compare` uses their spread as the noise\n"
    "  --min_time S     seconds each kernel measurement runs at least (default 0.2; --quick\n"
    "                   0.02); collectives and steps run a fixed number of iterations\n"
    "  --threads N      CPU threads of the kernels (default: OMP_NUM_THREADS, else all cores)\n"
    "  --worlds LIST    world sizes of the collectives (those >= 2) and of the training\n"
    "                   steps (default 1,2,4)\n"
    "`shardlab bench rank collectives|e2e ...` is what each rank runs under launch.\n";

typedef struct sl_bench_args {
    bool kernels, collectives, e2e;
    const char *out;
    const char *filter;
    bool quick;
    int repetitions;
    double min_time;
    int threads;
    int worlds[8];
    int n_worlds;
    double peak_gflops; /* rank mode: the sgemm peak the e2e suite's MFU is relative to */
} sl_bench_args;

static sl_status sl_bench_parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end = NULL;
    const long x = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo || x > hi) {
        return sl_error_set(SL_ERR_CONFIG, "%s: expected an integer in [%d, %d], found '%s'", flag,
                            lo, hi, v ? v : "(nothing)");
    }
    *out = (int)x;
    return SL_OK;
}

static sl_status sl_bench_parse_worlds(const char *v, sl_bench_args *a) {
    a->n_worlds = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", v ? v : "");
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (a->n_worlds == 8) return sl_error_set(SL_ERR_CONFIG, "--worlds: at most 8 sizes");
        SL_TRY(sl_bench_parse_int("--worlds", tok, 1, 16, &a->worlds[a->n_worlds++]));
    }
    if (a->n_worlds == 0) {
        return sl_error_set(SL_ERR_CONFIG, "--worlds: expected a list such as 2,4, found '%s'",
                            v ? v : "");
    }
    return SL_OK;
}

static sl_status sl_bench_parse(int argc, char **argv, sl_bench_args *a, bool *help) {
    const char *suite = "all";
    *a = (sl_bench_args){.repetitions = 0, .worlds = {1, 2, 4}, .n_worlds = 3};
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            *help = true;
            return SL_OK;
        } else if (!strcmp(f, "--quick")) {
            a->quick = true;
            continue;
        }
        if (!strcmp(f, "--suite"))
            suite = v;
        else if (!strcmp(f, "--out"))
            a->out = v;
        else if (!strcmp(f, "--filter"))
            a->filter = v;
        else if (!strcmp(f, "--repetitions"))
            SL_TRY(sl_bench_parse_int(f, v, 1, SL_BENCH_MAX_REPS, &a->repetitions));
        else if (!strcmp(f, "--threads"))
            SL_TRY(sl_bench_parse_int(f, v, 1, 4096, &a->threads));
        else if (!strcmp(f, "--worlds"))
            SL_TRY(sl_bench_parse_worlds(v, a));
        else if (!strcmp(f, "--peak_gflops"))
            a->peak_gflops = v ? strtod(v, NULL) : 0;
        else if (!strcmp(f, "--min_time")) {
            char *end = NULL;
            a->min_time = v ? strtod(v, &end) : 0;
            if (!v || *end || !(a->min_time > 0 && a->min_time <= 3600)) {
                return sl_error_set(SL_ERR_CONFIG,
                                    "--min_time: expected seconds in (0, 3600], "
                                    "found '%s'",
                                    v ? v : "(nothing)");
            }
        } else
            return sl_cli_unknown_flag(f, sl_bench_usage);
        if (!v) return sl_error_set(SL_ERR_CONFIG, "%s needs a value\n%s", f, sl_bench_usage);
        i++;
    }
    if (!suite || (strcmp(suite, "kernels") && strcmp(suite, "collectives") &&
                   strcmp(suite, "e2e") && strcmp(suite, "all"))) {
        return sl_error_set(SL_ERR_CONFIG,
                            "--suite: unknown suite '%s'; expected kernels, collectives, e2e or "
                            "all",
                            suite ? suite : "");
    }
    a->kernels = !strcmp(suite, "kernels") || !strcmp(suite, "all");
    a->collectives = !strcmp(suite, "collectives") || !strcmp(suite, "all");
    a->e2e = !strcmp(suite, "e2e") || !strcmp(suite, "all");
    if (!a->repetitions) a->repetitions = a->quick ? 1 : 3;
    if (!(a->min_time > 0)) a->min_time = a->quick ? 0.02 : 0.2;
    return SL_OK;
}

/* ---- the suites that run on W ranks: one launch per world size ---- */

static sl_status sl_bench_spawn(char **argv, int *exit_status) {
    pid_t pid;
    const int e = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
    if (e != 0) {
        return sl_error_set(SL_ERR_IO, "bench: cannot start '%s': %s", argv[0], strerror(e));
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return sl_error_set(SL_ERR_IO, "bench: waiting for launch: %s", strerror(errno));
    }
    *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return SL_OK;
}

/* `shardlab launch --num_processes W self bench rank SUITE ...` */
static sl_status sl_bench_launch(const sl_bench_args *a, const char *suite, int world,
                                 const char *out, double peak) {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return sl_error_set(SL_ERR_IO, "bench: cannot find this executable (/proc/self/exe)");
    self[n] = '\0';
    char w[16], reps[16], peak_text[32];
    snprintf(w, sizeof w, "%d", world);
    snprintf(reps, sizeof reps, "%d", a->repetitions);
    snprintf(peak_text, sizeof peak_text, "%.17g", peak);
    char *argv[24];
    int k = 0;
    char *fixed[] = {
        self,    "launch",        "--num_processes", w,       "--",        self,
        "bench", "rank",          (char *)suite,     "--out", (char *)out, "--repetitions",
        reps,    "--peak_gflops", peak_text};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[k++] = fixed[i];
    if (a->quick) argv[k++] = "--quick";
    if (a->filter) {
        argv[k++] = "--filter";
        argv[k++] = (char *)a->filter;
    }
    argv[k] = NULL;
    int status = 0;
    SL_TRY(sl_bench_spawn(argv, &status));
    if (status != 0) {
        return sl_error_set(SL_ERR_IO,
                            "bench: the %s suite at W = %d failed (launch exit status %d; the "
                            "ranks' messages are above)",
                            suite, world, status);
    }
    return SL_OK;
}

/* ---- running ---- */

typedef struct sl_bench_parts {
    char dir[256];
    char paths[24][320];
    int n;
} sl_bench_parts;

static bool sl_file_exists(const char *path) {
    struct stat s;
    return stat(path, &s) == 0;
}

static const char *sl_bench_part(sl_bench_parts *p, const char *name) {
    char path[sizeof p->paths[0]];
    snprintf(path, sizeof path, "%s/%s", p->dir, name);
    memcpy(p->paths[p->n], path, sizeof path);
    return p->paths[p->n];
}

static void sl_bench_parts_remove(sl_bench_parts *p) {
    for (int i = 0; i < 24; i++) {
        if (p->paths[i][0]) remove(p->paths[i]);
    }
    char merged[300];
    snprintf(merged, sizeof merged, "%s/all.json", p->dir);
    remove(merged);
    rmdir(p->dir);
}

/* Runs the in-process part (the sgemm peak, kernels, memcpy) into a part file; *peak receives the
 * sgemm peak when the e2e suite needs it. */
static sl_status sl_bench_run_local(const sl_bench_args *a, sl_bench_parts *p, double *peak) {
    const sl_bench_suite_opts o = {.quick = a->quick, .threads = a->threads};
    SL_TRY(sl_bench_add_machine_context(a->quick));
    if (a->kernels || a->e2e) SL_TRY(sl_bench_peak_register(&o));
    if (a->kernels) SL_TRY(sl_bench_kernels_register(&o));
    if (a->collectives) SL_TRY(sl_bench_memcpy_register(&o));
    const char *path = sl_bench_part(p, "local.json");
    const sl_bench_run_opts ro = {.filter = a->filter,
                                  .json_path = path,
                                  .console = true,
                                  .repetitions = a->repetitions,
                                  .min_time = a->min_time};
    int n = 0;
    const sl_status st = sl_bench_run(&ro, &n);
    sl_bench_clear();
    if (st == SL_OK && n > 0) p->n++;
    *peak = st == SL_OK && a->e2e ? sl_bench_peak_gflops(&o) : 0;
    return st;
}

/* Failed runs and wrong results in the merged file. */
static int sl_bench_count_failures(const sl_bench_results *r) {
    int bad = 0;
    for (int i = 0; i < r->n_runs; i++) {
        sl_bench_stat w;
        const bool wrong = sl_bench_run_stat(&r->runs[i], "wrong", &w) && w.hi > 0;
        if (r->runs[i].error || wrong) {
            fprintf(stderr, "shardlab: bench: %s: %s\n", r->runs[i].name,
                    r->runs[i].error ? r->runs[i].error : "wrong results (#wrong > 0)");
            bad++;
        }
    }
    return bad;
}

/* Runs whose timing thread did not get its CPU: their times say more about the machine's other
 * work than about the code. */
static void sl_bench_note_contended(const sl_bench_results *r) {
    int n = 0;
    for (int i = 0; i < r->n_runs; i++) {
        double share;
        if (!sl_bench_run_cpu_share(&r->runs[i], &share) || share >= SL_BENCH_CONTENDED) continue;
        if (n++ == 0) {
            fprintf(stderr,
                    "shardlab: bench: note: runs that got less than %.0f%% of a CPU (other "
                    "processes ran; their times are inflated):\n",
                    100 * SL_BENCH_CONTENDED);
        }
        fprintf(stderr, "  %-60s cpu/wall %.2f\n", r->runs[i].name, share);
    }
}

static sl_status sl_bench_summarise(const char *path, const sl_bench_args *a, int *failures) {
    sl_bench_results r;
    SL_TRY(sl_bench_results_load(path, &r));
    if (a->collectives && sl_bench_print_collectives(&r, stdout) > 0)
        sl_bench_print_busbw_targets(&r, stdout, false);
    if (a->e2e && sl_bench_print_e2e(&r, stdout, false) > 0)
        sl_bench_print_e2e_targets(&r, stdout, false);
    sl_bench_note_contended(&r);
    *failures = sl_bench_count_failures(&r);
    sl_bench_results_free(&r);
    return SL_OK;
}

/* The PyTorch eager peer of the single-rank e2e runs (same shapes and threads), when a Python
 * with torch is installed; otherwise a notice. */
static sl_status sl_bench_run_peer(const sl_bench_args *a, sl_bench_parts *p, double peak) {
    bool single = false;
    for (int i = 0; i < a->n_worlds; i++)
        single = single || a->worlds[i] == 1;
    if (!single) return SL_OK;
    const sl_bench_peer_opts o = {.models = a->quick ? "gpt-tiny" : "gpt-tiny,gpt-small",
                                  .threads =
                                      a->threads > 0 ? a->threads : sl_kernels_default_threads(1),
                                  .repetitions = a->repetitions,
                                  .peak_gflops = peak,
                                  .filter = a->filter,
                                  .quick = a->quick};
    const char *path = sl_bench_part(p, "peer.json");
    bool ran = false;
    SL_TRY(sl_bench_peer_run(&o, path, &ran));
    if (ran && sl_file_exists(path)) p->n++; /* a filter may leave nothing to run */
    return SL_OK;
}

static sl_status sl_bench_run_all(const sl_bench_args *a, sl_bench_parts *p, int *failures) {
    double peak = 0;
    SL_TRY(sl_bench_run_local(a, p, &peak));
    const char *suites[2] = {a->collectives ? "collectives" : NULL, a->e2e ? "e2e" : NULL};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; suites[s] && i < a->n_worlds; i++) {
            if (s == 0 && a->worlds[i] < 2) continue; /* a collective of one rank is a copy */
            char name[48];
            snprintf(name, sizeof name, "%s-w%d.json", suites[s], a->worlds[i]);
            const char *path = sl_bench_part(p, name);
            fprintf(stderr, "shardlab: bench: %s at W = %d through shardlab launch\n", suites[s],
                    a->worlds[i]);
            fflush(NULL);
            SL_TRY(sl_bench_launch(a, suites[s], a->worlds[i], path, peak));
            if (sl_file_exists(path)) p->n++; /* a filter may leave nothing to run at this W */
        }
    }
    if (a->e2e) SL_TRY(sl_bench_run_peer(a, p, peak));
    if (p->n == 0) {
        return sl_error_set(SL_ERR_CONFIG,
                            "bench: the filter '%s' matches no benchmark of the "
                            "selected suites",
                            a->filter ? a->filter : "");
    }
    const char *paths[24];
    for (int i = 0; i < p->n; i++)
        paths[i] = p->paths[i];
    char merged[300];
    snprintf(merged, sizeof merged, "%s/all.json", p->dir);
    const char *out = a->out ? a->out : merged;
    SL_TRY(sl_bench_results_merge(paths, p->n, out));
    SL_TRY(sl_bench_summarise(out, a, failures));
    if (a->out) printf("results: %s\n", a->out);
    return SL_OK;
}

/* Benchmarks share the machine with whatever else runs; say so when that is a lot. */
static void sl_bench_warn_load(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    double load = 0;
    const bool ok = f && fscanf(f, "%lf", &load) == 1;
    if (f) fclose(f);
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (ok && cpus > 0 && load > 0.5 * (double)cpus) {
        fprintf(stderr,
                "shardlab: bench: note: load average %.2f on %ld CPUs: other work is running, "
                "timings will be noisy and lower than the machine can do\n",
                load, cpus);
    }
}

static int sl_bench_main(int argc, char **argv) {
    sl_bench_args a;
    bool help = false;
    sl_status st = sl_bench_parse(argc, argv, &a, &help);
    if (help) {
        fputs(sl_bench_usage, stdout);
        return 0;
    }
    if (st != SL_OK) return sl_cli_report(st);
    sl_bench_warn_load();
    sl_bench_parts p = {0};
    const char *tmp = getenv("TMPDIR");
    snprintf(p.dir, sizeof p.dir, "%s/shardlab-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(p.dir)) {
        return sl_cli_report(sl_error_set(SL_ERR_IO, "bench: cannot create a directory '%s': %s",
                                          p.dir, strerror(errno)));
    }
    int failures = 0;
    st = sl_bench_run_all(&a, &p, &failures);
    sl_bench_parts_remove(&p);
    if (st != SL_OK) return sl_cli_report(st);
    if (failures > 0) {
        fprintf(stderr, "shardlab: error: bench: %d run%s failed or computed wrong results\n",
                failures, failures == 1 ? "" : "s");
        return 1;
    }
    return 0;
}

/* `bench rank collectives|e2e`: one rank of a suite, started by launch. */
static sl_status sl_bench_rank(const char *suite, const sl_bench_args *a, const char *out) {
    const sl_bench_suite_opts o = {.quick = a->quick, .threads = a->threads};
    sl_session *session = NULL;
    sl_comm *comm = NULL;
    sl_status st = !strcmp(suite, "e2e") ? sl_session_create_from_env(&session)
                                         : sl_comm_create_from_env(&comm);
    if (st != SL_OK) return st;
    const bool root = (session ? sl_session_rank(session) : sl_comm_rank(comm)) == 0;
    st = sl_bench_add_machine_context(a->quick);
    if (st == SL_OK)
        st = session ? sl_bench_e2e_register(session, &o, a->peak_gflops)
                     : sl_bench_collectives_register(comm, &o);
    if (st == SL_OK) {
        /* the e2e runs carry two dozen counters: the summary table reads better than
         * Google Benchmark's */
        const sl_bench_run_opts ro = {.filter = a->filter,
                                      .json_path = root ? out : NULL,
                                      .console = root && !session,
                                      .repetitions = a->repetitions,
                                      .min_time = a->min_time};
        st = sl_bench_run(&ro, NULL);
    }
    sl_bench_clear();
    sl_comm_destroy(comm);
    sl_session_destroy(session);
    return st;
}

static int sl_bench_rank_main(int argc, char **argv) {
    if (argc < 1 || (strcmp(argv[0], "collectives") != 0 && strcmp(argv[0], "e2e") != 0)) {
        return sl_cli_report(sl_error_set(SL_ERR_CONFIG,
                                          "bench rank: expected the suite 'collectives' or 'e2e', "
                                          "found '%s'",
                                          argc ? argv[0] : ""));
    }
    sl_bench_args a;
    bool help = false;
    const char *out = NULL;
    char *rest[24];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (n < 24)
            rest[n++] = argv[i];
    }
    sl_status st = sl_bench_parse(n, rest, &a, &help);
    if (st == SL_OK) st = sl_bench_rank(argv[0], &a, out);
    return sl_cli_report(st);
}

int sl_cmd_bench(int argc, char **argv) {
    if (argc >= 1 && !strcmp(argv[0], "compare")) return sl_bench_cmd_compare(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "report")) return sl_bench_cmd_report(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "rank")) return sl_bench_rank_main(argc - 1, argv + 1);
    return sl_bench_main(argc, argv);
}
