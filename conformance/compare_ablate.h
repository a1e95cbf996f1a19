/* The ablation of `compare --ablate` and of the equivalence report: A, B and the noise floor of A
 * (the same run with every reduction summed in the opposite rank order), then one run of A per
 * SWITCH knob with that knob set to B's value and one of B's layout with A's numerics (the
 * STRUCTURE knob), all with the reference trainer in this process; the final divergence A vs B
 * attributed to the knobs as ablate.h describes. */
#ifndef SHARDLAB_CONFORMANCE_COMPARE_ABLATE_H
#define SHARDLAB_CONFORMANCE_COMPARE_ABLATE_H

#include <stdbool.h>
#include <stdio.h>

#include "conformance/ablate.h"
#include "conformance/compare_run.h"

/* A divergence within this multiple of the summation-order noise floor counts as equivalent
 * (DESIGN.md §9: a stated multiple of a measured floor, not a tuned number). 4 covers the floor
 * being one sample of a reordering: the A-vs-B reordering may sum up to twice as many differing
 * terms (both sides reorder) and the ratio of two such samples varies by about 2x at these sizes.
 */
#define SL_EQUIV_FLOOR_MULTIPLE 4.0

typedef struct sl_ablation_row {
    sl_knob knob;
    bool ran; /* SWITCH and STRUCTURE knobs run; DERIVED ones are listed only */
    double final_loss;
    double loss_share;  /* fraction of L_B − L_A; NaN when A and B end equal */
    double param_share; /* projection on θ_B − θ_A; NaN when the parameters end equal */
    double param_div_to_b;
} sl_ablation_row;

typedef struct sl_ablation {
    int steps;
    sl_compare_result a, b;
    double loss_a, loss_b;          /* final losses */
    double loss_div, param_div;     /* A vs B: max relative loss gap, ‖θA − θB‖/‖θB‖ */
    double floor_loss, floor_param; /* A vs A summed in reverse rank order */
    int n_rows;
    sl_ablation_row rows[SL_ABLATE_MAX_KNOBS];
    double remainder_loss, remainder_param; /* 1 − Σ shares */
} sl_ablation;

/* Whether A and B agree within SL_EQUIV_FLOOR_MULTIPLE × the noise floor (both measures). */
bool sl_ablation_equivalent(const sl_ablation *ab);

/* Runs the ablation of plan_a vs plan_b. cfg_a / cfg_b are what they were compiled from (each
 * knob run starts from a fresh compile). `knobs`: false runs only A, B and the floor. */
sl_status sl_ablation_run(const sl_config *cfg_a, const sl_config *cfg_b,
                          const sl_model_desc *model, const sl_compare_run_opts *opt, bool knobs,
                          sl_ablation *out);
void sl_ablation_free(sl_ablation *ab);

/* The attribution table with its method and the fields that were not switched alone; markdown
 * renders a pipe table. */
void sl_ablation_print(const sl_ablation *ab, FILE *f, bool markdown);

#endif
