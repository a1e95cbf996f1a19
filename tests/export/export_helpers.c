/* Export test helpers (export_helpers.h). */
#include "tests/export/export_helpers.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

void xh_tmpdir(const char *tag, char *out, size_t cap) {
    snprintf(out, cap, "/tmp/shardlab-export-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(out));
}

void xh_rmtree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            xh_rmtree(path);
        } else {
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

bool xh_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
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
    const char *bin = getenv("SHARDLAB_BIN");
    char cmd[8192];
    /* a rank that fails alone leaves the others waiting for the comm watchdog: bound the wait */
    snprintf(cmd, sizeof cmd, "timeout -k 10 300 '%s' %s > '%s' 2>&1",
             bin ? bin : SL_BINARY_DIR "/shardlab", args, log);
    fflush(NULL);
#ifdef __SANITIZE_ADDRESS__
    /* the ranks' leak check must see past Open MPI (tests/comm/lsan_mpi.supp) */
    setenv("OMPI_MCA_mca_base_component_disable_dlclose", "1", 1);
    setenv("ASAN_OPTIONS", "fast_unwind_on_malloc=0", 1);
    setenv("LSAN_OPTIONS", "suppressions=" SL_SOURCE_DIR "/tests/comm/lsan_mpi.supp", 1);
#endif
    const int rc = system(cmd);
    assert_true(rc != -1 && WIFEXITED(rc));
    return WEXITSTATUS(rc);
}

const char *xh_slurp(const char *path) {
    static char buf[65536];
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return buf;
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
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
