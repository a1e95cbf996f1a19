/* The program test_comm_mpi starts under `shardlab launch` (the test executable re-runs itself
 * with "--worker SCENARIO ..."). Each scenario checks what one rank sees and exits 0 when it
 * holds, printing the failures (with the seed) otherwise. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shardlab/config_env.h"
#include "shardlab/model.h"
#include "shardlab/plan.h"
#include "tests/comm/comm_harness.h"

static int sl_w_failures;
static int sl_w_rank;

/* One line per failure (ranks share stderr), the first 20 of them. */
#define SL_W_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond) && sl_w_failures++ < 20) {                                                     \
            char msg_[1024];                                                                       \
            snprintf(msg_, sizeof msg_, __VA_ARGS__);                                              \
            fprintf(stderr, "rank %d: check failed: %s\n", sl_w_rank, msg_);                       \
        }                                                                                          \
    } while (0)

#define SL_W_OK(expr)                                                                              \
    do {                                                                                           \
        sl_status st_ = (expr);                                                                    \
        if (st_ != SL_OK) {                                                                        \
            fprintf(stderr, "rank %d: %s failed: %s\n", sl_w_rank, #expr, sl_error_message());     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static uint32_t sl_w_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

typedef struct sl_w_case {
    int id;
    int op;
    sl_dtype dt;
    size_t count;
    bool blocking, in_place;
    int root;
    sl_comm_opts opts;
    char *send, *recv;
    sl_comm_request *req;
} sl_w_case;

static sl_comm *sl_w_world(void) {
    sl_comm *c = NULL;
    SL_W_OK(sl_comm_create_from_env(&c));
    sl_w_rank = sl_comm_rank(c);
    if (strcmp(sl_comm_backend_name(c), "mpi") != 0) {
        fprintf(stderr, "rank %d: expected the mpi backend under launch, got %s\n", sl_w_rank,
                sl_comm_backend_name(c));
        exit(1);
    }
    return c;
}

/* Unit roundoff of dt, and the spacing of its smallest subnormals (an absolute error floor). */
static void sl_w_roundoff(sl_dtype dt, double *u, double *tiny) {
    *u = dt == SL_DTYPE_F32 ? 0x1p-24 : dt == SL_DTYPE_BF16 ? 0x1p-9 : 0x1p-11;
    *tiny = dt == SL_DTYPE_F16 ? 0x1p-24 : 0.0;
}

static void sl_w_issue(sl_comm *c, sl_w_case *k, uint64_t seed) {
    const int n = sl_comm_size(c), r = sl_comm_rank(c);
    const size_t es = sl_dtype_size(k->dt);
    const size_t in_n = k->op == SL_COLL_REDUCE_SCATTER ? (size_t)n * k->count : k->count;
    const size_t out_n = k->op == SL_COLL_ALL_GATHER ? (size_t)n * k->count : k->count;
    k->send = malloc(in_n * es + 1);
    k->recv = malloc(out_n * es + 1);
    if (!k->send || !k->recv) exit(1);
    sl_comm_request **req = k->blocking ? NULL : &k->req;
    switch (k->op) {
    case SL_COLL_ALL_GATHER: {
        char *own = k->in_place ? k->recv + (size_t)r * k->count * es : k->send;
        sl_test_fill(own, k->count, k->dt, seed, r, k->id, 0);
        SL_W_OK(sl_comm_all_gather(c, own, k->recv, k->count, k->dt, &k->opts, req));
        break;
    }
    case SL_COLL_BROADCAST:
        sl_test_fill(k->recv, k->count, k->dt, seed, r, k->id, 0);
        SL_W_OK(sl_comm_broadcast(c, k->recv, k->count, k->dt, k->root, &k->opts, req));
        break;
    case SL_COLL_REDUCE_SCATTER:
        sl_test_fill(k->send, in_n, k->dt, seed, r, k->id, 0);
        SL_W_OK(sl_comm_reduce_scatter(c, k->send, k->recv, k->count, k->dt, &k->opts, req));
        break;
    default: {
        char *src = k->in_place ? k->recv : k->send;
        sl_test_fill(src, k->count, k->dt, seed, r, k->id, 0);
        SL_W_OK(sl_comm_all_reduce(c, src, k->recv, k->count, k->dt, &k->opts, req));
        break;
    }
    }
}

/* Every element of k's result against the reference: bit-equal for data movement and for
 * deterministic reductions. A native reduction adds in another order; for any order the rounded
 * sum of n terms is within (n-1)·u·Σ|x| of the exact one (u: unit roundoff of dt; the pre divide
 * only shrinks terms), so two orders differ by at most 2(n-1)·u·Σ|x|; the post divide by p >= 1
 * (or multiply by 1/W <= 1) adds one rounding of each, <= u·|result|; f16 subnormals add an
 * absolute 2^-24 per rounding. Hence tol = 2n·u·Σ|x| + 2u·|ref| + 2n·2^-24 (f16). */
static void sl_w_verify(sl_comm *c, const sl_w_case *k, uint64_t seed) {
    const int n = sl_comm_size(c), r = sl_comm_rank(c);
    const size_t out_n = k->op == SL_COLL_ALL_GATHER ? (size_t)n * k->count : k->count;
    double u, tiny;
    sl_w_roundoff(k->dt, &u, &tiny);
    for (size_t i = 0; i < out_n; i++) {
        const float got = sl_test_get(k->recv, i, k->dt);
        float want;
        double tol = 0.0;
        if (k->op == SL_COLL_ALL_GATHER) {
            want = sl_test_input(seed, (int)(i / k->count), k->id, i % k->count, k->dt);
        } else if (k->op == SL_COLL_BROADCAST) {
            want = sl_test_input(seed, k->root, k->id, i, k->dt);
        } else {
            const size_t idx = k->op == SL_COLL_REDUCE_SCATTER ? (size_t)r * k->count + i : i;
            float x[16];
            double sum_abs = 0.0;
            for (int q = 0; q < n; q++) {
                x[q] = sl_test_input(seed, q, k->id, idx, k->dt);
                sum_abs += fabs((double)x[q]);
            }
            want = sl_test_reduce_ref(x, n, k->dt, &k->opts);
            if (!k->opts.deterministic) {
                tol = 2.0 * n * u * sum_abs + 2.0 * u * fabs((double)want) + 2.0 * n * tiny;
            }
        }
        if (tol == 0.0) {
            SL_W_CHECK(sl_w_bits(got) == sl_w_bits(want),
                       "seed %llu case %d (%s %s count %zu%s%s divide %d/%d) element %zu: want "
                       "%a got %a",
                       (unsigned long long)seed, k->id, sl_coll_op_name((sl_coll_op)k->op),
                       sl_dtype_name(k->dt), k->count, k->blocking ? " blocking" : "",
                       k->opts.deterministic ? " deterministic" : "", (int)k->opts.divide,
                       k->opts.divide_world, i, want, got);
        } else {
            SL_W_CHECK(fabs((double)got - (double)want) <= tol,
                       "seed %llu case %d (%s %s count %zu native) element %zu: want %a got %a, "
                       "tolerance %g",
                       (unsigned long long)seed, k->id, sl_coll_op_name((sl_coll_op)k->op),
                       sl_dtype_name(k->dt), k->count, i, want, got, tol);
        }
    }
}

/* The record of k, computed here from observe.h's definitions. */
static void sl_w_check_record(const sl_collective_record *rec, const sl_w_case *k, int n) {
    const int64_t es = (int64_t)sl_dtype_size(k->dt);
    const bool whole = k->op == SL_COLL_ALL_GATHER || k->op == SL_COLL_REDUCE_SCATTER;
    const int64_t elements = whole ? (int64_t)n * (int64_t)k->count : (int64_t)k->count;
    int64_t bytes = elements * es; /* broadcast: the root's */
    if (whole) bytes = (n - 1) * elements * es / n;
    if (k->op == SL_COLL_ALL_REDUCE) bytes = 2 * (n - 1) * elements * es / n;
    SL_W_CHECK(rec->op == (sl_coll_op)k->op && rec->dtype == k->dt && rec->elements == elements &&
                   rec->bytes_sent_per_rank == bytes && rec->group == SL_GROUP_WORLD &&
                   rec->group_size == n && rec->unit == k->id &&
                   rec->micro_step == k->opts.micro_step && rec->phase == k->opts.phase,
               "record of case %d: op %d dtype %d elements %lld bytes %lld unit %d; want op %d "
               "dtype %d elements %lld bytes %lld unit %d",
               k->id, (int)rec->op, (int)rec->dtype, (long long)rec->elements,
               (long long)rec->bytes_sent_per_rank, rec->unit, k->op, (int)k->dt,
               (long long)elements, (long long)bytes, k->id);
}

/* The cases of one (dtype, blocking) round: gathers, broadcasts, and reductions in both modes
 * under every divide rule, with counts that do not divide by n. */
static int sl_w_cases(sl_w_case *out, int first_id, sl_dtype dt, bool blocking, int n) {
    int m = 0;
    const size_t ag_counts[] = {1, 5, 300}, rs_counts[] = {1, 7, 300};
    const size_t ar_counts[] = {1, (size_t)(n > 1 ? n - 1 : 2), 7, 1001};
    for (int ip = 0; ip < 2; ip++) {
        for (size_t j = 0; j < 3; j++)
            out[m++] = (sl_w_case){.op = SL_COLL_ALL_GATHER, .count = ag_counts[j], .in_place = ip};
    }
    out[m++] = (sl_w_case){.op = SL_COLL_BROADCAST, .count = 1};
    out[m++] = (sl_w_case){.op = SL_COLL_BROADCAST, .count = 300};
    for (int op = 0; op < 2; op++) {
        for (int det = 0; det < 2; det++) {
            for (int rule = -1; rule < 4; rule++) {
                for (size_t j = 0; j < (op ? 4u : 3u); j++) {
                    sl_w_case k = {.op = op ? SL_COLL_ALL_REDUCE : SL_COLL_REDUCE_SCATTER,
                                   .count = op ? ar_counts[j] : rs_counts[j],
                                   .in_place = op && (j % 2 == 1)};
                    k.opts = sl_comm_opts_default();
                    k.opts.deterministic = det;
                    k.opts.divide_world = rule < 0 ? 0 : n;
                    k.opts.divide = rule < 0 ? SL_DIVIDE_AVG : (sl_grad_divide)rule;
                    out[m++] = k;
                }
            }
        }
    }
    for (int i = 0; i < m; i++) {
        sl_w_case *k = &out[i];
        if (k->op == SL_COLL_ALL_GATHER || k->op == SL_COLL_BROADCAST)
            k->opts = sl_comm_opts_default();
        k->id = first_id + i;
        k->dt = dt;
        k->blocking = blocking;
        k->root = k->id % n;
        k->opts.phase = k->op == SL_COLL_ALL_GATHER ? SL_PHASE_FORWARD : SL_PHASE_BACKWARD;
        k->opts.micro_step = k->id % 3;
        k->opts.unit = k->id;
    }
    return m;
}

/* Non-blocking requests are finished in an order that differs between ranks (even ranks last to
 * first, odd ranks first to last, some by polling sl_comm_test): completion order must not
 * matter. */
static void sl_w_finish(sl_w_case *ks, int m, int rank) {
    for (int j = 0; j < m; j++) {
        sl_w_case *k = &ks[rank % 2 == 0 ? m - 1 - j : j];
        if (!k->req) continue;
        if (j % 3 == 0) {
            bool done = false;
            while (!done)
                SL_W_OK(sl_comm_test(&k->req, &done));
        } else {
            SL_W_OK(sl_comm_wait(&k->req));
        }
        SL_W_CHECK(k->req == NULL, "case %d: request not released", k->id);
    }
}

static int sl_w_collectives(uint64_t seed) {
    sl_comm *c = sl_w_world();
    const int n = sl_comm_size(c);
    const sl_dtype dts[] = {SL_DTYPE_F32, SL_DTYPE_BF16, SL_DTYPE_F16};
    enum { MAX_CASES = 96 };
    sl_w_case *all = calloc(6 * MAX_CASES, sizeof *all);
    if (!all) return 1;
    int total = 0;
    for (int d = 0; d < 3; d++) {
        for (int b = 1; b >= 0; b--) {
            sl_w_case *ks = all + total;
            const int m = sl_w_cases(ks, total, dts[d], b, n);
            for (int i = 0; i < m; i++)
                sl_w_issue(c, &ks[i], seed);
            sl_w_finish(ks, m, sl_comm_rank(c));
            for (int i = 0; i < m; i++)
                sl_w_verify(c, &ks[i], seed);
            total += m;
        }
    }
    int n_rec = 0;
    const sl_collective_record *rec = sl_comm_records(c, &n_rec);
    SL_W_CHECK(n_rec == total, "%d records for %d collectives", n_rec, total);
    sl_comm_totals t;
    sl_comm_get_totals(c, &t);
    int64_t calls = 0, bytes = 0;
    for (int i = 0; i < total && i < n_rec; i++) {
        sl_w_check_record(&rec[i], &all[i], n);
        calls++;
        bytes += rec[i].bytes_sent_per_rank;
    }
    int64_t t_calls = 0, t_bytes = 0;
    for (int op = 0; op < SL_COLL_OP_COUNT; op++) {
        t_calls += t.calls[op];
        t_bytes += t.bytes_sent[op];
    }
    SL_W_CHECK(t_calls == calls && t_bytes == bytes,
               "totals %lld calls %lld bytes; records say "
               "%lld and %lld",
               (long long)t_calls, (long long)t_bytes, (long long)calls, (long long)bytes);
    SL_W_CHECK(t.scratch_bytes_peak > 0, "no staging was counted");
    for (int i = 0; i < total; i++) {
        free(all[i].send);
        free(all[i].recv);
    }
    free(all);
    sl_comm_destroy(c);
    if (sl_w_failures)
        fprintf(stderr, "rank %d: %d failures (seed %llu)\n", sl_w_rank, sl_w_failures,
                (unsigned long long)seed);
    return sl_w_failures ? 1 : 0;
}

/* Hybrid sharding at W = 4, G = 2: reduce-scatter in the shard group with the pre divide, then
 * all-reduce across replicas with the post divide, deterministic: bit-equal to the reference's
 * group-then-replica order. */
static int sl_w_hybrid(uint64_t seed) {
    sl_comm *c = sl_w_world(), *shard = NULL, *replica = NULL;
    const int n = sl_comm_size(c), g = 2;
    SL_W_OK(sl_comm_split_hybrid(c, g, &shard, &replica));
    SL_W_CHECK(sl_comm_size(shard) == g && sl_comm_rank(shard) == sl_w_rank % g, "shard group");
    SL_W_CHECK(sl_comm_size(replica) == n / g && sl_comm_rank(replica) == sl_w_rank / g,
               "replica group");
    const sl_dtype dts[] = {SL_DTYPE_F32, SL_DTYPE_BF16, SL_DTYPE_F16};
    const size_t cnt = 5;
    int id = 0;
    for (int d = 0; d < 3; d++) {
        for (int rule = 0; rule < 4; rule++, id++) {
            const sl_dtype dt = dts[d];
            sl_comm_opts full = sl_comm_opts_default();
            full.deterministic = true;
            full.divide_world = n;
            full.divide = (sl_grad_divide)rule;
            sl_comm_opts rs = full, ar = full;
            rs.skip_post_divide = true;
            ar.skip_pre_divide = true;
            const size_t es = sl_dtype_size(dt);
            char *src = malloc((size_t)g * cnt * es), *dst = malloc(cnt * es);
            if (!src || !dst) return 1;
            sl_test_fill(src, (size_t)g * cnt, dt, seed, sl_w_rank, id, 0);
            SL_W_OK(sl_comm_reduce_scatter(shard, src, dst, cnt, dt, &rs, NULL));
            SL_W_OK(sl_comm_all_reduce(replica, dst, dst, cnt, dt, &ar, NULL));
            for (size_t i = 0; i < cnt; i++) {
                float x[8];
                for (int q = 0; q < n; q++) {
                    x[q] = sl_test_input(seed, q, id, (size_t)(sl_w_rank % g) * cnt + i, dt);
                }
                const float want = sl_test_reduce_hybrid_ref(x, n, g, dt, &full);
                const float got = sl_test_get(dst, i, dt);
                SL_W_CHECK(sl_w_bits(got) == sl_w_bits(want),
                           "seed %llu hybrid %s rule %d element %zu: want %a got %a",
                           (unsigned long long)seed, sl_dtype_name(dt), rule, i, want, got);
            }
            free(src);
            free(dst);
        }
    }
    int n_rec = 0;
    const sl_collective_record *rec = sl_comm_records(shard, &n_rec);
    SL_W_CHECK(n_rec == id && rec[0].group == SL_GROUP_SHARD && rec[0].group_size == g &&
                   rec[0].op == SL_COLL_REDUCE_SCATTER,
               "shard records");
    rec = sl_comm_records(replica, &n_rec);
    SL_W_CHECK(n_rec == id && rec[0].group == SL_GROUP_REPLICA && rec[0].group_size == n / g &&
                   rec[0].op == SL_COLL_ALL_REDUCE,
               "replica records");
    sl_comm_destroy(shard);
    sl_comm_destroy(replica);
    sl_comm_destroy(c);
    return sl_w_failures ? 1 : 0;
}

/* Debug mode: a matched collective passes, then rank 0 calls all_reduce while the others call
 * all_gather. Every rank must get SL_ERR_MISMATCH (exit 3) rather than hang. */
static int sl_w_mismatch(void) {
    sl_comm *c = sl_w_world();
    float a[16] = {0}, b[64] = {0};
    SL_W_OK(sl_comm_all_reduce(c, a, b, 16, SL_DTYPE_F32, NULL, NULL));
    sl_status st;
    if (sl_w_rank == 0) {
        st = sl_comm_all_reduce(c, a, b, 16, SL_DTYPE_BF16, NULL, NULL);
    } else {
        st = sl_comm_all_gather(c, a, b, 8, SL_DTYPE_F32, NULL, NULL);
    }
    if (st != SL_ERR_MISMATCH) {
        fprintf(stderr, "rank %d: expected SL_ERR_MISMATCH, got %s\n", sl_w_rank,
                sl_status_name(st));
        return 1;
    }
    fprintf(stderr, "rank %d: %s\n", sl_w_rank, sl_error_message());
    sl_comm_destroy(c);
    return 3;
}

/* Rank 1 kills itself after a barrier; the others wait in an all-reduce it never joins. */
static int sl_w_sigkill(void) {
    sl_comm *c = sl_w_world();
    SL_W_OK(sl_comm_barrier(c, NULL));
    if (sl_w_rank == 1) raise(SIGKILL);
    float a[4] = {0};
    SL_W_OK(sl_comm_all_reduce(c, a, a, 4, SL_DTYPE_F32, NULL, NULL));
    fprintf(stderr, "rank %d: the all_reduce completed without rank 1\n", sl_w_rank);
    return 1;
}

/* Rank 0 enters an all-reduce the others never call; its watchdog must end the job. */
static int sl_w_watchdog(void) {
    sl_comm *c = sl_w_world();
    SL_W_OK(sl_comm_barrier(c, NULL));
    if (sl_w_rank == 0) {
        float a[4] = {0};
        SL_W_OK(sl_comm_all_reduce(c, a, a, 4, SL_DTYPE_F32, NULL, NULL));
        fprintf(stderr, "rank 0: the all_reduce completed alone\n");
        return 1;
    }
    const struct timespec nap = {120, 0};
    nanosleep(&nap, NULL);
    return 1;
}

/* The plan the launcher resolved, as this rank reads it from its environment. */
static int sl_w_env(void) {
    sl_comm *c = sl_w_world();
    sl_config *cfg = NULL;
    SL_W_OK(sl_config_create(&cfg));
    SL_W_OK(sl_config_load_env(cfg, NULL));
    sl_gpt2_config g;
    SL_W_OK(sl_gpt2_config_from_name("gpt-tiny", &g));
    sl_model_desc *model = NULL;
    SL_W_OK(sl_model_desc_create_gpt2(&g, &model));
    sl_plan *plan = NULL;
    SL_W_OK(sl_plan_compile(cfg, model, &plan));
    const char *file = sl_config_get(cfg, "deepspeed_config_file", NULL);
    printf("rank %d of %d: dialect=%s strategy=%s world=%d ds_config=%s\n", sl_w_rank,
           sl_comm_size(c), sl_dialect_name(plan->dialect), sl_strategy_name(plan->strategy),
           plan->world_size, file ? file : "-");
    const int ok = plan->world_size == sl_comm_size(c);
    sl_plan_destroy(plan);
    sl_model_desc_destroy(model);
    sl_config_destroy(cfg);
    sl_comm_destroy(c);
    return ok ? 0 : 1;
}

int sl_test_comm_worker(int argc, char **argv) {
    const char *scenario = argc > 0 ? argv[0] : "";
    const uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    if (!strcmp(scenario, "collectives")) return sl_w_collectives(seed);
    if (!strcmp(scenario, "hybrid")) return sl_w_hybrid(seed);
    if (!strcmp(scenario, "mismatch")) return sl_w_mismatch();
    if (!strcmp(scenario, "sigkill")) return sl_w_sigkill();
    if (!strcmp(scenario, "watchdog")) return sl_w_watchdog();
    if (!strcmp(scenario, "env")) return sl_w_env();
    fprintf(stderr, "unknown worker scenario '%s'\n", scenario);
    return 2;
}
