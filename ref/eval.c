/* Held-out loss with the current parameters: forward only, over opt->eval_batches global batches
 * of the held-out split, with gather_for_metrics semantics (even_batches fillers are dropped). */
#include <math.h>
#include <stdlib.h>

#include "ref/run.h"

sl_status sl_ref_run_eval(sl_ref_run *run, double *loss) {
    const sl_plan *plan = run->plan;
    const sl_model_desc *model = run->model;
    const int b = plan->micro_batch_size, T = plan->seq_len;
    sl_sampler_options so = sl_plan_sampler_options(plan); /* one pass, in order */
    so.grad_accum_steps = 1;
    so.shuffle = false;
    so.mode = run->opt->sampling;
    sl_sampler *sampler = NULL;
    SL_TRY(sl_sampler_create(run->heldout, &so, &sampler));
    int32_t *inputs = calloc((size_t)b * (size_t)T, sizeof(int32_t));
    int32_t *targets = calloc((size_t)b * (size_t)T, sizeof(int32_t));
    uint8_t *dup = calloc((size_t)b, 1);
    sl_status st =
        inputs && targets && dup ? SL_OK : sl_error_set(SL_ERR_OOM, "out of memory in eval");

    for (int u = 0; u < model->n_units; u++) {
        sl_ref_shards_gather(run->shards, model->units[u].params, model->units[u].n_params,
                             run->params);
    }

    const int64_t batches = sl_sampler_steps_per_epoch(sampler) < run->opt->eval_batches
                                ? sl_sampler_steps_per_epoch(sampler)
                                : run->opt->eval_batches;
    double sum = 0.0; /* f64 metric */
    int64_t count = 0;
    for (int64_t s = 0; st == SL_OK && s < batches; s++) {
        for (int r = 0; st == SL_OK && r < plan->world_size; r++) {
            st = sl_sampler_fill(sampler, s, r, 0, inputs, targets, NULL, dup);
            if (st != SL_OK) break;
            for (int i = 0; i < b; i++) {
                if (!dup[i]) continue;
                for (int t = 0; t < T; t++)
                    targets[(size_t)i * T + t] = -1;
            }
            sl_ref_gpt2_embed_forward(model, run->params, inputs, plan->precision.param_dtype,
                                      run->acts[0]);
            for (int l = 0; l < model->gpt2.n_layer; l++) {
                sl_ref_gpt2_block_forward(model, l, run->params, plan->precision.param_dtype,
                                          run->acts[0]);
            }
            sl_ref_gpt2_head_forward(model, run->params, targets, plan->precision.param_dtype,
                                     run->acts[0], run->losses);
            for (int64_t i = 0; i < (int64_t)b * T; i++) {
                if (targets[i] < 0) continue;
                sum += run->losses[i];
                count++;
            }
        }
    }
    free(inputs);
    free(targets);
    free(dup);
    sl_sampler_destroy(sampler);
    *loss = count > 0 ? sum / (double)count : NAN;
    return st;
}
