/* Multi-process tests: real ranks started by `shardlab launch` (the same launcher users run),
 * each running this executable as a worker (comm_worker.c). Every run has a time limit, so a
 * hang fails the test instead of stalling the suite. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/comm/comm_harness.h"
#include "tests/support/support.h"

#define SL_OUT_CAP (256 * 1024)
static char sl_out[SL_OUT_CAP];

static char *sl_seed(void) {
    static char fixed[] = "20240611";
    char *s = getenv("SHARDLAB_TEST_SEED");
    return s && *s ? s : fixed;
}

/* `shardlab launch ARGS...` with env added, output into sl_out; returns its exit status. */
#define sl_launch(env, timeout_s, ...)                                                             \
    sl_ts_launch(env, timeout_s, (char *[]){__VA_ARGS__}, sl_out, sizeof sl_out)

static void sl_collectives(int w) {
    char np[16];
    snprintf(np, sizeof np, "%d", w);
    const int st = sl_launch(NULL, 180.0, "--num_processes", np, sl_ts_self(), "--worker",
                             "collectives", sl_seed(), NULL);
    if (st != 0)
        fail_msg("W = %d: exit status %d (seed %s); output:\n%s", w, st, sl_seed(), sl_out);
}

/* Every collective × dtype × blocking/non-blocking × deterministic/native × divide rule:
 * deterministic results bit-equal to the sequential reference, native ones within the derived
 * tolerance, records as observe.h defines them. */
static void test_collectives_match_reference_w2(void **state) {
    (void)state;
    sl_collectives(2);
}

static void test_collectives_match_reference_w3(void **state) {
    (void)state;
    sl_collectives(3);
}

static void test_collectives_match_reference_w4(void **state) {
    (void)state;
    sl_collectives(4);
}

static void test_hybrid_reduction_matches_group_then_replica_order_w4(void **state) {
    (void)state;
    const int st = sl_launch(NULL, 120.0, "--num_processes", "4", sl_ts_self(), "--worker",
                             "hybrid", sl_seed(), NULL);
    if (st != 0) fail_msg("exit status %d (seed %s); output:\n%s", st, sl_seed(), sl_out);
}

