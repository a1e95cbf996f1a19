/* Google Benchmark JSON result files read back, grouped by run, and merged (results.h). */
#include "bench/results.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"

/* text with every bare NaN / Infinity / -NaN / -Infinity outside strings replaced by null.
 * Lines keep their numbers (only columns after a replacement shift), so parse errors still
 * point at the right line. */
static char *sl_bench_json_nulls(const char *text, size_t len, size_t *out_len) {
    char *out = malloc(len + len / 2 + 8); /* each 3-byte NaN becomes 4 bytes */
    if (!out) return NULL;
    size_t o = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        const char c = text[i];
        if (in_string) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len)
                out[o++] = text[++i];
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') in_string = true;
        static const char *const words[] = {"-Infinity", "Infinity", "-NaN", "NaN"};
        size_t matched = 0;
        for (size_t w = 0; w < 4 && !matched; w++) {
            const size_t n = strlen(words[w]);
            if (len - i >= n && memcmp(text + i, words[w], n) == 0) matched = n;
        }
        if (matched) {
            memcpy(out + o, "null", 4);
            o += 4;
            i += matched - 1;
        } else {
            out[o++] = c;
        }
    }
    *out_len = o;
    return out;
}

static const char *sl_str_member(const sl_json *o, const char *key) {
    const sl_json *v = sl_json_get(o, key);
    return v && sl_json_type_of(v) == SL_JSON_STRING ? sl_json_string(v) : NULL;
}

static sl_status sl_bench_entry_check(const char *path, const sl_json *e, size_t i) {
    static const char *const strings[] = {"name", "run_type"};
    if (sl_json_type_of(e) != SL_JSON_OBJECT) {
        return sl_error_set(SL_ERR_FORMAT,
                            "%s: benchmarks[%zu] (line %d) is a %s; expected an "
                            "object as Google Benchmark writes",
                            path, i, sl_json_line(e), sl_json_type_name(sl_json_type_of(e)));
    }
    for (int k = 0; k < 2; k++) {
        if (!sl_str_member(e, strings[k])) {
            return sl_error_set(SL_ERR_FORMAT,
                                "%s: benchmarks[%zu] (line %d) has no string \"%s\"; is this a "
                                "Google Benchmark JSON file (--benchmark_out_format=json)?",
                                path, i, sl_json_line(e), strings[k]);
        }
    }
    return SL_OK;
}

static sl_status sl_bench_group(sl_bench_results *r, const sl_json *list) {
    const size_t n = sl_json_count(list);
    r->runs = calloc(n ? n : 1, sizeof *r->runs);
    if (!r->runs) return sl_error_set(SL_ERR_OOM, "%s: cannot hold %zu entries", r->path, n);
    for (size_t i = 0; i < n; i++) {
        const sl_json *e = sl_json_at(list, i);
        SL_TRY(sl_bench_entry_check(r->path, e, i));
        const char *name = sl_str_member(e, "run_name");
        if (!name) name = sl_str_member(e, "name");
        sl_bench_result *run = (sl_bench_result *)sl_bench_results_find(r, name);
        if (!run) {
            run = &r->runs[r->n_runs++];
            run->name = name;
            run->label = "";
        }
        const char *type = sl_str_member(e, "run_type");
        const char *error = sl_str_member(e, "error_message");
        if (!run->error && error) run->error = error;
        if (!strcmp(type, "aggregate")) {
            const char *agg = sl_str_member(e, "aggregate_name");
            if (agg && !strcmp(agg, "median")) run->median = e;
            if (agg && !strcmp(agg, "cv")) run->cv = e;
            continue;
        }
        if (run->n == SL_BENCH_MAX_REPS) {
            return sl_error_set(SL_ERR_FORMAT, "%s: '%s' has more than %d repetitions", r->path,
                                name, SL_BENCH_MAX_REPS);
        }
        if (run->n == 0 && sl_str_member(e, "label")) run->label = sl_str_member(e, "label");
        run->reps[run->n++] = e;
    }
    return SL_OK;
}

