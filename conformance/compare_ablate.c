/* Ablation runs and the attribution table (compare_ablate.h). */
#include "conformance/compare_ablate.h"

#include <math.h>
#include <string.h>

#include "shardlab/log.h"

static bool sl_within(double div, double floor) {
    return div == 0.0 || div <= SL_EQUIV_FLOOR_MULTIPLE * floor;
}

bool sl_ablation_equivalent(const sl_ablation *ab) {
    return sl_within(ab->loss_div, ab->floor_loss) && sl_within(ab->param_div, ab->floor_param);
}

/* One knob's run: A with the knob switched (or B's layout with A's numerics). */
static sl_status sl_knob_run(const sl_config *cfg_a, const sl_config *cfg_b,
                             const sl_model_desc *model, const sl_compare_run_opts *opt,
                             const sl_knob *knob, sl_compare_result *out) {
    sl_plan *a = NULL, *b = NULL;
    SL_TRY(sl_plan_compile(cfg_a, model, &a));
    sl_status st = sl_plan_compile(cfg_b, model, &b);
    if (st == SL_OK) {
        sl_plan *run = knob->kind == SL_KNOB_STRUCTURE ? b : a;
        if (knob->kind == SL_KNOB_STRUCTURE) {
            sl_ablate_apply_numerics(b, a);
        } else {
            sl_ablate_apply(a, b, knob);
        }
        st = sl_compare_ref_run(run, model, opt, out);
        if (st != SL_OK) {
            sl_error_prefix(st, "ablation run with %s = %s: ", knob->name, knob->b);
        }
    }
    sl_plan_destroy(a);
    sl_plan_destroy(b);
    return st;
}

sl_status sl_ablation_run(const sl_config *cfg_a, const sl_config *cfg_b,
                          const sl_model_desc *model, const sl_compare_run_opts *opt, bool knobs,
                          sl_ablation *out) {
    memset(out, 0, sizeof *out);
    sl_plan *a = NULL, *b = NULL;
    SL_TRY(sl_plan_compile(cfg_a, model, &a));
    sl_status st = sl_plan_compile(cfg_b, model, &b);
    if (st == SL_OK) st = sl_compare_ref_run(a, model, opt, &out->a);
    if (st == SL_OK) st = sl_compare_ref_run(b, model, opt, &out->b);
    sl_compare_result twin = {0};
    if (st == SL_OK) {
        sl_compare_run_opts rev = *opt;
        rev.reverse_reduction_order = true;
        st = sl_compare_ref_run(a, model, &rev, &twin);
    }
    if (st == SL_OK) {
        out->steps = a->steps;
        out->loss_a = sl_compare_final_loss(&out->a);
        out->loss_b = sl_compare_final_loss(&out->b);
        out->loss_div = sl_compare_loss_div(&out->a, &out->b);
        out->param_div = sl_compare_param_div(&out->a, &out->b);
        out->floor_loss = sl_compare_loss_div(&twin, &out->a);
        out->floor_param = sl_compare_param_div(&twin, &out->a);
        sl_knob list[SL_ABLATE_MAX_KNOBS];
        out->n_rows = knobs ? (int)sl_ablate_knobs(a, b, list, SL_ABLATE_MAX_KNOBS) : 0;
        for (int i = 0; i < out->n_rows; i++) {
            out->rows[i].knob = list[i];
            out->rows[i].loss_share = out->rows[i].param_share = NAN;
        }
    }
    sl_compare_result_free(&twin);
    sl_plan_destroy(a);
    sl_plan_destroy(b);
    double sum_loss = 0.0, sum_param = 0.0;
    for (int i = 0; st == SL_OK && i < out->n_rows; i++) {
        sl_ablation_row *row = &out->rows[i];
        if (row->knob.kind == SL_KNOB_DERIVED) continue;
        SL_LOG_INFO("ablation %d/%d: %s = %s", i + 1, out->n_rows, row->knob.name, row->knob.b);
        sl_compare_result r = {0};
        st = sl_knob_run(cfg_a, cfg_b, model, opt, &row->knob, &r);
        if (st == SL_OK) {
            row->ran = true;
            row->final_loss = sl_compare_final_loss(&r);
            row->loss_share = sl_ablate_loss_share(out->loss_a, out->loss_b, row->final_loss);
            row->param_share = sl_ablate_param_share(&out->a, &out->b, &r);
            row->param_div_to_b = sl_compare_param_div(&r, &out->b);
            sum_loss += row->loss_share;
            sum_param += row->param_share;
        }
        sl_compare_result_free(&r);
    }
    out->remainder_loss = 1.0 - sum_loss;
    out->remainder_param = 1.0 - sum_param;
    return st;
}

void sl_ablation_free(sl_ablation *ab) {
    sl_compare_result_free(&ab->a);
    sl_compare_result_free(&ab->b);
}