static void test_debug_mode_reports_mismatched_collective_w2(void **state) {
    (void)state;
    char *env[] = {"SHARDLAB_COMM_DEBUG=1", NULL};
    const int st =
        sl_launch(env, 60.0, "--num_processes", "2", sl_ts_self(), "--worker", "mismatch", NULL);
    if (st != 3) fail_msg("exit status %d, expected 3; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "collective mismatch");
    sl_ts_expect(sl_out, "rank 0 (world rank 0) called all_reduce #1 (bf16, 16 elements");
    sl_ts_expect(sl_out, "rank 1 (world rank 1) called all_gather #1 (fp32, 8 elements)");
}

/* No hang: the launch returns (the time limit guards it), non-zero, naming rank and signal. */
static void test_killed_rank_ends_the_job_naming_rank_and_signal_w3(void **state) {
    (void)state;
    const int st =
        sl_launch(NULL, 60.0, "--num_processes", "3", sl_ts_self(), "--worker", "sigkill", NULL);
    if (st == 0) fail_msg("exit status 0 after a rank was killed; output:\n%s", sl_out);
    sl_ts_expect(sl_out, "rank 1 (pid");
    sl_ts_expect(sl_out, "killed by signal 9 (SIGKILL");
}

static void test_watchdog_aborts_a_collective_that_never_completes_w2(void **state) {
    (void)state;
    char *env[] = {"SHARDLAB_COMM_TIMEOUT=2", NULL};
    const int st =
        sl_launch(env, 60.0, "--num_processes", "2", sl_ts_self(), "--worker", "watchdog", NULL);
    if (st == 0) fail_msg("exit status 0 after a hung collective; output:\n%s", sl_out);
    sl_ts_expect(sl_out, "watchdog: rank 0 (world rank 0)");
    sl_ts_expect(sl_out, "all_reduce #1 (fp32, 4 elements)");
}

/* The same program runs an FSDP and a DeepSpeed plan: only the launch flags differ. A config
 * file's values reach the ranks too (each rank loads the file the launcher loaded). */
static void test_plan_reaches_every_rank_through_the_environment(void **state) {
    (void)state;
    int st = sl_launch(NULL, 60.0, "--num_processes", "2", "--use_deepspeed", "--zero_stage", "3",
                       sl_ts_self(), "--worker", "env", NULL);
    if (st != 0) fail_msg("exit status %d; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "rank 0 of 2: dialect=deepspeed strategy=FULL_SHARD world=2 ds_config=-");
    sl_ts_expect(sl_out, "rank 1 of 2: dialect=deepspeed strategy=FULL_SHARD world=2");
    st = sl_launch(NULL, 60.0, "--use_fsdp", "--fsdp_sharding_strategy", "SHARD_GRAD_OP",
                   "--num_processes=2", sl_ts_self(), "--worker", "env", NULL);
    if (st != 0) fail_msg("exit status %d; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "rank 1 of 2: dialect=fsdp1 strategy=SHARD_GRAD_OP world=2");
    char path[] = "/tmp/shardlab-launch-ds-XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char json[] = "{\"zero_optimization\": {\"stage\": 1}}\n";
    assert_int_equal(write(fd, json, sizeof json - 1), (ssize_t)(sizeof json - 1));
    close(fd);
    st = sl_launch(NULL, 60.0, "--use_deepspeed", "--num_processes", "2", "--deepspeed_config_file",
                   path, sl_ts_self(), "--worker", "env", NULL);
    unlink(path);
    if (st != 0) fail_msg("exit status %d; output:\n%s", st, sl_out);
    char want[128];
    snprintf(want, sizeof want,
             "rank 1 of 2: dialect=deepspeed strategy=SHARD_OPTIM world=2 "
             "ds_config=%s",
             path);
    sl_ts_expect(sl_out, want);
}

static void test_dry_run_prints_the_exact_command(void **state) {
    (void)state;
    const int st = sl_launch(NULL, 30.0, "--num_processes", "4", "--use_deepspeed", "--zero_stage",
                             "3", "--debug", "--dry_run", "/bin/echo", "two words", NULL);
    if (st != 0) fail_msg("exit status %d; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "SHARDLAB_CONFIG_NUM_PROCESSES=4 ");
    sl_ts_expect(sl_out, "SHARDLAB_CONFIG_ZERO_STAGE=3 ");
    sl_ts_expect(sl_out, "SHARDLAB_COMM_DEBUG=1 "); /* --debug is a launch key: not a plan entry */
    assert_null(strstr(sl_out, "SHARDLAB_CONFIG_DEBUG"));
    sl_ts_expect(sl_out, " -n 4 ");
    sl_ts_expect(sl_out, " --oversubscribe --bind-to none ");
    sl_ts_expect(sl_out, " -x SHARDLAB_CONFIG_ZERO_STAGE ");
    sl_ts_expect(sl_out, " launch --rank_exec -- /bin/echo 'two words'\n");
    if (geteuid() == 0) sl_ts_expect(sl_out, " --allow-run-as-root ");
    assert_null(strstr(sl_out, "two words\n")); /* printed, not run */
}

static void test_missing_program_is_an_error_before_mpirun(void **state) {
    (void)state;
    int st = sl_launch(NULL, 30.0, "--num_processes", "2", "no-such-program-xyz", NULL);
    assert_int_equal(st, 2);
    sl_ts_expect(sl_out, "'no-such-program-xyz' was not found on $PATH");
    st = sl_launch(NULL, 30.0, "--num_processes", "2", "/nonexistent/prog", NULL);
    assert_int_equal(st, 2);
    sl_ts_expect(sl_out, "'/nonexistent/prog' does not exist");
}

static void test_bad_hostfile_is_named_with_its_line(void **state) {
    (void)state;
    int st = sl_launch(NULL, 30.0, "--hostfile", "/nonexistent/hosts", "/bin/true", NULL);
    assert_int_equal(st, 2);
    sl_ts_expect(sl_out, "cannot read the hostfile '/nonexistent/hosts'");
    char path[] = "/tmp/shardlab-hosts-XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "# two machines\nnode1 slots=2\nnode2 slots=two\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    st = sl_launch(NULL, 30.0, "--hostfile", path, "/bin/true", NULL);
    assert_int_equal(st, 2);
    char where[64];
    snprintf(where, sizeof where, "%s:3: 'slots=two'", path);
    sl_ts_expect(sl_out, where);
    unlink(path);
}

static void test_impossible_world_for_the_plan_is_refused(void **state) {
    (void)state;
    int st =
        sl_launch(NULL, 30.0, "--num_processes", "3", "--num_machines", "2", "/bin/true", NULL);
    assert_int_equal(st, 2);
    sl_ts_expect(sl_out, "the plan cannot run on 3 ranks");
    sl_ts_expect(sl_out, "num_machines");
    st = sl_launch(NULL, 30.0, "--num_processes", "4", "--use_fsdp", "--fsdp_sharding_strategy",
                   "HYBRID_SHARD", "/bin/true", NULL);
    assert_int_equal(st, 2);
    sl_ts_expect(sl_out, "HYBRID_SHARD");
    sl_ts_expect(sl_out, "num_machines >= 2");
    st = sl_launch(NULL, 30.0, "--num_processes", "4", "--num_machines", "2", "--machine_rank", "0",
                   "--main_process_port", "29555", "/bin/true", NULL);
    assert_int_equal(st, 2);
    sl_ts_expect(sl_out, "--main_process_ip");
}

/* SIGTERM to the launcher alone reaches the job: every rank ends and launch reports it. */
static void test_sigterm_to_launch_ends_the_job(void **state) {
    (void)state;
    char *argv[] = {sl_ts_shardlab_bin(),         "launch", "--num_processes", "2", "/bin/sh", "-c",
                    "echo ready; exec sleep 300", NULL};
    sl_ts_proc p;
    sl_ts_start(&p, argv, NULL, 60.0);
    const bool ready = sl_ts_await_output(&p, "ready\nready\n", 30.0);
    kill(p.pid, SIGTERM); /* the launcher only, not its process group */
    bool timed_out = false;
    const int st = sl_ts_finish(&p, sl_out, sizeof sl_out, &timed_out);
    assert_true(ready);
    assert_false(timed_out);
    assert_int_equal(st, 128 + SIGTERM);
    sl_ts_expect(sl_out, "launch: stopped by signal 15");
}

/* A free TCP port on the loopback interface (bound, then released); *fd keeps it busy when
 * hold is set. */
static int sl_port(bool hold, int *fd) {
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 4), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    if (hold) {
        *fd = s;
    } else {
        close(s);
    }
    return ntohs(a.sin_port);
}

static void test_busy_main_process_port_is_reported(void **state) {
    (void)state;
    int fd = -1;
    char port[16];
    snprintf(port, sizeof port, "%d", sl_port(true, &fd));
    const int st =
        sl_launch(NULL, 30.0, "--num_processes", "2", "--num_machines", "2", "--machine_rank", "0",
                  "--main_process_ip", "127.0.0.1", "--main_process_port", port, "/bin/true", NULL);
    close(fd);
    assert_int_equal(st, 2);
    char want[96];
    snprintf(want, sizeof want, "--main_process_port %s is busy", port);
    sl_ts_expect(sl_out, want);
}

/* Two launches with Accelerate's machine flags on one host form one job of two ranks. */
static void test_two_machines_meet_at_the_main_process_port(void **state) {
    (void)state;
    char port[16];
    snprintf(port, sizeof port, "%d", sl_port(false, NULL));
    char *m1[] = {sl_ts_shardlab_bin(),
                  "launch",
                  "--num_processes",
                  "2",
                  "--num_machines",
                  "2",
                  "--machine_rank",
                  "1",
                  "--main_process_ip",
                  "127.0.0.1",
                  "--main_process_port",
                  port,
                  sl_ts_self(),
                  "--worker",
                  "env",
                  NULL};
    sl_ts_proc p1;
    sl_ts_start(&p1, m1, NULL, 90.0);
    const int st0 = sl_launch(NULL, 90.0, "--num_processes", "2", "--num_machines", "2",
                              "--machine_rank", "0", "--main_process_ip", "127.0.0.1",
                              "--main_process_port", port, sl_ts_self(), "--worker", "env", NULL);
    if (st0 != 0) fail_msg("machine 0: exit status %d; output:\n%s", st0, sl_out);
    sl_ts_expect(sl_out, "rank 0 of 2: dialect=ddp");
    sl_ts_expect(sl_out, "rank 1 of 2: dialect=ddp");
    bool timed_out = false;
    const int st1 = sl_ts_finish(&p1, sl_out, sizeof sl_out, &timed_out);
    assert_false(timed_out);
    if (st1 != 0) fail_msg("machine 1: exit status %d; output:\n%s", st1, sl_out);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--worker")) return sl_test_comm_worker(argc - 2, argv + 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collectives_match_reference_w2),
        cmocka_unit_test(test_collectives_match_reference_w3),
        cmocka_unit_test(test_collectives_match_reference_w4),
        cmocka_unit_test(test_hybrid_reduction_matches_group_then_replica_order_w4),
        cmocka_unit_test(test_debug_mode_reports_mismatched_collective_w2),
        cmocka_unit_test(test_killed_rank_ends_the_job_naming_rank_and_signal_w3),
        cmocka_unit_test(test_watchdog_aborts_a_collective_that_never_completes_w2),
        cmocka_unit_test(test_plan_reaches_every_rank_through_the_environment),
        cmocka_unit_test(test_sigterm_to_launch_ends_the_job),
        cmocka_unit_test(test_dry_run_prints_the_exact_command),
        cmocka_unit_test(test_missing_program_is_an_error_before_mpirun),
        cmocka_unit_test(test_bad_hostfile_is_named_with_its_line),
        cmocka_unit_test(test_impossible_world_for_the_plan_is_refused),
        cmocka_unit_test(test_busy_main_process_port_is_reported),
        cmocka_unit_test(test_two_machines_meet_at_the_main_process_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
