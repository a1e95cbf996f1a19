/* shardlab merge-weights — a state checkpoint (any world size, any layout) consolidated into the
 * Hugging Face layout, without an engine: what DeepSpeed's zero_to_fp32.py and
 * `accelerate merge-weights` do for their own checkpoints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "common/ckpt_format.h"
#include "common/hf_model.h"
#include "common/json.h"
#include "common/param_file.h"
#include "shardlab/checkpoint.h"

static const char *const sl_merge_usage =
    "usage: shardlab merge-weights CKPT_DIR OUT_DIR [--max_shard_size S] [--save_16bit]\n"
    "Consolidates a checkpoint (SHARDED_STATE_DICT saved under any world size and layout, or\n"
    "FULL_STATE_DICT) into the Hugging Face layout in OUT_DIR: config.json and\n"
    "model.safetensors, or model-0000k-of-0000N.safetensors with model.safetensors.index.json\n"
    "when the weights exceed --max_shard_size (5GB, 500MB, 2GiB, or bytes; default 5GB). The\n"
    "weights are the checkpoint's master parameters in fp32; --save_16bit rounds them to nearest\n"
    "even into bf16 (fp16 when the masters are fp16). CKPT_DIR may also be a directory whose\n"
    "`latest` file names the checkpoint. OUT_DIR appears whole or not at all.\n";

typedef struct sl_merge_args {
    const char *ckpt, *out;
    sl_hf_save_options save;
    bool save_16bit;
} sl_merge_args;

static sl_status sl_merge_parse(int argc, char **argv, sl_merge_args *a) {
    int positional = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--save_16bit")) {
            a->save_16bit = true;
        } else if (!strcmp(arg, "--max_shard_size")) {
            if (i + 1 >= argc)
                return sl_error_set(SL_ERR_CONFIG, "--max_shard_size: missing value");
            SL_TRY(sl_hf_size_parse(argv[++i], arg, &a->save.max_shard_size));
        } else if (arg[0] == '-' && arg[1] == '-') {
            return sl_cli_unknown_flag(arg, sl_merge_usage);
        } else if (positional == 0) {
            a->ckpt = arg;
            positional++;
        } else if (positional == 1) {
            a->out = arg;
            positional++;
        } else {
            return sl_error_set(SL_ERR_CONFIG,
                                "unexpected argument '%s'; expected CKPT_DIR OUT_DIR", arg);
        }
    }
    if (positional != 2) {
        return sl_error_set(SL_ERR_CONFIG, "expected CKPT_DIR and OUT_DIR, found %d path%s\n%s",
                            positional, positional == 1 ? "" : "s", sl_merge_usage);
    }
    return SL_OK;
}

/* The checkpoint directory: `ckpt` itself, or the one its `latest` file names. */
static sl_status sl_merge_resolve(const char *ckpt, char *dir, size_t cap) {
    char manifest[4200];
    SL_TRY(sl_hf_path_join(manifest, sizeof manifest, ckpt, SL_CKPT_MANIFEST));
    struct stat sb;
    if (stat(manifest, &sb) == 0) {
        const int n = snprintf(dir, cap, "%s", ckpt);
        if (n < 0 || (size_t)n >= cap)
            return sl_error_set(SL_ERR_INVALID_ARG, "checkpoint path %s is too long", ckpt);
        return SL_OK;
    }
    char name[256];
    bool found = false;
    SL_TRY(sl_ckpt_latest_read(ckpt, name, sizeof name, &found));
    if (!found) {
        return sl_error_set(SL_ERR_IO,
                            "%s is not a checkpoint: it holds neither %s nor a `latest` file; "
                            "pass a checkpoint_N directory written by shardlab train "
                            "--checkpointing_steps",
                            ckpt, SL_CKPT_MANIFEST);
    }
    return sl_hf_path_join(dir, cap, ckpt, name);
}

/* The model description from the manifest's "model" section; the reader then validates every
 * name, shape and range of the checkpoint against it. */
