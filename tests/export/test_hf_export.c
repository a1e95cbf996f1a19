/* The Hugging Face layout (common/hf_model.h): sizes parsed as transformers parses them; one
 * file or shards cut as transformers cuts them, with an index naming every tensor; names,
 * shapes, dtypes and config.json as GPT2LMHeadModel expects; values read back exactly (f32) or
 * equal to the round-to-nearest-even of the masters (16-bit); and every bad input refused with
 * the file and the tensor named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/hf_model.h"
#include "common/json.h"
#include "common/param_file.h"
#include "shardlab/safetensors.h"
#include "tests/export/export_helpers.h"

#define SEED 20261123u

/* ---- sizes ---------------------------------------------------------------------------------- */

static void test_size_parse_uses_transformers_units(void **state) {
    (void)state;
    const struct {
        const char *text;
        int64_t bytes;
    } ok[] = {
        {"5GB", INT64_C(5000000000)},
        {"500MB", 500000000},
        {"10KB", 10000},
        {"2GiB", INT64_C(2147483648)},
        {"1MiB", 1048576},
        {"3kib", 3072},
        {"100Mb", 12500000},
        /* lowercase b: bits */ {"123", 123},
        {"1.5GB", 1500000000},
        {"1TB", INT64_C(1000000000000)},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = 0;
        if (sl_hf_size_parse(ok[i].text, "--max_shard_size", &v) != SL_OK)
            fail_msg("'%s': %s", ok[i].text, sl_error_message());
        if (v != ok[i].bytes)
            fail_msg("'%s' = %lld, expected %lld", ok[i].text, (long long)v,
                     (long long)ok[i].bytes);
    }
    const char *bad[] = {"", "GB", "5XB", "-1", "1.5", "0KB", "5 GB", "5GBs", "1e3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 0;
        assert_int_equal(sl_hf_size_parse(bad[i], "--max_shard_size", &v), SL_ERR_CONFIG);
        assert_non_null(strstr(sl_error_message(), "--max_shard_size"));
    }
}

/* ---- writing -------------------------------------------------------------------------------- */

static void join(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
}

static void save(const sl_model_desc *desc, float **arrays, int64_t max, sl_dtype dt,
                 const char *dir) {
    sl_hf_save_options o = sl_hf_save_options_default();
    o.max_shard_size = max;
    o.dtype = dt;
    if (sl_hf_model_save(desc, arrays, &o, dir) != SL_OK) fail_msg("%s", sl_error_message());
}

/* Every tensor of a file: a parameter of the description, in its order, with its shape and dtype,
 * and the file's metadata has format "pt" (from_pretrained refuses a file without it). */
static int check_file_tensors(const sl_model_desc *desc, const char *path, sl_dtype dt, int from) {
    sl_safetensors *st = NULL;
    if (sl_safetensors_open(path, &st) != SL_OK) fail_msg("%s", sl_error_message());
    const char *format = sl_safetensors_metadata(st, "format");
    assert_non_null(format);
    assert_string_equal(format, "pt");
    const int n = (int)sl_safetensors_count(st);
    for (int i = 0; i < n; i++) {
        const sl_safetensors_tensor *t = sl_safetensors_at(st, i);
        const sl_param_desc *pd = &desc->params[from + i];
        assert_string_equal(t->name, pd->name);
        assert_int_equal(t->dtype, dt);
        assert_int_equal(t->ndim, pd->ndim);
        for (int d = 0; d < pd->ndim; d++)
            assert_int_equal(t->shape[d], pd->shape[d]);
    }
    sl_safetensors_close(st);
    return n;
}

static void test_single_file_export_reads_back_exactly(void **state) {
    (void)state;
    sl_model_desc *desc = xh_model();
    float **a = xh_random_params(desc, SEED);
    char dir[256], out[300], path[400];
    sl_ts_mkdtemp("export-single", dir, sizeof dir);
    join(out, sizeof out, dir, "model");
    save(desc, a, 0, SL_DTYPE_F32, out);
    join(path, sizeof path, out, "model.safetensors");
    assert_int_equal(check_file_tensors(desc, path, SL_DTYPE_F32, 0), desc->n_params);
    join(path, sizeof path, out, SL_HF_INDEX_NAME);
    assert_false(sl_ts_exists(path));
    /* the GPT-2 Conv1D weights keep (in, out): c_attn is (C, 3C), mlp.c_proj (4C, C) */
    const int c_attn = sl_model_find_param(desc, "transformer.h.0.attn.c_attn.weight");
    assert_int_equal(desc->params[c_attn].shape[0], 32);
    assert_int_equal(desc->params[c_attn].shape[1], 96);
    assert_int_equal(sl_model_find_param(desc, "lm_head.weight"), -1); /* tied: not stored */
    float **b = xh_read_export(desc, out);
    xh_assert_params_equal(desc, b, a,
                           "seed "
                           "20261123");
    sl_param_arrays_free(desc, b);
    sl_param_arrays_free(desc, a);
    sl_model_desc_destroy(desc);
    sl_ts_rmtree(dir);
}

