/* The conformance suite's order of work (suite.h): collect the runs of every case and of the
 * noise floors (identical runs are made once), run them, perturb the floors' initial weights and
 * run those, then evaluate. */
#include "conformance/suite.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conformance/peer.h"

const char *sl_conf_tier_name(sl_conf_tier t) {
    return t == SL_CONF_TIER_FULL ? "full" : "quick";
}

/* ---- the run table: every distinct run once ------------------------------------------- */

typedef struct sl_conf_runs {
    int n, cap;
    sl_conf_run_spec *specs;
    sl_conf_result *results;
    char (*keys)[2 * SL_CONF_FLAGS_MAX];
    const char *root;
} sl_conf_runs;

/* The index of the run of spec (out_dir: a salt), added when new. -1 on OOM. */
static int sl_conf_runs_add(sl_conf_runs *t, const sl_conf_run_spec *spec) {
    sl_conf_run_spec s = *spec;
    char salt[SL_CONF_PATH_MAX];
    snprintf(salt, sizeof salt, "%s", s.out_dir);
    s.out_dir[0] = '\0';
    char key[2 * SL_CONF_FLAGS_MAX];
    char line[2 * SL_CONF_FLAGS_MAX - 600];
    sl_conf_run_spec_describe(&s, line, sizeof line);
    snprintf(key, sizeof key, "%s|%d|%s", line, s.reverse_reduction_order, salt);
    for (int i = 0; i < t->n; i++) {
        if (!strcmp(t->keys[i], key)) return i;
    }
    if (t->n == t->cap) {
        const int cap = t->cap ? 2 * t->cap : 128;
        sl_conf_run_spec *specs = realloc(t->specs, (size_t)cap * sizeof *specs);
        if (specs) t->specs = specs;
        char(*keys)[2 * SL_CONF_FLAGS_MAX] = realloc(t->keys, (size_t)cap * sizeof *keys);
        if (keys) t->keys = keys;
        if (!specs || !keys) return -1;
        t->cap = cap;
    }
    snprintf(s.out_dir, sizeof s.out_dir, "%s/runs/%04d-%s%s", t->root, t->n,
             sl_conf_tool_name(s.tool), s.reverse_reduction_order ? "-reversed" : "");
    t->specs[t->n] = s;
    memcpy(t->keys[t->n], key, sizeof key);
    return t->n++;
}

static void sl_conf_runs_free(sl_conf_runs *t) {
    for (int i = 0; t->results && i < t->n; i++)
        sl_conf_result_free(&t->results[i]);
    free(t->results);
    free(t->specs);
    free(t->keys);
}

/* ---- noise floors ----------------------------------------------------------------------- */

/* The reference pairs of one floor: base run, reordered run (W > 1), ulp-perturbed run. */
typedef struct sl_conf_floor_runs {
    int floor; /* index into report->floors */
    int base, reversed, ulp;
} sl_conf_floor_runs;

/* One FSDP and one DeepSpeed plan: the two families round differently (DESIGN.md §4.2). */
static const char *const sl_conf_floor_plans[] = {
    "--use_fsdp --fsdp_sharding_strategy FULL_SHARD",
    "--use_deepspeed --zero_stage 3",
};

static int sl_conf_floor_index(sl_conf_report *r, const char *key) {
    for (int i = 0; i < r->n_floors; i++) {
        if (!strcmp(r->floors[i].key, key)) return i;
    }
    if (r->n_floors == SL_CONF_MAX_FLOORS) return -1;
    snprintf(r->floors[r->n_floors].key, sizeof r->floors[0].key, "%s", key);
    return r->n_floors++;
}

/* ---- the suite -------------------------------------------------------------------------- */

typedef struct sl_conf_suite {
    const sl_conf_options *o;
    sl_conf_report *report;
    sl_conf_matrix m;
    sl_conf_runs runs;
    int *case_a, *case_b, *case_c;
    sl_conf_floor_runs *floors;
    int n_floor_runs;
    bool worlds[SL_CONF_MAX_WORLD + 1]; /* W used by the cases that need a floor */
    sl_conf_peer_env peer;
    bool peer_selected[SL_CONF_PEER_PLANS];
    int peer_runs[SL_CONF_PEER_PLANS]; /* -1: not run (not selected, or T5 skipped) */
} sl_conf_suite;