static sl_status sl_merge_model(const char *dir, sl_model_desc **out) {
    char path[4200];
    SL_TRY(sl_hf_path_join(path, sizeof path, dir, SL_CKPT_MANIFEST));
    sl_json *root = NULL;
    SL_TRY(sl_json_parse_file(path, &root));
    const sl_json *mo = sl_json_get(root, "model");
    sl_status st = mo ? sl_json_expect(mo, SL_JSON_OBJECT, "model")
                      : sl_error_set(SL_ERR_FORMAT, "%s: no \"model\" section", path);
    const sl_json *kind = st == SL_OK ? sl_json_get(mo, "kind") : NULL;
    if (st == SL_OK && (!kind || sl_json_type_of(kind) != SL_JSON_STRING ||
                        strcmp(sl_json_string(kind), "gpt2") != 0)) {
        st = sl_error_set(
            SL_ERR_MISMATCH, "%s: model.kind is %s%s%s; merge-weights exports GPT-2 models only",
            path, kind ? "\"" : "absent", kind ? sl_json_string(kind) : "", kind ? "\"" : "");
    }
    const char *keys[] = {"n_layer", "n_embd", "n_head", "block_size", "vocab_size"};
    int64_t vals[5] = {0};
    for (int i = 0; st == SL_OK && i < 5; i++) {
        const sl_json *v = sl_json_get(mo, keys[i]);
        if (!v || !sl_json_int64(v, &vals[i]) || vals[i] <= 0 || vals[i] > 1000000000) {
            st = sl_error_set(SL_ERR_FORMAT, "%s: model.%s: expected a positive integer%s", path,
                              keys[i], v ? "" : ", found nothing");
        }
    }
    sl_json_free(root);
    SL_TRY(st);
    const sl_gpt2_config cfg = {.n_layer = (int)vals[0],
                                .n_embd = (int)vals[1],
                                .n_head = (int)vals[2],
                                .block_size = (int)vals[3],
                                .vocab_size = (int)vals[4]};
    SL_TRY(sl_gpt2_config_validate(&cfg));
    return sl_model_desc_create_gpt2(&cfg, out);
}

static sl_status sl_merge_run(sl_merge_args *a) {
    char dir[4200];
    SL_TRY(sl_merge_resolve(a->ckpt, dir, sizeof dir));
    sl_model_desc *desc = NULL;
    SL_TRY(sl_merge_model(dir, &desc));
    sl_ckpt_reader *r = NULL;
    float **arrays = NULL;
    sl_status st = sl_ckpt_reader_open(dir, desc, &r);
    if (st == SL_OK && !(arrays = sl_param_arrays_alloc(desc)))
        st = sl_error_set(SL_ERR_OOM, "out of memory consolidating %s", dir);
    for (int p = 0; st == SL_OK && p < desc->n_params; p++) {
        st = sl_ckpt_reader_read(r, SL_CKPT_PARAMS, p, 0, desc->params[p].numel, arrays[p]);
    }
    if (st == SL_OK && a->save_16bit) {
        const sl_dtype md = sl_ckpt_reader_manifest(r)->master_dtype;
        a->save.dtype = md == SL_DTYPE_F16 ? SL_DTYPE_F16 : SL_DTYPE_BF16;
    }
    if (st == SL_OK) st = sl_hf_model_save(desc, arrays, &a->save, a->out);
    if (st == SL_OK) {
        const sl_ckpt_manifest *m = sl_ckpt_reader_manifest(r);
        printf("merge-weights: %s (step %lld, %s, %d ranks, %s) -> %s in %s\n", dir,
               (long long)m->step, sl_state_dict_type_name(m->type), m->world_size, m->strategy,
               a->out, sl_dtype_name(a->save.dtype));
    }
    sl_param_arrays_free(desc, arrays);
    sl_ckpt_reader_close(r);
    sl_model_desc_destroy(desc);
    return st;
}

int sl_cmd_merge_weights(int argc, char **argv) {
    if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        fputs(sl_merge_usage, stdout);
        return 0;
    }
    sl_merge_args a = {.save = sl_hf_save_options_default()};
    a.save.producer = "shardlab merge-weights";
    sl_status st = sl_merge_parse(argc, argv, &a);
    if (st == SL_OK) st = sl_merge_run(&a);
    return sl_cli_report(st);
}
