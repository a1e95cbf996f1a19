/* The session: this process's world communicator and the configuration the launcher resolved
 * (DESIGN.md §8: switching FSDP <-> DeepSpeed needs no code change). */
#include <stdlib.h>

#include "impl/engine/engine_internal.h"
#include "shardlab/config_env.h"

sl_status sl_session_create_from_env(sl_session **out) {
    *out = NULL;
    sl_session *s = calloc(1, sizeof *s);
    if (!s) return sl_error_set(SL_ERR_OOM, "out of memory creating the session");
    sl_status st = sl_config_create(&s->config);
    if (st == SL_OK) st = sl_config_load_env(s->config, NULL);
    if (st == SL_OK) st = sl_comm_create_from_env(&s->world);
    if (st != SL_OK) {
        sl_session_destroy(s);
        return st;
    }
    *out = s;
    return SL_OK;
}

void sl_session_destroy(sl_session *s) {
    if (!s) return;
    sl_comm_destroy(s->world);
    sl_config_destroy(s->config);
    free(s);
}

int sl_session_rank(const sl_session *s) {
    return sl_comm_rank(s->world);
}
int sl_session_world_size(const sl_session *s) {
    return sl_comm_size(s->world);
}
sl_comm *sl_session_comm(sl_session *s) {
    return s->world;
}
sl_config *sl_session_config(sl_session *s) {
    return s->config;
}

sl_status sl_session_compile_plan(sl_session *s, const sl_model_desc *model, sl_plan **out) {
    *out = NULL;
    sl_plan *plan = NULL;
    SL_TRY(sl_plan_compile(s->config, model, &plan));
    const int running = sl_comm_size(s->world);
    if (plan->world_size != running) {
        const int want = plan->world_size;
        sl_plan_destroy(plan);
        return sl_error_set(SL_ERR_CONFIG,
                            "the plan is for num_processes = %d but %d process%s running; start "
                            "the program with `shardlab launch --num_processes %d PROGRAM ...`",
                            want, running, running == 1 ? " is" : "es are", want);
    }
    *out = plan;
    return SL_OK;
}

sl_status sl_session_sum_f64(sl_session *s, double *vals, int n) {
    const int W = sl_comm_size(s->world);
    if (W == 1 || n <= 0) return SL_OK;
    double *all = calloc((size_t)W * (size_t)n, sizeof *all);
    if (!all) return sl_error_set(SL_ERR_OOM, "out of memory summing metrics");
    sl_status st = sl_comm_all_gather(s->world, vals, all, (size_t)n, SL_DTYPE_F64, NULL, NULL);
    for (int i = 0; st == SL_OK && i < n; i++) {
        double sum = 0.0;
        for (int r = 0; r < W; r++)
            sum += all[(size_t)r * (size_t)n + (size_t)i];
        vals[i] = sum;
    }
    free(all);
    sl_comm_reset_stats(s->world);
    return st;
}