static sl_status sl_conf_oom(const char *what) {
    return sl_error_set(SL_ERR_OOM, "conformance: out of memory (%s)", what);
}

static sl_status sl_conf_plan_runs(sl_conf_suite *s) {
    s->case_a = calloc((size_t)s->m.n + 1, sizeof *s->case_a);
    s->case_b = calloc((size_t)s->m.n + 1, sizeof *s->case_b);
    s->case_c = calloc((size_t)s->m.n + 1, sizeof *s->case_c);
    if (!s->case_a || !s->case_b || !s->case_c) return sl_conf_oom("case table");
    for (int i = 0; i < s->m.n; i++) {
        sl_conf_case *c = &s->m.cases[i];
        c->a.timeout_s = c->b.timeout_s = s->o->timeout_s;
        s->case_a[i] = sl_conf_runs_add(&s->runs, &c->a);
        s->case_b[i] = sl_conf_runs_add(&s->runs, &c->b);
        s->case_c[i] = -1;
        if (s->case_a[i] < 0 || s->case_b[i] < 0) return sl_conf_oom("run table");
        if (c->kind == SL_CONF_CASE_RESUME) {
            sl_conf_run_spec *saver = &s->runs.specs[s->case_b[i]];
            const size_t n = strlen(saver->extra_flags);
            if (!strstr(saver->extra_flags, "--output_dir")) { /* its checkpoints in its own dir */
                snprintf(saver->extra_flags + n, sizeof saver->extra_flags - n,
                         " --output_dir %.900s", saver->out_dir);
            }
            const size_t used = strlen(c->c.extra_flags);
            snprintf(c->c.extra_flags + used, sizeof c->c.extra_flags - used,
                     "%s--resume_from_checkpoint latest --output_dir %.900s", used ? " " : "",
                     s->runs.specs[s->case_b[i]].out_dir);
            c->c.timeout_s = s->o->timeout_s;
            s->case_c[i] = sl_conf_runs_add(&s->runs, &c->c);
            if (s->case_c[i] < 0) return sl_conf_oom("run table");
        }
        if (c->floor_key[0]) {
            if (sl_conf_floor_index(s->report, c->floor_key) < 0) {
                return sl_error_set(SL_ERR_INTERNAL, "conformance: more than %d floor keys",
                                    SL_CONF_MAX_FLOORS);
            }
            const int worlds[3] = {c->a.world_size, c->b.world_size,
                                   c->kind == SL_CONF_CASE_RESUME ? c->c.world_size : 1};
            for (int k = 0; k < 3; k++) {
                if (worlds[k] < 1 || worlds[k] > SL_CONF_MAX_WORLD) {
                    return sl_error_set(SL_ERR_INTERNAL,
                                        "conformance case '%s': W = %d is outside the 1..%d the "
                                        "noise floors are measured for",
                                        c->plan, worlds[k], SL_CONF_MAX_WORLD);
                }
                s->worlds[worlds[k]] = true;
            }
        }
    }
    const int n_plans = (int)(sizeof sl_conf_floor_plans / sizeof sl_conf_floor_plans[0]);
    s->floors = calloc((size_t)s->report->n_floors * (size_t)n_plans * SL_CONF_MAX_WORLD + 1,
                       sizeof *s->floors);
    if (!s->floors) return sl_conf_oom("floor table");
    for (int f = 0; f < s->report->n_floors; f++) {
        for (int p = 0; p < n_plans; p++) {
            for (int W = 1; W <= SL_CONF_MAX_WORLD; W++) {
                if (!s->worlds[W]) continue;
                sl_conf_run_spec spec = sl_conf_run_spec_default();
                spec.steps = SL_CONF_STEPS;
                spec.world_size = W;
                spec.timeout_s = s->o->timeout_s;
                char prec[128];
                sl_conf_precision_flags(s->report->floors[f].key, sl_conf_floor_plans[p], false,
                                        prec, sizeof prec);
                snprintf(spec.plan_flags, sizeof spec.plan_flags,
                         "%s %s --micro_batch_size 2 --seq_len 32 --seed 11 "
                         "--gradient_accumulation_steps 1 --loss_normalization global_tokens",
                         sl_conf_floor_plans[p], prec);
                sl_conf_floor_runs *fr = &s->floors[s->n_floor_runs++];
                fr->floor = f;
                fr->base = sl_conf_runs_add(&s->runs, &spec);
                fr->reversed = -1;
                if (W > 1) {
                    spec.reverse_reduction_order = true;
                    fr->reversed = sl_conf_runs_add(&s->runs, &spec);
                    spec.reverse_reduction_order = false;
                }
                /* the path is set once the base run has written init.safetensors */
                snprintf(spec.out_dir, sizeof spec.out_dir, "ulp");
                snprintf(spec.init_from, sizeof spec.init_from, "pending");
                fr->ulp = sl_conf_runs_add(&s->runs, &spec);
                if (fr->base < 0 || fr->ulp < 0 || (W > 1 && fr->reversed < 0))
                    return sl_conf_oom("run table");
            }
        }
    }
    bool any_peer = false;
    for (int i = 0; i < SL_CONF_PEER_PLANS; i++)
        any_peer = any_peer || s->peer_selected[i];
    if (any_peer) sl_conf_peer_env_find(&s->peer);
    for (int i = 0; i < SL_CONF_PEER_PLANS; i++) {
        s->peer_runs[i] = -1;
        if (!s->peer_selected[i] || !s->peer.ok) continue;
        char label[128];
        sl_conf_run_spec spec;
        sl_conf_peer_plan(i, label, sizeof label, &spec);
        spec.timeout_s = s->o->timeout_s;
        s->peer_runs[i] = sl_conf_runs_add(&s->runs, &spec);
        if (s->peer_runs[i] < 0) return sl_conf_oom("run table");
    }
    s->runs.results = calloc((size_t)s->runs.n + 1, sizeof *s->runs.results);
    return s->runs.results ? SL_OK : sl_conf_oom("results");
}

