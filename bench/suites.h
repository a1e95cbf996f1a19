/* The benchmark suites of `shardlab bench`, each registered through the C API of
 * bench/benchmark_c and run with sl_bench_run. A suite keeps the descriptions of its runs in
 * static storage: register a suite once per process (sl_bench_clear before registering again).
 *
 * Run names (what --filter matches and what `bench compare` pairs); Google Benchmark appends
 * "/iterations:N" to a run with a fixed iteration count and "/real_time" or "/manual_time" to
 * one timed by the wall clock or by the benchmark itself:
 *   peak/sgemm_f32/m:M/n:N/k:K           OpenBLAS sgemm on the kernels' threads: the peak
 *   matmul_fwd/DT/MODEL/LAYER ...        the kernels at GPT shapes (kernels.c lists them)
 *   memcpy/bytes:S                       one thread copying S bytes
 *   coll/OP/DT/MODE/W:n/bytes:S          a collective of S bytes (nccl-tests' size) on n ranks
 *   e2e/MODEL/STRATEGY/DT/W:n            optimizer steps of the engine on n ranks */
#ifndef SHARDLAB_BENCH_SUITES_H
#define SHARDLAB_BENCH_SUITES_H

#include <stdbool.h>
#include <stdint.h>

#include "shardlab/comm.h"
#include "shardlab/engine.h"
#include "shardlab/status.h"

typedef struct sl_bench_suite_opts {
    bool quick;  /* gpt-tiny shapes and messages up to 1 MiB: a smoke test, seconds not minutes */
    int threads; /* CPU threads of the kernels and of the sgemm peak; 0: all cores */
} sl_bench_suite_opts;

/* kernels.c: the machine's sgemm peak (GFLOP/s; every pct_peak and MFU is relative to it). */
sl_status sl_bench_peak_register(const sl_bench_suite_opts *o);
/* The best rate the peak benchmark measured in this process, or a short measurement now when it
 * did not run (a filter left it out); 0 when even that failed. */
double sl_bench_peak_gflops(const sl_bench_suite_opts *o);

/* kernels.c: matmul f32/bf16 (GFLOP/s and pct_peak), attention, LayerNorm, GELU, AdamW and casts
 * (GB/s) at the shapes of gpt-tiny, gpt-small and gpt2-124m. */
sl_status sl_bench_kernels_register(const sl_bench_suite_opts *o);

/* The message sizes of the memcpy and collective benchmarks, in bytes: 1 KiB to 256 MiB in
 * steps of 4 (quick: to 1 MiB). Returns the count. */
int sl_bench_message_sizes(bool quick, int64_t *sizes, int cap);
#define SL_BENCH_MAX_SIZES 16

/* memcpy.c: single-threaded memcpy bandwidth at every message size. */
sl_status sl_bench_memcpy_register(const sl_bench_suite_opts *o);

/* collectives.c: all_reduce and reduce_scatter (f32, bf16; native and deterministic order),
 * all_gather and broadcast (f32) at every message size, on every rank of comm, which must all
 * register the same way and run with the same filter and repetitions: the iteration counts are
 * fixed, so the ranks issue the same collectives. Counters per run, as nccl-tests reports them:
 * size, count, time_us (mean over iterations and ranks), algbw and busbw (GB/s, DESIGN.md §6),
 * wrong (elements of the result that differ from the expected values, summed over ranks). */
sl_status sl_bench_collectives_register(sl_comm *comm, const sl_bench_suite_opts *o);

/* e2e.c: optimizer steps of the engine on GPT-2 for every rank of the session (which must all
 * register the same way): at W = 1 one plan per model ("single"), at W > 1 each strategy —
 * FSDP1 NO_SHARD, FULL_SHARD, SHARD_GRAD_OP, FSDP2, ZeRO-1, 2, 3 (gpt2-124m: ZeRO-3; quick:
 * gpt-tiny, FULL_SHARD and ZeRO-3). peak_gflops is the machine's sgemm peak
 * (sl_bench_peak_gflops) for the mfu counter; 0 leaves mfu out. e2e.c documents the counters. */
sl_status sl_bench_e2e_register(sl_session *s, const sl_bench_suite_opts *o, double peak_gflops);

/* The environment variable that makes rank 0 corrupt one element of every checked result before
 * the check: a test hook proving that `wrong` counts real mismatches. */
#define SL_BENCH_CORRUPT_ENV "SHARDLAB_BENCH_CORRUPT_RESULTS"

#endif
