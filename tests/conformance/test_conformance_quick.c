/* `shardlab conformance --tier quick`, as users run it: exit status 0 (every check passes), and a
 * report with every tier's checks, the noise floors and the tolerance multiple. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fileio.h"

static char *read_text(const char *path) {
    char *text = NULL;
    size_t len = 0;
    if (sl_file_read_all(path, &text, &len) != SL_OK) fail_msg("%s", sl_error_message());
    return text;
}

static void test_quick_tier_passes_and_reports_every_tier(void **state) {
    (void)state;
    char dir[] = "/tmp/shardlab-conformance-quick-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *bin = getenv("SHARDLAB_BIN");
    char fallback[] = SL_BINARY_DIR "/shardlab";
    if (!bin || !*bin) bin = fallback;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' conformance --tier quick --jobs 2 --report '%s' > '%s/out.log' 2>&1", bin, dir,
             dir);
    const int raw = system(cmd);
    char path[512];
    snprintf(path, sizeof path, "%s/out.log", dir);
    char *log = read_text(path);
    if (!WIFEXITED(raw) || WEXITSTATUS(raw) != 0) {
        /* the failing checks and the summary are the last lines */
        const size_t len = strlen(log);
        fail_msg("shardlab conformance --tier quick exited with %d; output (end; all of it and "
                 "the report in %s):\n%s",
                 raw, dir, log + (len > 3000 ? len - 3000 : 0));
    }
    free(log);
    snprintf(path, sizeof path, "%s/conformance.md", dir);
    char *md = read_text(path);
    static const char *const expected[] = {
        "| T1 | dtype_table |",
        "| T1 | layout |",
        "| T1 | collectives |",
        "| T1 | memory |",
        "| T2 | bitwise |",
        "| T2 | resume |",
        "| T3 | impl_vs_ref |",
        "| T3 | equivalent_pair |",
        "| T3 | accumulation |",
        "| T3 | world_size |",
        "| T3 | resharded_resume |",
        "| T4 | documented |",
        "| T5 | peer |",
        "## Noise floors",
        "| fp32 |",
        "| bf16 |",
        "Tolerance = **4 × floor**",
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        if (!strstr(md, expected[i])) fail_msg("conformance.md lacks '%s':\n%s", expected[i], md);
    }
    assert_null(strstr(md, "| FAIL |"));
    free(md);
    snprintf(path, sizeof path, "%s/conformance.json", dir);
    char *json = read_text(path);
    assert_non_null(strstr(json, "\"passed\": true"));
    free(json);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quick_tier_passes_and_reports_every_tier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
