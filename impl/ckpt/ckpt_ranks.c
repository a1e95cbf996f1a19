/* Who writes what in a checkpoint, the agreement of all ranks after each phase, and the testing
 * fault hook (impl/ckpt/ckpt_internal.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/ckpt/ckpt_internal.h"
#include "shardlab/log.h"

sl_status sl_ckpt_agree(sl_engine *e, sl_status mine, const char *what) {
    double *failed = calloc((size_t)e->world, sizeof *failed);
    if (!failed) return mine != SL_OK ? mine : sl_error_set(SL_ERR_OOM, "out of memory (%s)", what);
    failed[e->rank] = mine != SL_OK ? 1.0 : 0.0;
    /* keep this rank's own message through the collective */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", sl_error_message());
    const sl_status st = sl_session_sum_f64(e->session, failed, e->world);
    if (st != SL_OK) {
        free(failed);
        return st;
    }
    char ranks[256] = "";
    size_t len = 0;
    for (int r = 0; r < e->world && len + 16 < sizeof ranks; r++) {
        if (failed[r] != 0.0) len += (size_t)snprintf(ranks + len, sizeof ranks - len, " %d", r);
    }
    free(failed);
    if (mine != SL_OK) return sl_error_set(mine, "%s", msg);
    if (len == 0) return SL_OK;
    return sl_error_set(SL_ERR_IO, "%s failed on rank(s)%s (their messages say why)", what, ranks);
}

bool sl_ckpt_rank_writes(const sl_plan *plan, int rank) {
    if (plan->layout == SL_LAYOUT_REPLICATED) return rank == 0;
    return sl_plan_replica(plan, rank) == 0;
}

sl_status sl_ckpt_rank_ranges(const sl_plan *plan, int shard_rank, sl_ckpt_range **out, int *n) {
    int cap = 0;
    for (int b = 0; b < plan->n_buffers; b++)
        cap += plan->buffers[b].n_segments;
    sl_ckpt_range *ranges = calloc((size_t)cap + 1, sizeof *ranges);
    sl_shard_piece *pieces = calloc((size_t)cap + 1, sizeof *pieces);
    if (!ranges || !pieces) {
        free(ranges);
        free(pieces);
        return sl_error_set(SL_ERR_OOM, "out of memory listing checkpoint ranges");
    }
    *n = 0;
    for (int b = 0; b < plan->n_buffers; b++) {
        int64_t pad = 0;
        const int np = sl_plan_shard_pieces(&plan->buffers[b], shard_rank, pieces, &pad);
        for (int i = 0; i < np; i++) {
            if (pieces[i].end <= pieces[i].start) continue;
            ranges[(*n)++] = (sl_ckpt_range){
                .param = pieces[i].param, .start = pieces[i].start, .end = pieces[i].end};
        }
    }
    free(pieces);
    *out = ranges;
    return SL_OK;
}

/* SHARDLAB_CKPT_FAULT = "POINT[,step=S][,rank=R]", POINT = after_file=N | before_manifest |
 * before_rename | before_latest. */
void sl_ckpt_fault(const char *point, int count, int64_t step, int rank) {
    const char *spec = getenv("SHARDLAB_CKPT_FAULT");
    if (!spec || !*spec) return;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    bool hit = false, step_ok = true, rank_ok = true;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        const long long v = eq ? atoll(eq + 1) : -1;
        if (eq) *eq = '\0';
        if (!strcmp(tok, "step")) {
            step_ok = v == step;
        } else if (!strcmp(tok, "rank")) {
            rank_ok = v == rank;
        } else if (!strcmp(tok, point)) {
            hit = strcmp(point, "after_file") != 0 || v == count;
        }
    }
    if (!hit || !step_ok || !rank_ok) return;
    SL_LOG_WARN("SHARDLAB_CKPT_FAULT: killing rank %d at %s%s of the save of step %lld (a "
                "testing hook)",
                rank, point, !strcmp(point, "after_file") ? " (file count reached)" : "",
                (long long)step);
    fflush(NULL);
    raise(SIGKILL);
}
