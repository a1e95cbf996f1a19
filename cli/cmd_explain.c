/* shardlab explain — compile a plan from flags and print it (DESIGN.md §3, §4.3). */
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/model_args.h"
#include "shardlab/config.h"
#include "shardlab/plan.h"

static const char *const sl_explain_usage =
    "usage: shardlab explain [plan flags] [model flags] [--json]\n"
    "Compiles the plan the flags describe and prints it: the dtype of every stage (the table of\n"
    "Accelerate's \"Moving between FSDP and DeepSpeed\"), each precision field with where its\n"
    "value comes from, each rank's element ranges of every buffer, the collectives of one\n"
    "optimizer step and the predicted peak bytes per memory category and rank.\n"
    "  --json                  one JSON object instead of text\n"
    "  --dtype_table           only the dtype table and the precision fields\n"
    "model flags:\n";

/* The command's own flags, for did-you-mean. */
static const char *const sl_explain_flags[] = {"json",   "dtype_table", "model",      "n_layer",
                                               "n_embd", "n_head",      "block_size", "vocab_size",
                                               "help",   NULL};

static sl_status sl_explain_run(sl_config *cfg, int argc, char **argv) {
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) return sl_error_set(SL_ERR_OOM, "out of memory parsing arguments");
    int n_rest = 0;
    bool json = false, dtypes_only = false;
    sl_model_args margs;
    sl_model_args_init(&margs);
    sl_status st = sl_config_parse_args(cfg, argc, argv, rest, &n_rest);
    for (int i = 0; st == SL_OK && i < n_rest; i++) {
        if (sl_model_args_parse(&margs, n_rest, rest, &i, &st)) continue;
        if (!strcmp(rest[i], "--json")) {
            json = true;
        } else if (!strcmp(rest[i], "--dtype_table")) {
            dtypes_only = true;
        } else {
            st = sl_config_unknown_arg("explain", rest[i], sl_explain_flags);
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
    if (st == SL_OK && json) sl_plan_explain_json(plan, model, stdout);
    if (st == SL_OK && !json && dtypes_only) sl_plan_explain_dtypes(plan, model, stdout);
    if (st == SL_OK && !json && !dtypes_only) sl_plan_explain_text(plan, model, stdout);
    if (st == SL_OK && (fflush(stdout) != 0 || ferror(stdout))) {
        st = sl_error_set(SL_ERR_IO, "explain: writing to standard output failed");
    }
    sl_plan_destroy(plan);
    sl_model_desc_destroy(model);
    return st;
}

int sl_cmd_explain(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sl_explain_usage, stdout);
            fputs(sl_model_args_usage, stdout);
            sl_cli_print_plan_keys(stdout);
            return 0;
        }
    }
    sl_config *cfg = NULL;
    sl_status st = sl_config_create(&cfg);
    if (st == SL_OK) st = sl_explain_run(cfg, argc, argv);
    sl_config_destroy(cfg);
    return sl_cli_report(st);
}
