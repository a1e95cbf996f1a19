/* Checkpoints in one process (W = 1 engines, include/shardlab/checkpoint.h): a save and load
 * restore masters, moments, step counts and the loss scaler exactly; the manifest records the
 * state; `latest` and the total limit; every kind of bad checkpoint is refused with the file or
 * tensor named and leaves the engine unchanged; and the data sampler continues across a change
 * of the global batch without skipping or repeating a sample. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ckpt_format.h"
#include "common/param_file.h"
#include "shardlab/checkpoint.h"
#include "shardlab/safetensors.h"
#include "tests/ckpt/ckpt_harness.h"

#define RUN_FLAGS "--micro_batch_size 2 --seq_len 32 --seed 5 --deterministic true --max_steps 8"

typedef struct fixture {
    sl_session *s;
    sl_model_desc *model;
    sl_plan *plan;
    sl_engine *e;
    sl_dataset *ds;
    sl_sampler *sampler;
    int steps_done;
} fixture;

static void fx_create(fixture *f, const char *plan_flags) {
    memset(f, 0, sizeof *f);
    assert_int_equal(sl_session_create_from_env(&f->s), SL_OK);
    f->model = ch_model();
    char text[1024];
    snprintf(text, sizeof text, "%s %s --num_processes 1", plan_flags, RUN_FLAGS);
    char *argv[64], *rest[64];
    int argc = 0, n_rest = 0;
    for (char *tok = strtok(text, " "); tok && argc < 63; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_create(&cfg), SL_OK);
    assert_int_equal(sl_config_parse_args(cfg, argc, argv, rest, &n_rest), SL_OK);
    assert_int_equal(n_rest, 0);
    if (sl_plan_compile(cfg, f->model, &f->plan) != SL_OK) fail_msg("%s", sl_error_message());
    sl_config_destroy(cfg);
    if (sl_engine_create_gpt2(f->s, f->plan, f->model, NULL, &f->e) != SL_OK)
        fail_msg("%s", sl_error_message());
    assert_int_equal(sl_dataset_open("default", SL_SPLIT_TRAIN, &f->ds), SL_OK);
    sl_sampler_options so = sl_sampler_options_default();
    so.seed = f->plan->seed;
    so.micro_batch_size = f->plan->micro_batch_size;
    so.seq_len = f->plan->seq_len;
    assert_int_equal(sl_sampler_create(f->ds, &so, &f->sampler), SL_OK);
}

static void fx_destroy(fixture *f) {
    sl_sampler_destroy(f->sampler);
    sl_dataset_destroy(f->ds);
    sl_engine_destroy(f->e);
    sl_plan_destroy(f->plan);
    sl_model_desc_destroy(f->model);
    sl_session_destroy(f->s);
}

/* One optimizer step on the sampler's batch of step `step`; returns its loss. */
static double fx_step(fixture *f, int step) {
    int32_t in[64], tg[64];
    assert_int_equal(sl_sampler_fill(f->sampler, step, 0, 0, in, tg, NULL, NULL), SL_OK);
    int64_t tokens = 0;
    for (int i = 0; i < 64; i++)
        tokens += tg[i] >= 0;
    const sl_batch b = {.inputs = in, .targets = tg, .B = 2, .T = 32};
    sl_trajectory_step rec;
    assert_int_equal(sl_engine_step_begin(f->e, tokens), SL_OK);
    assert_int_equal(sl_engine_micro_step(f->e, 0, &b, NULL), SL_OK);
    assert_int_equal(sl_engine_optimizer_step(f->e, &rec), SL_OK);
    return rec.loss;
}

static float **fx_masters(fixture *f) {
    float **a = sl_param_arrays_alloc(f->model);
    assert_non_null(a);
    assert_int_equal(sl_engine_gather_full(f->e, SL_ENGINE_MASTERS, 0, a), SL_OK);
    return a;
}

static void fx_save(fixture *f, const char *dir, sl_state_dict_type type) {
    sl_ckpt_save_options o = sl_ckpt_save_options_default();
    o.type = type;
    o.has_data = true;
    o.data = sl_sampler_position_of(f->sampler, 2);
    o.consumed_samples = 4;
    if (sl_engine_save_state(f->e, dir, &o) != SL_OK) fail_msg("save: %s", sl_error_message());
}

/* For each state dict type: train 2 steps, save, train 2 more (the reference continuation);
 * a fresh engine loading the checkpoint has the saved masters and continues with the same
 * losses and final masters bit for bit — which needs the moments, the step counts and the
 * GradScaler state (fp16) restored too. */
