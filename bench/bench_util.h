/* Small helpers shared by the benchmark suites. */
#ifndef SHARDLAB_BENCH_UTIL_H
#define SHARDLAB_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shardlab/dtype.h"
#include "shardlab/status.h"

/* 64-byte aligned memory, or NULL with an SL_ERR_OOM message naming the size. */
void *sl_bench_alloc(size_t bytes);
void sl_bench_free(void *p);

/* buf[i] (storage dtype dt) = a value uniform in [-scale, scale) from a counter-based hash of
 * (seed, i): the same on every machine and thread count. */
void sl_bench_fill(void *buf, sl_dtype dt, int64_t n, uint64_t seed, float scale);

/* Monotonic seconds. */
double sl_bench_now(void);

/* Adds what identifies the machine and the build to the results' context: cpu_model (from
 * /proc/cpuinfo), kernel ISA path, OpenBLAS configuration and suite size (quick or full). */
sl_status sl_bench_add_machine_context(bool quick);

#endif
