/* Attributing the divergence between two plans A and B to the plan fields where they differ
 * (`shardlab compare --ablate`, the equivalence report).
 *
 * The differing fields (common/plan_diff.h) are grouped into knobs:
 *   SWITCH     fields the reference reads on their own at run time — every precision field, the
 *              optimizer, the loss scaler, the loss normalisation and the run shape. The run of
 *              A with the knob set to B's value is A's compiled plan with that field overwritten
 *              in memory. Fields that only mean something together form one knob:
 *              master_dtype with optim_dtype (= master_dtype) and upcast_sharded_params (already
 *              resolved into master_dtype), and loss_scale with the scaler's parameters.
 *   STRUCTURE  fields that decide the layout and cannot be set alone without recompiling:
 *              dialect, strategy, FSDP version, ZeRO stage, W, machines, resharding, prefetch,
 *              offload, persistence threshold and the accumulation mode the strategy implies.
 *              They switch together: the run is B's compiled plan carrying every SWITCH field of
 *              A, i.e. A's numerics on B's layout.
 *   DERIVED    consequences of the above (layout kind and digest, buffers, shard group size,
 *              replicas, collectives, predicted memory): reported, never switched.
 *
 * Attribution (first-order, one switch at a time from A): with L the final loss and θ the final
 * parameters, knob i's share of the loss divergence is (L_i − L_A) / (L_B − L_A) and of the
 * parameter divergence <θ_i − θ_A, θ_B − θ_A> / ‖θ_B − θ_A‖² (the projection of the knob's own
 * effect on the A→B difference). The shares and the interaction remainder (1 − Σ shares) sum to
 * exactly 100%; a large remainder says the knobs do not act independently. */
#ifndef SHARDLAB_CONFORMANCE_ABLATE_H
#define SHARDLAB_CONFORMANCE_ABLATE_H

#include <stddef.h>

#include "common/plan_diff.h"
#include "conformance/compare_run.h"
#include "shardlab/plan.h"

typedef enum sl_knob_kind { SL_KNOB_SWITCH, SL_KNOB_STRUCTURE, SL_KNOB_DERIVED } sl_knob_kind;

#define SL_ABLATE_MAX_KNOBS 64

typedef struct sl_knob {
    sl_knob_kind kind;
    char group[48];      /* what fields join on: "precision.master_dtype", "structure", ... */
    char name[48];       /* the first differing field, or "structure" / "derived" */
    char fields[512];    /* every differing field the knob switches, ", "-separated */
    char a[160], b[160]; /* A's and B's values ("field=value" pairs when several) */
} sl_knob;

/* Groups the fields where a and b differ into knobs, SWITCH knobs first in plan_diff's order,
 * then one STRUCTURE knob, then one DERIVED entry; returns the count (at most cap). */
size_t sl_ablate_knobs(const sl_plan *a, const sl_plan *b, sl_knob *out, size_t cap);

/* SWITCH: sets the knob's fields of `plan` to the values in `from`. */
void sl_ablate_apply(sl_plan *plan, const sl_plan *from, const sl_knob *knob);
/* STRUCTURE: copies every SWITCH field of `numerics` into `layout` (B's plan gets A's numerics). */
void sl_ablate_apply_numerics(sl_plan *layout, const sl_plan *numerics);

/* The attribution of one knob's run (see the header comment); NaN when A and B do not differ. */
double sl_ablate_loss_share(double loss_a, double loss_b, double loss_i);
double sl_ablate_param_share(const sl_compare_result *a, const sl_compare_result *b,
                             const sl_compare_result *i);

#endif
