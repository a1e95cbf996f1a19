/* Reading the Hugging Face layout back (sl_hf_model_open): a directory, an index or one file;
 * transformers' own variants (GPT2Model names without "transformer.", the causal-mask buffers,
 * a stored tied head); and every bad input refused before anything is read, with the file and
 * the tensor or key named. */
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

#include "common/hf_model.h"
#include "common/param_file.h"
#include "shardlab/safetensors.h"
#include "tests/export/export_helpers.h"

#define SEED 7701u

typedef struct fixture {
    sl_model_desc *desc;
    float **a;
    char dir[256];
    char sharded[300], single[300];
} fixture;

static void path_of(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->desc = xh_model();
    f->a = xh_random_params(f->desc, SEED);
    sl_ts_mkdtemp("export-import", f->dir, sizeof f->dir);
    path_of(f->sharded, sizeof f->sharded, f->dir, "sharded");
    path_of(f->single, sizeof f->single, f->dir, "single");
    sl_hf_save_options o = sl_hf_save_options_default();
    o.max_shard_size = 40000; /* 4 shards in f32 */
    if (sl_hf_model_save(f->desc, f->a, &o, f->sharded) != SL_OK)
        fail_msg("%s", sl_error_message());
    o.max_shard_size = 0;
    if (sl_hf_model_save(f->desc, f->a, &o, f->single) != SL_OK) fail_msg("%s", sl_error_message());
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    sl_param_arrays_free(f->desc, f->a);
    sl_model_desc_destroy(f->desc);
    sl_ts_rmtree(f->dir);
    free(f);
    return 0;
}

/* Opening `path` for f->desc fails with `code` and a message holding every one of `needles`. */
static void expect_refused(const fixture *f, const char *path, sl_status code, ...) {
    sl_hf_model *m = NULL;
    const sl_status st = sl_hf_model_open(path, f->desc, &m);
    assert_null(m);
    if (st != code)
        fail_msg("%s: status %s, expected %s (%s)", path, sl_status_name(st), sl_status_name(code),
                 sl_error_message());
    va_list ap;
    va_start(ap, code);
    for (const char *needle = va_arg(ap, const char *); needle; needle = va_arg(ap, const char *)) {
        if (!strstr(sl_error_message(), needle))
            fail_msg("message lacks '%s': %s", needle, sl_error_message());
    }
    va_end(ap);
}

static void test_open_reads_a_directory_an_index_or_one_file(void **state) {
    fixture *f = *state;
    char index[400], file[400];
    path_of(index, sizeof index, f->sharded, SL_HF_INDEX_NAME);
    path_of(file, sizeof file, f->single, "model.safetensors");
    const char *ways[] = {f->sharded, index, f->single, file};
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        float **b = xh_read_export(f->desc, ways[w]);
        xh_assert_params_equal(f->desc, b, f->a, ways[w]);
        sl_param_arrays_free(f->desc, b);
    }
}

/* A file as GPT2Model.save_pretrained / older transformers write it. */
static void write_transformers_style(const fixture *f, const char *path, bool untie) {
    sl_safetensors_writer *w = NULL;
    assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
    static float mask[32 * 32];
    const int64_t mask_shape[4] = {1, 1, 32, 32};
    for (int p = 0; p < f->desc->n_params; p++) {
        const sl_param_desc *pd = &f->desc->params[p];
        assert_int_equal(sl_safetensors_writer_add_f32(w, pd->name + strlen("transformer."),
                                                       SL_DTYPE_F32, pd->shape, pd->ndim, f->a[p]),
                         SL_OK);
    }
    assert_int_equal(
        sl_safetensors_writer_add_f32(w, "h.0.attn.bias", SL_DTYPE_F32, mask_shape, 4, mask),
        SL_OK);
    assert_int_equal(
        sl_safetensors_writer_add_f32(w, "h.1.attn.masked_bias", SL_DTYPE_F32, NULL, 0, mask),
        SL_OK);
    const int wte = sl_model_find_param(f->desc, "transformer.wte.weight");
    const sl_param_desc *pd = &f->desc->params[wte];
    float *head = malloc((size_t)pd->numel * sizeof *head);
    memcpy(head, f->a[wte], (size_t)pd->numel * sizeof *head);
    if (untie) head[77] += 1.0f;
    assert_int_equal(
        sl_safetensors_writer_add_f32(w, "lm_head.weight", SL_DTYPE_F32, pd->shape, 2, head),
        SL_OK);
    assert_int_equal(sl_safetensors_writer_write(w, path), SL_OK);
    sl_safetensors_writer_destroy(w);
    free(head);
}