sl_status sl_bench_results_load(const char *path, sl_bench_results *out) {
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    SL_TRY(sl_file_read_all(path, &text, &len));
    size_t clean_len = 0;
    char *clean = sl_bench_json_nulls(text, len, &clean_len);
    free(text);
    if (!clean) return sl_error_set(SL_ERR_OOM, "%s: cannot copy %zu bytes", path, len);
    const sl_status st = sl_json_parse(clean, clean_len, path, &out->doc);
    free(clean);
    SL_TRY(st);
    out->path = sl_json_file(out->doc);
    const sl_json *list = sl_json_get(out->doc, "benchmarks");
    if (!list || sl_json_type_of(list) != SL_JSON_ARRAY) {
        sl_bench_results_free(out);
        return sl_error_set(SL_ERR_FORMAT,
                            "%s: no \"benchmarks\" array at the top level; expected a Google "
                            "Benchmark JSON file (shardlab bench --out, or "
                            "--benchmark_out_format=json)",
                            path);
    }
    const sl_status g = sl_bench_group(out, list);
    if (g != SL_OK) sl_bench_results_free(out);
    return g;
}

void sl_bench_results_free(sl_bench_results *r) {
    sl_json_free(r->doc);
    free(r->runs);
    memset(r, 0, sizeof *r);
}

const sl_bench_result *sl_bench_results_find(const sl_bench_results *r, const char *name) {
    for (int i = 0; i < r->n_runs; i++) {
        if (!strcmp(r->runs[i].name, name)) return &r->runs[i];
    }
    return NULL;
}

const char *sl_bench_results_context(const sl_bench_results *r, const char *key) {
    return sl_str_member(sl_json_get(r->doc, "context"), key);
}

/* One entry's value of key, real_time and cpu_time converted to ns. */
static bool sl_entry_value(const sl_json *e, const char *key, double *v) {
    const sl_json *x = sl_json_get(e, key);
    if (!x || sl_json_type_of(x) != SL_JSON_NUMBER) return false;
    *v = sl_json_number(x);
    if (strcmp(key, "real_time") != 0 && strcmp(key, "cpu_time") != 0) return true;
    const char *unit = sl_str_member(e, "time_unit");
    static const struct {
        const char *unit;
        double ns;
    } units[] = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (unit && !strcmp(unit, units[i].unit)) {
            *v *= units[i].ns;
            return true;
        }
    }
    return true; /* Google Benchmark's default unit is ns */
}

static int sl_cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bool sl_bench_run_stat(const sl_bench_result *run, const char *key, sl_bench_stat *out) {
    double v[SL_BENCH_MAX_REPS];
    int n = 0;
    for (int i = 0; i < run->n; i++) {
        if (!sl_json_get(run->reps[i], "error_message") && sl_entry_value(run->reps[i], key, &v[n]))
            n++;
    }
    if (n > 0) {
        qsort(v, (size_t)n, sizeof v[0], sl_cmp_double);
        out->median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
        out->lo = v[0];
        out->hi = v[n - 1];
        out->n = n;
        return true;
    }
    double m, cv = 0;
    if (!run->median || !sl_entry_value(run->median, key, &m)) return false;
    /* the cv aggregate of real_time is a fraction; it is not converted like a time */
    if (run->cv) {
        const sl_json *x = sl_json_get(run->cv, key);
        if (x && sl_json_type_of(x) == SL_JSON_NUMBER) cv = fabs(sl_json_number(x));
    }
    *out = (sl_bench_stat){.median = m, .lo = m * (1 - cv), .hi = m * (1 + cv), .n = 1};
    return true;
}

bool sl_bench_run_cpu_share(const sl_bench_result *run, double *share) {
    const size_t n = strlen(run->name), tail = strlen("/real_time");
    if (n < tail || strcmp(run->name + n - tail, "/real_time") != 0) return false;
    double v[SL_BENCH_MAX_REPS];
    int k = 0;
    for (int i = 0; i < run->n; i++) {
        double cpu, real;
        if (sl_entry_value(run->reps[i], "cpu_time", &cpu) &&
            sl_entry_value(run->reps[i], "real_time", &real) && real > 0)
            v[k++] = cpu / real;
    }
    if (k == 0) return false;
    qsort(v, (size_t)k, sizeof v[0], sl_cmp_double);
    *share = k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
    return true;
}

