/* conformance.md and conformance.json (suite.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/fileio.h"
#include "common/json.h"
#include "conformance/suite.h"

static void sl_conf_md_number(FILE *f, double v) {
    if (isnan(v)) {
        fprintf(f, " |");
    } else {
        fprintf(f, " %.3g |", v);
    }
}

static void sl_conf_md_counts(const sl_conf_report *r, int counts[3]) {
    counts[0] = counts[1] = counts[2] = 0;
    for (int i = 0; i < r->n_checks; i++)
        counts[r->checks[i].verdict]++;
}

static sl_status sl_conf_write_md(FILE *f, void *ctx) {
    const sl_conf_report *r = ctx;
    int counts[3];
    sl_conf_md_counts(r, counts);
    char when[64];
    const time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
    fprintf(f, "# shardlab conformance — %s tier\n\n", sl_conf_tier_name(r->tier));
    fprintf(f, "%s: %d checks, %d passed, %d failed, %d skipped; %d runs in %.0f s%s%s.\n\n", when,
            r->n_checks, counts[SL_CONF_PASS], counts[SL_CONF_FAIL], counts[SL_CONF_SKIP],
            r->n_runs, r->seconds, r->filter[0] ? "; filter " : "", r->filter);
    fprintf(f, "**%s**\n\n", sl_conf_report_passed(r) ? "PASS" : "FAIL");
    fprintf(f,
            "## Noise floors\n\n"
            "Divergence of the reference against itself with every reduction summed in the "
            "reverse rank order (W > 1) or every initial parameter moved by one ulp of "
            "master_dtype; the largest over FSDP FULL_SHARD and DeepSpeed ZeRO-3 at each world "
            "size used. Series (loss, grad_norm): max over steps of |a-b|/|b|; states (step-1 "
            "gradients, final parameters): max |a-b| / max |b| over all elements. Tolerance = "
            "**%g × floor**.\n\n",
            r->multiple);
    fprintf(f, "| precision | pairs | loss | grad_norm | grads_step1 | final |\n"
               "|---|---|---|---|---|---|\n");
    for (int i = 0; i < r->n_floors; i++) {
        fprintf(f, "| %s | %d |", r->floors[i].key, r->floors[i].n_pairs);
        for (int q = 0; q < SL_CONF_Q_COUNT; q++)
            sl_conf_md_number(f, r->floors[i].d.q[q]);
        fprintf(f, "\n");
        if (r->floors[i].detail[0]) fprintf(f, "\n%s\n\n", r->floors[i].detail);
    }
    fprintf(f, "\n## Checks\n\n"
               "T1: explain's prediction vs what `shardlab train` observed (memory within 5%%). "
               "T2: bit equality. T3: divergence ≤ tolerance. T4: documented non-equivalence, "
               "divergence of the loss or the final parameters above its floor. T5: reference vs "
               "PyTorch.\n\n");
    fprintf(f, "| tier | check | plan | result | quantity | measured | tolerance | detail |\n"
               "|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < r->n_checks; i++) {
        const sl_conf_check *c = &r->checks[i];
        fprintf(f, "| %s | %s | %s | %s | %s |", c->tier, c->check, c->plan,
                sl_conf_verdict_name(c->verdict), c->quantity);
        sl_conf_md_number(f, c->measured);
        sl_conf_md_number(f, c->tolerance);
        fprintf(f, " ");
        for (const char *p = c->detail; *p; p++) /* a | would end the cell */
            fputc(*p == '|' ? '/' : *p, f);
        fprintf(f, " |\n");
    }
    if (r->notices[0]) fprintf(f, "\n%s\n", r->notices);
    return SL_OK;
}

static void sl_conf_json_num(sl_json_writer *w, const char *key, double v) {
    sl_json_writer_key(w, key);
    if (isnan(v)) {
        sl_json_writer_null(w);
    } else {
        sl_json_writer_double(w, v);
    }
}

static sl_status sl_conf_write_json(FILE *f, void *ctx) {
    const sl_conf_report *r = ctx;
    sl_json_writer w;
    sl_json_writer_init(&w, f, 2);
    sl_json_writer_begin_object(&w);
    sl_json_writer_key(&w, "tier");
    sl_json_writer_string(&w, sl_conf_tier_name(r->tier));
    sl_json_writer_key(&w, "filter");
    sl_json_writer_string(&w, r->filter);
    sl_json_writer_key(&w, "passed");
    sl_json_writer_bool(&w, sl_conf_report_passed(r));
    sl_json_writer_key(&w, "runs");
    sl_json_writer_int64(&w, r->n_runs);
    sl_conf_json_num(&w, "seconds", r->seconds);
    sl_conf_json_num(&w, "tolerance_multiple", r->multiple);
    sl_json_writer_key(&w, "floors");
    sl_json_writer_begin_array(&w);
    for (int i = 0; i < r->n_floors; i++) {
        sl_json_writer_begin_object(&w);
        sl_json_writer_key(&w, "precision");
        sl_json_writer_string(&w, r->floors[i].key);
        sl_json_writer_key(&w, "pairs");
        sl_json_writer_int64(&w, r->floors[i].n_pairs);
        for (int q = 0; q < SL_CONF_Q_COUNT; q++)
            sl_conf_json_num(&w, sl_conf_quantity_name((sl_conf_quantity)q), r->floors[i].d.q[q]);
        sl_json_writer_end_object(&w);
    }
    sl_json_writer_end_array(&w);
    sl_json_writer_key(&w, "checks");
    sl_json_writer_begin_array(&w);
    for (int i = 0; i < r->n_checks; i++) {
        const sl_conf_check *c = &r->checks[i];
        sl_json_writer_begin_object(&w);
        sl_json_writer_key(&w, "tier");
        sl_json_writer_string(&w, c->tier);
        sl_json_writer_key(&w, "check");
        sl_json_writer_string(&w, c->check);
        sl_json_writer_key(&w, "plan");
        sl_json_writer_string(&w, c->plan);
        sl_json_writer_key(&w, "result");
        sl_json_writer_string(&w, sl_conf_verdict_name(c->verdict));
        sl_json_writer_key(&w, "floor");
        sl_json_writer_string(&w, c->floor_key);
        sl_json_writer_key(&w, "quantity");
        sl_json_writer_string(&w, c->quantity);
        sl_conf_json_num(&w, "measured", c->measured);
        sl_conf_json_num(&w, "tolerance", c->tolerance);
        sl_json_writer_key(&w, "detail");
        sl_json_writer_string(&w, c->detail);
        sl_json_writer_end_object(&w);
    }
    sl_json_writer_end_array(&w);
    sl_json_writer_key(&w, "notices");
    sl_json_writer_string(&w, r->notices);
    sl_json_writer_end_object(&w);
    return sl_json_writer_finish(&w);
}

sl_status sl_conf_report_write(const sl_conf_report *r, const char *dir) {
    char path[SL_CONF_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/conformance.md", dir);
    SL_TRY(sl_file_write_atomic(path, sl_conf_write_md, (void *)r));
    snprintf(path, sizeof path, "%s/conformance.json", dir);
    return sl_file_write_atomic(path, sl_conf_write_json, (void *)r);
}
