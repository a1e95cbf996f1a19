#include "ref/shards.h"

#include <stdlib.h>
#include <string.h>

int64_t sl_ref_shard_start(const sl_plan *plan, int b, int rank) {
    const sl_flat_buffer *buf = &plan->buffers[b];
    if (buf->shard_numel == buf->numel_padded) return 0; /* replicated: every rank holds it all */
    return (int64_t)sl_plan_shard_rank(plan, rank) * buf->shard_numel;
}

/* The pieces of buffer b that fall inside [start, start + shard_numel). */
static sl_status sl_ref_pieces_build(const sl_plan *plan, int b, int rank, sl_ref_rank_shard *rs) {
    const sl_flat_buffer *buf = &plan->buffers[b];
    const int64_t start = sl_ref_shard_start(plan, b, rank), end = start + buf->shard_numel;
    rs->pieces = calloc((size_t)buf->n_segments + 1, sizeof *rs->pieces);
    if (!rs->pieces) return sl_error_set(SL_ERR_OOM, "out of memory building shard pieces");
    for (int i = 0; i < buf->n_segments; i++) {
        const sl_segment *seg = &buf->segments[i];
        if (seg->param < 0) continue;
        int64_t lo = seg->flat_offset > start ? seg->flat_offset : start;
        int64_t hi = seg->flat_offset + seg->numel < end ? seg->flat_offset + seg->numel : end;
        if (lo >= hi) continue;
        rs->pieces[rs->n_pieces++] = (sl_ref_piece){.param = seg->param,
                                                    .param_offset = seg->param_offset + (lo - seg->flat_offset),
                                                    .shard_offset = lo - start,
                                                    .numel = hi - lo};
    }
    return SL_OK;
}

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
            if (sl_ref_pieces_build(plan, b, r, rs) != SL_OK) goto fail;
            rs->master = calloc(n, sizeof(float));
            rs->m = calloc(n, sizeof(float));
            rs->v = calloc(n, sizeof(float));
            rs->grad = calloc(n, sizeof(float));
            if (!rs->master || !rs->m || !rs->v || !rs->grad) goto oom;
            for (int i = 0; i < rs->n_pieces; i++) {
                const sl_ref_piece *pc = &rs->pieces[i];
                for (int64_t e = 0; e < pc->numel; e++) {
                    float x = full[pc->param][pc->param_offset + e];
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
    sl_error_set(SL_ERR_OOM, "out of memory allocating reference shards");
fail:
    sl_ref_shards_destroy(s);
    return SL_ERR_OOM;
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
                const sl_ref_piece *pc = &rs->pieces[i];
                if (!sl_ref_param_in(pc->param, params, n)) continue;
                float *dst = full[pc->param] + pc->param_offset;
                const float *src = rs->master + pc->shard_offset;
                for (int64_t e = 0; e < pc->numel; e++) dst[e] = sl_round_to(src[e], pd);
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
                const sl_ref_piece *pc = &rs->pieces[i];
                memcpy(full[pc->param] + pc->param_offset, src + pc->shard_offset,
                       (size_t)pc->numel * sizeof(float));
            }
        }
    }
}

void sl_ref_shards_masters(const sl_ref_shards *s, float **full) { sl_ref_shards_assemble(s, full, 0); }

void sl_ref_shards_grads(const sl_ref_shards *s, float **full) { sl_ref_shards_assemble(s, full, 1); }
