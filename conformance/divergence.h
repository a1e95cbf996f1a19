/* How far two runs are apart, and how far they may be (DESIGN.md §9 T3).
 *
 * Divergence of two runs a (candidate) and b (baseline), per quantity:
 *   series (loss, grad_norm per step):  max_i |a_i - b_i| / |b_i|   (|b_i| = 0: / 1)
 *   state  (final parameters, step-1 gradients, every element of every tensor, matched by name):
 *                                        max_e |a_e - b_e| / max_e |b_e|
 * i.e. the worst deviation relative to the scale of the baseline. A NaN anywhere makes the
 * divergence NaN, which no tolerance admits.
 *
 * Noise floor: the divergence between two reference runs that differ only in a legal change of
 * rounding — every reduction summed in the reverse rank order (W > 1), or every initial parameter
 * moved by one ulp of the dtype the run keeps it in (master_dtype; the smallest change a run can
 * see, and the only one at W = 1, where no order can change). The floor of a quantity is the
 * larger of the two. The tolerance is SL_CONF_TOLERANCE_MULTIPLE × floor. */
#ifndef SHARDLAB_CONFORMANCE_DIVERGENCE_H
#define SHARDLAB_CONFORMANCE_DIVERGENCE_H

#include <stdbool.h>

#include "conformance/runner.h"

/* Two implementations that are both correct differ by reorderings of the floor's kind: the engine
 * reorders the f32 sums inside its kernels, a layout or divide rule reorders the reduction. Each
 * such reordering is one perturbation of the floor's size, and the quantities we compare
 * accumulate at most a few of them independently over a short run: a sum of k independent
 * floor-sized deviations stays below k × floor, and k ≤ 4 covers (kernel order) + (reduction
 * order) + (divide rule) + (gather order). A wrong rule — a missed divide, a rounding in the
 * wrong dtype, a shard in the wrong place — moves the result by orders of magnitude more
 * (DESIGN.md §9: "e.g. 4× the divergence between two ref runs that differ only in a legal
 * summation order"). */
#define SL_CONF_TOLERANCE_MULTIPLE 4.0

typedef enum sl_conf_quantity {
    SL_CONF_Q_LOSS,      /* loss per step */
    SL_CONF_Q_GRAD_NORM, /* grad_norm per step */
    SL_CONF_Q_GRADS,     /* grads_step1.safetensors */
    SL_CONF_Q_FINAL,     /* final.safetensors */
    SL_CONF_Q_COUNT
} sl_conf_quantity;

const char *sl_conf_quantity_name(sl_conf_quantity q); /* "loss", "grad_norm", ... */

/* Per quantity, one number. */
typedef struct sl_conf_divergence {
    double q[SL_CONF_Q_COUNT];
} sl_conf_divergence;

/* max_i |a_i - b_i| / |b_i| over n values (NaN-propagating). */
double sl_conf_series_divergence(const double *a, const double *b, int n);

/* The state divergence of two tensor sets. SL_ERR_MISMATCH (naming the tensor) when a tensor of
 * b is missing from a or has another element count. */
sl_status sl_conf_tensors_divergence(const sl_conf_tensors *a, const sl_conf_tensors *b,
                                     double *out);

/* Every quantity of two loaded runs. SL_ERR_MISMATCH when the step counts differ (naming both). */
sl_status sl_conf_run_divergence(const sl_conf_result *a, const sl_conf_result *b,
                                 sl_conf_divergence *out);

/* Bit equality of two runs: losses, grad norms, loss scales and skip flags of every step, and
 * every element of final.safetensors. On a difference, `where` (may be NULL) names the first
 * one ("step 3 loss", "final transformer.h.0.attn.c_attn.weight[17]"). */
bool sl_conf_runs_bit_equal(const sl_conf_result *a, const sl_conf_result *b, char *where,
                            size_t cap);

/* floor = max(reversed-order divergence, ulp divergence) per quantity; either may be NULL. */
void sl_conf_floor_combine(const sl_conf_divergence *reversed, const sl_conf_divergence *ulp,
                           sl_conf_divergence *floor);

/* Writes DIR/init.safetensors of a finished run with every value moved up one ulp of `dt`
 * (away from zero; the value first rounded to dt, as the run stores it) to `path`. */
sl_status sl_conf_write_ulp_init(const char *run_dir, sl_dtype dt, const char *path);

#endif
