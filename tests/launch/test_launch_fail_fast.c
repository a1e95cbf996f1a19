/* A rank that fails alone with an error (not a crash) ends the job promptly instead of leaving
 * the others waiting. Measured before sl_comm_abort existed: rank 0 of `shardlab train` failing
 * to create --out waited in MPI_Finalize while rank 1 waited in the MPI_Comm_split of
 * sl_engine_create, for ever (the watchdog only watches collectives it polls).
 *
 * The ranks run this executable as a worker (`--worker fail_alone RANK CODE FIRST_ONLY`): rank
 * RANK fails with exit status CODE through sl_comm_abort (on the first start only when
 * FIRST_ONLY is 1); the others block in sl_comm_split, which the failing rank never joins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shardlab/comm.h"
#include "tests/support/support.h"

#define SL_OUT_CAP (256 * 1024)
static char sl_out[SL_OUT_CAP];

/* The watchdog's limit for these runs; each launch must end well before it (the harness's
 * limit), so a job that only ends through the watchdog — or not at all — fails the test. */
#define SL_WATCHDOG_S "60"
#define SL_LIMIT_S 45.0

static int sl_worker_fail_alone(int failing, int code, bool first_only) {
    sl_comm *comm = NULL;
    if (sl_comm_create_from_env(&comm) != SL_OK) {
        fprintf(stderr, "worker: %s\n", sl_error_message());
        return 1;
    }
    const int rank = sl_comm_rank(comm);
    const char *count = getenv("SHARDLAB_RESTART_COUNT");
    const bool fail = rank == failing && (!first_only || (count && !strcmp(count, "0")));
    if (fail) {
        fprintf(stderr, "worker: rank %d fails alone with status %d\n", rank, code);
        sl_comm_abort(comm, code);
        sl_comm_destroy(comm); /* one rank: nobody waits */
        return code;
    }
    sl_comm *part = NULL;
    sl_status st = sl_comm_split(comm, 0, rank, SL_GROUP_WORLD, &part);
    if (st == SL_OK) st = sl_comm_barrier(part, NULL);
    if (st != SL_OK) fprintf(stderr, "worker: rank %d: %s\n", rank, sl_error_message());
    sl_comm_destroy(part);
    sl_comm_destroy(comm);
    return st == SL_OK ? 0 : 1;
}

static int sl_launch_failing(const char *w, const char *rank, const char *code,
                             const char *restarts, const char *first_only) {
    char *env[] = {"SHARDLAB_COMM_TIMEOUT=" SL_WATCHDOG_S, NULL};
    return sl_ts_launch(env, SL_LIMIT_S,
                        (char *[]){"--num_processes", (char *)w, "--max_restarts", (char *)restarts,
                                   sl_ts_self(), "--worker", "fail_alone", (char *)rank,
                                   (char *)code, (char *)first_only, NULL},
                        sl_out, sizeof sl_out);
}

static void test_rank_failing_alone_ends_job_before_watchdog_w2(void **state) {
    (void)state;
    const int st = sl_launch_failing("2", "0", "3", "0", "0");
    if (st != 3) fail_msg("exit status %d, expected 3; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "rank 0 (pid ");
    sl_ts_expect(sl_out, "exited with status 3");
}

static void test_middle_rank_failing_alone_ends_job_before_watchdog_w3(void **state) {
    (void)state;
    const int st = sl_launch_failing("3", "1", "4", "0", "0");
    if (st != 4) fail_msg("exit status %d, expected 4; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "rank 1 (pid ");
    sl_ts_expect(sl_out, "exited with status 4");
}

static void test_rank_failing_alone_is_restarted_and_job_succeeds_w2(void **state) {
    (void)state;
    const int st = sl_launch_failing("2", "1", "5", "1", "1");
    if (st != 0) fail_msg("exit status %d, expected 0 after a restart; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "exited with status 5; restart 1 of 1 (SHARDLAB_RESTART_COUNT=1)");
}

/* One rank: nothing to end, the caller goes on to exit by itself. */
/* The case of `shardlab train` itself: rank 0 alone cannot create --out. */
static void test_train_rank0_unable_to_write_out_ends_job_before_watchdog_w2(void **state) {
    (void)state;
    char dir[4096], out[4200];
    sl_ts_mkdtemp("launch-test", dir, sizeof dir);
    /* --out under a regular file: only rank 0 creates it, so only rank 0 fails */
    const char *file = sl_ts_write(sl_ts_join(dir, "not_a_directory"), "", false);
    snprintf(out, sizeof out, "%s/out", file);
    char *env[] = {"SHARDLAB_COMM_TIMEOUT=" SL_WATCHDOG_S, NULL};
    const int st =
        sl_ts_launch(env, SL_LIMIT_S,
                     (char *[]){"--num_processes", "2", sl_ts_shardlab_bin(), "train", "--model",
                                "gpt-tiny", "--steps", "2", "--out", out, NULL},
                     sl_out, sizeof sl_out);
    sl_ts_rmtree(dir);
    if (st != 1) fail_msg("exit status %d, expected 1; output:\n%s", st, sl_out);
    sl_ts_expect(sl_out, "cannot create the directory");
    sl_ts_expect(sl_out, "rank 0 (pid ");
    sl_ts_expect(sl_out, "exited with status 1");
}

static void test_abort_returns_on_a_single_rank(void **state) {
    (void)state;
    sl_comm *comm = NULL;
    assert_int_equal(sl_comm_create_local(&comm), SL_OK);
    sl_comm_abort(comm, 3);
    assert_int_equal(sl_comm_size(comm), 1);
    sl_comm_destroy(comm);
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "--worker") && !strcmp(argv[2], "fail_alone")) {
        return sl_worker_fail_alone(atoi(argv[3]), atoi(argv[4]), !strcmp(argv[5], "1"));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_failing_alone_ends_job_before_watchdog_w2),
        cmocka_unit_test(test_middle_rank_failing_alone_ends_job_before_watchdog_w3),
        cmocka_unit_test(test_train_rank0_unable_to_write_out_ends_job_before_watchdog_w2),
        cmocka_unit_test(test_rank_failing_alone_is_restarted_and_job_succeeds_w2),
        cmocka_unit_test(test_abort_returns_on_a_single_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
