/* SHARDLAB_COMM_DEBUG: before each collective the ranks all-gather its signature and compare.
 * Ranks that disagree would otherwise hang in mismatched MPI calls or silently combine the wrong
 * buffers; here every rank sees every signature, so all fail together with the same message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/plan_internal.h"
#include "impl/comm/comm_internal.h"

enum {
    SL_SIG_OP,
    SL_SIG_DTYPE,
    SL_SIG_COUNT,
    SL_SIG_SEQ,
    SL_SIG_ROOT,
    SL_SIG_DETERMINISTIC,
    SL_SIG_DIVIDE_WORLD,
    SL_SIG_DIVIDE, /* rule | skip_pre << 4 | skip_post << 5 */
    SL_SIG_WORLD_RANK,
    SL_SIG_LEN
};

static void sl_sig_fill(int64_t *s, int op, sl_dtype dt, size_t count, int root,
                        const sl_comm_opts *o, uint64_t seq, int world_rank) {
    memset(s, 0, SL_SIG_LEN * sizeof *s);
    s[SL_SIG_OP] = op;
    s[SL_SIG_DTYPE] = dt;
    s[SL_SIG_COUNT] = (int64_t)count;
    s[SL_SIG_SEQ] = (int64_t)seq;
    s[SL_SIG_ROOT] = root;
    s[SL_SIG_WORLD_RANK] = world_rank;
    if (op == SL_COLL_REDUCE_SCATTER || op == SL_COLL_ALL_REDUCE) {
        s[SL_SIG_DETERMINISTIC] = o->deterministic;
        s[SL_SIG_DIVIDE_WORLD] = o->divide_world;
        if (o->divide_world > 0) {
            s[SL_SIG_DIVIDE] = (int64_t)o->divide | (int64_t)o->skip_pre_divide << 4 |
                               (int64_t)o->skip_post_divide << 5;
        }
    }
}

/* "all_reduce #4 (bf16, 1024 elements, deterministic, divide PRE by W = 4)" */
static void sl_sig_describe(const int64_t *s, char *buf, size_t cap) {
    const int op = (int)s[SL_SIG_OP];
    int n = snprintf(buf, cap, "%s #%lld (%s, %lld elements", sl_comm_op_name(op),
                     (long long)s[SL_SIG_SEQ], sl_dtype_name((sl_dtype)s[SL_SIG_DTYPE]),
                     (long long)s[SL_SIG_COUNT]);
    if (op == SL_COLL_BROADCAST && n > 0 && (size_t)n < cap) {
        n += snprintf(buf + n, cap - (size_t)n, ", root %lld", (long long)s[SL_SIG_ROOT]);
    }
    if ((op == SL_COLL_REDUCE_SCATTER || op == SL_COLL_ALL_REDUCE) && n > 0 && (size_t)n < cap) {
        n += snprintf(buf + n, cap - (size_t)n, ", %s",
                      s[SL_SIG_DETERMINISTIC] ? "deterministic" : "native");
        if (s[SL_SIG_DIVIDE_WORLD] > 0 && n > 0 && (size_t)n < cap) {
            const int64_t d = s[SL_SIG_DIVIDE];
            n += snprintf(buf + n, cap - (size_t)n, ", divide %s by W = %lld%s%s",
                          sl_grad_divide_name((sl_grad_divide)(d & 15)),
                          (long long)s[SL_SIG_DIVIDE_WORLD], (d >> 4) & 1 ? " skipping pre" : "",
                          (d >> 5) & 1 ? " skipping post" : "");
        }
    }
    if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, ")");
}

sl_status sl_comm_debug_check(sl_comm *c, int op, sl_dtype dt, size_t count, int root,
                              const sl_comm_opts *o, uint64_t seq) {
    int64_t mine[SL_SIG_LEN];
    sl_sig_fill(mine, op, dt, count, root, o, seq, c->world_rank);
    int64_t *all = malloc((size_t)c->size * sizeof mine);
    if (!all) return sl_error_set(SL_ERR_OOM, "out of memory for the collective signature check");
    void *h = NULL;
    sl_status st =
        c->be->all_gather(c->impl, SL_COMM_CHAN_ISSUE, mine, all, SL_SIG_LEN, SL_DTYPE_I64, &h);
    if (st == SL_OK && h) {
        char what[256];
        sl_sig_describe(mine, what, sizeof what);
        char exchange[320];
        snprintf(exchange, sizeof exchange, "the debug signature exchange before %s", what);
        st = sl_comm_wait_handle(c, h, exchange);
    }
    /* Everyone compares against rank 0, so every rank reports the same pair. */
    for (int r = 1; st == SL_OK && r < c->size; r++) {
        const int64_t *a = all, *b = all + (size_t)r * SL_SIG_LEN;
        if (!memcmp(a, b, SL_SIG_WORLD_RANK * sizeof *a)) continue;
        char da[256], db[256];
        sl_sig_describe(a, da, sizeof da);
        sl_sig_describe(b, db, sizeof db);
        st = sl_error_set(SL_ERR_MISMATCH,
                          "collective mismatch on a %d-rank %s communicator "
                          "($SHARDLAB_COMM_DEBUG): rank 0 (world rank %lld) called %s but rank %d "
                          "(world rank %lld) called %s; every rank must issue the same "
                          "collectives, with the same dtype, count and options, in the same order",
                          c->size, sl_coll_group_name(c->group), (long long)a[SL_SIG_WORLD_RANK],
                          da, r, (long long)b[SL_SIG_WORLD_RANK], db);
    }
    free(all);
    return st;
}
