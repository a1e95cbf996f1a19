#include "ref/shards.h"

#include <stdlib.h>
#include <string.h>

sl_status sl_ref_shards_create(const sl_plan *plan, const sl_model_desc *model, float *const *full,
                               sl_observation *obs, sl_ref_shards **out) {
    sl_ref_shards *s = calloc(1, sizeof *s);
    if (!s) return sl_error_set(SL_ERR_OOM, "out of memory creating reference shards");
    s->plan = plan;
    s->model = model;
    s->world = plan->world_size;
    s->rank = calloc((size_t)s->world, sizeof *s->rank);
    if (!s->rank) goto oom;
    const sl_precision *pr = &plan->precision;
    const sl_mem_space master_space = plan->offload_params ? SL_SPACE_HOST : SL_SPACE_DEVICE;
    const sl_mem_space optim_space = plan->offload_optimizer ? SL_SPACE_HOST : SL_SPACE_DEVICE;
    for (int r = 0; r < s->world; r++) {
        s->rank[r] = calloc((size_t)plan->n_buffers, sizeof *s->rank[r]);
        if (!s->rank[r]) goto oom;
        for (int b = 0; b < plan->n_buffers; b++) {
            sl_ref_rank_shard *rs = &s->rank[r][b];
            const size_t n = (size_t)plan->buffers[b].shard_numel;
            rs->pieces = calloc((size_t)plan->buffers[b].n_segments + 1, sizeof *rs->pieces);
            if (!rs->pieces) goto oom;
            int64_t pad = 0;
            rs->n_pieces = sl_plan_shard_pieces(&plan->buffers[b], sl_plan_shard_rank(plan, r),
                                                rs->pieces, &pad);
            rs->master = calloc(n, sizeof(float));
            rs->m = calloc(n, sizeof(float));
            rs->v = calloc(n, sizeof(float));
            rs->grad = calloc(n, sizeof(float));
            if (!rs->master || !rs->m || !rs->v || !rs->grad) goto oom;
            for (int i = 0; i < rs->n_pieces; i++) {
                const sl_shard_piece *pc = &rs->pieces[i];
                for (int64_t e = 0; e < pc->end - pc->start; e++) {
                    float x = full[pc->param][pc->start + e];
                    /* DeepSpeed casts the module to the compute dtype before making fp32
                     * masters (master_init ROUNDED); FSDP keeps the loaded values (EXACT). */
                    if (pr->master_init == SL_MASTER_ROUNDED) x = sl_round_to(x, pr->param_dtype);
                    rs->master[pc->shard_offset + e] = sl_round_to(x, pr->master_dtype);
                }
            }
            const int64_t shard = (int64_t)n;
            sl_observation_mem_alloc(obs, r, master_space, SL_MEM_PARAMS_MASTER,
                                     shard * (int64_t)sl_dtype_size(pr->master_dtype));
            sl_observation_mem_alloc(obs, r, optim_space, SL_MEM_OPTIM_STATES,
                                     2 * shard * (int64_t)sl_dtype_size(pr->optim_dtype));
        }
    }
    *out = s;
    return SL_OK;
oom:
    sl_ref_shards_destroy(s);
    return sl_error_set(SL_ERR_OOM, "out of memory allocating reference shards");
}

void sl_ref_shards_destroy(sl_ref_shards *s) {
    if (!s) return;
    for (int r = 0; s->rank && r < s->world; r++) {
        if (!s->rank[r]) continue;
        for (int b = 0; b < s->plan->n_buffers; b++) {
            sl_ref_rank_shard *rs = &s->rank[r][b];
            free(rs->pieces);
            free(rs->master);
            free(rs->m);
            free(rs->v);
            free(rs->grad);
        }
        free(s->rank[r]);
    }
    free(s->rank);
    free(s);
}

static int sl_ref_param_in(int p, const int *params, int n) {
    for (int i = 0; i < n; i++) {
        if (params[i] == p) return 1;
    }
    return 0;
}

void sl_ref_shards_gather(const sl_ref_shards *s, const int *params, int n, float **full) {
    const sl_dtype pd = s->plan->precision.param_dtype;
    for (int r = 0; r < s->plan->shard_group_size; r++) {
        for (int b = 0; b < s->plan->n_buffers; b++) {
            const sl_ref_rank_shard *rs = &s->rank[r][b];
            for (int i = 0; i < rs->n_pieces; i++) {
                const sl_shard_piece *pc = &rs->pieces[i];
                if (!sl_ref_param_in(pc->param, params, n)) continue;
                float *dst = full[pc->param] + pc->start;
                const float *src = rs->master + pc->shard_offset;
                for (int64_t e = 0; e < pc->end - pc->start; e++)
                    dst[e] = sl_round_to(src[e], pd);
            }
        }
    }
}

/* Copies a per-shard array (selected by `field`) of the shard group of replica 0 into full. */
static void sl_ref_shards_assemble(const sl_ref_shards *s, float **full, int want_grad) {
    for (int r = 0; r < s->plan->shard_group_size; r++) {
        for (int b = 0; b < s->plan->n_buffers; b++) {
            const sl_ref_rank_shard *rs = &s->rank[r][b];
            const float *src = want_grad ? rs->grad : rs->master;
            for (int i = 0; i < rs->n_pieces; i++) {
                const sl_shard_piece *pc = &rs->pieces[i];
                memcpy(full[pc->param] + pc->start, src + pc->shard_offset,
                       (size_t)(pc->end - pc->start) * sizeof(float));
            }
        }
    }
}

void sl_ref_shards_masters(const sl_ref_shards *s, float **full) {
    sl_ref_shards_assemble(s, full, 0);
}

void sl_ref_shards_grads(const sl_ref_shards *s, float **full) {
    sl_ref_shards_assemble(s, full, 1);
}
