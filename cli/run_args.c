/* Run-flag parsing shared by `ref` and `train` (run_args.h). */
#include "cli/run_args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "common/hf_model.h"

const char *const sl_run_args_usage =
    "run flags:\n"
    "  --data {default,PATH}   training data (default: the embedded corpus)\n"
    "  --sampling {packed,documents}  fixed-length windows (default) or one padded document per "
    "row\n"
    "  --steps N               optimizer steps (the plan key max_steps)\n"
    "  --micro_batch_size b --seq_len T --lr LR --seed S   (plan keys)\n"
    "  --out DIR               write trajectory.json and the safetensors files there\n"
    "  --init_from PATH        start from a safetensors file with Hugging Face names, or an\n"
    "                          export (directory or model.safetensors.index.json)\n"
    "  --eval_every N          held-out loss every N steps\n"
    "  --eval_batches N        global batches per held-out evaluation (default 4)\n"
    "  --quiet                 no per-step lines\n"
    "  --save_model DIR        (train) at the end, export the model in the Hugging Face layout\n"
    "  --max_shard_size S      shard the export above S bytes (5GB, 500MB, 2GiB; default 5GB)\n"
    "  --save_16bit            export 16-bit weights (the plan's param dtype, or bf16)\n";

static sl_status sl_run_parse_int(const char *flag, const char *text, int *out) {
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < 0 || v > 1000000000L) {
        return sl_error_set(SL_ERR_CONFIG, "%s: expected a non-negative integer, found '%s'", flag,
                            text);
    }
    *out = (int)v;
    return SL_OK;
}

const char *const sl_ckpt_args_usage =
    "checkpoint flags (train):\n"
    "  --checkpointing_steps N        save the training state every N steps\n"
    "  --output_dir DIR               checkpoints go to DIR/checkpoints/checkpoint_{step}\n"
    "  --checkpoints_total_limit K    keep only the newest K checkpoints\n"
    "  --resume_from_checkpoint {latest,PATH}   continue a run (any W, any layout); `latest`\n"
    "                                 with no checkpoint yet starts from scratch\n"
    "  --state_dict_type {FULL_STATE_DICT,SHARDED_STATE_DICT}   default: the plan's\n"
    "                                 fsdp_state_dict_type; DeepSpeed SHARDED, DDP FULL\n";

sl_status sl_ckpt_args_extract(int *argc, char **argv, sl_ckpt_args *out) {
    static const char *const flags[] = {"--checkpointing_steps", "--output_dir",
                                        "--checkpoints_total_limit", "--resume_from_checkpoint",
                                        "--state_dict_type"};
    *out = (sl_ckpt_args){0};
    int kept = 0;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        int f = -1;
        const char *v = NULL;
        for (int j = 0; j < 5 && f < 0; j++) {
            const size_t n = strlen(flags[j]);
            if (!strncmp(a, flags[j], n) && (a[n] == '\0' || a[n] == '=')) {
                f = j;
                v = a[n] == '=' ? a + n + 1 : NULL;
            }
        }
        if (!strcmp(a, "--")) { /* nothing after it is ours */
            while (i < *argc)
                argv[kept++] = argv[i++];
            break;
        }
        if (f < 0) {
            argv[kept++] = argv[i];
            continue;
        }
        if (!v && i + 1 >= *argc) return sl_error_set(SL_ERR_CONFIG, "%s: missing value", a);
        if (!v) v = argv[++i];
        if (f == 0) SL_TRY(sl_run_parse_int(flags[f], v, &out->checkpointing_steps));
        if (f == 1) out->output_dir = v;
        if (f == 2) SL_TRY(sl_run_parse_int(flags[f], v, &out->checkpoints_total_limit));
        if (f == 3) out->resume_from_checkpoint = v;
        if (f == 4) out->state_dict_type = v;
    }
    *argc = kept;
    return SL_OK;
}

static bool sl_run_flag_takes_value(const char *a) {
    static const char *const flags[] = {"--data",         "--out",        "--steps",
                                        "--init_from",    "--sampling",   "--eval_every",
                                        "--eval_batches", "--save_model", "--max_shard_size"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (!strcmp(a, flags[i])) return true;
    }
    return false;
}

