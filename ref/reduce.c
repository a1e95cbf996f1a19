#include "ref/reduce.h"

float sl_ref_reduce_element(const sl_plan *plan, float *const *const *local, int p, int64_t idx,
                            bool reversed) {
    const sl_dtype rd = plan->precision.reduce_dtype;
    const int W = plan->world_size, G = plan->shard_group_size, R = plan->n_replicas;
    float pre = 1.0f, post = 1.0f; /* PRE_POST_POW2 factors; 1 = skipped, as FSDP skips them */
    if (plan->precision.grad_divide == SL_DIVIDE_PRE_POST_POW2) {
        double dpre, dpost;
        sl_divide_factors_pow2(W, &dpre, &dpost);
        pre = (float)dpre;
        post = (float)dpost;
    }
    /* Within each shard group the ranks sum in order (a reduce-scatter); the groups' partial
     * sums are then added in replica order (the cross-group all-reduce of hybrid sharding). */
    float total = 0.0f;
    for (int i = 0; i < R; i++) {
        const int rep = reversed ? R - 1 - i : i;
        float sum = 0.0f;
        for (int j = 0; j < G; j++) {
            const int sr = reversed ? G - 1 - j : j;
            float x = sl_round_to(local[rep * G + sr][p][idx], rd);
            if (plan->precision.grad_divide == SL_DIVIDE_PRE) x = sl_round_to(x / (float)W, rd);
            if (pre != 1.0f) x = sl_round_to(x / pre, rd);
            sum = j == 0 ? x : sl_round_to(sum + x, rd);
        }
        total = i == 0 ? sum : sl_round_to(total + sum, rd);
    }
    switch (plan->precision.grad_divide) {
    case SL_DIVIDE_PRE_POST_POW2:
        if (post != 1.0f) total = sl_round_to(total / post, rd);
        break;
    case SL_DIVIDE_AVG: total = sl_round_to(total / (float)W, rd); break;
    case SL_DIVIDE_POST: total = sl_round_to(total * (float)(1.0 / W), rd); break;
    case SL_DIVIDE_PRE: break;
    }
    return total;
}

void sl_ref_reduce_buffer(sl_ref_shards *s, float *const *const *local, sl_ref_reduce_mode mode,
                          bool first_micro, int b) {
    const sl_plan *plan = s->plan;
    const sl_dtype md = plan->precision.master_dtype, ad = plan->precision.accum_dtype;
    for (int r = 0; r < s->world; r++) {
        sl_ref_rank_shard *rs = &s->rank[r][b];
        for (int i = 0; i < rs->n_pieces; i++) {
            const sl_shard_piece *pc = &rs->pieces[i];
            float *g = rs->grad + pc->shard_offset;
            for (int64_t e = 0; e < (pc->end - pc->start); e++) {
                float x = sl_ref_reduce_element(plan, local, pc->param, pc->start + e,
                                                s->reverse_reduction_order);
                if (mode == SL_REF_REDUCE_ASSIGN) {
                    g[e] = sl_round_to(x, md);
                } else if (first_micro) {
                    g[e] = sl_round_to(x, ad);
                } else {
                    g[e] = sl_round_to(g[e] + sl_round_to(x, ad), ad);
                }
            }
        }
    }
}
