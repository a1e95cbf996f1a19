/* Thread count of the CPU kernels. One OpenMP pool does all the parallel work: matrix products
 * are split into output blocks, one single-threaded OpenBLAS sgemm per thread, and attention runs
 * (batch, head) pairs in parallel, each with its own small sgemm calls — which needs OpenBLAS
 * single-threaded inside OpenMP threads anyway. On a single large product the split is as fast
 * as OpenBLAS's own threads (bench/NOTES.md), and there is no second pool of threads competing
 * with OpenMP's between kernels. A rank therefore uses exactly n threads. */
#include "impl/cpu/cpu.h"

#include <cblas.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>

/* 0: not set yet, use the default. */
static _Atomic int sl_cpu_nthreads = 0;

int sl_kernels_default_threads(int ranks_per_node) {
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && *env) {
        char *end = NULL;
        const long n = strtol(env, &end, 10);
        if (end && *end == '\0' && n > 0 && n <= 4096) return (int)n;
    }
    const int cores = omp_get_num_procs();
    const int ranks = ranks_per_node > 0 ? ranks_per_node : 1;
    return cores / ranks > 0 ? cores / ranks : 1;
}

void sl_kernels_set_threads(int n) {
    atomic_store(&sl_cpu_nthreads, n > 0 ? n : sl_kernels_default_threads(1));
    openblas_set_num_threads(1);
}

int sl_kernels_threads(void) {
    int n = atomic_load(&sl_cpu_nthreads);
    if (n == 0) {
        sl_kernels_set_threads(0);
        n = atomic_load(&sl_cpu_nthreads);
    }
    return n;
}

int sl_cpu_threads(void) {
    return sl_kernels_threads();
}
