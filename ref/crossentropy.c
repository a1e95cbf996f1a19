/* Softmax cross-entropy over the vocabulary, in f32 from the (compute-dtype) logits, as
 * Hugging Face computes the loss after upcasting the logits. */
#include "ref/ops.h"

#include <math.h>

void sl_ref_crossentropy_forward(float *losses, float *probs, const float *logits,
                                 const int32_t *targets, int64_t N, int V) {
    for (int64_t n = 0; n < N; n++) {
        const float *logits_n = logits + n * V; // (V)
        float *probs_n = probs + n * V;         // (V)
        float maxval = -INFINITY;
        for (int v = 0; v < V; v++) {
            if (logits_n[v] > maxval) maxval = logits_n[v];
        }
        float sum = 0.0f;
        for (int v = 0; v < V; v++) {
            probs_n[v] = expf(logits_n[v] - maxval);
            sum += probs_n[v];
        }
        for (int v = 0; v < V; v++)
            probs_n[v] /= sum;
        // -log softmax[target] = log Σ exp(logits - max) - (logits[target] - max)
        const int32_t target = targets[n];
        losses[n] = target < 0 ? 0.0f : logf(sum) - (logits_n[target] - maxval);
    }
}

void sl_ref_crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets,
                                  const float *dlosses, int64_t N, int V, sl_dtype cd) {
    for (int64_t n = 0; n < N; n++) {
        const float *probs_n = probs + n * V; // (V)
        float *dlogits_n = dlogits + n * V;   // (V)
        const int32_t target = targets[n];
        if (target < 0) {
            for (int v = 0; v < V; v++)
                dlogits_n[v] = 0.0f;
            continue;
        }
        const float dloss = dlosses[n];
        for (int v = 0; v < V; v++) {
            const float indicator = v == target ? 1.0f : 0.0f;
            dlogits_n[v] = sl_ref_round_value((probs_n[v] - indicator) * dloss, cd);
        }
    }
}
