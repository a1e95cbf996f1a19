/* shardlab compare — two configurations trained side by side, and why they differ. */
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "conformance/compare.h"
#include "shardlab/config.h"

static const char *const sl_compare_usage =
    "usage: shardlab compare A B [--steps N] [--num_processes W] [--ablate] [--out DIR]\n"
    "                            [--model NAME] [--seed S] [--sampling {packed,documents}] "
    "[--ref]\n"
    "A and B are config files (Accelerate YAML/JSON, DeepSpeed JSON) or quoted plan flag sets\n"
    "(\"--use_fsdp --mixed_precision bf16\"). Trains both with the engine (shardlab launch ...\n"
    "shardlab train, deterministic reductions) from the same initial weights on the same data,\n"
    "then prints the two dtype tables side by side, the plan fields that differ, the loss curves\n"
    "with the divergence per step, the final parameter divergence, peak memory per category and\n"
    "tokens/s.\n"
    "  --steps N          optimizer steps (default 20)\n"
    "  --num_processes W  ranks for both sides (default: each config's own)\n"
    "  --ablate           attribute the final divergence to each differing plan field: A is\n"
    "                     rerun with one field at a time set to B's value (reference trainer)\n"
    "  --out DIR          write compare.txt, the runs (DIR/A, DIR/B) and gnuplot PNGs there\n"
    "  --model NAME       gpt-tiny (default), gpt-small, gpt2-124m\n"
    "  --seed S           initial weights and data order of both runs (default 1234)\n"
    "  --sampling MODE    packed windows (default) or documents (variable-length sequences)\n"
    "  --ref              train A and B with the reference trainer instead of the engine\n";

static const char *const sl_compare_flags[] = {"steps", "num_processes", "ablate", "out",  "model",
                                               "seed",  "sampling",      "ref",    "help", NULL};

static sl_status sl_compare_int(const char *flag, const char *v, long long min, long long *out) {
    char *end = NULL;
    const long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < min) {
        return sl_error_set(SL_ERR_CONFIG, "compare: %s expects an integer >= %lld, got '%s'", flag,
                            min, v);
    }
    *out = x;
    return SL_OK;
}

static sl_status sl_compare_parse(int argc, char **argv, sl_compare_opts *o) {
    int n_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const bool has_value = i + 1 < argc;
        long long x = 0;
        if (!strcmp(a, "--ablate")) {
            o->ablate = true;
        } else if (!strcmp(a, "--ref")) {
            o->ref_only = true;
        } else if (!strcmp(a, "--steps") && has_value) {
            SL_TRY(sl_compare_int(a, argv[++i], 1, &x));
            o->steps = (int)x;
        } else if (!strcmp(a, "--num_processes") && has_value) {
            SL_TRY(sl_compare_int(a, argv[++i], 1, &x));
            o->world = (int)x;
        } else if (!strcmp(a, "--seed") && has_value) {
            SL_TRY(sl_compare_int(a, argv[++i], 0, &x));
            o->seed = x;
        } else if (!strcmp(a, "--out") && has_value) {
            o->out_dir = argv[++i];
        } else if (!strcmp(a, "--model") && has_value) {
            o->model = argv[++i];
        } else if (!strcmp(a, "--sampling") && has_value) {
            const char *v = argv[++i];
            if (strcmp(v, "packed") && strcmp(v, "documents")) {
                return sl_error_set(SL_ERR_CONFIG,
                                    "compare: --sampling expects packed or documents, got '%s'", v);
            }
            o->sampling = !strcmp(v, "documents") ? SL_SAMPLE_DOCUMENTS : SL_SAMPLE_PACKED;
        } else if (a[0] == '-' && a[1] == '-' &&
                   (n_pos == 2 || (!strchr(a, ' ') && !sl_config_key_find(a + 2)))) {
            /* a side may be a single plan flag ("--use_fsdp"); anything else is a typo */
            return sl_config_unknown_arg("compare", a, sl_compare_flags);
        } else if (n_pos == 0) {
            o->a = a;
            n_pos++;
        } else if (n_pos == 1) {
            o->b = a;
            n_pos++;
        } else {
            return sl_error_set(SL_ERR_CONFIG,
                                "compare: unexpected argument '%s' (A and B are given already; "
                                "quote a flag set as one argument)\n%s",
                                a, sl_compare_usage);
        }
    }
    if (n_pos < 2) {
        return sl_error_set(SL_ERR_CONFIG,
                            "compare: expected two configurations A and B, got %d\n%s", n_pos,
                            sl_compare_usage);
    }
    return SL_OK;
}

int sl_cmd_compare(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sl_compare_usage, stdout);
            return 0;
        }
    }
    sl_compare_opts o = sl_compare_opts_default();
    sl_status st = sl_compare_parse(argc, argv, &o);
    if (st == SL_OK) st = sl_compare(&o, stdout);
    return sl_cli_report(st);
}
