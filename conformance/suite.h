/* `shardlab conformance` as a library: build a tier's matrix, run every run it needs (N at a
 * time), measure the noise floors, evaluate every check, and write the report. */
#ifndef SHARDLAB_CONFORMANCE_SUITE_H
#define SHARDLAB_CONFORMANCE_SUITE_H

#include <stdbool.h>

#include "conformance/check.h"
#include "conformance/divergence.h"
#include "conformance/matrix.h"
#include "conformance/runner.h"

typedef struct sl_conf_options {
    sl_conf_tier tier;
    const char *filter;           /* substring of "T3 impl_vs_ref <plan>"; NULL or "": every case */
    int jobs;                     /* runs at once */
    const char *report_dir;       /* receives conformance.md, conformance.json and runs/ */
    double timeout_s;             /* per run */
    sl_conf_progress_fn progress; /* after every run (may be NULL) */
    void *progress_ctx;
} sl_conf_options;

/* The noise floor of one precision: the largest divergence, per quantity, of the reference
 * against itself reordered (divergence.h), over the dialects and world sizes measured. */
typedef struct sl_conf_floor {
    char key[32];
    sl_conf_divergence d;
    int n_pairs; /* reference pairs it is the maximum of */
    char detail[256];
} sl_conf_floor;

#define SL_CONF_MAX_FLOORS 8

typedef struct sl_conf_report {
    sl_conf_tier tier;
    char filter[128];
    int n_checks;
    sl_conf_check *checks;
    int n_floors;
    sl_conf_floor floors[SL_CONF_MAX_FLOORS];
    double multiple; /* SL_CONF_TOLERANCE_MULTIPLE */
    int n_runs;
    double seconds;
    char notices[1024]; /* skipped parts, one sentence each */
} sl_conf_report;

sl_status sl_conf_suite_run(const sl_conf_options *o, sl_conf_report *out);

/* Every check passed or was skipped, and there was at least one. */
bool sl_conf_report_passed(const sl_conf_report *r);

/* Writes DIR/conformance.md and DIR/conformance.json (each atomically). */
sl_status sl_conf_report_write(const sl_conf_report *r, const char *dir);

void sl_conf_report_free(sl_conf_report *r);

const char *sl_conf_tier_name(sl_conf_tier t); /* "quick", "full" */

#endif
