/* The checks of the conformance tiers (DESIGN.md §9), each on runs already loaded (runner.h):
 * a verdict, the measured value next to what it was held against, and a sentence saying what
 * differs and where to look. */
#ifndef SHARDLAB_CONFORMANCE_CHECK_H
#define SHARDLAB_CONFORMANCE_CHECK_H

#include "conformance/divergence.h"
#include "conformance/runner.h"

typedef enum sl_conf_verdict { SL_CONF_PASS, SL_CONF_FAIL, SL_CONF_SKIP } sl_conf_verdict;
const char *sl_conf_verdict_name(sl_conf_verdict v); /* "pass", "FAIL", "skip" */

/* T1 memory: a predicted and an observed peak differ by at most this fraction of the larger. */
#define SL_CONF_MEMORY_TOLERANCE 0.05

typedef struct sl_conf_check {
    char tier[4];       /* "T1" .. "T5" */
    char check[32];     /* dtype_table, layout, collectives, memory, bitwise, resume, impl_vs_ref,
                           equivalent_pair, accumulation, world_size, documented, peer */
    char plan[256];     /* the row: which plan / pair */
    char floor_key[32]; /* the noise floor used (precision), "" when none */
    sl_conf_verdict verdict;
    char quantity[24]; /* the quantity the numbers are for (worst one), "" when none */
    double measured;   /* NaN when the check has no number */
    double tolerance;  /* the bound measured is held against; NaN when none */
    char detail[768];
} sl_conf_check;

/* A check record with tier, check and plan set, verdict SKIP, numbers NaN. */
sl_conf_check sl_conf_check_make(const char *tier, const char *check, const char *plan);

/* A run that failed to produce results: the check FAILs with the run's error. */
void sl_conf_check_run_failed(sl_conf_check *c, const sl_conf_result *r);

/* T1: the prediction (an explain result, or any result's `predicted`) against what a run
 * observed; fills four checks: dtype_table, layout, collectives (op, group, phase, micro-step,
 * unit, dtype, elements, bytes of every collective of one step, in order) and memory (every
 * rank, space and category within SL_CONF_MEMORY_TOLERANCE; measured = the worst relative
 * difference). */
void sl_conf_check_observation(const sl_conf_result *explain, const sl_conf_result *run,
                               sl_conf_check out[4]);

/* T2: bit equality of two runs (losses, norms, scales, skips, final parameters). */
void sl_conf_check_bitwise(const sl_conf_result *a, const sl_conf_result *b, sl_conf_check *c);

/* T2 / T3: a resumed run (its steps and final parameters) against the uninterrupted one over
 * the steps both have: bit for bit without a floor, else loss, grad_norm and final parameters
 * within multiple × floor (a resume onto another W or layout reorders the reductions). */
void sl_conf_check_resume(const sl_conf_result *uninterrupted, const sl_conf_result *resumed,
                          const sl_conf_divergence *floor, double multiple, sl_conf_check *c);

/* T3: every quantity of a against b within multiple × floor; with the fp16 scaler also the
 * skipped-step sequence and loss-scale trajectory exactly. measured/tolerance are those of the
 * quantity with the largest measured/tolerance ratio. */
void sl_conf_check_tolerance(const sl_conf_result *a, const sl_conf_result *b,
                             const sl_conf_divergence *floor, double multiple, sl_conf_check *c);

/* T4: a documented non-equivalence is real: the divergence of a against b, in the loss or in the
 * final parameters, exceeds that quantity's noise floor (measured vs tolerance = the floor, of
 * the quantity with the larger ratio). */
void sl_conf_check_documented(const sl_conf_result *a, const sl_conf_result *b,
                              const sl_conf_divergence *floor, sl_conf_check *c);

#endif