static void test_load_restores_state_and_continuation_bit_for_bit(void **state) {
    (void)state;
    for (int type = 0; type < 2; type++) {
        char dir[256], ck[300];
        sl_ts_mkdtemp("roundtrip", dir, sizeof dir);
        snprintf(ck, sizeof ck, "%s/checkpoint_2", dir);
        fixture a, b;
        fx_create(&a, "--use_fsdp --fsdp_sharding_strategy FULL_SHARD --mixed_precision fp16");
        fx_step(&a, 0);
        fx_step(&a, 1);
        fx_save(&a, ck, (sl_state_dict_type)type);
        float **saved = fx_masters(&a);
        const double scale = sl_engine_loss_scale(a.e);
        const double l3 = fx_step(&a, 2), l4 = fx_step(&a, 3);
        float **final_a = fx_masters(&a);

        fx_create(&b, "--use_fsdp --fsdp_sharding_strategy FULL_SHARD --mixed_precision fp16");
        sl_ckpt_info info;
        if (sl_engine_load_state(b.e, ck, &info) != SL_OK) fail_msg("load: %s", sl_error_message());
        assert_int_equal(info.step, 2);
        assert_int_equal(info.type, type);
        assert_true(info.has_data);
        assert_int_equal(info.data.sample_in_epoch, 4);
        assert_int_equal(info.consumed_samples, 4);
        float **loaded = fx_masters(&b);
        assert_true(ch_params_equal(b.model, saved, loaded));
        assert_true(sl_engine_loss_scale(b.e) == scale);
        assert_true(fx_step(&b, 2) == l3);
        assert_true(fx_step(&b, 3) == l4);
        float **final_b = fx_masters(&b);
        if (!ch_params_equal(b.model, final_a, final_b))
            fail_msg("%s: the continued run's masters differ", sl_state_dict_type_name(type));
        float **arrays[] = {saved, final_a, loaded, final_b};
        for (int i = 0; i < 4; i++)
            sl_param_arrays_free(a.model, arrays[i]);
        fx_destroy(&a);
        fx_destroy(&b);
        sl_ts_rmtree(dir);
    }
}

static void test_manifest_records_step_scaler_data_and_files(void **state) {
    (void)state;
    char dir[256], ck[300];
    sl_ts_mkdtemp("manifest", dir, sizeof dir);
    snprintf(ck, sizeof ck, "%s/checkpoint_2", dir);
    fixture f;
    fx_create(&f, "--use_deepspeed --zero_stage 3 --mixed_precision fp16 --initial_scale_power 8");
    fx_step(&f, 0);
    fx_step(&f, 1);
    fx_save(&f, ck, SL_STATE_DICT_SHARDED);
    sl_ckpt_manifest m;
    if (sl_ckpt_manifest_read(ck, f.model, &m) != SL_OK) fail_msg("%s", sl_error_message());
    assert_int_equal(m.format_version, SL_CKPT_FORMAT_VERSION);
    assert_int_equal(m.type, SL_STATE_DICT_SHARDED);
    assert_int_equal(m.step, 2);
    assert_int_equal(m.world_size, 1);
    assert_string_equal(m.dialect, "deepspeed");
    assert_int_equal(m.scaler.kind, SL_SCALER_ZERO_DYNAMIC);
    assert_true(m.scaler.scale == sl_engine_loss_scale(f.e));
    assert_int_equal(m.scaler.cur_iter, 2);
    assert_true(m.has_data);
    assert_int_equal(m.data.sample_in_epoch, 4);
    assert_int_equal(m.n_files, 2);
    assert_string_equal(m.files[0].name, "params-rank00000-of-00001.safetensors");
    assert_string_equal(m.files[1].name, "optim-rank00000-of-00001.safetensors");
    int64_t bytes = 0;
    uint64_t sum = 0;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", ck, m.files[1].name);
    assert_int_equal(sl_ckpt_file_checksum(path, &bytes, &sum), SL_OK);
    assert_int_equal(bytes, m.files[1].bytes);
    assert_true(sum == m.files[1].fnv1a64);
    sl_ckpt_manifest_free(&m);
    fx_destroy(&f);
    sl_ts_rmtree(dir);
}