static sl_status sl_run_parse_one(sl_config *cfg, sl_run_args *o, int n, char **rest, int *i,
                                  const char *usage) {
    static const sl_source flag_src = {.kind = SL_SOURCE_FLAG, .spelling = "--steps"};
    const char *a = rest[*i];
    if (!strcmp(a, "--quiet")) {
        o->quiet = true;
        return SL_OK;
    }
    if (!strcmp(a, "--save_16bit")) {
        o->save_opts.save_16bit = true;
        return SL_OK;
    }
    if (!strcmp(a, "--reverse_reduction_order")) { /* `shardlab ref` takes it out before */
        return sl_error_set(SL_ERR_CONFIG,
                            "--reverse_reduction_order: only `shardlab ref` can choose the order "
                            "of its reductions (the engine's is the collective library's); run "
                            "`shardlab ref --reverse_reduction_order ...`, or drop the flag");
    }
    if (!sl_run_flag_takes_value(a)) return sl_cli_unknown_flag(a, usage);
    if (*i + 1 >= n) return sl_error_set(SL_ERR_CONFIG, "%s: missing value", a);
    const char *v = rest[++*i];
    if (!strcmp(a, "--data")) {
        o->data = v;
    } else if (!strcmp(a, "--out")) {
        o->out_dir = v;
    } else if (!strcmp(a, "--init_from")) {
        o->init_from = v;
    } else if (!strcmp(a, "--save_model")) {
        o->save_model = v;
    } else if (!strcmp(a, "--max_shard_size")) {
        return sl_hf_size_parse(v, a, &o->save_opts.max_shard_size);
    } else if (!strcmp(a, "--steps")) {
        return sl_config_set(cfg, "max_steps", v, &flag_src);
    } else if (!strcmp(a, "--eval_every")) {
        return sl_run_parse_int(a, v, &o->eval_every);
    } else if (!strcmp(a, "--eval_batches")) {
        return sl_run_parse_int(a, v, &o->eval_batches);
    } else if (!strcmp(v, "packed")) {
        o->sampling = SL_SAMPLE_PACKED;
    } else if (!strcmp(v, "documents")) {
        o->sampling = SL_SAMPLE_DOCUMENTS;
    } else {
        return sl_error_set(SL_ERR_CONFIG, "--sampling: expected packed or documents, found '%s'",
                            v);
    }
    return SL_OK;
}

sl_status sl_run_args_parse(sl_config *cfg, int argc, char **argv, const char *usage,
                            sl_run_args *out) {
    *out = (sl_run_args){.data = "default", .sampling = SL_SAMPLE_PACKED, .eval_batches = 4};
    sl_model_args_init(&out->model);
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) return sl_error_set(SL_ERR_OOM, "out of memory parsing arguments");
    int n_rest = 0;
    sl_status st = sl_config_parse_args(cfg, argc, argv, rest, &n_rest);
    for (int i = 0; st == SL_OK && i < n_rest; i++) {
        if (sl_model_args_parse(&out->model, n_rest, rest, &i, &st)) continue;
        st = sl_run_parse_one(cfg, out, n_rest, rest, &i, usage);
    }
    free(rest);
    if (st == SL_OK && !out->save_model &&
        (out->save_opts.max_shard_size > 0 || out->save_opts.save_16bit)) {
        st = sl_error_set(SL_ERR_CONFIG, "%s shapes the model export: add --save_model DIR",
                          out->save_opts.save_16bit ? "--save_16bit" : "--max_shard_size");
    }
    return st;
}

sl_status sl_run_args_make_out_dir(const sl_run_args *a) {
    if (!a->out_dir) return SL_OK;
    if (mkdir(a->out_dir, 0777) == 0 || errno == EEXIST) return SL_OK;
    return sl_error_set(SL_ERR_IO, "--out %s: cannot create the directory: %s", a->out_dir,
                        strerror(errno));
}
