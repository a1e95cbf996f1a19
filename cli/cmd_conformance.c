/* shardlab conformance — the conformance tiers T1–T5 (DESIGN.md §9) over the shardlab binary
 * itself, with the matrix report. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "conformance/suite.h"

static const char *const sl_conformance_usage =
    "usage: shardlab conformance [--tier quick|full] [--filter PATTERN] [--jobs N] [--report DIR]\n"
    "                            [--timeout SECONDS]\n"
    "Runs the conformance tiers: T1 explain's prediction vs what the engine observed (dtype\n"
    "table, layout, collectives and bytes, memory within 5%), T2 bitwise reproducibility, T3 the\n"
    "engine vs the reference and equivalent plans within a tolerance of 4x a measured noise\n"
    "floor, T4 documented divergences, T5 the reference vs PyTorch (skipped without torch).\n"
    "  --tier quick|full   quick: about 100 runs on gpt-tiny (default); full: issue 6's matrix\n"
    "  --filter PATTERN    only checks whose \"TIER CHECK PLAN\" contains PATTERN\n"
    "  --jobs N            runs at once (default 2)\n"
    "  --report DIR        conformance.md, conformance.json and runs/ (default out/conformance)\n"
    "  --timeout SECONDS   per run (default 300)\n"
    "Exit status 0 iff every check passes (skips do not fail), 1 otherwise, 2 on bad arguments.\n";

static void sl_conformance_on_signal(int sig) {
    (void)sig;
    sl_conf_request_stop();
}

static void sl_conformance_progress(int done, int total, const sl_conf_run_spec *spec,
                                    const sl_conf_result *r, void *ctx) {
    (void)ctx;
    printf("[%*d/%d] %-4s %-7s W=%d %5.1fs  %s%s\n", total >= 100 ? 3 : 2, done, total,
           r->status == SL_OK ? "ok" : "FAIL", sl_conf_tool_name(spec->tool), spec->world_size,
           r->seconds, spec->plan_flags, spec->reverse_reduction_order ? " (reversed order)" : "");
    if (r->status != SL_OK) printf("        %s\n", r->error);
    fflush(stdout);
}

static sl_status sl_conformance_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end = NULL;
    errno = 0;
    const long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        return sl_error_set(SL_ERR_CONFIG, "%s: expected an integer in [%d, %d], found '%s'", flag,
                            lo, hi, v);
    }
    *out = (int)x;
    return SL_OK;
}

static sl_status sl_conformance_parse(int argc, char **argv, sl_conf_options *o) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--tier") && strcmp(a, "--filter") && strcmp(a, "--jobs") &&
            strcmp(a, "--report") && strcmp(a, "--timeout")) {
            return sl_error_set(SL_ERR_CONFIG, "unknown argument '%s'\n%s", a,
                                sl_conformance_usage);
        }
        if (i + 1 >= argc) return sl_error_set(SL_ERR_CONFIG, "%s: missing value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--tier")) {
            if (strcmp(v, "quick") && strcmp(v, "full")) {
                return sl_error_set(SL_ERR_CONFIG, "--tier: expected quick or full, found '%s'", v);
            }
            o->tier = !strcmp(v, "full") ? SL_CONF_TIER_FULL : SL_CONF_TIER_QUICK;
        } else if (!strcmp(a, "--filter")) {
            o->filter = v;
        } else if (!strcmp(a, "--jobs")) {
            SL_TRY(sl_conformance_int(a, v, 1, 256, &o->jobs));
        } else if (!strcmp(a, "--report")) {
            o->report_dir = v;
        } else {
            int t = 0;
            SL_TRY(sl_conformance_int(a, v, 1, 86400, &t));
            o->timeout_s = t;
        }
    }
    return SL_OK;
}

static sl_status sl_conformance_mkdirs(const char *dir) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1;; p++) {
        const char c = *p;
        if (c != '/' && c != '\0') continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            return sl_error_set(SL_ERR_IO, "--report %s: cannot create %s: %s", dir, path,
                                strerror(errno));
        }
        *p = c;
        if (!c) return SL_OK;
    }
}

int sl_cmd_conformance(int argc, char **argv) {
    if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        fputs(sl_conformance_usage, stdout);
        return 0;
    }
    sl_conf_options o = {.tier = SL_CONF_TIER_QUICK,
                         .jobs = 2,
                         .report_dir = "out/conformance",
                         .timeout_s = 300.0,
                         .progress = sl_conformance_progress};
    sl_status st = sl_conformance_parse(argc, argv, &o);
    if (st != SL_OK) return sl_cli_report(st);
    st = sl_conformance_mkdirs(o.report_dir);
    if (st != SL_OK) return sl_cli_report(st);
    printf("conformance: %s tier%s%s, %d jobs, runs in %s/runs\n", sl_conf_tier_name(o.tier),
           o.filter ? ", filter " : "", o.filter ? o.filter : "", o.jobs, o.report_dir);
    fflush(stdout);
    /* Ctrl-C ends the runs in flight too, not only this process */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sl_conformance_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sl_conf_report report;
    st = sl_conf_suite_run(&o, &report);
    if (st != SL_OK) return sl_cli_report(st);
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < report.n_checks; i++) {
        const sl_conf_check *c = &report.checks[i];
        counts[c->verdict]++;
        if (c->verdict == SL_CONF_PASS) continue;
        printf("%s %s %s %s: %s\n", sl_conf_verdict_name(c->verdict), c->tier, c->check, c->plan,
               c->detail);
    }
    st = sl_conf_report_write(&report, o.report_dir);
    const bool passed = sl_conf_report_passed(&report);
    printf("conformance: %d checks: %d passed, %d failed, %d skipped (%d runs, %.0f s); report "
           "%s/conformance.md\n",
           report.n_checks, counts[SL_CONF_PASS], counts[SL_CONF_FAIL], counts[SL_CONF_SKIP],
           report.n_runs, report.seconds, o.report_dir);
    sl_conf_report_free(&report);
    if (st != SL_OK) return sl_cli_report(st);
    return passed ? 0 : 1;
}