static void test_latest_names_the_newest_and_total_limit_keeps_k(void **state) {
    (void)state;
    char dir[256];
    sl_ts_mkdtemp("limit", dir, sizeof dir);
    fixture f;
    fx_create(&f, "--use_fsdp --fsdp_sharding_strategy FULL_SHARD");
    for (int s = 0; s < 4; s++) {
        fx_step(&f, s);
        char ck[300];
        snprintf(ck, sizeof ck, "%s/checkpoint_%d", dir, s + 1);
        sl_ckpt_save_options o = sl_ckpt_save_options_default();
        o.update_latest = true;
        o.total_limit = 2;
        assert_int_equal(sl_engine_save_state(f.e, ck, &o), SL_OK);
        assert_string_equal(ch_read_text(dir, "latest"), strrchr(ck, '/') + 1);
    }
    assert_false(sl_ts_exists(sl_ts_join(dir, "checkpoint_1")));
    assert_false(sl_ts_exists(sl_ts_join(dir, "checkpoint_2")));
    assert_true(sl_ts_exists(sl_ts_join(dir, "checkpoint_3/manifest.json")));
    assert_true(sl_ts_exists(sl_ts_join(dir, "checkpoint_4/manifest.json")));
    char path[300];
    bool found = false;
    assert_int_equal(sl_ckpt_resolve("latest", "/nonexistent-output", path, sizeof path, &found),
                     SL_OK);
    assert_false(found);
    fx_destroy(&f);
    sl_ts_rmtree(dir);
}

/* ---- bad input ------------------------------------------------------------------------------ */

typedef void (*damage_fn)(const char *ck, const sl_model_desc *model);

static void file_path(const char *ck, const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", ck, name);
}

static void damage_remove_manifest(const char *ck, const sl_model_desc *model) {
    (void)model;
    char p[512];
    file_path(ck, "manifest.json", p, sizeof p);
    assert_int_equal(unlink(p), 0);
}