/* huggingface_hub's cutting rule, restated: in parameter order, close the shard when the next
 * tensor would push it past max; a tensor larger than max is a shard of its own, appended at
 * once. Returns the shard count and fills first[s] / count[s] (parameters in order per shard
 * hold here because no parameter of this model exceeds the limits used). */
static int expected_shards(const sl_model_desc *desc, int64_t elem, int64_t max, int *count) {
    count[0] = 0;
    int n = 0;
    int64_t filled = 0;
    for (int p = 0; p < desc->n_params; p++) {
        const int64_t bytes = desc->params[p].numel * elem;
        assert_true(bytes <= max);
        if (filled + bytes > max) {
            count[++n] = 0;
            filled = 0;
        }
        count[n]++;
        filled += bytes;
    }
    return n + 1;
}

static void check_sharded(sl_dtype dt, int64_t max) {
    sl_model_desc *desc = xh_model();
    float **a = xh_random_params(desc, SEED + 1);
    char dir[256], out[300], path[400];
    sl_ts_mkdtemp("export-sharded", dir, sizeof dir);
    join(out, sizeof out, dir, "model");
    save(desc, a, max, dt, out);
    int count[64];
    const int64_t elem = (int64_t)sl_dtype_size(dt);
    const int n = expected_shards(desc, elem, max, count);
    assert_true(n > 2);
    join(path, sizeof path, out, "model.safetensors");
    assert_false(sl_ts_exists(path));
    int from = 0;
    for (int s = 0; s < n; s++) {
        char name[64], want[64];
        sl_hf_shard_name(s, n, name, sizeof name);
        snprintf(want, sizeof want, "model-%05d-of-%05d.safetensors", s + 1, n);
        assert_string_equal(name, want);
        join(path, sizeof path, out, name);
        assert_int_equal(check_file_tensors(desc, path, dt, from), count[s]);
        from += count[s];
    }
    assert_int_equal(from, desc->n_params);
    /* the index: total_size = bytes of every tensor, weight_map = every tensor -> its shard */
    join(path, sizeof path, out, SL_HF_INDEX_NAME);
    sl_json *root = NULL;
    if (sl_json_parse_file(path, &root) != SL_OK) fail_msg("%s", sl_error_message());
    int64_t total = 0, want_total = 0;
    assert_true(sl_json_int64(sl_json_get(sl_json_get(root, "metadata"), "total_size"), &total));
    for (int p = 0; p < desc->n_params; p++)
        want_total += desc->params[p].numel * elem;
    assert_int_equal(total, want_total);
    const sl_json *map = sl_json_get(root, "weight_map");
    assert_int_equal(sl_json_count(map), desc->n_params);
    for (size_t i = 1; i < sl_json_count(map); i++) /* sorted, as transformers writes it */
        assert_true(strcmp(sl_json_key_at(map, i - 1), sl_json_key_at(map, i)) < 0);
    int p = 0;
    for (int s = 0; s < n; s++) {
        char name[64];
        sl_hf_shard_name(s, n, name, sizeof name);
        for (int k = 0; k < count[s]; k++, p++) {
            const sl_json *v = sl_json_get(map, desc->params[p].name);
            assert_non_null(v);
            assert_string_equal(sl_json_string(v), name);
        }
    }
    sl_json_free(root);
    /* values: f32 exact; 16-bit equal to the masters rounded to nearest even */
    float **b = xh_read_export(desc, out);
    for (p = 0; p < desc->n_params; p++)
        sl_round_array(a[p], (size_t)desc->params[p].numel, dt);
    xh_assert_params_equal(desc, b, a, "sharded export");
    sl_param_arrays_free(desc, b);
    sl_param_arrays_free(desc, a);
    sl_model_desc_destroy(desc);
    sl_ts_rmtree(dir);
}

static void test_sharded_export_has_index_naming_every_tensor_f32(void **state) {
    (void)state;
    check_sharded(SL_DTYPE_F32, 40000); /* the largest tensor, wte, is 256 x 32 x 4 = 32768 B */
}

static void test_sharded_export_bf16_is_rne_of_masters(void **state) {
    (void)state;
    check_sharded(SL_DTYPE_BF16, 16384); /* wte: 256 x 32 x 2 = 16384 B, exactly the limit */
}

static void test_sharded_export_f16_is_rne_of_masters(void **state) {
    (void)state;
    check_sharded(SL_DTYPE_F16, 16384);
}

