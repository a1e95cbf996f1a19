/* `shardlab conformance --tier quick`, as users run it: exit status 0 (every check passes), and a
 * report with every tier's checks, the noise floors and the tolerance multiple. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/support/support.h"

static void test_quick_tier_passes_and_reports_every_tier(void **state) {
    (void)state;
    char dir[256], args[512];
    sl_ts_mkdtemp("conformance-quick", dir, sizeof dir);
    snprintf(args, sizeof args, "conformance --tier quick --jobs 2 --report %s", dir);
    char *log = NULL;
    /* under ctest's 600 s limit, so that a hang shows its output */
    const int status = sl_ts_shardlab(args, NULL, 540.0, &log);
    sl_ts_write(sl_ts_join(dir, "out.log"), log, false);
    if (status != 0) {
        /* the failing checks and the summary are the last lines */
        const size_t len = strlen(log);
        fail_msg("shardlab conformance --tier quick exited with %d; output (end; all of it and "
                 "the report in %s):\n%s",
                 status, dir, log + (len > 3000 ? len - 3000 : 0));
    }
    free(log);
    char *md = sl_ts_read_or_fail(sl_ts_join(dir, "conformance.md"));
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
    char *json = sl_ts_read_or_fail(sl_ts_join(dir, "conformance.json"));
    assert_non_null(strstr(json, "\"passed\": true"));
    free(json);
    sl_ts_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quick_tier_passes_and_reports_every_tier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
