/* The tier checks (check.h). */
#include "conformance/check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *sl_conf_verdict_name(sl_conf_verdict v) {
    return v == SL_CONF_PASS ? "pass" : v == SL_CONF_FAIL ? "FAIL" : "skip";
}

sl_conf_check sl_conf_check_make(const char *tier, const char *check, const char *plan) {
    sl_conf_check c;
    memset(&c, 0, sizeof c);
    snprintf(c.tier, sizeof c.tier, "%s", tier);
    snprintf(c.check, sizeof c.check, "%s", check);
    snprintf(c.plan, sizeof c.plan, "%s", plan);
    c.verdict = SL_CONF_SKIP;
    c.measured = NAN;
    c.tolerance = NAN;
    return c;
}

void sl_conf_check_run_failed(sl_conf_check *c, const sl_conf_result *r) {
    c->verdict = SL_CONF_FAIL;
    snprintf(c->detail, sizeof c->detail, "run failed: %.700s", r->error);
}

/* ---- T1 --------------------------------------------------------------------------------- */

static void sl_conf_check_dtypes(const sl_observation *pred, const sl_observation *obs,
                                 sl_conf_check *c) {
    c->verdict = SL_CONF_PASS;
    for (int s = 0; s < SL_STAGE_COUNT; s++) {
        if (pred->dtype_table[s] == obs->dtype_table[s]) continue;
        c->verdict = SL_CONF_FAIL;
        snprintf(c->detail, sizeof c->detail, "stage %s: predicted %s, observed %s",
                 sl_stage_key((sl_stage)s), sl_dtype_name(pred->dtype_table[s]),
                 sl_dtype_name(obs->dtype_table[s]));
        return;
    }
}

static void sl_conf_describe_collective(const sl_collective_record *r, char *buf, size_t cap) {
    if (!r) {
        snprintf(buf, cap, "(none)");
        return;
    }
    snprintf(buf, cap, "%s %s(%d) %s micro %d unit %d %s %lld elements %lld bytes",
             sl_coll_op_name(r->op), sl_coll_group_name(r->group), r->group_size,
             sl_phase_name(r->phase), r->micro_step, r->unit, sl_dtype_name(r->dtype),
             (long long)r->elements, (long long)r->bytes_sent_per_rank);
}

static bool sl_conf_same_collective(const sl_collective_record *a, const sl_collective_record *b) {
    return a->op == b->op && a->group == b->group && a->group_size == b->group_size &&
           a->phase == b->phase && a->micro_step == b->micro_step && a->unit == b->unit &&
           a->dtype == b->dtype && a->elements == b->elements &&
           a->bytes_sent_per_rank == b->bytes_sent_per_rank;
}

static void sl_conf_check_collectives(const sl_observation *pred, const sl_observation *obs,
                                      sl_conf_check *c) {
    const int n =
        pred->n_collectives > obs->n_collectives ? pred->n_collectives : obs->n_collectives;
    int64_t bytes = 0;
    for (int i = 0; i < n; i++) {
        const sl_collective_record *p = i < pred->n_collectives ? &pred->collectives[i] : NULL;
        const sl_collective_record *o = i < obs->n_collectives ? &obs->collectives[i] : NULL;
        if (p && o && sl_conf_same_collective(p, o)) {
            bytes += o->bytes_sent_per_rank;
            continue;
        }
        char a[256], b[256];
        sl_conf_describe_collective(p, a, sizeof a);
        sl_conf_describe_collective(o, b, sizeof b);
        c->verdict = SL_CONF_FAIL;
        snprintf(c->detail, sizeof c->detail,
                 "collective %d of %d predicted / %d observed: predicted %s; observed %s", i,
                 pred->n_collectives, obs->n_collectives, a, b);
        return;
    }
    c->verdict = SL_CONF_PASS;
    snprintf(c->detail, sizeof c->detail, "%d collectives, %lld bytes sent per rank per step", n,
             (long long)bytes);
}