/* Ties and carries of bf16 rounding, checked against the bit rule written out here. */
static void test_bf16_export_rounds_ties_to_even(void **state) {
    (void)state;
    sl_model_desc *desc = xh_model();
    float **a = xh_random_params(desc, SEED + 2);
    const int p = sl_model_find_param(desc, "transformer.ln_f.bias");
    const uint32_t patterns[] = {0x3f808000u, 0x3f818000u, 0x3f80c000u, 0x3f807fffu,
                                 0xbf808000u, 0x7f7fffffu, 0x00018000u, 0x80000000u};
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++)
        memcpy(&a[p][i], &patterns[i], 4);
    char dir[256];
    sl_ts_mkdtemp("export-rne", dir, sizeof dir);
    char out[300];
    join(out, sizeof out, dir, "m");
    save(desc, a, 0, SL_DTYPE_BF16, out);
    float **b = xh_read_export(desc, out);
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        const uint32_t x = patterns[i];
        /* round to nearest, ties to even, on the upper 16 bits (finite inputs) */
        const uint32_t want = ((x + 0x7fffu + ((x >> 16) & 1u)) >> 16) << 16;
        uint32_t got;
        memcpy(&got, &b[p][i], 4);
        if (got != want) fail_msg("0x%08x -> 0x%08x, expected 0x%08x", x, got, want);
    }
    sl_param_arrays_free(desc, b);
    sl_param_arrays_free(desc, a);
    sl_model_desc_destroy(desc);
    sl_ts_rmtree(dir);
}

static void test_config_json_is_gpt2lmheadmodel_config(void **state) {
    (void)state;
    sl_model_desc *desc = xh_model();
    float **a = xh_random_params(desc, SEED);
    char dir[256], out[300], path[400];
    sl_ts_mkdtemp("export-config", dir, sizeof dir);
    join(out, sizeof out, dir, "m");
    save(desc, a, 0, SL_DTYPE_BF16, out);
    join(path, sizeof path, out, "config.json");
    sl_json *root = NULL;
    if (sl_json_parse_file(path, &root) != SL_OK) fail_msg("%s", sl_error_message());
    assert_string_equal(sl_json_string(sl_json_get(root, "model_type")), "gpt2");
    const sl_json *arch = sl_json_get(root, "architectures");
    assert_int_equal(sl_json_count(arch), 1);
    assert_string_equal(sl_json_string(sl_json_at(arch, 0)), "GPT2LMHeadModel");
    const struct {
        const char *key;
        int64_t want;
    } ints[] = {{"n_layer", 2},      {"n_embd", 32}, {"n_head", 2},
                {"n_positions", 32}, {"n_ctx", 32},  {"vocab_size", 256}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = -1;
        assert_true(sl_json_int64(sl_json_get(root, ints[i].key), &v));
        assert_int_equal(v, ints[i].want);
    }
    assert_true(sl_json_number(sl_json_get(root, "layer_norm_epsilon")) == 1e-5);
    assert_true(sl_json_bool(sl_json_get(root, "tie_word_embeddings")));
    assert_string_equal(sl_json_string(sl_json_get(root, "torch_dtype")), "bfloat16");
    assert_string_equal(sl_json_string(sl_json_get(root, "activation_function")), "gelu_new");
    assert_int_equal(sl_json_type_of(sl_json_get(root, "n_inner")), SL_JSON_NULL);
    for (size_t i = 1; i < sl_json_count(root); i++) /* sort_keys=True, as transformers */
        assert_true(strcmp(sl_json_key_at(root, i - 1), sl_json_key_at(root, i)) < 0);
    sl_json_free(root);
    /* and the reader's own check accepts it */
    assert_int_equal(sl_hf_config_check(path, desc), SL_OK);
    sl_param_arrays_free(desc, a);
    sl_model_desc_destroy(desc);
    sl_ts_rmtree(dir);
}

/* The shard a tensor is mapped to by the index of the export `out`. */
static void mapped_file(const char *out, const char *tensor, char *buf, size_t cap) {
    char path[400];
    join(path, sizeof path, out, SL_HF_INDEX_NAME);
    sl_json *root = NULL;
    if (sl_json_parse_file(path, &root) != SL_OK) fail_msg("%s", sl_error_message());
    const sl_json *v = sl_json_get(sl_json_get(root, "weight_map"), tensor);
    assert_non_null(v);
    snprintf(buf, cap, "%s", sl_json_string(v));
    sl_json_free(root);
}

/* With a 10,000-byte limit in f32, wte (32768 B), each c_attn.weight (12288 B), c_fc.weight and
 * mlp.c_proj.weight (16384 B each) exceed it: huggingface_hub emits each alone the moment it
 * meets it. So: 1 wte, 2-4 block 0's three big weights, 5 the shard wpe opened (closed by block
 * 1's ln_1.bias, which would make it 10112 B), 6-8 block 1's big weights, 9 the rest from block
 * 1's ln_1.bias on. */
