/* shardlab ref — run the reference trainer (one process, W logical ranks) on a plan. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/model_args.h"
#include "ref/trainer.h"
#include "shardlab/config.h"
#include "shardlab/log.h"
#include "shardlab/plan.h"

static const char *const sl_ref_usage =
    "usage: shardlab ref [plan flags] [model flags] [run flags]\n"
    "Trains with the reference implementation: one process simulating --num_processes ranks.\n"
    "run flags:\n"
    "  --data {default,PATH}   training data (default: the embedded corpus)\n"
    "  --sampling {packed,documents}  fixed-length windows (default) or one padded document per row\n"
    "  --steps N               optimizer steps (the plan key max_steps)\n"
    "  --micro_batch_size b --seq_len T --lr LR --seed S   (plan keys)\n"
    "  --out DIR               write trajectory.json and the safetensors files there\n"
    "  --init_from FILE        start from a safetensors file with Hugging Face names\n"
    "  --eval_every N          held-out loss every N steps\n"
    "  --quiet                 no per-step lines\n";

static sl_status sl_ref_make_dir(const char *dir) {
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) return SL_OK;
    return sl_error_set(SL_ERR_IO, "--out %s: cannot create the directory: %s", dir, strerror(errno));
}

static sl_status sl_ref_parse_int(const char *flag, const char *text, int *out) {
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < 0 || v > 1000000000L) {
        return sl_error_set(SL_ERR_CONFIG, "%s: expected a non-negative integer, found '%s'", flag, text);
    }
    *out = (int)v;
    return SL_OK;
}

static sl_status sl_cmd_ref_run(sl_config *cfg, int argc, char **argv) {
    sl_ref_options opt = sl_ref_options_default();
    opt.progress = 1;
    sl_model_args margs;
    sl_model_args_init(&margs);
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) return sl_error_set(SL_ERR_OOM, "out of memory parsing arguments");
    int n_rest = 0;
    sl_status st = sl_config_parse_args(cfg, argc, argv, rest, &n_rest);
    const sl_source flag_src = {.kind = SL_SOURCE_FLAG, .spelling = "--steps"};
    for (int i = 0; st == SL_OK && i < n_rest; i++) {
        const char *a = rest[i];
        const bool has_value = i + 1 < n_rest;
        if (sl_model_args_parse(&margs, n_rest, rest, &i, &st)) continue;
        if (!strcmp(a, "--quiet")) {
            opt.progress = 0;
        } else if (!has_value && a[0] == '-' && a[1] == '-' &&
                   (!strcmp(a, "--data") || !strcmp(a, "--out") || !strcmp(a, "--steps") ||
                    !strcmp(a, "--init_from") || !strcmp(a, "--sampling") || !strcmp(a, "--eval_every"))) {
            st = sl_error_set(SL_ERR_CONFIG, "%s: missing value", a);
        } else if (!strcmp(a, "--data")) {
            opt.data = rest[++i];
        } else if (!strcmp(a, "--out")) {
            opt.out_dir = rest[++i];
        } else if (!strcmp(a, "--init_from")) {
            opt.init_from = rest[++i];
        } else if (!strcmp(a, "--steps")) {
            st = sl_config_set(cfg, "max_steps", rest[++i], &flag_src);
        } else if (!strcmp(a, "--eval_every")) {
            st = sl_ref_parse_int(a, rest[++i], &opt.eval_every);
        } else if (!strcmp(a, "--sampling")) {
            const char *v = rest[++i];
            if (!strcmp(v, "packed")) opt.sampling = SL_SAMPLE_PACKED;
            else if (!strcmp(v, "documents")) opt.sampling = SL_SAMPLE_DOCUMENTS;
            else st = sl_error_set(SL_ERR_CONFIG, "--sampling: expected packed or documents, found '%s'", v);
        } else {
            st = sl_cli_unknown_flag(a, sl_ref_usage);
        }
    }
    free(rest);
    SL_TRY(st);

    sl_gpt2_config gcfg;
    SL_TRY(sl_model_args_resolve(&margs, &gcfg));
    sl_model_desc *model = NULL;
    SL_TRY(sl_model_desc_create_gpt2(&gcfg, &model));
    sl_plan *plan = NULL;
    st = sl_plan_compile(cfg, model, &plan);
    if (st == SL_OK && opt.out_dir) st = sl_ref_make_dir(opt.out_dir);
    sl_trajectory traj;
    sl_trajectory_init(&traj, "ref");
    sl_observation obs = {0};
    if (st == SL_OK) st = sl_observation_init(&obs, plan->world_size);
    if (st == SL_OK) st = sl_ref_train(plan, model, &opt, &traj, &obs);
    if (st == SL_OK) {
        int64_t tokens = 0;
        for (int i = 0; i < traj.n_steps; i++) tokens += traj.steps[i].tokens;
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
        return 0;
    }
    sl_config *cfg = NULL;
    sl_status st = sl_config_create(&cfg);
    if (st == SL_OK) st = sl_cmd_ref_run(cfg, argc, argv);
    sl_config_destroy(cfg);
    return sl_cli_report(st);
}
