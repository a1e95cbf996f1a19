#include "compare_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/fileio.h"
#include "conformance/compare_run.h"

cmd_result harness_shardlab(const char *args) {
    const char *bin = getenv("SHARDLAB_BIN");
    if (!bin) skip();
#ifdef __SANITIZE_ADDRESS__
    /* the engine's ranks run under launch: their leak check must see past Open MPI, as
     * tests/engine does (tests/comm/lsan_mpi.supp) */
    setenv("OMPI_MCA_mca_base_component_disable_dlclose", "1", 1);
    setenv("ASAN_OPTIONS", "fast_unwind_on_malloc=0", 1);
    setenv("LSAN_OPTIONS", "suppressions=" SL_SOURCE_DIR "/tests/comm/lsan_mpi.supp", 1);
#endif
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    cmd_result r = {0};
    size_t len = 0, cap = 0;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
        if (len + n + 1 > cap) {
            cap = 2 * (len + n + 1);
            r.out = realloc(r.out, cap);
            assert_non_null(r.out);
        }
        memcpy(r.out + len, buf, n);
        len += n;
    }
    if (!r.out) r.out = calloc(1, 1);
    r.out[len] = '\0';
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

void assert_contains(const char *haystack, const char *needle) {
    if (!strstr(haystack, needle)) fail_msg("expected \"%s\" in:\n%s", needle, haystack);
}

void harness_mkdtemp(char *buf, size_t cap) {
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, cap, "%s/shardlab-test-compare-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(buf));
}

void harness_rmdir(const char *dir) {
    sl_compare_remove_run_dir(dir);
}

char *harness_read(const char *path) {
    char *text = NULL;
    size_t len = 0;
    if (sl_file_read_all(path, &text, &len) != SL_OK) fail_msg("cannot read %s", path);
    return text;
}
