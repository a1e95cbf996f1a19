/* The shared test support (tests/support): a command past its time limit is killed with its whole
 * process group and reported, exit statuses follow the shell's convention (128 + signal), output
 * is captured whole or truncated to the caller's buffer, and the spawn options (environment,
 * directory, standard input, dropped stderr) reach the child; scratch trees are removed whole. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/support.h"

/* Whether pid has ended: no such process, or a zombie that nobody has reaped yet. */
static bool pid_gone(int pid) {
    char path[64], stat_line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    sl_ts_read_into(path, stat_line, sizeof stat_line);
    const char *paren = strrchr(stat_line, ')');
    return !paren || paren[1] == '\0' || paren[2] == 'Z';
}

static void test_timeout_kills_the_whole_process_group(void **state) {
    (void)state;
    /* the shell prints its background child's pid, then waits on it: only a group kill ends
     * the child as well */
    char *argv[] = {"/bin/sh", "-c", "sleep 300 & echo child $!; wait", NULL};
    char out[256];
    bool timed_out = false;
    const int st = sl_ts_run(argv, NULL, 1.0, out, sizeof out, &timed_out);
    assert_true(timed_out);
    assert_int_equal(st, 128 + SIGKILL);
    int child = 0;
    if (sscanf(out, "child %d", &child) != 1) fail_msg("no child pid in:\n%s", out);
    /* SIGKILL is delivered asynchronously: give the orphaned sleep a moment to go */
    const double deadline = sl_ts_now() + 5.0;
    while (!pid_gone(child) && sl_ts_now() < deadline) {
        const struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (!pid_gone(child)) fail_msg("pid %d outlived its group's kill", child);
}

static void test_exit_status_and_signal_follow_the_shell(void **state) {
    (void)state;
    char out[64];
    char *exit7[] = {"/bin/sh", "-c", "exit 7", NULL};
    assert_int_equal(sl_ts_run(exit7, NULL, 30.0, out, sizeof out, NULL), 7);
    char *term[] = {"/bin/sh", "-c", "kill -TERM $$", NULL};
    assert_int_equal(sl_ts_run(term, NULL, 30.0, out, sizeof out, NULL), 128 + SIGTERM);
    char *missing[] = {"/nonexistent/program", NULL};
    assert_int_equal(sl_ts_run(missing, NULL, 30.0, out, sizeof out, NULL), 127);
    sl_ts_expect(out, "/nonexistent/program");
}

static void test_output_is_truncated_to_the_buffer_or_kept_whole(void **state) {
    (void)state;
    /* 100000 bytes of 'x' on stdout and a marker on stderr after it */
    char *argv[] = {"/bin/sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; echo END >&2", NULL};
    char small[17];
    assert_int_equal(sl_ts_run(argv, NULL, 30.0, small, sizeof small, NULL), 0);
    assert_string_equal(small, "xxxxxxxxxxxxxxxx");
    sl_ts_proc p;
    sl_ts_start(&p, argv, NULL, 30.0);
    char *all = NULL;
    assert_int_equal(sl_ts_finish_alloc(&p, &all, NULL), 0);
    assert_int_equal(strlen(all), 100000 + strlen("END\n"));
    assert_string_equal(all + 100000, "END\n");
    free(all);
}

static void test_spawn_options_reach_the_child(void **state) {
    (void)state;
    char dir[256];
    sl_ts_mkdtemp("support-test", dir, sizeof dir);
    char *env[] = {"SL_TS_PROBE=a=b", NULL};
    const sl_ts_spawn how = {.env = env, .cwd = dir, .input = "from stdin\n", .drop_stderr = true};
    char *argv[] = {"/bin/sh", "-c", "echo \"$SL_TS_PROBE\"; pwd; cat; echo hidden >&2", NULL};
    char out[4096];
    assert_int_equal(sl_ts_run(argv, &how, 30.0, out, sizeof out, NULL), 0);
    char want[600];
    snprintf(want, sizeof want, "a=b\n%s\nfrom stdin\n", dir);
    assert_string_equal(out, want);
    sl_ts_rmtree(dir);
}

static void test_await_output_sees_a_line_before_the_end(void **state) {
    (void)state;
    char *argv[] = {"/bin/sh", "-c", "echo ready; sleep 300", NULL};
    sl_ts_proc p;
    sl_ts_start(&p, argv, NULL, 30.0);
    assert_true(sl_ts_await_output(&p, "ready\n", 20.0));
    assert_false(sl_ts_await_output(&p, "never printed", 0.1));
    kill(-p.pid, SIGTERM);
    char out[64];
    bool timed_out = false;
    assert_int_equal(sl_ts_finish(&p, out, sizeof out, &timed_out), 128 + SIGTERM);
    assert_false(timed_out);
}

static void test_files_round_trip_and_trees_are_removed_whole(void **state) {
    (void)state;
    char dir[256];
    sl_ts_mkdtemp("support-test", dir, sizeof dir);
    const char *sub = sl_ts_join(dir, "a");
    assert_int_equal(mkdir(sub, 0755), 0);
    const char *file = sl_ts_write(sl_ts_join(sub, "f.txt"), "one x\ntwo\nthree x\n", true);
    struct stat sb;
    assert_int_equal(stat(file, &sb), 0);
    assert_true(sb.st_mode & S_IXUSR);
    size_t len = 0;
    char *text = sl_ts_read(file, &len);
    assert_string_equal(text, "one x\ntwo\nthree x\n");
    assert_int_equal(len, 18);
    free(text);
    char head[5];
    sl_ts_read_into(file, head, sizeof head);
    assert_string_equal(head, "one ");
    assert_int_equal(sl_ts_count_lines(file, "x"), 2);
    assert_null(sl_ts_read(sl_ts_join(dir, "missing"), NULL));
    sl_ts_rmtree(dir);
    assert_false(sl_ts_exists(dir));
}

static void test_split_keeps_words_and_terminates_argv(void **state) {
    (void)state;
    char storage[64], *argv[4];
    assert_int_equal(sl_ts_split("train  --steps 3 --quiet", storage, argv, 4), 3);
    assert_string_equal(argv[0], "train");
    assert_string_equal(argv[1], "--steps");
    assert_string_equal(argv[2], "3");
    assert_null(argv[3]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_kills_the_whole_process_group),
        cmocka_unit_test(test_exit_status_and_signal_follow_the_shell),
        cmocka_unit_test(test_output_is_truncated_to_the_buffer_or_kept_whole),
        cmocka_unit_test(test_spawn_options_reach_the_child),
        cmocka_unit_test(test_await_output_sees_a_line_before_the_end),
        cmocka_unit_test(test_files_round_trip_and_trees_are_removed_whole),
        cmocka_unit_test(test_split_keeps_words_and_terminates_argv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
