/* `shardlab launch --max_restarts N` with small shell scripts as the ranks' program: each run
 * logs one line per rank and start ("rank R count C max M failures F"), and fails the way the
 * test asks. Every launch has a time limit: a hang fails the test. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/support/support.h"

#define SL_OUT_CAP (256 * 1024)
static char sl_out[SL_OUT_CAP];

typedef struct sl_fixture {
    char dir[4096];
    char log[4200];
} sl_fixture;

static int sl_setup(void **state) {
    static sl_fixture fx;
    sl_ts_mkdtemp("launch-test", fx.dir, sizeof fx.dir);
    snprintf(fx.log, sizeof fx.log, "%s/log", fx.dir);
    *state = &fx;
    return 0;
}

static int sl_teardown(void **state) {
    sl_fixture *fx = *state;
    sl_ts_rmtree(fx->dir);
    return 0;
}

/* A rank program: logs its start, then runs `body` (sh; $r is the rank, $d the test's
 * directory). */
static const char *sl_script(const sl_fixture *fx, const char *body) {
    char text[8192];
    snprintf(text, sizeof text,
             "#!/bin/sh\n"
             "r=$OMPI_COMM_WORLD_RANK\n"
             "d='%s'\n"
             "echo \"rank $r count $SHARDLAB_RESTART_COUNT max $SHARDLAB_MAX_RESTARTS "
             "failures ${SHARDLAB_LAUNCH_FAILURES:-unset}\" >> \"$d/log\"\n"
             "%s\n",
             fx->dir, body);
    return sl_ts_write(sl_ts_join(fx->dir, "rank.sh"), text, true);
}

static int sl_run(char *const *args) {
    return sl_ts_launch(NULL, 120.0, args, sl_out, sizeof sl_out);
}

static void sl_expect_starts(const sl_fixture *fx, const char *needle, int n) {
    const int got = sl_ts_count_lines(fx->log, needle);
    if (got != n) {
        char log[8192];
        sl_ts_read_into(fx->log, log, sizeof log);
        fail_msg("%d ranks logged \"%s\", expected %d; log:\n%s\noutput:\n%s", got, needle, n, log,
                 sl_out);
    }
}

