/* shardlab ref — run the reference trainer (one process, W logical ranks) on a plan. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/model_args.h"
#include "cli/run_args.h"
#include "ref/trainer.h"
#include "shardlab/config.h"
#include "shardlab/log.h"
#include "shardlab/plan.h"

static const char *const sl_ref_usage =
    "usage: shardlab ref [plan flags] [model flags] [run flags]\n"
    "Trains with the reference implementation: one process simulating --num_processes ranks.\n"
    "  --reverse_reduction_order   sum every cross-rank reduction in descending rank order (a\n"
    "                              legal reordering: the conformance noise floor's runs)\n";

/* Takes --reverse_reduction_order out of argv[0..*argc) (compacted): the shared run flags reject
 * it, since only the reference can choose its order. */
static bool sl_cmd_ref_take_reverse(int *argc, char **argv) {
    bool found = false;
    int kept = 0;
    for (int i = 0; i < *argc; i++) {
        if (!strcmp(argv[i], "--reverse_reduction_order")) {
            found = true;
        } else {
            argv[kept++] = argv[i];
        }
    }
    *argc = kept;
    return found;
}

static sl_status sl_cmd_ref_run(sl_config *cfg, int argc, char **argv) {
    const bool reversed = sl_cmd_ref_take_reverse(&argc, argv);
    sl_run_args args;
    SL_TRY(sl_run_args_parse(cfg, argc, argv, sl_ref_usage, &args));
    if (args.save_model) {
        return sl_error_set(SL_ERR_CONFIG,
                            "--save_model: `shardlab ref` writes final.safetensors under --out; "
                            "the Hugging Face export is `shardlab train --save_model DIR` or "
                            "`shardlab merge-weights`");
    }
    sl_ref_options opt = sl_ref_options_default();
    opt.data = args.data;
    opt.sampling = args.sampling;
    opt.out_dir = args.out_dir;
    opt.init_from = args.init_from;
    opt.eval_every = args.eval_every;
    opt.eval_batches = args.eval_batches;
    opt.progress = !args.quiet;
    opt.reverse_reduction_order = reversed;

    sl_gpt2_config gcfg;
    SL_TRY(sl_model_args_resolve(&args.model, &gcfg));
    sl_model_desc *model = NULL;
    SL_TRY(sl_model_desc_create_gpt2(&gcfg, &model));
    sl_plan *plan = NULL;
    sl_status st = sl_plan_compile(cfg, model, &plan);
    if (st == SL_OK) st = sl_run_args_make_out_dir(&args);
    sl_trajectory traj;
    sl_trajectory_init(&traj, "ref");
    sl_observation obs = {0};
    if (st == SL_OK) st = sl_observation_init(&obs, plan->world_size);
    if (st == SL_OK) st = sl_ref_train(plan, model, &opt, &traj, &obs);
    if (st == SL_OK) {
        int64_t tokens = 0;
        for (int i = 0; i < traj.n_steps; i++)
            tokens += traj.steps[i].tokens;
        printf("ref: %d steps in %.2f s (%.2f steps/s, %.0f tokens/s), final loss %.4f\n",
               traj.n_steps, traj.seconds, traj.n_steps / traj.seconds,
               (double)tokens / traj.seconds,
               traj.n_steps ? traj.steps[traj.n_steps - 1].loss : 0.0);
    }
    sl_observation_free(&obs);
    sl_trajectory_free(&traj);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(model);
    return st;
}

int sl_cmd_ref(int argc, char **argv) {
    if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        fputs(sl_ref_usage, stdout);
        fputs(sl_run_args_usage, stdout);
        return 0;
    }
    sl_config *cfg = NULL;
    sl_status st = sl_config_create(&cfg);
    if (st == SL_OK) st = sl_cmd_ref_run(cfg, argc, argv);
    sl_config_destroy(cfg);
    return sl_cli_report(st);
}
