/* The collective suite, run on every rank of a communicator (under `shardlab launch`), reported
 * the way nccl-tests reports: size (bytes of the whole buffer), count (its elements), type, time,
 * algbw = size / time, busbw = the bytes a ring sends per rank / time (sl_collective_bytes_sent,
 * DESIGN.md §6: algbw · 2(W-1)/W for all_reduce, · (W-1)/W for all_gather and reduce_scatter,
 * · 1 for broadcast) and #wrong.
 *
 * Timing: each iteration is one out-of-place collective, timed on each rank from the call to its
 * completion, back to back as nccl-tests issues them. time_us, algbw and busbw use the mean over
 * iterations and ranks (nccl-tests' default); the benchmark's own time (real_time, what `bench
 * compare` compares) is rank 0's mean, which the completion of each collective keeps within the
 * ranks' skew of it. One untimed collective warms the buffers and the transport first.
 *
 * Check: inputs are small integers in [-8, 8), so every partial sum of up to 16 ranks is exact
 * in fp32 and bf16 whatever the order; the expected result is exact and the check is equality
 * in both native and deterministic mode. After the timed loop the result buffer is filled with
 * NaN, the collective runs once more, and every element is compared; `wrong` is the number of
 * mismatches summed over ranks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "bench/benchmark_c/benchmark_c.h"
#include "bench/suites.h"

typedef struct sl_ccase {
    sl_coll_op op;
    sl_dtype dt;
    bool deterministic;
    int64_t bytes;
    int64_t iterations;
    char name[96];
} sl_ccase;

/* Integers in [-8, 8) summed over up to 16 ranks stay within bf16's exact integers (|x| <= 256) */
#define SL_CMAX_RANKS 16
#define SL_CCASES_MAX (10 * SL_BENCH_MAX_SIZES) /* 10 families */
static sl_ccase sl_ccases[SL_CCASES_MAX];
static int sl_n_ccases;
static sl_comm *sl_ccomm;
static bool sl_ccorrupt;

/* Rank r's input element at global index i: an integer in [-8, 8), different across ranks (3 is
 * odd, so r -> 3r mod 16 is one-to-one for r < 16). */
static float sl_cval(int r, int64_t i) {
    return (float)(((i * 7 + (int64_t)r * 3) & 15) - 8);
}

typedef struct sl_cbufs {
    void *send, *recv;
    int64_t count;      /* nccl-tests' count: elements of the whole buffer */
    int64_t send_count; /* elements this rank sends */
    int64_t recv_count; /* elements this rank receives */
} sl_cbufs;

/* Fills buf[0..n) with rank r's values at global indices first.. */
static void sl_cfill(void *buf, sl_dtype dt, int64_t n, int r, int64_t first) {
    float chunk[1024];
    for (int64_t i = 0; i < n; i += 1024) {
        const int64_t m = n - i < 1024 ? n - i : 1024;
        for (int64_t j = 0; j < m; j++)
            chunk[j] = sl_cval(r, first + i + j);
        sl_convert_from_f32((char *)buf + (size_t)i * sl_dtype_size(dt), dt, chunk, (size_t)m);
    }
}

/* The expected value of element i of this rank's result. */
static float sl_cexpected(const sl_ccase *c, int rank, int size, int64_t chunk, int64_t i) {
    switch (c->op) {
    case SL_COLL_ALL_GATHER: return sl_cval((int)(i / chunk), i);
    case SL_COLL_BROADCAST: return sl_cval(0, i);
    case SL_COLL_REDUCE_SCATTER:
    case SL_COLL_ALL_REDUCE: {
        const int64_t g = c->op == SL_COLL_REDUCE_SCATTER ? (int64_t)rank * chunk + i : i;
        float s = 0;
        for (int r = 0; r < size; r++)
            s += sl_cval(r, g);
        return s;
    }
    case SL_COLL_OP_COUNT: break;
    }
    return NAN;
}

