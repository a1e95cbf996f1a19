/* A model that is not GPT: a residual MLP language model on token + position embeddings,
 *     h0 = wte[tok] + wpe[t];  h(l+1) = h(l) + gelu(h(l) W_l + b_l);  logits = h(L) W_out + b_out
 * written against shardlab's engine interface (shardlab/engine.h): a model description (the
 * parameters and the sharding units) and per-unit callbacks on gathered parameter views. Unit 0
 * (the root) holds the two ends (embeddings, output layer); unit l + 1 holds layer l. */
#ifndef SHARDLAB_EXAMPLE_MLP_H
#define SHARDLAB_EXAMPLE_MLP_H

#include "shardlab/engine.h"

/* n_layer hidden layers of width C over a vocabulary of V tokens and sequences up to T. */
sl_status mlp_desc_create(int n_layer, int C, int V, int T, sl_model_desc **out);

/* The callbacks, computing in the plan's param_dtype on the CPU kernels. */
sl_status mlp_model_create(const sl_model_desc *desc, const sl_plan *plan, sl_engine_model *out);

#endif
