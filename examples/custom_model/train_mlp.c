/* Trains the residual MLP of mlp.h under whatever plan `shardlab launch` hands over: the same
 * program runs DDP, FSDP1/2 or ZeRO 0-3 in fp32, bf16 or fp16 without a code change.
 *
 *   shardlab launch --num_processes 2 --use_deepspeed --zero_stage 3 --mixed_precision bf16 \
 *       ./train_mlp --max_steps 50
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "mlp.h"
#include "shardlab/data.h"

static sl_status run(int argc, char **argv) {
    sl_session *s = NULL;
    const sl_status created = sl_session_create_from_env(&s); /* shardlab: world + config */
    if (created != SL_OK) {
        fprintf(stderr, "train_mlp: %s\n", sl_error_message());
        return created;
    }
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int n_rest = 0;
    sl_status st = rest ? sl_config_parse_args(sl_session_config(s), argc, argv, rest, &n_rest)
                        : sl_error_set(SL_ERR_OOM, "out of memory");
    if (st == SL_OK && n_rest) st = sl_error_set(SL_ERR_CONFIG, "unknown argument '%s'", rest[0]);
    free(rest);

    sl_model_desc *desc = NULL;
    sl_plan *plan = NULL;
    sl_engine_model model = {0};
    sl_engine *engine = NULL;
    bool handed = false; /* the engine owns the model from sl_engine_create on */
    sl_dataset *data = NULL;
    sl_sampler *sampler = NULL;
    if (st == SL_OK) st = mlp_desc_create(2, 64, 256, 64, &desc);
    if (st == SL_OK) st = sl_session_compile_plan(s, desc, &plan); /* shardlab */
    if (st == SL_OK) st = mlp_model_create(desc, plan, &model);
    if (st == SL_OK) {
        handed = true;
        st = sl_engine_create(s, plan, &model, NULL, &engine); /* shardlab */
    }
    if (st == SL_OK) st = sl_dataset_open("default", SL_SPLIT_TRAIN, &data);
    if (st == SL_OK) {
        sl_sampler_options so = sl_plan_sampler_options(plan);
        st = sl_sampler_create(data, &so, &sampler);
    }
    const int rank = sl_session_rank(s);
    const size_t bt = plan ? (size_t)plan->micro_batch_size * (size_t)plan->seq_len : 0;
    int32_t *in = calloc(bt + 1, sizeof *in), *tg = calloc(bt + 1, sizeof *tg);
    for (int step = 0; st == SL_OK && step < plan->steps; step++) {
        /* packed samples: every position of the global batch is a target */
        st = sl_engine_step_begin(engine,
                                  (int64_t)plan->world_size * plan->grad_accum_steps * (int64_t)bt);
        for (int m = 0; st == SL_OK && m < plan->grad_accum_steps; m++) {
            st = sl_sampler_fill(sampler, step, rank, m, in, tg, NULL, NULL);
            const sl_batch b = {
                .inputs = in, .targets = tg, .B = plan->micro_batch_size, .T = plan->seq_len};
            if (st == SL_OK) st = sl_engine_micro_step(engine, m, &b, NULL); /* shardlab */
        }
        sl_trajectory_step rec;
        if (st == SL_OK) st = sl_engine_optimizer_step(engine, &rec); /* shardlab */
        if (st == SL_OK && rank == 0) printf("step %d loss %.4f\n", rec.step, rec.loss);
    }
    if (st == SL_OK) st = sl_engine_save_model(engine, "mlp.safetensors"); /* shardlab */
    free(in);
    free(tg);
    sl_sampler_destroy(sampler);
    sl_dataset_destroy(data);
    sl_engine_destroy(engine); /* releases the model too */
    if (!handed && model.destroy) model.destroy(model.self);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(desc);
    if (st != SL_OK) {
        fprintf(stderr, "train_mlp: %s\n", sl_error_message());
        /* shardlab: a rank failing alone ends the whole job rather than leave the others
         * waiting in a collective (returns at W = 1) */
        sl_comm_abort(sl_session_comm(s), 1);
    }
    sl_session_destroy(s);
    return st;
}

int main(int argc, char **argv) {
    return run(argc - 1, argv + 1) == SL_OK ? 0 : 1;
}
