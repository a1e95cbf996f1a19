/* The teacher and the student of examples/distill as engine models: the built-in GPT-2
 * (sl_engine_gpt2_model) on a copy of the CPU kernel table whose classifier is replaced.
 *
 * The built-in model computes the LM head's logits and hands them to the table's
 * crossentropy_forward/backward, and nothing else reads them; swapping those two entries is how
 * a different objective reaches the logits without touching the model:
 *   - the teacher's classifier copies its logits (B·T, V) out, widened to f32, then computes the
 *     usual cross-entropy (the teacher's own loss on the batch, for the log);
 *   - the student's classifier computes, per token with a target,
 *         loss = alpha · CE(s, y) + (1 - alpha) · tau² · KL(softmax(t/tau) || softmax(s/tau))
 *     (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network": the tau² keeps the
 *     soft term's gradient scale independent of tau) and its gradient
 *         dloss/ds = alpha · (softmax(s) - onehot(y)) + (1 - alpha) · tau · (softmax(s/tau) -
 * softmax(t/tau)), in f32, rounded once to the compute dtype when written, as the built-in
 * classifier does. Padding targets (< 0) give no loss and no gradient. */
#ifndef SHARDLAB_EXAMPLES_DISTILL_MODEL_H
#define SHARDLAB_EXAMPLES_DISTILL_MODEL_H

#include "shardlab/engine.h"

typedef struct distill_objective {
    float alpha;       /* weight of the cross-entropy with the data's targets, in [0, 1] */
    float temperature; /* tau > 0 */
} distill_objective;

/* What one pair of models shares: the teacher's logits of the current micro-batch (B·T, V, f32)
 * written by the teacher's forward and read by the student's loss, and the sums of the student's
 * two loss terms since the last distill_link_take_sums. */
typedef struct distill_link distill_link;

sl_status distill_link_create(int B, int T, int V, distill_objective obj, distill_link **out);
void distill_link_destroy(distill_link *l);
/* Σ of the student's cross-entropy and KL terms over the tokens with a target, since the last
 * call (then reset). */
void distill_link_take_sums(distill_link *l, double *ce, double *kl);

/* The built-in GPT-2 for `plan`, whose loss also writes the logits into `link` (the teacher).
 * The model uses its own kernel context (its scratch is not in the engine's accounting). */
sl_status distill_teacher_model(const sl_model_desc *desc, const sl_plan *plan, distill_link *link,
                                sl_engine_model *out);
/* The built-in GPT-2 for `plan` trained on the distillation objective against the logits the
 * teacher last wrote into `link` (the student). */
sl_status distill_student_model(const sl_model_desc *desc, const sl_plan *plan, distill_link *link,
                                sl_engine_model *out);

#endif
