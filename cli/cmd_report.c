/* shardlab report — regenerate reports/: the equivalence report, the dtype tables of every
 * example config and the memory plots. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "conformance/compare_report.h"
#include "conformance/equivalence.h"
#include "conformance/suite.h"
#include "shardlab/config.h"
#include "shardlab/log.h"

static const char *const sl_report_usage =
    "usage: shardlab report [--out DIR] [--steps N] [--only LIST] [--configs DIR] [--no_impl]\n"
    "                       [--tier quick|full] [--jobs N]\n"
    "Regenerates the reports (default DIR: reports):\n"
    "  conformance.md   the conformance tier's matrix (shardlab conformance --tier T --report "
    "DIR)\n"
    "  equivalence.md   FSDP <-> DeepSpeed pairs under every precision, with ablations, the\n"
    "                   documented facts and plots (equiv-*.png); minutes on 2 cores\n"
    "  dtype-tables.md  the dtype table of every example config (examples/configs)\n"
    "  memory.md        predicted memory per category, strategy and W, with plots (memory-*.png)\n"
    "PNGs are drawn when gnuplot is installed; the .gp scripts and .dat files are always written.\n"
    "  --steps N        optimizer steps of every equivalence run (default 30)\n"
    "  --only LIST      comma-separated subset of conformance,equivalence,dtypes,memory\n"
    "  --tier T         conformance tier: quick (default) or full\n"
    "  --jobs N         conformance runs at once (default 2)\n"
    "  --configs DIR    where the example configs are (default examples/configs)\n"
    "  --no_impl        skip the engine runs (the fp16 scaler fact of equivalence.md)\n"
    "";

static const char *const sl_report_flags[] = {"out",     "steps", "only", "configs",
                                              "no_impl", "help",  NULL};

typedef struct sl_report_args {
    const char *out, *configs, *only;
    int steps, jobs;
    bool no_impl;
    sl_conf_tier tier;
} sl_report_args;

static bool sl_report_wants(const sl_report_args *a, const char *part) {
    if (!a->only) return true;
    const size_t n = strlen(part);
    for (const char *p = a->only; (p = strstr(p, part)); p += n) {
        if ((p == a->only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return true;
    }
    return false;
}

static sl_status sl_report_parse(int argc, char **argv, sl_report_args *a) {
    for (int i = 0; i < argc; i++) {
        const bool v = i + 1 < argc;
        if (!strcmp(argv[i], "--out") && v) {
            a->out = argv[++i];
        } else if (!strcmp(argv[i], "--configs") && v) {
            a->configs = argv[++i];
        } else if (!strcmp(argv[i], "--only") && v) {
            a->only = argv[++i];
        } else if (!strcmp(argv[i], "--tier") && v) {
            const char *t = argv[++i];
            if (strcmp(t, "quick") && strcmp(t, "full")) {
                return sl_error_set(SL_ERR_CONFIG, "report: --tier expects quick or full, got '%s'",
                                    t);
            }
            a->tier = !strcmp(t, "full") ? SL_CONF_TIER_FULL : SL_CONF_TIER_QUICK;
        } else if (!strcmp(argv[i], "--jobs") && v) {
            a->jobs = atoi(argv[++i]);
            if (a->jobs < 1) {
                return sl_error_set(SL_ERR_CONFIG, "report: --jobs expects an integer >= 1");
            }
        } else if (!strcmp(argv[i], "--no_impl")) {
            a->no_impl = true;
        } else if (!strcmp(argv[i], "--steps") && v) {
            char *end = NULL;
            const long x = strtol(argv[++i], &end, 10);
            if (*end || x < 1 || x > 100000) {
                return sl_error_set(SL_ERR_CONFIG,
                                    "report: --steps expects an integer >= 1, got "
                                    "'%s'",
                                    argv[i]);
            }
            a->steps = (int)x;
        } else {
            return sl_config_unknown_arg("report", argv[i], sl_report_flags);
        }
    }
    if (a->only) {
        static const char *const parts[] = {"conformance", "equivalence", "dtypes", "memory"};
        char copy[256];
        snprintf(copy, sizeof copy, "%s", a->only);
        for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            bool known = false;
            for (size_t k = 0; k < 4; k++)
                known = known || !strcmp(t, parts[k]);
            if (!known) {
                return sl_error_set(SL_ERR_CONFIG,
                                    "report: --only: unknown part '%s' (allowed: "
                                    "conformance, equivalence, dtypes, memory)",
                                    t);
            }
        }
    }
    return SL_OK;
}

/* The conformance tier through its library (conformance/suite.h): the report is written whether
 * or not every check passed — a failing check is what the report is for. */
static sl_status sl_report_conformance(const sl_report_args *a) {
    /* the runs go to a scratch directory, not into the committed reports */
    const char *tmp = getenv("TMPDIR");
    char runs[4096];
    snprintf(runs, sizeof runs, "%s/shardlab-report-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(runs)) {
        return sl_error_set(SL_ERR_IO,
                            "report: cannot create a scratch directory %s for the "
                            "conformance runs; set TMPDIR",
                            runs);
    }
    const sl_conf_options co = {
        .tier = a->tier, .jobs = a->jobs, .report_dir = runs, .timeout_s = 600};
    sl_conf_report r;
    memset(&r, 0, sizeof r);
    sl_status st = sl_conf_suite_run(&co, &r);
    if (st == SL_OK) st = sl_conf_report_write(&r, a->out);
    if (st == SL_OK) {
        printf("wrote %s/conformance.md (%s tier: %s; the runs are in %s)\n", a->out,
               sl_conf_tier_name(a->tier),
               sl_conf_report_passed(&r) ? "every check passed" : "some checks FAILED", runs);
    }
    sl_conf_report_free(&r);
    return st;
}

int sl_cmd_report(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sl_report_usage, stdout);
            return 0;
        }
    }
    sl_report_args a = {.out = "reports", .configs = "examples/configs", .steps = 30, .jobs = 2};
    sl_status st = sl_report_parse(argc, argv, &a);
    if (st == SL_OK && mkdir(a.out, 0777) != 0 && errno != EEXIST) {
        st = sl_error_set(SL_ERR_IO, "report: cannot create %s: %s", a.out, strerror(errno));
    }
    if (st == SL_OK && sl_report_wants(&a, "dtypes")) {
        st = sl_report_dtype_tables(a.configs, a.out);
        if (st == SL_OK) printf("wrote %s/dtype-tables.md\n", a.out);
    }
    if (st == SL_OK && sl_report_wants(&a, "memory")) {
        st = sl_report_memory(a.out, true);
        if (st == SL_OK) printf("wrote %s/memory.md and its plots\n", a.out);
    }
    if (st == SL_OK && sl_report_wants(&a, "conformance")) st = sl_report_conformance(&a);
    if (st == SL_OK && sl_report_wants(&a, "equivalence")) {
        const sl_equiv_opts eo = {
            .dir = a.out, .steps = a.steps, .with_impl = !a.no_impl, .plots = true};
        st = sl_equiv_report(&eo);
        if (st == SL_OK) printf("wrote %s/equivalence.md and its plots\n", a.out);
    }
    return sl_cli_report(st);
}