static void test_open_accepts_gpt2model_names_buffers_and_tied_head(void **state) {
    fixture *f = *state;
    char path[400];
    path_of(path, sizeof path, f->dir, "hub.safetensors");
    write_transformers_style(f, path, false);
    float **b = xh_read_export(f->desc, path);
    xh_assert_params_equal(f->desc, b, f->a, path);
    sl_param_arrays_free(f->desc, b);
    write_transformers_style(f, path, true);
    expect_refused(f, path, SL_ERR_MISMATCH, path, "lm_head.weight", "element 77", NULL);
    unlink(path);
}

/* A plain file holding the description's parameters with one changed by `edit`. */
typedef enum edit { DROP, TRANSPOSE, INTEGER, EXTRA } edit;

static void write_edited(const fixture *f, const char *path, const char *victim, edit e) {
    sl_safetensors_writer *w = NULL;
    assert_int_equal(sl_safetensors_writer_create(&w), SL_OK);
    static int32_t ints[32 * 128];
    for (int p = 0; p < f->desc->n_params; p++) {
        const sl_param_desc *pd = &f->desc->params[p];
        int64_t shape[2] = {pd->shape[0], pd->shape[1]};
        if (!strcmp(pd->name, victim)) {
            if (e == DROP) continue;
            if (e == TRANSPOSE) {
                shape[0] = pd->shape[1];
                shape[1] = pd->shape[0];
            }
            if (e == INTEGER) {
                assert_int_equal(
                    sl_safetensors_writer_add(w, pd->name, SL_DTYPE_I32, shape, pd->ndim, ints),
                    SL_OK);
                continue;
            }
        }
        assert_int_equal(
            sl_safetensors_writer_add_f32(w, pd->name, SL_DTYPE_F32, shape, pd->ndim, f->a[p]),
            SL_OK);
    }
    if (e == EXTRA) {
        const int64_t shape[1] = {32};
        assert_int_equal(sl_safetensors_writer_add_f32(w, victim, SL_DTYPE_F32, shape, 1, f->a[0]),
                         SL_OK);
    }
    assert_int_equal(sl_safetensors_writer_write(w, path), SL_OK);
    sl_safetensors_writer_destroy(w);
}

