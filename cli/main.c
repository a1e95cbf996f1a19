/* shardlab — the command dispatcher. Every command is one row of the table below. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "common/config_internal.h"
#include "conformance/runner.h"

static const sl_cli_command sl_commands[] = {
    {"explain", sl_cmd_explain,
     "print a plan: dtype table, precision and its provenance, layout, collectives, memory"},
    {"ref", sl_cmd_ref, "train with the reference implementation (one process, W logical ranks)"},
    {"train", sl_cmd_train,
     "train GPT-2 with the sharded engine (one process per rank, under launch)"},
    {"curves", sl_cmd_curves, "print the loss curves of several runs side by side"},
    {"config", sl_cmd_config, "write an Accelerate config file by answering questions"},
    {"convert-config", sl_cmd_convert_config,
     "convert a config between FSDP1, FSDP2 and DeepSpeed and list what still differs"},
    {"estimate-memory", sl_cmd_estimate_memory,
     "predicted bytes per rank and memory category for every strategy"},
    {"env", sl_cmd_env, "versions, CPU, threads and configuration for a bug report"},
    {"launch", sl_cmd_launch, "start W processes of a program through mpirun with the plan"},
    {"bench", sl_cmd_bench, "benchmarks (kernels, collectives) as Google Benchmark JSON; compare"},
    {"conformance", sl_cmd_conformance, "the conformance tiers T1-T5 and their matrix report"},
    {"merge-weights", sl_cmd_merge_weights,
     "consolidate a checkpoint into the Hugging Face layout"},
    {"compare", sl_cmd_compare, "two configs trained side by side; --ablate attributes the gap"},
    {"report", sl_cmd_report, "regenerate reports/: conformance, equivalence, dtypes, memory"},
};

#define SL_N_COMMANDS (sizeof sl_commands / sizeof sl_commands[0])

static void sl_usage(FILE *f) {
    fprintf(f, "usage: shardlab COMMAND [ARGS]   (shardlab COMMAND --help for its options)\n"
               "commands:\n");
    for (size_t i = 0; i < SL_N_COMMANDS; i++) {
        fprintf(f, "  %-16s %s\n", sl_commands[i].name, sl_commands[i].help);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        sl_usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        sl_usage(stdout);
        return 0;
    }
    /* the commands that run shardlab again (conformance, compare, report) run this very
     * binary, whatever its name */
    char self[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        sl_conf_set_shardlab_bin(self);
    }
    const char *nearest = NULL;
    int nearest_d = 3; /* suggest only within two edits */
    for (size_t i = 0; i < SL_N_COMMANDS; i++) {
        if (!strcmp(name, sl_commands[i].name)) return sl_commands[i].run(argc - 2, argv + 2);
        const int d = sl_config_edit_distance(name, sl_commands[i].name);
        if (d < nearest_d) {
            nearest_d = d;
            nearest = sl_commands[i].name;
        }
    }
    fprintf(stderr, "shardlab: error: unknown command '%s'", name);
    if (nearest) fprintf(stderr, "; did you mean '%s'?", nearest);
    fprintf(stderr, "\n");
    sl_usage(stderr);
    return 2;
}