static int64_t sl_ccount_wrong(const sl_ccase *c, const sl_cbufs *b, int rank, int size) {
    const int64_t chunk = b->count / size;
    float got[1024];
    int64_t wrong = 0;
    for (int64_t i = 0; i < b->recv_count; i += 1024) {
        const int64_t m = b->recv_count - i < 1024 ? b->recv_count - i : 1024;
        sl_convert_to_f32(got, (const char *)b->recv + (size_t)i * sl_dtype_size(c->dt), c->dt,
                          (size_t)m);
        for (int64_t j = 0; j < m; j++)
            wrong += !(got[j] == sl_cexpected(c, rank, size, chunk, i + j));
    }
    return wrong;
}

static sl_status sl_crun(const sl_ccase *c, sl_cbufs *b) {
    sl_comm_opts o = sl_comm_opts_default();
    o.deterministic = c->deterministic;
    const size_t n = (size_t)b->send_count;
    switch (c->op) {
    case SL_COLL_ALL_REDUCE:
        return sl_comm_all_reduce(sl_ccomm, b->send, b->recv, n, c->dt, &o, NULL);
    case SL_COLL_REDUCE_SCATTER:
        return sl_comm_reduce_scatter(sl_ccomm, b->send, b->recv, (size_t)b->recv_count, c->dt, &o,
                                      NULL);
    case SL_COLL_ALL_GATHER:
        return sl_comm_all_gather(sl_ccomm, b->send, b->recv, n, c->dt, &o, NULL);
    case SL_COLL_BROADCAST:
        return sl_comm_broadcast(sl_ccomm, b->recv, (size_t)b->recv_count, c->dt, 0, &o, NULL);
    case SL_COLL_OP_COUNT: break;
    }
    return sl_error_set(SL_ERR_INTERNAL, "%s: unknown collective %d", c->name, (int)c->op);
}

/* Buffers on every rank, or on none: a rank that could not allocate must not leave the others
 * waiting in a collective, so the ranks agree on the outcome first. */
static sl_status sl_calloc(const sl_ccase *c, sl_cbufs *b, int rank, int size) {
    const size_t es = sl_dtype_size(c->dt);
    b->count = c->bytes / (int64_t)es;
    if (c->op == SL_COLL_ALL_GATHER || c->op == SL_COLL_REDUCE_SCATTER)
        b->count -= b->count % size; /* nccl-tests rounds the count to a multiple of W as well */
    const int64_t chunk = b->count / size;
    b->send_count = c->op == SL_COLL_ALL_GATHER ? chunk : b->count;
    b->recv_count = c->op == SL_COLL_REDUCE_SCATTER ? chunk : b->count;
    if (c->op != SL_COLL_BROADCAST) b->send = sl_bench_alloc((size_t)b->send_count * es);
    b->recv = sl_bench_alloc((size_t)b->recv_count * es);
    int32_t ok = (c->op == SL_COLL_BROADCAST || b->send) && b->recv;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", ok ? "" : sl_error_message());
    int32_t all[SL_CMAX_RANKS] = {0};
    SL_TRY(sl_comm_all_gather(sl_ccomm, &ok, all, 1, SL_DTYPE_I32, NULL, NULL));
    for (int r = 0; r < size; r++) {
        if (!all[r]) {
            return sl_error_set(SL_ERR_OOM, "%s: rank %d could not allocate its buffers%s%s",
                                c->name, r, r == rank ? ": " : "", r == rank ? msg : "");
        }
    }
    if (c->op == SL_COLL_ALL_GATHER)
        sl_cfill(b->send, c->dt, chunk, rank, (int64_t)rank * chunk);
    else if (c->op != SL_COLL_BROADCAST)
        sl_cfill(b->send, c->dt, b->count, rank, 0);
    if (c->op == SL_COLL_BROADCAST && rank == 0)
        sl_cfill(b->recv, c->dt, b->count, 0, 0);
    else
        memset(b->recv, 0xff, (size_t)b->recv_count * es);
    return SL_OK;
}

