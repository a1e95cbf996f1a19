/* The `shardlab` commands (the table is in cli/main.c) and the helpers they share. A command
 * receives the arguments after its name and returns the process exit status: 0 success, 1 a
 * failure while working, 2 bad arguments or configuration (SL_ERR_CONFIG, SL_ERR_INVALID_ARG). */
#ifndef SHARDLAB_CLI_COMMANDS_H
#define SHARDLAB_CLI_COMMANDS_H

#include <stdio.h>

#include "shardlab/status.h"

typedef int (*sl_cli_fn)(int argc, char **argv);

typedef struct sl_cli_command {
    const char *name;
    sl_cli_fn run;
    const char *help; /* one line */
} sl_cli_command;

int sl_cmd_explain(int argc, char **argv);
int sl_cmd_ref(int argc, char **argv);
int sl_cmd_train(int argc, char **argv);
int sl_cmd_curves(int argc, char **argv);
int sl_cmd_config(int argc, char **argv);
int sl_cmd_convert_config(int argc, char **argv);
int sl_cmd_estimate_memory(int argc, char **argv);
int sl_cmd_env(int argc, char **argv);
int sl_cmd_launch(int argc, char **argv);
int sl_cmd_bench(int argc, char **argv);
int sl_cmd_conformance(int argc, char **argv);
int sl_cmd_merge_weights(int argc, char **argv);
int sl_cmd_compare(int argc, char **argv);
int sl_cmd_report(int argc, char **argv);

/* cli/report.c: prints "shardlab: error: <message>" for a failure; returns the exit status. */
int sl_cli_report(sl_status st);
/* cli/report.c: an SL_ERR_CONFIG error for an argument the command does not know, with a
 * did-you-mean over the plan keys and the command's usage text. */
sl_status sl_cli_unknown_flag(const char *arg, const char *usage);

/* cli/plan_help.c: one entry per plan key (flag, type, allowed values, default, help). */
void sl_cli_print_plan_keys(FILE *f);

#endif