static void test_tensor_over_the_limit_gets_its_own_shard_first(void **state) {
    (void)state;
    sl_model_desc *desc = xh_model();
    float **a = xh_random_params(desc, SEED + 4);
    char dir[256], out[300], file[64];
    sl_ts_mkdtemp("export-oversized", dir, sizeof dir);
    join(out, sizeof out, dir, "m");
    save(desc, a, 10000, SL_DTYPE_F32, out);
    const struct {
        const char *tensor;
        int shard; /* 1-based */
    } want[] = {{"transformer.wte.weight", 1},
                {"transformer.h.0.attn.c_attn.weight", 2},
                {"transformer.h.0.mlp.c_fc.weight", 3},
                {"transformer.h.0.mlp.c_proj.weight", 4},
                {"transformer.wpe.weight", 5},
                {"transformer.h.1.ln_1.weight", 5},
                {"transformer.h.1.attn.c_attn.weight", 6},
                {"transformer.h.1.mlp.c_proj.weight", 8},
                {"transformer.h.1.ln_1.bias", 9},
                {"transformer.ln_f.bias", 9}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        mapped_file(out, want[i].tensor, file, sizeof file);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "model-%05d-of-", want[i].shard);
        if (strncmp(file, prefix, strlen(prefix)) != 0)
            fail_msg("%s is in %s, expected shard %d", want[i].tensor, file, want[i].shard);
    }
    float **b = xh_read_export(desc, out);
    xh_assert_params_equal(desc, b, a, "oversized tensors");
    sl_param_arrays_free(desc, b);
    sl_param_arrays_free(desc, a);
    sl_model_desc_destroy(desc);
    sl_ts_rmtree(dir);
}

static void test_export_replaces_a_previous_export_without_stale_shards(void **state) {
    (void)state;
    sl_model_desc *desc = xh_model();
    float **a = xh_random_params(desc, SEED + 3);
    char dir[256], out[300], path[400], file[64];
    sl_ts_mkdtemp("export-replace", dir, sizeof dir);
    join(out, sizeof out, dir, "m");
    save(desc, a, 16384, SL_DTYPE_F32, out);
    mapped_file(out, "transformer.h.1.mlp.c_fc.bias", file, sizeof file);
    join(path, sizeof path, out, file);
    assert_true(sl_ts_exists(path));
    save(desc, a, 0, SL_DTYPE_F32, out); /* one file now */
    assert_false(sl_ts_exists(path));
    join(path, sizeof path, out, SL_HF_INDEX_NAME);
    assert_false(sl_ts_exists(path));
    join(path, sizeof path, out, "model.safetensors");
    assert_true(sl_ts_exists(path));
    float **b = xh_read_export(desc, out);
    xh_assert_params_equal(desc, b, a, "replaced export");
    sl_param_arrays_free(desc, b);
    sl_param_arrays_free(desc, a);
    sl_model_desc_destroy(desc);
    sl_ts_rmtree(dir);
}

static void test_export_refuses_a_directory_with_other_files(void **state) {
    (void)state;
    sl_model_desc *desc = xh_model();
    float **a = xh_random_params(desc, SEED);
    char dir[256], path[400];
    sl_ts_mkdtemp("export-foreign", dir, sizeof dir);
    join(path, sizeof path, dir, "notes.txt");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("keep me\n", f);
    fclose(f);
    sl_hf_save_options o = sl_hf_save_options_default();
    assert_int_equal(sl_hf_model_save(desc, a, &o, dir), SL_ERR_IO);
    assert_non_null(strstr(sl_error_message(), "notes.txt"));
    assert_string_equal(xh_slurp(path), "keep me\n");
    join(path, sizeof path, dir, "model.safetensors");
    assert_false(sl_ts_exists(path));
    sl_param_arrays_free(desc, a);
    sl_model_desc_destroy(desc);
    sl_ts_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_parse_uses_transformers_units),
        cmocka_unit_test(test_single_file_export_reads_back_exactly),
        cmocka_unit_test(test_sharded_export_has_index_naming_every_tensor_f32),
        cmocka_unit_test(test_sharded_export_bf16_is_rne_of_masters),
        cmocka_unit_test(test_sharded_export_f16_is_rne_of_masters),
        cmocka_unit_test(test_bf16_export_rounds_ties_to_even),
        cmocka_unit_test(test_config_json_is_gpt2lmheadmodel_config),
        cmocka_unit_test(test_tensor_over_the_limit_gets_its_own_shard_first),
        cmocka_unit_test(test_export_replaces_a_previous_export_without_stale_shards),
        cmocka_unit_test(test_export_refuses_a_directory_with_other_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