void sl_bench_name_base(const char *name, char *buf, size_t cap) {
    static const char *const tails[] = {"/real_time",        "/manual_time", "/process_time",
                                        "/iterations:",      "/repeats:",    "/min_time:",
                                        "/min_warmup_time:", "/threads:"};
    size_t len = strlen(name);
    for (bool cut = true; cut;) {
        cut = false;
        const char *slash = NULL;
        for (size_t i = len; i-- > 0;) {
            if (name[i] == '/') {
                slash = name + i;
                break;
            }
        }
        for (size_t t = 0; slash && t < sizeof tails / sizeof tails[0] && !cut; t++) {
            const size_t n = strlen(tails[t]);
            const bool whole = tails[t][n - 1] != ':';
            if (strncmp(slash, tails[t], n) == 0 && (!whole || (size_t)(slash - name) + n == len)) {
                len = (size_t)(slash - name);
                cut = true;
            }
        }
    }
    snprintf(buf, cap, "%.*s", (int)len, name);
}

/* ---- merge ---- */

static void sl_json_copy(sl_json_writer *w, const sl_json *v, int64_t family_offset,
                         const char *key) {
    int64_t i64;
    switch (sl_json_type_of(v)) {
    case SL_JSON_NULL: sl_json_writer_null(w); break;
    case SL_JSON_BOOL: sl_json_writer_bool(w, sl_json_bool(v)); break;
    case SL_JSON_NUMBER:
        if (sl_json_int64(v, &i64)) {
            sl_json_writer_int64(w,
                                 key && !strcmp(key, "family_index") ? i64 + family_offset : i64);
        } else {
            sl_json_writer_double(w, sl_json_number(v));
        }
        break;
    case SL_JSON_STRING: sl_json_writer_string(w, sl_json_string(v)); break;
    case SL_JSON_ARRAY:
        sl_json_writer_begin_array(w);
        for (size_t i = 0; i < sl_json_count(v); i++)
            sl_json_copy(w, sl_json_at(v, i), family_offset, NULL);
        sl_json_writer_end_array(w);
        break;
    case SL_JSON_OBJECT:
        sl_json_writer_begin_object(w);
        for (size_t i = 0; i < sl_json_count(v); i++) {
            sl_json_writer_key(w, sl_json_key_at(v, i));
            sl_json_copy(w, sl_json_at(v, i), family_offset, sl_json_key_at(v, i));
        }
        sl_json_writer_end_object(w);
        break;
    }
}

typedef struct sl_merge_ctx {
    const sl_bench_results *in;
    int n;
} sl_merge_ctx;

static sl_status sl_merge_write(FILE *f, void *ctx) {
    const sl_merge_ctx *m = ctx;
    sl_json_writer w;
    sl_json_writer_init(&w, f, 2);
    sl_json_writer_begin_object(&w);
    sl_json_writer_key(&w, "context");
    sl_json_copy(&w, sl_json_get(m->in[0].doc, "context"), 0, NULL);
    sl_json_writer_key(&w, "benchmarks");
    sl_json_writer_begin_array(&w);
    int64_t offset = 0;
    for (int k = 0; k < m->n; k++) {
        const sl_json *list = sl_json_get(m->in[k].doc, "benchmarks");
        int64_t top = -1;
        for (size_t i = 0; i < sl_json_count(list); i++) {
            const sl_json *e = sl_json_at(list, i);
            int64_t fam;
            if (sl_json_int64(sl_json_get(e, "family_index"), &fam) && fam > top) top = fam;
            sl_json_copy(&w, e, offset, NULL);
        }
        offset += top + 1;
    }
    sl_json_writer_end_array(&w);
    sl_json_writer_end_object(&w);
    return sl_json_writer_finish(&w);
}

sl_status sl_bench_results_merge(const char *const *paths, int n, const char *out_path) {
    if (n <= 0) return sl_error_set(SL_ERR_INVALID_ARG, "merging benchmark results: no input");
    sl_bench_results *in = calloc((size_t)n, sizeof *in);
    if (!in) return sl_error_set(SL_ERR_OOM, "merging %d benchmark result files", n);
    sl_status st = SL_OK;
    for (int k = 0; k < n && st == SL_OK; k++)
        st = sl_bench_results_load(paths[k], &in[k]);
    if (st == SL_OK) {
        sl_merge_ctx ctx = {in, n};
        st = sl_file_write_atomic(out_path, sl_merge_write, &ctx);
    }
    for (int k = 0; k < n; k++)
        sl_bench_results_free(&in[k]);
    free(in);
    return st;
}