/* Runs that need another run's files: the floors' perturbed starts and resumes. */
static bool sl_conf_is_second(const sl_conf_run_spec *spec) {
    return !strcmp(spec->init_from, "pending") || strstr(spec->init_from, "/ulp-init.") ||
           strstr(spec->extra_flags, "--resume_from_checkpoint");
}

/* Runs the runs `phase` selects (0: the independent ones, 1: those that need them). */
static sl_status sl_conf_run_phase(sl_conf_suite *s, int phase) {
    int n = 0;
    int *map = calloc((size_t)s->runs.n + 1, sizeof *map);
    sl_conf_run_spec *specs = calloc((size_t)s->runs.n + 1, sizeof *specs);
    sl_conf_result *results = calloc((size_t)s->runs.n + 1, sizeof *results);
    sl_status st = map && specs && results ? SL_OK : sl_conf_oom("phase");
    for (int i = 0; st == SL_OK && i < s->runs.n; i++) {
        if (sl_conf_is_second(&s->runs.specs[i]) != (phase == 1)) continue;
        map[n] = i;
        specs[n++] = s->runs.specs[i];
    }
    if (st == SL_OK) {
        st = sl_conf_run_all(specs, n, s->o->jobs, results, s->o->progress, s->o->progress_ctx);
    }
    for (int k = 0; st == SL_OK && k < n; k++)
        s->runs.results[map[k]] = results[k];
    free(map);
    free(specs);
    free(results);
    return st;
}

/* Writes each floor's perturbed initial weights beside its base run and points the ulp run at
 * them. A base run that failed leaves the path pointing at nothing: the ulp run then fails and
 * the floor is reported as not measured. */
static void sl_conf_prepare_ulp(sl_conf_suite *s) {
    for (int i = 0; i < s->n_floor_runs; i++) {
        const sl_conf_floor_runs *fr = &s->floors[i];
        sl_conf_run_spec *ulp = &s->runs.specs[fr->ulp];
        const sl_conf_result *base = &s->runs.results[fr->base];
        snprintf(ulp->init_from, sizeof ulp->init_from, "%.480s/ulp-init.safetensors",
                 s->runs.specs[fr->base].out_dir);
        if (base->status == SL_OK) {
            sl_conf_write_ulp_init(s->runs.specs[fr->base].out_dir, base->master_dtype,
                                   ulp->init_from);
        }
    }
}

/* floor = max over its reference pairs, per quantity; a failed pair makes it NaN (no
 * tolerance then admits anything, and the report says why). */