static void sl_conf_check_memory(const sl_observation *pred, const sl_observation *obs,
                                 sl_conf_check *c) {
    c->tolerance = SL_CONF_MEMORY_TOLERANCE;
    if (pred->world_size != obs->world_size) {
        c->verdict = SL_CONF_FAIL;
        snprintf(c->detail, sizeof c->detail, "memory of %d ranks predicted, %d observed",
                 pred->world_size, obs->world_size);
        return;
    }
    double worst = 0.0;
    int64_t wp = 0, wo = 0;
    int wr = 0, ws = 0, wc = 0, over = 0;
    for (int r = 0; r < obs->world_size; r++) {
        for (int s = 0; s < SL_SPACE_COUNT; s++) {
            for (int k = 0; k < SL_MEM_CATEGORY_COUNT; k++) {
                const int64_t p = pred->memory[r].peak[s][k], o = obs->memory[r].peak[s][k];
                const int64_t big = p > o ? p : o;
                /* relative to the larger, so a category predicted as 0 but used counts as 100% */
                const double rel = big ? fabs((double)(p - o)) / (double)big : 0.0;
                if (rel > SL_CONF_MEMORY_TOLERANCE) over++;
                if (rel > worst) {
                    worst = rel;
                    wp = p;
                    wo = o;
                    wr = r;
                    ws = s;
                    wc = k;
                }
            }
        }
    }
    c->measured = worst;
    snprintf(c->quantity, sizeof c->quantity, "%s", sl_mem_category_name((sl_mem_category)wc));
    c->verdict = over ? SL_CONF_FAIL : SL_CONF_PASS;
    snprintf(c->detail, sizeof c->detail,
             "%d (rank, space, category) peaks beyond %.0f%%; worst rank %d %s %s: predicted "
             "%lld, observed %lld bytes",
             over, 100.0 * SL_CONF_MEMORY_TOLERANCE, wr, sl_mem_space_name((sl_mem_space)ws),
             sl_mem_category_name((sl_mem_category)wc), (long long)wp, (long long)wo);
}

void sl_conf_check_observation(const sl_conf_result *explain, const sl_conf_result *run,
                               sl_conf_check out[4]) {
    const sl_conf_result *failed = explain->status != SL_OK ? explain
                                   : run->status != SL_OK   ? run
                                                            : NULL;
    if (failed) {
        for (int i = 0; i < 4; i++)
            sl_conf_check_run_failed(&out[i], failed);
        return;
    }
    sl_conf_check_dtypes(&explain->predicted, &run->observed, &out[0]);
    const bool same_layout =
        explain->layout_json && run->layout_json && !strcmp(explain->layout_json, run->layout_json);
    out[1].verdict = same_layout ? SL_CONF_PASS : SL_CONF_FAIL;
    snprintf(out[1].detail, sizeof out[1].detail, "%s",
             same_layout ? "explain's ranges and padding are the run's"
                         : "the run's plan layout differs from explain's (compare \"layout\" in "
                           "explain.json and trajectory.json)");
    sl_conf_check_collectives(&explain->predicted, &run->observed, &out[2]);
    sl_conf_check_memory(&explain->predicted, &run->observed, &out[3]);
}

/* ---- T2, T3, T4 ------------------------------------------------------------------------- */

void sl_conf_check_bitwise(const sl_conf_result *a, const sl_conf_result *b, sl_conf_check *c) {
    if (a->status != SL_OK || b->status != SL_OK) {
        sl_conf_check_run_failed(c, a->status != SL_OK ? a : b);
        return;
    }
    char where[256];
    const bool same = sl_conf_runs_bit_equal(a, b, where, sizeof where);
    c->verdict = same ? SL_CONF_PASS : SL_CONF_FAIL;
    if (same) {
        snprintf(c->detail, sizeof c->detail, "%d steps and final parameters bit-identical",
                 a->n_steps);
    } else {
        snprintf(c->detail, sizeof c->detail, "first difference: %.200s (logs %.250s and %.250s)",
                 where, a->log_path, b->log_path);
    }
}