static void test_open_refuses_missing_misshapen_integer_and_extra_tensors(void **state) {
    fixture *f = *state;
    char path[400];
    path_of(path, sizeof path, f->dir, "edited.safetensors");
    write_edited(f, path, "transformer.h.1.mlp.c_fc.weight", DROP);
    expect_refused(f, path, SL_ERR_MISMATCH, path, "'transformer.h.1.mlp.c_fc.weight' is missing",
                   NULL);
    write_edited(f, path, "transformer.h.0.mlp.c_fc.weight", TRANSPOSE);
    expect_refused(f, path, SL_ERR_MISMATCH, path, "transformer.h.0.mlp.c_fc.weight", "(128, 32)",
                   "(32, 128)", NULL);
    write_edited(f, path, "transformer.h.0.ln_2.bias", INTEGER);
    expect_refused(f, path, SL_ERR_MISMATCH, path, "transformer.h.0.ln_2.bias", "I32", NULL);
    write_edited(f, path, "transformer.h.2.ln_1.weight", EXTRA);
    expect_refused(f, path, SL_ERR_MISMATCH, path, "transformer.h.2.ln_1.weight", "not a parameter",
                   NULL);
    unlink(path);
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_open_refuses_broken_indexes(void **state) {
    fixture *f = *state;
    char index[400], shard[400], saved[400], bad[400];
    path_of(index, sizeof index, f->sharded, SL_HF_INDEX_NAME);
    /* a shard missing from the directory */
    path_of(shard, sizeof shard, f->sharded, "model-00002-of-00004.safetensors");
    path_of(saved, sizeof saved, f->dir, "saved.safetensors");
    assert_int_equal(rename(shard, saved), 0);
    expect_refused(f, f->sharded, SL_ERR_IO, index, "model-00002-of-00004.safetensors",
                   "does not exist", NULL);
    assert_int_equal(rename(saved, shard), 0);
    /* a shard cut short: the safetensors reader names the file */
    assert_int_equal(truncate(shard, 1000), 0);
    expect_refused(f, f->sharded, SL_ERR_FORMAT, shard, NULL);
    /* indexes written by hand */
    path_of(bad, sizeof bad, f->sharded, "bad.index.json");
    write_text(bad, "{\"metadata\": {}}\n");
    expect_refused(f, bad, SL_ERR_FORMAT, bad, "weight_map", NULL);
    write_text(bad, "{\"weight_map\": {\"transformer.wte.weight\": "
                    "\"model-00003-of-00004.safetensors\"}}\n");
    expect_refused(f, bad, SL_ERR_MISMATCH, bad, "transformer.wte.weight",
                   "model-00003-of-00004.safetensors", "does not hold it", NULL);
    write_text(bad, "{\"weight_map\": {\"transformer.wte.weight\": \"../x.safetensors\"}}\n");
    expect_refused(f, bad, SL_ERR_FORMAT, bad, "../x.safetensors", NULL);
    unlink(bad);
}

static void test_open_refuses_a_config_of_another_model(void **state) {
    fixture *f = *state;
    char config[400], text[8192];
    path_of(config, sizeof config, f->single, "config.json");
    snprintf(text, sizeof text, "%s", xh_slurp(config));
    /* the same shapes with 4 heads instead of 2: only config.json can tell */
    char *at = strstr(text, "\"n_head\": 2");
    assert_non_null(at);
    at[strlen("\"n_head\": ")] = '4';
    write_text(config, text);
    expect_refused(f, f->single, SL_ERR_MISMATCH, config, "n_head is 4", "--n_head 4", NULL);
    at[strlen("\"n_head\": ")] = '2';
    char *type = strstr(text, "\"gpt2\"");
    assert_non_null(type);
    memcpy(type, "\"bert\"", 6);
    write_text(config, text);
    expect_refused(f, f->single, SL_ERR_MISMATCH, config, "model_type", NULL);
    memcpy(type, "\"gpt2\"", 6);
    write_text(config, text);
    float **b = xh_read_export(f->desc, f->single);
    sl_param_arrays_free(f->desc, b);
}

static void test_open_refuses_paths_that_hold_no_weights(void **state) {
    fixture *f = *state;
    char empty[400], missing[400];
    path_of(empty, sizeof empty, f->dir, "empty");
    assert_int_equal(mkdir(empty, 0777), 0);
    expect_refused(f, empty, SL_ERR_IO, empty, "neither", NULL);
    rmdir(empty);
    path_of(missing, sizeof missing, f->dir, "nothing.safetensors");
    expect_refused(f, missing, SL_ERR_IO, missing, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_reads_a_directory_an_index_or_one_file),
        cmocka_unit_test(test_open_accepts_gpt2model_names_buffers_and_tied_head),
        cmocka_unit_test(test_open_refuses_missing_misshapen_integer_and_extra_tensors),
        cmocka_unit_test(test_open_refuses_a_config_of_another_model),
        cmocka_unit_test(test_open_refuses_paths_that_hold_no_weights),
        cmocka_unit_test(test_open_refuses_broken_indexes), /* last: it truncates a shard */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