static void sl_conf_measure_floors(sl_conf_suite *s) {
    sl_conf_report *r = s->report;
    for (int i = 0; i < s->n_floor_runs; i++) {
        const sl_conf_floor_runs *fr = &s->floors[i];
        sl_conf_floor *f = &r->floors[fr->floor];
        const sl_conf_result *base = &s->runs.results[fr->base];
        const sl_conf_result *ulp = &s->runs.results[fr->ulp];
        const sl_conf_result *rev = fr->reversed >= 0 ? &s->runs.results[fr->reversed] : NULL;
        sl_conf_divergence dr = {{0}}, du = {{0}}, d;
        sl_status st = base->status != SL_OK ? base->status : ulp->status;
        if (st == SL_OK && rev)
            st = rev->status != SL_OK ? rev->status : sl_conf_run_divergence(rev, base, &dr);
        if (st == SL_OK) st = sl_conf_run_divergence(ulp, base, &du);
        if (st != SL_OK) {
            const sl_conf_result *bad = base->status != SL_OK  ? base
                                        : ulp->status != SL_OK ? ulp
                                                               : rev;
            for (int q = 0; q < SL_CONF_Q_COUNT; q++)
                f->d.q[q] = NAN;
            snprintf(f->detail, sizeof f->detail, "not measured: %.230s",
                     bad && bad->status != SL_OK ? bad->error : sl_error_message());
            continue;
        }
        sl_conf_floor_combine(rev ? &dr : NULL, &du, &d);
        for (int q = 0; q < SL_CONF_Q_COUNT; q++) {
            if (isnan(f->d.q[q])) continue;
            if (!(d.q[q] <= f->d.q[q])) f->d.q[q] = d.q[q];
        }
        f->n_pairs += rev ? 2 : 1;
    }
}

/* ---- evaluation ------------------------------------------------------------------------- */

static sl_status sl_conf_report_add(sl_conf_report *r, const sl_conf_check *c, int *cap) {
    if (r->n_checks == *cap) {
        const int grown_cap = *cap ? 2 * *cap : 128;
        sl_conf_check *grown = realloc(r->checks, (size_t)grown_cap * sizeof *grown);
        if (!grown) return sl_conf_oom("checks");
        r->checks = grown;
        *cap = grown_cap;
    }
    r->checks[r->n_checks++] = *c;
    return SL_OK;
}

static const sl_conf_floor *sl_conf_floor_get(const sl_conf_report *r, const char *key) {
    for (int i = 0; i < r->n_floors; i++) {
        if (!strcmp(r->floors[i].key, key)) return &r->floors[i];
    }
    return NULL;
}

static sl_status sl_conf_evaluate(sl_conf_suite *s) {
    sl_conf_report *r = s->report;
    int cap = 0;
    for (int i = 0; i < s->m.n; i++) {
        const sl_conf_case *c = &s->m.cases[i];
        const sl_conf_result *a = &s->runs.results[s->case_a[i]];
        const sl_conf_result *b = &s->runs.results[s->case_b[i]];
        const sl_conf_floor *f = c->floor_key[0] ? sl_conf_floor_get(r, c->floor_key) : NULL;
        if (c->kind == SL_CONF_CASE_OBSERVE) {
            static const char *const names[4] = {"dtype_table", "layout", "collectives", "memory"};
            sl_conf_check out[4];
            for (int k = 0; k < 4; k++)
                out[k] = sl_conf_check_make(c->tier, names[k], c->plan);
            sl_conf_check_observation(b, a, out);
            for (int k = 0; k < 4; k++)
                SL_TRY(sl_conf_report_add(r, &out[k], &cap));
            continue;
        }
        sl_conf_check chk = sl_conf_check_make(c->tier, c->check, c->plan);
        if (f) snprintf(chk.floor_key, sizeof chk.floor_key, "%s", f->key);
        const bool needs_floor = c->kind == SL_CONF_CASE_TOLERANCE ||
                                 c->kind == SL_CONF_CASE_DOCUMENTED ||
                                 (c->kind == SL_CONF_CASE_RESUME && c->floor_key[0]);
        if (needs_floor && !f) {
            return sl_error_set(SL_ERR_INTERNAL, "conformance case '%s' has no noise floor",
                                c->plan);
        }
        if (c->kind == SL_CONF_CASE_RESUME) {
            sl_conf_check_resume(a, &s->runs.results[s->case_c[i]], f ? &f->d : NULL, r->multiple,
                                 &chk);
        } else if (c->kind == SL_CONF_CASE_BITWISE) {
            sl_conf_check_bitwise(a, b, &chk);
        } else if (c->kind == SL_CONF_CASE_TOLERANCE) {
            sl_conf_check_tolerance(a, b, &f->d, r->multiple, &chk);
        } else {
            sl_conf_check_documented(a, b, &f->d, &chk);
        }
        SL_TRY(sl_conf_report_add(r, &chk, &cap));
    }
    for (int i = 0; i < SL_CONF_PEER_PLANS; i++) {
        if (!s->peer_selected[i]) continue;
        char label[128];
        sl_conf_run_spec spec;
        sl_conf_peer_plan(i, label, sizeof label, &spec);
        sl_conf_check peer = sl_conf_check_make("T5", "peer", label);
        const int k = s->peer_runs[i];
        if (k < 0) {
            peer.verdict = SL_CONF_SKIP;
            snprintf(peer.detail, sizeof peer.detail, "%s", s->peer.why);
            snprintf(r->notices, sizeof r->notices, "T5 skipped: %s", s->peer.why);
        } else {
            sl_conf_peer_check(&s->peer, s->runs.specs[k].out_dir, &s->runs.results[k],
                               s->o->timeout_s, &peer);
        }
        SL_TRY(sl_conf_report_add(r, &peer, &cap));
    }
    return SL_OK;
}