static void rewrite_manifest(const char *ck, const char *from, const char *to) {
    char p[512];
    file_path(ck, "manifest.json", p, sizeof p);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    static char text[1 << 20];
    const size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strstr(text, from);
    assert_non_null(at);
    f = fopen(p, "wb");
    assert_non_null(f);
    fwrite(text, 1, (size_t)(at - text), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
}

static void damage_newer_version(const char *ck, const sl_model_desc *model) {
    (void)model;
    rewrite_manifest(ck, "\"format_version\": 1", "\"format_version\": 99");
}

static void damage_other_model(const char *ck, const sl_model_desc *model) {
    (void)model;
    rewrite_manifest(ck, "\"n_embd\": 32", "\"n_embd\": 48");
}

static void damage_truncate_params(const char *ck, const sl_model_desc *model) {
    (void)model;
    char p[512];
    file_path(ck, "params-rank00000-of-00001.safetensors", p, sizeof p);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(truncate(p, sb.st_size - 100), 0);
}

static void damage_flip_byte(const char *ck, const sl_model_desc *model) {
    (void)model;
    char p[512];
    file_path(ck, "optim-rank00000-of-00001.safetensors", p, sizeof p);
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    fseek(f, -10, SEEK_END);
    const int c = fgetc(f);
    fseek(f, -10, SEEK_END);
    fputc(c ^ 0x40, f);
    fclose(f);
}

static void damage_remove_rank_file(const char *ck, const sl_model_desc *model) {
    (void)model;
    char p[512];
    file_path(ck, "params-rank00000-of-00001.safetensors", p, sizeof p);
    assert_int_equal(unlink(p), 0);
}

/* A params file that is valid safetensors, with a checksum the manifest agrees with, but
 * without one of the tensors the manifest lists. */
static void damage_missing_tensor(const char *ck, const sl_model_desc *model) {
    char p[512];
    file_path(ck, "params-rank00000-of-00001.safetensors", p, sizeof p);
    sl_safetensors *st = NULL;
    assert_int_equal(sl_safetensors_open(p, &st), SL_OK);
    sl_safetensors_writer *w = NULL;
    assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
    for (size_t i = 1; i < sl_safetensors_count(st); i++) { /* the first one is dropped */
        const sl_safetensors_tensor *t = sl_safetensors_at(st, i);
        const int64_t n = (int64_t)t->numel;
        assert_int_equal(sl_safetensors_writer_add(w, t->name, t->dtype, &n, 1, t->data), SL_OK);
    }
    assert_int_equal(sl_safetensors_writer_write(w, p), SL_OK);
    sl_safetensors_writer_destroy(w);
    sl_safetensors_close(st);
    (void)model;
    /* bring the manifest's size and checksum up to date the way a writer would */
    char mpath[512];
    file_path(ck, "manifest.json", mpath, sizeof mpath);
    char *text = NULL;
    FILE *f = fopen(mpath, "rb");
    assert_non_null(f);
    text = calloc(1 << 20, 1);
    assert_non_null(text);
    const size_t n = fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    int64_t bytes = 0;
    uint64_t sum = 0;
    assert_int_equal(sl_ckpt_file_checksum(p, &bytes, &sum), SL_OK);
    char *entry = strstr(text, "\"params-rank00000-of-00001.safetensors\"");
    assert_non_null(entry);
    char *b = strstr(entry, "\"bytes\": "), *h = strstr(entry, "\"fnv1a64\": \"");
    assert_non_null(b);
    assert_non_null(h);
    f = fopen(mpath, "wb");
    assert_non_null(f);
    fwrite(text, 1, (size_t)(b - text), f);
    fprintf(f, "\"bytes\": %lld", (long long)bytes);
    char *after_b = strchr(b + 9, ',');
    fwrite(after_b, 1, (size_t)(h - after_b), f);
    fprintf(f, "\"fnv1a64\": \"%016llx\"", (unsigned long long)sum);
    char *after_h = strchr(h + 12, '"') + 1;
    fwrite(after_h, 1, n - (size_t)(after_h - text), f);
    fclose(f);
    free(text);
}

typedef struct bad_case {
    const char *what;
    damage_fn damage;
    const char *expect[2]; /* substrings the message must contain */
} bad_case;

static void test_bad_checkpoints_are_refused_and_leave_the_engine_unchanged(void **state) {
    (void)state;
    static const bad_case cases[] = {
        {"not a checkpoint", damage_remove_manifest, {"is not a checkpoint", "manifest.json"}},
        {"newer format", damage_newer_version, {"format_version 99 is newer", "manifest.json"}},
        {"other model", damage_other_model, {"C48", "manifest.json"}},
        {"truncated file",
         damage_truncate_params,
         {"params-rank00000-of-00001.safetensors", "truncated"}},
        {"corrupted byte",
         damage_flip_byte,
         {"optim-rank00000-of-00001.safetensors", "checksum mismatch"}},
        {"missing rank file",
         damage_remove_rank_file,
         {"params-rank00000-of-00001.safetensors", "missing"}},
        {"missing tensor",
         damage_missing_tensor,
         {"params-rank00000-of-00001.safetensors", "transformer.wte.weight@[0,8192)"}},
    };
    char dir[256], ck[300];
    sl_ts_mkdtemp("bad", dir, sizeof dir);
    snprintf(ck, sizeof ck, "%s/checkpoint_2", dir);
    fixture f;
    fx_create(&f, "--use_fsdp --fsdp_version 2");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fx_step(&f, (int)(2 * i));
        fx_save(&f, ck, SL_STATE_DICT_SHARDED);
        fx_step(&f, (int)(2 * i + 1)); /* the engine moves on from the saved state */
        float **before = fx_masters(&f);
        const double scale = sl_engine_loss_scale(f.e);
        cases[i].damage(ck, f.model);
        const sl_status st = sl_engine_load_state(f.e, ck, NULL);
        const char *msg = sl_error_message();
        if (st == SL_OK) fail_msg("%s: a damaged checkpoint loaded", cases[i].what);
        for (int k = 0; k < 2; k++) {
            if (!strstr(msg, cases[i].expect[k]))
                fail_msg("%s: the message does not name '%s': %s", cases[i].what,
                         cases[i].expect[k], msg);
        }
        float **after = fx_masters(&f);
        if (!ch_params_equal(f.model, before, after))
            fail_msg("%s: a failed load changed the masters", cases[i].what);
        assert_true(sl_engine_loss_scale(f.e) == scale);
        sl_param_arrays_free(f.model, before);
        sl_param_arrays_free(f.model, after);
        assert_int_equal(sl_ckpt_dir_remove(ck), SL_OK);
    }
    fx_destroy(&f);
    sl_ts_rmtree(dir);
}

/* ---- the sampler across a change of the global batch --------------------------------------- */

static sl_dataset *numbered_documents(int64_t n_docs) {
    int32_t *t = malloc((size_t)n_docs * 2 * sizeof *t);
    int64_t *starts = malloc((size_t)n_docs * sizeof *starts);
    assert_non_null(t);
    assert_non_null(starts);
    for (int64_t d = 0; d < n_docs; d++) {
        starts[d] = 2 * d;
        t[2 * d] = t[2 * d + 1] = (int32_t)(d % 250);
    }
    sl_dataset *ds = NULL;
    assert_int_equal(
        sl_dataset_create_from_tokens("numbered", t, 2 * n_docs, starts, n_docs, 256, &ds), SL_OK);
    free(t);
    free(starts);
    return ds;
}