static void test_failed_job_restarts_with_restart_count_and_then_succeeds(void **state) {
    sl_fixture *fx = *state;
    /* rank 1 fails on the first start only: the marker file remembers */
    const char *prog = sl_script(fx, "if [ \"$r\" = 1 ] && [ ! -e \"$d/marker\" ]; then\n"
                                     "  touch \"$d/marker\"; exit 7\n"
                                     "fi");
    const int st =
        sl_run((char *[]){"--num_processes", "2", "--max_restarts", "2", (char *)prog, NULL});
    if (st != 0) fail_msg("exit status %d, expected 0 after one restart; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "rank 1 (pid ");
    sl_ts_expect(sl_out, "exited with status 7; restart 1 of 2 (SHARDLAB_RESTART_COUNT=1)");
    sl_expect_starts(fx, "count 0 max 2", 2);
    sl_expect_starts(fx, "count 1 max 2", 2);
    sl_expect_starts(fx, "count 2", 0);
    /* the launcher's own bookkeeping stays out of the program's environment */
    sl_expect_starts(fx, "failures unset", 4);
}

static void test_killed_rank_restarts_up_to_max_then_returns_last_status(void **state) {
    sl_fixture *fx = *state;
    const char *prog = sl_script(fx, "if [ \"$r\" = 0 ]; then kill -KILL $$; fi\nsleep 30");
    const int st =
        sl_run((char *[]){"--num_processes", "2", "--max_restarts", "2", (char *)prog, NULL});
    if (st != 128 + SIGKILL) {
        fail_msg("exit status %d, expected %d (the last start's rank killed by SIGKILL); "
                 "output:\n%s",
                 st, 128 + SIGKILL, sl_out);
    }
    sl_ts_expect(sl_out, "was killed by signal 9 (SIGKILL); restart 1 of 2");
    sl_ts_expect(sl_out, "was killed by signal 9 (SIGKILL); restart 2 of 2");
    sl_ts_expect(sl_out, "was killed by signal 9 (SIGKILL); no restarts left (--max_restarts 2)");
    for (int c = 0; c <= 2; c++) {
        char needle[64];
        snprintf(needle, sizeof needle, "rank 0 count %d max 2", c);
        sl_expect_starts(fx, needle, 1);
    }
    sl_expect_starts(fx, "rank 0 count", 3);
}

static void test_without_max_restarts_a_failed_job_is_not_restarted(void **state) {
    sl_fixture *fx = *state;
    const char *prog = sl_script(fx, "if [ \"$r\" = 0 ]; then exit 5; fi\nsleep 30");
    const int st = sl_run((char *[]){"--num_processes", "2", (char *)prog, NULL});
    if (st != 5) fail_msg("exit status %d, expected 5; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "rank 0 (pid ");
    if (strstr(sl_out, "restart")) fail_msg("a restart without --max_restarts:\n%s", sl_out);
    sl_expect_starts(fx, "rank 0 count 0 max 0", 1);
    sl_expect_starts(fx, "rank 0", 1);
}

/* SIGTERM to the launcher ends the job like a Ctrl-C: no restart, whatever --max_restarts says. */
static void test_sigterm_to_launcher_stops_the_job_without_restarting(void **state) {
    sl_fixture *fx = *state;
    const char *prog = sl_script(fx, "echo \"rank $r ready\"\nsleep 60");
    sl_ts_proc p;
    sl_ts_launch_start(
        &p, NULL, 120.0,
        (char *[]){"--num_processes", "2", "--max_restarts", "3", (char *)prog, NULL});
    const bool ready = sl_ts_await_output(&p, "rank 0 ready", 60.0) &&
                       sl_ts_await_output(&p, "rank 1 ready", 60.0);
    kill(p.pid, SIGTERM);
    const int st = sl_ts_finish(&p, sl_out, sizeof sl_out, NULL);
    if (!ready) fail_msg("the ranks never started; output:\n%s", sl_out);
    if (st != 128 + SIGTERM) {
        fail_msg("exit status %d, expected %d; output:\n%s", st, 128 + SIGTERM, sl_out);
    }
    sl_ts_expect(sl_out, "stopped by signal 15");
    if (strstr(sl_out, "restart 1")) fail_msg("restarted after a stop request:\n%s", sl_out);
    sl_expect_starts(fx, "count 1", 0);
}

/* The first child of process pid (/proc's children list), or 0. */
static int sl_child_of(int pid) {
    char path[64], text[256];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", pid, pid);
    sl_ts_read_into(path, text, sizeof text);
    return atoi(text);
}

static bool sl_process_gone(const char *pid_file) {
    char text[64];
    sl_ts_read_into(pid_file, text, sizeof text);
    const int pid = atoi(text);
    if (pid <= 0) fail_msg("no pid in %s", pid_file);
    return kill(pid, 0) != 0 && errno == ESRCH;
}

/* mpirun itself killed (the OOM killer, say): its ranks — and the helpers a rank started — must
 * not run on beside the restarted job. */
static void test_killed_mpirun_leaves_no_rank_behind_and_job_restarts(void **state) {
    sl_fixture *fx = *state;
    const char *prog = sl_script(fx, "if [ \"$SHARDLAB_RESTART_COUNT\" = 0 ]; then\n"
                                     "  echo $$ > \"$d/rank.$r\"\n"
                                     "  sleep 60 & echo $! > \"$d/helper.$r\"\n"
                                     "  echo \"rank $r ready\"; wait\n"
                                     "fi");
    sl_ts_proc p;
    sl_ts_launch_start(
        &p, NULL, 120.0,
        (char *[]){"--num_processes", "2", "--max_restarts", "1", (char *)prog, NULL});
    const bool ready = sl_ts_await_output(&p, "rank 0 ready", 60.0) &&
                       sl_ts_await_output(&p, "rank 1 ready", 60.0);
    const int mpirun = sl_child_of(p.pid);
    if (ready && mpirun > 0) kill(mpirun, SIGKILL);
    const int st = sl_ts_finish(&p, sl_out, sizeof sl_out, NULL);
    if (!ready || mpirun <= 0) fail_msg("the ranks or mpirun never started; output:\n%s", sl_out);
    if (st != 0) fail_msg("exit status %d, expected 0 after a restart; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "was killed by signal 9 (SIGKILL); ending the ranks it leaves behind");
    sl_ts_expect(sl_out, "restart 1 of 1");
    sl_expect_starts(fx, "count 1", 2);
    for (int r = 0; r < 2; r++) {
        const char *names[] = {"rank", "helper"};
        for (int i = 0; i < 2; i++) {
            char path[4300];
            snprintf(path, sizeof path, "%s/%s.%d", fx->dir, names[i], r);
            if (!sl_process_gone(path)) {
                fail_msg("the %s of rank %d of the first start (%s) still runs", names[i], r, path);
            }
        }
    }
}

static void sl_expect_bad_value(char *const *args, const char *named) {
    const int st = sl_run(args);
    if (st != 2) fail_msg("exit status %d, expected 2; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "--max_restarts");
    sl_ts_expect(sl_out, named);
    sl_ts_expect(sl_out, "0 to 1000");
}

static void test_max_restarts_rejects_bad_values_naming_flag_and_value(void **state) {
    (void)state;
    sl_expect_bad_value((char *[]){"--max_restarts", "-1", "/bin/true", NULL}, "'-1'");
    sl_expect_bad_value((char *[]){"--max_restarts", "three", "/bin/true", NULL}, "'three'");
    sl_expect_bad_value((char *[]){"--max_restarts=1001", "/bin/true", NULL}, "'1001'");
    sl_expect_bad_value((char *[]){"--max_restarts=", "/bin/true", NULL}, "''");
}

static void test_dry_run_shows_restart_variables(void **state) {
    (void)state;
    const int st = sl_run(
        (char *[]){"--num_processes", "2", "--max_restarts", "3", "--dry_run", "/bin/true", NULL});
    if (st != 0) fail_msg("exit status %d; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "SHARDLAB_RESTART_COUNT=0 ");
    sl_ts_expect(sl_out, "SHARDLAB_MAX_RESTARTS=3 ");
    sl_ts_expect(sl_out, "-x SHARDLAB_RESTART_COUNT ");
    sl_ts_expect(sl_out, "up to 3 times with SHARDLAB_RESTART_COUNT=1..3");
}

/* libgomp's long barrier spin starves a descheduled partner thread: launch shortens it for the
 * ranks, unless the user chose a spin or a wait policy (which reach every rank as they are). */
static void test_dry_run_shortens_the_openmp_spin_unless_user_set(void **state) {
    (void)state;
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("GOMP_SPINCOUNT");
    int st = sl_run((char *[]){"--num_processes", "2", "--dry_run", "/bin/true", NULL});
    if (st != 0) fail_msg("exit status %d; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "GOMP_SPINCOUNT=10000 ");
    sl_ts_expect(sl_out, "-x GOMP_SPINCOUNT ");
    const char *user[] = {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"};
    for (int i = 0; i < 2; i++) {
        setenv(user[i], i == 0 ? "active" : "5", 1);
        st = sl_run((char *[]){"--num_processes", "2", "--dry_run", "/bin/true", NULL});
        unsetenv(user[i]);
        if (st != 0) fail_msg("exit status %d; output:\n%s", st, sl_out);
        if (strstr(sl_out, "GOMP_SPINCOUNT=10000"))
            fail_msg("the user's %s was overridden:\n%s", user[i], sl_out);
        char x[64];
        snprintf(x, sizeof x, "-x %s ", user[i]);
        sl_ts_expect(sl_out, x);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_failed_job_restarts_with_restart_count_and_then_succeeds, sl_setup, sl_teardown),
        cmocka_unit_test_setup_teardown(
            test_killed_rank_restarts_up_to_max_then_returns_last_status, sl_setup, sl_teardown),
        cmocka_unit_test_setup_teardown(test_without_max_restarts_a_failed_job_is_not_restarted,
                                        sl_setup, sl_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_to_launcher_stops_the_job_without_restarting,
                                        sl_setup, sl_teardown),
        cmocka_unit_test_setup_teardown(test_killed_mpirun_leaves_no_rank_behind_and_job_restarts,
                                        sl_setup, sl_teardown),
        cmocka_unit_test(test_max_restarts_rejects_bad_values_naming_flag_and_value),
        cmocka_unit_test(test_dry_run_shows_restart_variables),
        cmocka_unit_test(test_dry_run_shortens_the_openmp_spin_unless_user_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