/* Runs the check collective; *wrong = mismatching elements over all ranks. */
static sl_status sl_ccheck(const sl_ccase *c, sl_cbufs *b, int rank, int size, int64_t *wrong) {
    const size_t es = sl_dtype_size(c->dt);
    if (!(c->op == SL_COLL_BROADCAST && rank == 0))
        memset(b->recv, 0xff, (size_t)b->recv_count * es); /* NaN in fp32 and bf16 */
    SL_TRY(sl_crun(c, b));
    if (sl_ccorrupt && rank == 0) {
        const int64_t i = b->recv_count / 2;
        const float bad = sl_cexpected(c, rank, size, b->count / size, i) + 1.0f;
        sl_convert_from_f32((char *)b->recv + (size_t)i * es, c->dt, &bad, 1);
    }
    int64_t mine = sl_ccount_wrong(c, b, rank, size), all[SL_CMAX_RANKS];
    SL_TRY(sl_comm_all_gather(sl_ccomm, &mine, all, 1, SL_DTYPE_I64, NULL, NULL));
    *wrong = 0;
    for (int r = 0; r < size; r++)
        *wrong += all[r];
    return SL_OK;
}

static void sl_bm_collective(sl_bench_state *st, void *user) {
    const sl_ccase *c = user;
    const int rank = sl_comm_rank(sl_ccomm), size = sl_comm_size(sl_ccomm);
    sl_cbufs b = {0};
    sl_status s = sl_calloc(c, &b, rank, size);
    if (s == SL_OK) s = sl_crun(c, &b); /* warm-up */
    double local = 0;
    while (s == SL_OK && sl_bench_keep_running(st)) {
        const double t0 = sl_bench_now();
        s = sl_crun(c, &b);
        const double dt = sl_bench_now() - t0;
        sl_bench_set_iteration_time(st, dt);
        local += dt;
    }
    double times[SL_CMAX_RANKS];
    int64_t wrong = 0;
    if (s == SL_OK) s = sl_comm_all_gather(sl_ccomm, &local, times, 1, SL_DTYPE_F64, NULL, NULL);
    if (s == SL_OK) s = sl_ccheck(c, &b, rank, size, &wrong);
    if (s != SL_OK) {
        sl_bench_skip_with_error(st, sl_error_message());
    } else {
        double total = 0;
        for (int r = 0; r < size; r++)
            total += times[r];
        const double t = total / size / (double)sl_bench_iterations(st);
        const double bytes = (double)b.count * (double)sl_dtype_size(c->dt);
        const double sent = (double)sl_collective_bytes_sent(c->op, size, b.count, c->dt);
        sl_bench_set_counter(st, "size", bytes, SL_BENCH_COUNTER_PLAIN);
        sl_bench_set_counter(st, "count", (double)b.count, SL_BENCH_COUNTER_PLAIN);
        sl_bench_set_counter(st, "time_us", t * 1e6, SL_BENCH_COUNTER_PLAIN);
        sl_bench_set_counter(st, "algbw", bytes / t / 1e9, SL_BENCH_COUNTER_PLAIN);
        sl_bench_set_counter(st, "busbw", sent / t / 1e9, SL_BENCH_COUNTER_PLAIN);
        sl_bench_set_counter(st, "wrong", (double)wrong, SL_BENCH_COUNTER_PLAIN);
        sl_bench_set_counter(st, "world", (double)size, SL_BENCH_COUNTER_PLAIN);
        char label[96];
        snprintf(label, sizeof label, "type=%s redop=%s mode=%s W=%d", sl_dtype_name(c->dt),
                 c->op == SL_COLL_ALL_REDUCE || c->op == SL_COLL_REDUCE_SCATTER ? "sum" : "none",
                 c->deterministic ? "deterministic" : "native", size);
        sl_bench_set_label(st, label);
    }
    /* the comm keeps a record per collective; thousands of iterations need not pile up */
    sl_comm_reset_stats(sl_ccomm);
    sl_bench_free(b.send);
    sl_bench_free(b.recv);
}