static void sl_pct(char *buf, size_t cap, double x) {
    if (isnan(x)) {
        snprintf(buf, cap, "n/a");
    } else {
        snprintf(buf, cap, "%.1f%%", 100.0 * x);
    }
}

void sl_ablation_print(const sl_ablation *ab, FILE *f, bool md) {
    fprintf(f,
            "%sfinal divergence A vs B after %d steps: final loss %.6f vs %.6f (max relative loss "
            "gap %.3g, noise floor %.3g); parameters ‖θA − θB‖/‖θB‖ = %.3g (noise floor %.3g): "
            "%s\n\n",
            md ? "" : "ablation: ", ab->steps, ab->loss_a, ab->loss_b, ab->loss_div, ab->floor_loss,
            ab->param_div, ab->floor_param,
            sl_ablation_equivalent(ab) ? "equivalent within the noise floor"
                                       : "NOT equivalent (beyond 4x the noise floor)");
    if (ab->n_rows == 0) {
        fprintf(f, "No plan field differs: there is nothing to attribute.\n");
        return;
    }
    /* a divergence of the order of the floor is mostly rounding noise: so are its shares */
    if (ab->param_div < 10.0 * ab->floor_param || ab->loss_div < 10.0 * ab->floor_loss) {
        fprintf(f,
                "%sCaution: a divergence is within 10x its noise floor, so the shares below "
                "are of the same order as the rounding noise and the remainder is large.\n\n",
                md ? "" : "  ");
    }
    fprintf(f,
            "%sMethod: single-field switches from A, run with the reference trainer. Each knob is "
            "set alone to B's value in A's plan; its share of the loss divergence is (L_i - L_A) / "
            "(L_B - L_A) of the final loss, its share of the parameter divergence the projection "
            "<θ_i - θ_A, θ_B - θ_A> / ‖θ_B - θ_A‖². The interaction remainder (100%% minus the "
            "shares) is what the knobs do only together; shares may be negative (a knob that "
            "alone moves A away from B).\n\n",
            md ? "" : "  ");
    if (md) {
        fprintf(f, "| knob | A | B | share of loss divergence | share of parameter divergence "
                   "|\n|---|---|---|---:|---:|\n");
    } else {
        fprintf(f, "  %-32s %-16s %-16s %10s %10s\n", "knob", "A", "B", "loss", "params");
    }
    for (int i = 0; i < ab->n_rows; i++) {
        const sl_ablation_row *r = &ab->rows[i];
        if (!r->ran) continue;
        char l[32], p[32];
        sl_pct(l, sizeof l, r->loss_share);
        sl_pct(p, sizeof p, r->param_share);
        /* a knob of several fields shows its first value; the note below lists them all */
        const int na = (int)strcspn(r->knob.a, ","), nb = (int)strcspn(r->knob.b, ",");
        const char *more = strchr(r->knob.fields, ',') ? " (+)" : "";
        if (md) {
            fprintf(f, "| `%s`%s | %.*s | %.*s | %s | %s |\n", r->knob.name, more, na, r->knob.a,
                    nb, r->knob.b, l, p);
        } else {
            char name[64];
            snprintf(name, sizeof name, "%s%s", r->knob.name, more);
            fprintf(f, "  %-32s %-16.*s %-16.*s %10s %10s\n", name, na, r->knob.a, nb, r->knob.b, l,
                    p);
        }
    }
    char l[32], p[32];
    sl_pct(l, sizeof l, ab->remainder_loss);
    sl_pct(p, sizeof p, ab->remainder_param);
    if (md) {
        fprintf(f, "| interaction remainder | | | %s | %s |\n\n", l, p);
    } else {
        fprintf(f, "  %-32s %-16s %-16s %10s %10s\n\n", "interaction remainder", "", "", l, p);
    }
    for (int i = 0; i < ab->n_rows; i++) {
        const sl_ablation_row *r = &ab->rows[i];
        if (r->knob.kind == SL_KNOB_SWITCH && strchr(r->knob.fields, ',')) {
            fprintf(f, "%s`%s` (+) switches %s together (A: %s; B: %s): %s.\n", md ? "- " : "  ",
                    r->knob.name, r->knob.fields, r->knob.a, r->knob.b,
                    !strcmp(r->knob.group, "precision.master_dtype")
                        ? "optim_dtype is master_dtype by definition and upcast_sharded_params "
                          "acts only through master_dtype"
                        : "the loss scaler's kind and its parameters mean something only together");
        } else if (r->knob.kind == SL_KNOB_STRUCTURE) {
            fprintf(f,
                    "%sNot settable alone (they decide the layout and need a recompiled plan): "
                    "%s. They were switched as one knob, `structure`: B's compiled plan carrying "
                    "every numeric field of A.\n",
                    md ? "- " : "  ", r->knob.fields);
        } else if (r->knob.kind == SL_KNOB_DERIVED) {
            fprintf(f, "%sDerived from the fields above, not switched: %s.\n", md ? "- " : "  ",
                    r->knob.fields);
        }
    }
}