/* The exact part of fp16 conformance: which steps were skipped and the scale of each step. */
static bool sl_conf_same_scaler(const sl_conf_result *a, const sl_conf_result *b, char *where,
                                size_t cap) {
    for (int i = 0; i < a->n_steps && i < b->n_steps; i++) {
        if (a->steps[i].skipped != b->steps[i].skipped ||
            a->steps[i].loss_scale != b->steps[i].loss_scale) {
            snprintf(where, cap, "step %d: skipped %d scale %g vs skipped %d scale %g",
                     a->steps[i].step, a->steps[i].skipped, a->steps[i].loss_scale,
                     b->steps[i].skipped, b->steps[i].loss_scale);
            return false;
        }
    }
    return true;
}

void sl_conf_check_tolerance(const sl_conf_result *a, const sl_conf_result *b,
                             const sl_conf_divergence *floor, double multiple, sl_conf_check *c) {
    if (a->status != SL_OK || b->status != SL_OK) {
        sl_conf_check_run_failed(c, a->status != SL_OK ? a : b);
        return;
    }
    sl_conf_divergence d;
    if (sl_conf_run_divergence(a, b, &d) != SL_OK) {
        c->verdict = SL_CONF_FAIL;
        snprintf(c->detail, sizeof c->detail, "%s", sl_error_message());
        return;
    }
    int worst = 0, bad = -1;
    double worst_ratio = -1.0;
    for (int q = 0; q < SL_CONF_Q_COUNT; q++) {
        const double tol = multiple * floor->q[q];
        if (!(d.q[q] <= tol)) { /* NaN fails */
            if (bad < 0) bad = q;
            continue;
        }
        const double ratio = d.q[q] == 0.0 ? 0.0 : d.q[q] / tol;
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            worst = q;
        }
    }
    if (bad >= 0) worst = bad;
    c->measured = d.q[worst];
    c->tolerance = multiple * floor->q[worst];
    snprintf(c->quantity, sizeof c->quantity, "%s", sl_conf_quantity_name((sl_conf_quantity)worst));
    int n = snprintf(c->detail, sizeof c->detail, "divergence/tolerance:");
    for (int q = 0; q < SL_CONF_Q_COUNT && n > 0 && (size_t)n < sizeof c->detail; q++) {
        n += snprintf(c->detail + n, sizeof c->detail - (size_t)n, " %s %.2e/%.2e",
                      sl_conf_quantity_name((sl_conf_quantity)q), d.q[q], multiple * floor->q[q]);
    }
    c->verdict = bad < 0 ? SL_CONF_PASS : SL_CONF_FAIL;
    char where[256];
    if (c->verdict == SL_CONF_PASS && !sl_conf_same_scaler(a, b, where, sizeof where)) {
        c->verdict = SL_CONF_FAIL;
        snprintf(c->quantity, sizeof c->quantity, "loss_scale");
        if (n > 0 && (size_t)n < sizeof c->detail) {
            snprintf(c->detail + n, sizeof c->detail - (size_t)n, "; the fp16 scaler differs at %s",
                     where);
        }
    }
}

void sl_conf_check_documented(const sl_conf_result *a, const sl_conf_result *b,
                              const sl_conf_divergence *floor, sl_conf_check *c) {
    if (a->status != SL_OK || b->status != SL_OK) {
        sl_conf_check_run_failed(c, a->status != SL_OK ? a : b);
        return;
    }
    sl_conf_divergence d;
    if (sl_conf_run_divergence(a, b, &d) != SL_OK) {
        c->verdict = SL_CONF_FAIL;
        snprintf(c->detail, sizeof c->detail, "%s", sl_error_message());
        return;
    }
    /* the loss and the final parameters are where a documented difference shows; it is real
     * when either is beyond what a legal reordering produces */
    const sl_conf_quantity qs[2] = {SL_CONF_Q_LOSS, SL_CONF_Q_FINAL};
    double ratio[2];
    for (int k = 0; k < 2; k++) {
        const double fl = floor->q[qs[k]], m = d.q[qs[k]];
        ratio[k] = fl > 0.0 ? m / fl : m > 0.0 ? INFINITY : 0.0;
    }
    const int w = ratio[1] > ratio[0] ? 1 : 0;
    snprintf(c->quantity, sizeof c->quantity, "%s", sl_conf_quantity_name(qs[w]));
    c->measured = d.q[qs[w]];
    c->tolerance = floor->q[qs[w]];
    c->verdict = ratio[w] > 1.0 ? SL_CONF_PASS : SL_CONF_FAIL;
    snprintf(c->detail, sizeof c->detail,
             "loss %.2e apart (%.1fx its floor %.2e), final parameters %.2e (%.1fx its floor "
             "%.2e)%s",
             d.q[SL_CONF_Q_LOSS], ratio[0], floor->q[SL_CONF_Q_LOSS], d.q[SL_CONF_Q_FINAL],
             ratio[1], floor->q[SL_CONF_Q_FINAL],
             c->verdict == SL_CONF_PASS
                 ? ""
                 : ": within noise, the documented difference is not visible");
}