static double sl_conf_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

sl_status sl_conf_suite_run(const sl_conf_options *o, sl_conf_report *out) {
    memset(out, 0, sizeof *out);
    out->tier = o->tier;
    out->multiple = SL_CONF_TOLERANCE_MULTIPLE;
    snprintf(out->filter, sizeof out->filter, "%s", o->filter ? o->filter : "");
    const double t0 = sl_conf_now();
    sl_conf_suite s = {.o = o, .report = out, .runs = {.root = o->report_dir}};
    sl_status st = sl_conf_matrix_build(o->tier, o->filter, &s.m);
    bool any_peer = false;
    for (int i = 0; i < SL_CONF_PEER_PLANS; i++) {
        char label[128], text[160];
        sl_conf_run_spec spec;
        sl_conf_peer_plan(i, label, sizeof label, &spec);
        snprintf(text, sizeof text, "T5 peer %s", label);
        s.peer_selected[i] = !o->filter || !*o->filter || strstr(text, o->filter);
        any_peer = any_peer || s.peer_selected[i];
    }
    if (st == SL_OK && s.m.n == 0 && !any_peer) {
        st = sl_error_set(SL_ERR_INVALID_ARG,
                          "conformance: --filter '%s' matches no check of the %s tier; the "
                          "checks are named \"TIER CHECK PLAN\" as in conformance.md "
                          "(e.g. \"T3 impl_vs_ref fsdp1 FULL_SHARD\")",
                          o->filter ? o->filter : "", sl_conf_tier_name(o->tier));
    }
    if (st == SL_OK) st = sl_conf_plan_runs(&s);
    if (st == SL_OK) st = sl_conf_run_phase(&s, 0);
    if (st == SL_OK) {
        sl_conf_prepare_ulp(&s);
        st = sl_conf_run_phase(&s, 1);
    }
    if (st == SL_OK) {
        sl_conf_measure_floors(&s);
        st = sl_conf_evaluate(&s);
    }
    out->n_runs = s.runs.n;
    out->seconds = sl_conf_now() - t0;
    sl_conf_runs_free(&s.runs);
    sl_conf_matrix_free(&s.m);
    free(s.case_a);
    free(s.case_b);
    free(s.case_c);
    free(s.floors);
    if (st != SL_OK) sl_conf_report_free(out);
    return st;
}

bool sl_conf_report_passed(const sl_conf_report *r) {
    for (int i = 0; i < r->n_checks; i++) {
        if (r->checks[i].verdict == SL_CONF_FAIL) return false;
    }
    return r->n_checks > 0;
}

void sl_conf_report_free(sl_conf_report *r) {
    free(r->checks);
    r->checks = NULL;
    r->n_checks = 0;
}