static sl_sampler *sampler_g(const sl_dataset *ds, int W, int b, int64_t epoch, int64_t sample) {
    sl_sampler_options o = sl_sampler_options_default();
    o.seed = 1234;
    o.world_size = W;
    o.micro_batch_size = b;
    o.seq_len = 4;
    o.mode = SL_SAMPLE_DOCUMENTS;
    o.start_epoch = epoch;
    o.start_sample = sample;
    sl_sampler *s = NULL;
    assert_int_equal(sl_sampler_create(ds, &o, &s), SL_OK);
    return s;
}

/* Appends the non-duplicate sample ids of `steps` steps to ids[*n], stopping early once *n
 * reaches `until`. */
static void record_ids(sl_sampler *s, int W, int b, int steps, int until, int64_t *ids, int *n) {
    int32_t in[16 * 4], tg[16 * 4];
    int64_t got[16];
    uint8_t dup[16];
    for (int step = 0; step < steps && *n < until; step++) {
        for (int r = 0; r < W; r++) {
            assert_int_equal(sl_sampler_fill(s, step, r, 0, in, tg, got, dup), SL_OK);
            for (int i = 0; i < b; i++) {
                if (got[i] >= 0 && !dup[i]) ids[(*n)++] = got[i];
            }
        }
    }
}

/* N = 37 samples (prime: no global batch divides it). A run of G = 6 stops after s steps (inside
 * an epoch, exactly at an epoch's end, and in the second epoch); a run of G = 4 or G = 9 resumes
 * at the position the first reports. Concatenated, their samples (wrap-around fillers dropped)
 * are every epoch's permutation in order: nothing skipped, nothing repeated. Seed 1234. */
static void test_sampler_resumes_across_a_change_of_global_batch(void **state) {
    (void)state;
    enum { N = 37 };
    sl_dataset *ds = numbered_documents(N);
    sl_sampler *order = sampler_g(ds, 1, 1, 0, 0); /* G = 1: the epochs' orders one by one */
    int64_t expect[3 * N];
    int n_expect = 0;
    record_ids(order, 1, 1, 3 * N, 3 * N, expect, &n_expect);
    /* inside epoch 0; its end (the 7th batch wraps around); inside epoch 1 */
    const int stops[] = {2, 7, 9};
    const int resume_b[][2] = {{2, 2}, {3, 3}};
    for (size_t i = 0; i < sizeof stops / sizeof *stops; i++) {
        for (int j = 0; j < 2; j++) {
            sl_sampler *first = sampler_g(ds, 2, 3, 0, 0);
            int64_t ids[8 * N];
            int n = 0;
            record_ids(first, 2, 3, stops[i], 8 * N, ids, &n);
            const sl_sampler_position pos = sl_sampler_position_of(first, stops[i]);
            const int W = resume_b[j][0], b = resume_b[j][1];
            sl_sampler *second = sampler_g(ds, W, b, pos.epoch, pos.sample_in_epoch);
            record_ids(second, W, b, 4 * N, 3 * N, ids, &n); /* to the third epoch's end */
            if (n < 3 * N || memcmp(ids, expect, sizeof expect) != 0) {
                fail_msg("stop after %d steps of G = 6 (epoch %lld, sample %lld), resume with "
                         "G = %d: the samples differ from the epochs' orders (seed 1234)",
                         stops[i], (long long)pos.epoch, (long long)pos.sample_in_epoch, W * b);
            }
            sl_sampler_destroy(first);
            sl_sampler_destroy(second);
        }
    }
    sl_sampler_destroy(order);
    sl_dataset_destroy(ds);
}

static void test_sampler_start_outside_the_dataset_is_an_error(void **state) {
    (void)state;
    sl_dataset *ds = numbered_documents(10);
    sl_sampler_options o = sl_sampler_options_default();
    o.mode = SL_SAMPLE_DOCUMENTS;
    o.seq_len = 4;
    o.start_sample = 10;
    sl_sampler *s = NULL;
    assert_int_equal(sl_sampler_create(ds, &o, &s), SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "numbered"));
    assert_non_null(strstr(sl_error_message(), "sample 10"));
    sl_dataset_destroy(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_restores_state_and_continuation_bit_for_bit),
        cmocka_unit_test(test_manifest_records_step_scaler_data_and_files),
        cmocka_unit_test(test_latest_names_the_newest_and_total_limit_keeps_k),
        cmocka_unit_test(test_bad_checkpoints_are_refused_and_leave_the_engine_unchanged),
        cmocka_unit_test(test_sampler_resumes_across_a_change_of_global_batch),
        cmocka_unit_test(test_sampler_start_outside_the_dataset_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
