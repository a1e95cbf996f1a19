/* The subcommands of `shardlab bench` that read result files (cmd_bench_tools.c). */
#ifndef SHARDLAB_CLI_BENCH_CLI_H
#define SHARDLAB_CLI_BENCH_CLI_H

/* bench compare BASELINE.json NEW.json [--threshold 5%] [--all]: 0 no regression, 1 a
 * regression or a failed run, 2 bad arguments or unreadable files. */
int sl_bench_cmd_compare(int argc, char **argv);
/* bench report RESULTS.json [--dir DIR] [--compare FILE] */
int sl_bench_cmd_report(int argc, char **argv);

#endif