static sl_status sl_ccase_add(sl_coll_op op, sl_dtype dt, bool det, int64_t bytes, bool quick,
                              int world) {
    if (sl_n_ccases == SL_CCASES_MAX)
        return sl_error_set(SL_ERR_INTERNAL, "collective benchmarks: more than %d cases",
                            SL_CCASES_MAX);
    sl_ccase *c = &sl_ccases[sl_n_ccases++];
    *c = (sl_ccase){.op = op, .dt = dt, .deterministic = det, .bytes = bytes};
    /* about 64 MiB moved per run (quick: 1 MiB), at least 5 (2) and at most 1000 (50)
     * iterations: enough for a stable mean without minutes at 256 MiB */
    const int64_t target = quick ? (int64_t)1 << 20 : (int64_t)64 << 20;
    const int64_t lo = quick ? 2 : 5, hi = quick ? 50 : 1000;
    const int64_t it = target / bytes;
    c->iterations = it < lo ? lo : it > hi ? hi : it;
    snprintf(c->name, sizeof c->name, "coll/%s/%s/%s/W:%d", sl_coll_op_name(op), sl_dtype_name(dt),
             det ? "deterministic" : "native", world);
    sl_bench *b;
    SL_TRY(sl_bench_register(c->name, sl_bm_collective, c, &b));
    SL_TRY(sl_bench_add_arg(b, bytes));
    SL_TRY(sl_bench_set_arg_names(b, (const char *const[]){"bytes"}, 1));
    SL_TRY(sl_bench_set_iterations(b, c->iterations));
    SL_TRY(sl_bench_use_manual_time(b));
    sl_bench_set_time_unit(b, SL_BENCH_US);
    return SL_OK;
}

sl_status sl_bench_collectives_register(sl_comm *comm, const sl_bench_suite_opts *o) {
    sl_ccomm = comm;
    sl_n_ccases = 0;
    const char *corrupt = getenv(SL_BENCH_CORRUPT_ENV);
    sl_ccorrupt = corrupt && *corrupt && strcmp(corrupt, "0") != 0;
    const int w = sl_comm_size(comm);
    if (w > SL_CMAX_RANKS) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "collective benchmarks: %d ranks; at most %d, where every partial sum "
                            "of the check's integer inputs is still exact in bf16",
                            w, SL_CMAX_RANKS);
    }
    int64_t sizes[SL_BENCH_MAX_SIZES];
    const int n = sl_bench_message_sizes(o->quick, sizes, SL_BENCH_MAX_SIZES);
    const struct {
        sl_coll_op op;
        sl_dtype dt;
        bool det;
    } families[] = {
        {SL_COLL_ALL_REDUCE, SL_DTYPE_F32, false},
        {SL_COLL_ALL_REDUCE, SL_DTYPE_F32, true},
        {SL_COLL_ALL_REDUCE, SL_DTYPE_BF16, false},
        {SL_COLL_ALL_REDUCE, SL_DTYPE_BF16, true},
        {SL_COLL_REDUCE_SCATTER, SL_DTYPE_F32, false},
        {SL_COLL_REDUCE_SCATTER, SL_DTYPE_F32, true},
        {SL_COLL_REDUCE_SCATTER, SL_DTYPE_BF16, false},
        {SL_COLL_REDUCE_SCATTER, SL_DTYPE_BF16, true},
        {SL_COLL_ALL_GATHER, SL_DTYPE_F32, false},
        {SL_COLL_BROADCAST, SL_DTYPE_F32, false},
    };
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        for (int i = 0; i < n; i++) {
            SL_TRY(sl_ccase_add(families[f].op, families[f].dt, families[f].det, sizes[i], o->quick,
                                w));
        }
    }
    return SL_OK;
}
