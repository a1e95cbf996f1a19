/* Export test helpers (export_helpers.h). */
#include "tests/export/export_helpers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/hf_model.h"
#include "common/param_file.h"
#include "shardlab/rng.h"
#include "shardlab/safetensors.h"

sl_model_desc *xh_model(void) {
    const sl_gpt2_config cfg = {
        .n_layer = 2, .n_embd = 32, .n_head = 2, .block_size = 32, .vocab_size = 256};
    sl_model_desc *m = NULL;
    assert_int_equal(sl_model_desc_create_gpt2(&cfg, &m), SL_OK);
    return m;
}

float **xh_random_params(const sl_model_desc *desc, uint64_t seed) {
    float **a = sl_param_arrays_alloc(desc);
    assert_non_null(a);
    for (int p = 0; p < desc->n_params; p++) {
        for (int64_t i = 0; i < desc->params[p].numel; i++)
            a[p][i] = (float)(sl_rng_normal(seed, (uint64_t)p, (uint64_t)i) / (1.0 + p));
    }
    return a;
}

int xh_shardlab(const char *args, const char *log) {
    char *out = NULL;
    /* a rank that fails alone leaves the others waiting for the comm watchdog: bound the wait */
    const int status = sl_ts_shardlab(args, NULL, 300.0, &out);
    sl_ts_write(log, out, false);
    free(out);
    return status;
}

const char *xh_slurp(const char *path) {
    static char buf[65536];
    sl_ts_read_into(path, buf, sizeof buf);
    return buf;
}

float **xh_read_export(const sl_model_desc *desc, const char *path) {
    sl_hf_model *m = NULL;
    if (sl_hf_model_open(path, desc, &m) != SL_OK)
        fail_msg("open %s: %s", path, sl_error_message());
    float **a = sl_param_arrays_alloc(desc);
    assert_non_null(a);
    for (int p = 0; p < desc->n_params; p++)
        assert_int_equal(sl_hf_model_read(m, p, a[p]), SL_OK);
    sl_hf_model_close(m);
    return a;
}

float **xh_read_file(const sl_model_desc *desc, const char *path) {
    sl_safetensors *st = NULL;
    if (sl_safetensors_open(path, &st) != SL_OK) fail_msg("open %s: %s", path, sl_error_message());
    float **a = sl_param_arrays_alloc(desc);
    assert_non_null(a);
    for (int p = 0; p < desc->n_params; p++) {
        if (sl_safetensors_read_f32(st, desc->params[p].name, a[p],
                                    (size_t)desc->params[p].numel) != SL_OK)
            fail_msg("%s", sl_error_message());
    }
    sl_safetensors_close(st);
    return a;
}

void xh_assert_params_equal(const sl_model_desc *desc, float **a, float **b, const char *what) {
    for (int p = 0; p < desc->n_params; p++) {
        for (int64_t i = 0; i < desc->params[p].numel; i++) {
            if (memcmp(&a[p][i], &b[p][i], sizeof(float)) == 0) continue;
            uint32_t x, y;
            memcpy(&x, &a[p][i], 4);
            memcpy(&y, &b[p][i], 4);
            fail_msg("%s: %s[%lld] = %.9g (0x%08x) vs %.9g (0x%08x)", what, desc->params[p].name,
                     (long long)i, (double)a[p][i], x, (double)b[p][i], y);
        }
    }
}