void sl_conf_check_resume(const sl_conf_result *uninterrupted, const sl_conf_result *resumed,
                          const sl_conf_divergence *floor, double multiple, sl_conf_check *c) {
    const sl_conf_result *a = uninterrupted, *b = resumed;
    if (a->status != SL_OK || b->status != SL_OK) {
        sl_conf_check_run_failed(c, a->status != SL_OK ? a : b);
        return;
    }
    const int first = b->n_steps ? b->steps[0].step : 0;
    if (!b->n_steps || first < 2 || first - 1 + b->n_steps != a->n_steps) {
        c->verdict = SL_CONF_FAIL;
        snprintf(c->detail, sizeof c->detail,
                 "the resumed run has steps %d..%d, expected the tail of the uninterrupted run's "
                 "%d steps after a checkpoint (log %.400s)",
                 first, first + b->n_steps - 1, a->n_steps, b->log_path);
        return;
    }
    sl_conf_result tail = *a; /* the uninterrupted run's steps from the resumed one's first */
    tail.steps = a->steps + (first - 1);
    tail.n_steps = b->n_steps;
    if (!floor) {
        char where[256];
        const bool same = sl_conf_runs_bit_equal(&tail, b, where, sizeof where);
        c->verdict = same ? SL_CONF_PASS : SL_CONF_FAIL;
        snprintf(c->detail, sizeof c->detail, "%s%.200s (resumed at step %d)",
                 same ? "steps and final parameters bit-identical" : "first difference: ",
                 same ? "" : where, first);
        return;
    }
    double d[3];
    d[0] = d[1] = 0.0;
    for (int i = 0; i < b->n_steps; i++) {
        const double x = sl_conf_series_divergence(&b->steps[i].loss, &tail.steps[i].loss, 1);
        const double y =
            sl_conf_series_divergence(&b->steps[i].grad_norm, &tail.steps[i].grad_norm, 1);
        if (!(x <= d[0])) d[0] = x;
        if (!(y <= d[1])) d[1] = y;
    }
    if (sl_conf_tensors_divergence(&b->final, &a->final, &d[2]) != SL_OK) {
        c->verdict = SL_CONF_FAIL;
        snprintf(c->detail, sizeof c->detail, "%.700s", sl_error_message());
        return;
    }
    const sl_conf_quantity qs[3] = {SL_CONF_Q_LOSS, SL_CONF_Q_GRAD_NORM, SL_CONF_Q_FINAL};
    c->verdict = SL_CONF_PASS;
    int w = 0;
    for (int k = 0; k < 3; k++) {
        if (!(d[k] <= multiple * floor->q[qs[k]])) {
            c->verdict = SL_CONF_FAIL;
            w = k;
            break;
        }
        if (d[k] / (multiple * floor->q[qs[k]]) > d[w] / (multiple * floor->q[qs[w]])) w = k;
    }
    snprintf(c->quantity, sizeof c->quantity, "%s", sl_conf_quantity_name(qs[w]));
    c->measured = d[w];
    c->tolerance = multiple * floor->q[qs[w]];
    snprintf(c->detail, sizeof c->detail,
             "resumed at step %d: loss %.2e/%.2e grad_norm %.2e/%.2e final %.2e/%.2e", first, d[0],
             multiple * floor->q[SL_CONF_Q_LOSS], d[1], multiple * floor->q[SL_CONF_Q_GRAD_NORM],
             d[2], multiple * floor->q[SL_CONF_Q_FINAL]);
}
