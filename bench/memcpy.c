/* memcpy bandwidth, one thread: the yardstick of the collectives' bus bandwidth (a collective on
 * one machine moves its bytes through shared memory, one copy per hop). Reported as bytes copied
 * per second (each byte read once and written once). */
#include <stdio.h>
#include <string.h>

#include "bench/bench_util.h"
#include "bench/benchmark_c/benchmark_c.h"
#include "bench/suites.h"

int sl_bench_message_sizes(bool quick, int64_t *sizes, int cap) {
    const int64_t last = quick ? (int64_t)1 << 20 : (int64_t)256 << 20;
    int n = 0;
    for (int64_t s = 1024; s <= last && n < cap; s *= 4)
        sizes[n++] = s;
    return n;
}

static void sl_bm_memcpy(sl_bench_state *st, void *user) {
    (void)user;
    const int64_t bytes = sl_bench_arg(st, 0);
    char *src = sl_bench_alloc((size_t)bytes), *dst = sl_bench_alloc((size_t)bytes);
    if (!src || !dst) {
        sl_bench_skip_with_error(st, sl_error_message());
    } else {
        memset(src, 1, (size_t)bytes); /* touch every page before timing */
        memset(dst, 2, (size_t)bytes);
        while (sl_bench_keep_running(st)) {
            memcpy(dst, src, (size_t)bytes);
            __asm__ volatile("" : : "r"(dst) : "memory"); /* the copy must happen */
        }
        const double moved = (double)bytes * (double)sl_bench_iterations(st);
        sl_bench_set_bytes_processed(st, (int64_t)moved);
        sl_bench_set_counter(st, "gbps", moved / 1e9, SL_BENCH_COUNTER_RATE);
        sl_bench_set_counter(st, "size", (double)bytes, SL_BENCH_COUNTER_PLAIN);
    }
    sl_bench_free(src);
    sl_bench_free(dst);
}

sl_status sl_bench_memcpy_register(const sl_bench_suite_opts *o) {
    int64_t sizes[SL_BENCH_MAX_SIZES];
    const int n = sl_bench_message_sizes(o->quick, sizes, SL_BENCH_MAX_SIZES);
    sl_bench *b;
    SL_TRY(sl_bench_register("memcpy", sl_bm_memcpy, NULL, &b));
    for (int i = 0; i < n; i++)
        SL_TRY(sl_bench_add_arg(b, sizes[i]));
    SL_TRY(sl_bench_set_arg_names(b, (const char *const[]){"bytes"}, 1));
    SL_TRY(sl_bench_use_real_time(b));
    sl_bench_set_time_unit(b, SL_BENCH_US);
    return SL_OK;
}
