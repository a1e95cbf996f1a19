/* Helpers shared by the benchmark suites (bench_util.h). */
#include "bench/bench_util.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/benchmark_c/benchmark_c.h"
#include "shardlab/kernels.h"

void *sl_bench_alloc(size_t bytes) {
    void *p = NULL;
    const size_t rounded = (bytes + 63) / 64 * 64;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) {
        sl_error_set(SL_ERR_OOM, "benchmark: cannot allocate %zu bytes", bytes);
        return NULL;
    }
    return p;
}

void sl_bench_free(void *p) {
    free(p);
}

/* splitmix64's finaliser: a full-avalanche hash, so neighbouring i give unrelated values */
static uint64_t sl_bench_hash(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void sl_bench_fill(void *buf, sl_dtype dt, int64_t n, uint64_t seed, float scale) {
    float chunk[1024];
    const uint64_t s = sl_bench_hash(seed);
    for (int64_t i = 0; i < n; i += 1024) {
        const int64_t m = n - i < 1024 ? n - i : 1024;
        for (int64_t j = 0; j < m; j++) {
            const uint64_t h = sl_bench_hash(s ^ (uint64_t)(i + j));
            /* 24 random bits: a float uniform in [0, 1) with every value exact */
            chunk[j] = scale * (2.0f * (float)(h >> 40) * 0x1p-24f - 1.0f);
        }
        sl_convert_from_f32((char *)buf + (size_t)i * sl_dtype_size(dt), dt, chunk, (size_t)m);
    }
}

double sl_bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sl_bench_cpu_model(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon) continue;
        snprintf(buf, cap, "%s", colon + 2);
        buf[strcspn(buf, "\n")] = '\0';
        break;
    }
    fclose(f);
}

sl_status sl_bench_add_machine_context(bool quick) {
    char cpu[256], blas[256];
    sl_bench_cpu_model(cpu, sizeof cpu);
    snprintf(blas, sizeof blas, "%s (core %s)", openblas_get_config(), openblas_get_corename());
    SL_TRY(sl_bench_add_context("cpu_model", cpu));
    SL_TRY(sl_bench_add_context("kernel_isa", sl_cpu_isa_name(sl_cpu_isa_active())));
    SL_TRY(sl_bench_add_context("openblas", blas));
    return sl_bench_add_context("shardlab_suite_size", quick ? "quick" : "full");
}
