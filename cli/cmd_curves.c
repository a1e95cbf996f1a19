/* shardlab curves — loss curves of several runs side by side, read from their trajectory.json. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "common/json.h"

static const char *const sl_curves_usage =
    "usage: shardlab curves [--every N] RUN [RUN ...]\n"
    "Prints the loss of every run per step in columns (RUN: a trajectory.json or its directory),\n"
    "then the largest absolute difference between the first run and each other one.\n";

#define SL_CURVES_MAX_RUNS 8

typedef struct sl_curve {
    sl_json *doc;
    const sl_json *steps;
    char label[64];
} sl_curve;

static sl_status sl_curve_open(const char *arg, sl_curve *c) {
    char path[4096];
    size_t n = strlen(arg);
    const bool is_json = n > 5 && strcmp(arg + n - 5, ".json") == 0;
    snprintf(path, sizeof path, is_json ? "%s" : "%s/trajectory.json", arg);
    SL_TRY(sl_json_parse_file(path, &c->doc));
    const sl_json *steps = sl_json_get(c->doc, "steps");
    if (!steps || sl_json_type_of(steps) != SL_JSON_ARRAY) {
        return sl_error_set(SL_ERR_FORMAT,
                            "%s: no \"steps\" array; is this a shardlab trajectory.json?", path);
    }
    c->steps = steps;
    const char *base = strrchr(arg, '/');
    snprintf(c->label, sizeof c->label, "%s", is_json || !base || !base[1] ? arg : base + 1);
    return SL_OK;
}

static double sl_curve_loss(const sl_curve *c, size_t i) {
    if (i >= sl_json_count(c->steps)) return NAN;
    const sl_json *loss = sl_json_get(sl_json_at(c->steps, i), "loss");
    return loss && sl_json_type_of(loss) == SL_JSON_NUMBER ? sl_json_number(loss) : NAN;
}

int sl_cmd_curves(int argc, char **argv) {
    int every = 1, n_runs = 0;
    const char *runs[SL_CURVES_MAX_RUNS];
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sl_curves_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--every") && i + 1 < argc) {
            every = atoi(argv[++i]);
            if (every < 1)
                return sl_cli_report(
                    sl_error_set(SL_ERR_CONFIG, "--every: expected a positive integer"));
        } else if (argv[i][0] == '-') {
            return sl_cli_report(sl_cli_unknown_flag(argv[i], sl_curves_usage));
        } else if (n_runs < SL_CURVES_MAX_RUNS) {
            runs[n_runs++] = argv[i];
        } else {
            return sl_cli_report(
                sl_error_set(SL_ERR_CONFIG, "at most %d runs", SL_CURVES_MAX_RUNS));
        }
    }
    if (n_runs == 0)
        return sl_cli_report(sl_error_set(SL_ERR_CONFIG, "no RUN given\n%s", sl_curves_usage));
    sl_curve curves[SL_CURVES_MAX_RUNS] = {0};
    sl_status st = SL_OK;
    size_t longest = 0;
    for (int r = 0; r < n_runs && st == SL_OK; r++) {
        st = sl_curve_open(runs[r], &curves[r]);
        if (st == SL_OK && sl_json_count(curves[r].steps) > longest)
            longest = sl_json_count(curves[r].steps);
    }
    if (st == SL_OK) {
        printf("%6s", "step");
        for (int r = 0; r < n_runs; r++)
            printf("  %24.24s", curves[r].label);
        printf("\n");
        double maxdiff[SL_CURVES_MAX_RUNS] = {0};
        for (size_t i = 0; i < longest; i++) {
            for (int r = 1; r < n_runs; r++) {
                double d = fabs(sl_curve_loss(&curves[r], i) - sl_curve_loss(&curves[0], i));
                if (d > maxdiff[r]) maxdiff[r] = d;
            }
            if ((i + 1) % (size_t)every != 0 && i + 1 != longest && i != 0) continue;
            printf("%6zu", i + 1);
            for (int r = 0; r < n_runs; r++)
                printf("  %24.4f", sl_curve_loss(&curves[r], i));
            printf("\n");
        }
        for (int r = 1; r < n_runs; r++) {
            printf("max |loss(%s) - loss(%s)| over all steps: %.3g\n", curves[r].label,
                   curves[0].label, maxdiff[r]);
        }
    }
    for (int r = 0; r < n_runs; r++)
        sl_json_free(curves[r].doc);
    return sl_cli_report(st);
}
