/* The subcommands of `shardlab bench` that read result files (cmd_bench_tools.c). */
#ifndef SHARDLAB_CLI_BENCH_CLI_H
#define SHARDLAB_CLI_BENCH_CLI_H

#include <stdbool.h>

#include "shardlab/status.h"

/* bench compare BASELINE.json NEW.json [--threshold 5%] [--all]: 0 no regression, 1 a
 * regression or a failed run, 2 bad arguments or unreadable files. */
int sl_bench_cmd_compare(int argc, char **argv);
/* bench report RESULTS.json [--dir DIR] [--compare FILE] */
int sl_bench_cmd_report(int argc, char **argv);

/* bench_peer.c: the PyTorch eager peer rows (bench/peer/gpt2_peer.py) of the e2e suite. */
typedef struct sl_bench_peer_opts {
    const char *models; /* "gpt-tiny,gpt-small" */
    int threads;        /* torch.set_num_threads: the engine's single-rank thread count */
    int repetitions;
    double peak_gflops; /* for the mfu counter; 0 leaves it out */
    const char *filter; /* on run names, or NULL */
    bool quick;
} sl_bench_peer_opts;

/* Writes the peer's Google Benchmark JSON to `out` and sets *ran; without a Python that imports
 * torch, or without the script, prints a notice and returns SL_OK with *ran false. */
sl_status sl_bench_peer_run(const sl_bench_peer_opts *o, const char *out, bool *ran);

#endif
