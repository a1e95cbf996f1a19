/* The parts of `shardlab report` besides the equivalence report: the dtype table of every example
 * config (dtype-tables.md, as `explain --dtype_table` prints them) and the predicted memory per
 * category per strategy against W (memory.md with one plot per strategy). */
#ifndef SHARDLAB_CONFORMANCE_COMPARE_REPORT_H
#define SHARDLAB_CONFORMANCE_COMPARE_REPORT_H

#include <stdbool.h>

#include "shardlab/status.h"

/* Every *.yaml, *.yml and *.json in configs_dir, in name order, compiled for gpt-tiny (a bare
 * DeepSpeed JSON with --use_deepspeed, as compare does); a config that does not compile gets its
 * error in the file instead of a table. Writes out_dir/dtype-tables.md. */
sl_status sl_report_dtype_tables(const char *configs_dir, const char *out_dir);

/* Writes out_dir/memory.md and out_dir/memory-STRATEGY.{dat,gp} (and .png when `plots` and
 * gnuplot is installed). */
sl_status sl_report_memory(const char *out_dir, bool plots);

#endif
