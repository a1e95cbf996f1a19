/* Human-readable views of a result file: the collectives as nccl-tests prints them, with the
 * ratio of bus bandwidth to the memcpy bandwidth measured in the same run, and the kernels. */
#ifndef SHARDLAB_BENCH_TABLES_H
#define SHARDLAB_BENCH_TABLES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/results.h"

/* The message size from which the busbw target applies: 16 MiB. */
#define SL_BENCH_TARGET_MIN_BYTES ((int64_t)16 << 20)
/* busbw must reach this fraction of memcpy bandwidth there. */
#define SL_BENCH_TARGET_MEMCPY_RATIO 0.5

/* One table per collective family (op, type, mode, W), one line per size: size, count, type,
 * redop, root, time (us), algbw, busbw (GB/s), #wrong and busbw / memcpy bandwidth at that size
 * (medians over repetitions; #wrong the largest). Returns the number of lines printed. */
int sl_bench_print_collectives(const sl_bench_results *r, FILE *f);

/* Per family: the smallest busbw / memcpy ratio over sizes >= 16 MiB against the 50% target.
 * Prints nothing when the file has no such sizes. */
void sl_bench_print_busbw_targets(const sl_bench_results *r, FILE *f, bool markdown);

/* The kernels: median time, GFLOP/s and % of the sgemm peak, or GB/s. */
void sl_bench_print_kernels(const sl_bench_results *r, FILE *f, bool markdown);

/* Training-step runs: the engine's (e2e/...) and the PyTorch eager peer's (peer/...). */
bool sl_bench_is_step(const char *name);

/* The training steps (e2e/... and peer/...): tokens/s, step and optimizer time, MFU, rank 0's
 * peak memory against the plan's prediction (blank for peer rows). Returns the number of runs
 * printed. */
int sl_bench_print_e2e(const sl_bench_results *r, FILE *f, bool markdown);

/* The end-to-end targets, measured: MFU of gpt-small at W = 1 against 60% of the sgemm
 * peak; peak memory against the prediction (within 5%, per category); ZeRO-3's state memory per
 * rank against 1/W. */
void sl_bench_print_e2e_targets(const sl_bench_results *r, FILE *f, bool markdown);

/* Per peer row (peer/torch_eager/MODEL/DT/W:1): the engine's single-rank fp32 tokens/s of the
 * same model against it, and whether the engine is ahead (the target). Nothing for a
 * model without both. sl_bench_print_e2e_targets includes these lines. */
void sl_bench_print_peer_targets(const sl_bench_results *r, FILE *f, bool markdown);

/* The memcpy bandwidth (GB/s, median) measured for `bytes`, or 0. */
double sl_bench_memcpy_gbps(const sl_bench_results *r, int64_t bytes);

/* The family of a collective run ("coll/all_reduce/fp32/native/W:2" for
 * "coll/all_reduce/fp32/native/W:2/bytes:1024") into buf; false when name is not a collective. */
bool sl_bench_coll_family(const char *name, char *buf, size_t cap);

#endif
