/* The local backend (one rank) through the public sl_comm API: every collective, blocking and
 * non-blocking, the divide rules, counting, and the argument and environment errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shardlab/comm.h"
#include "tests/comm/comm_harness.h"

static sl_comm *sl_local(void) {
    sl_comm *c = NULL;
    assert_int_equal(sl_comm_create_local(&c), SL_OK);
    assert_int_equal(sl_comm_rank(c), 0);
    assert_int_equal(sl_comm_size(c), 1);
    assert_string_equal(sl_comm_backend_name(c), "local");
    return c;
}

static void test_from_env_without_mpirun_is_local(void **state) {
    (void)state;
    unsetenv("SHARDLAB_COMM_BACKEND");
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMIX_RANK");
    sl_comm *c = NULL;
    assert_int_equal(sl_comm_create_from_env(&c), SL_OK);
    assert_string_equal(sl_comm_backend_name(c), "local");
    sl_comm_destroy(c);
}

static void test_bad_environment_is_a_config_error_naming_the_variable(void **state) {
    (void)state;
    sl_comm *c = NULL;
    setenv("SHARDLAB_COMM_BACKEND", "nccl2", 1);
    assert_int_equal(sl_comm_create_from_env(&c), SL_ERR_CONFIG);
    assert_non_null(strstr(sl_error_message(), "SHARDLAB_COMM_BACKEND"));
    assert_non_null(strstr(sl_error_message(), "nccl2"));
    unsetenv("SHARDLAB_COMM_BACKEND");
    setenv("SHARDLAB_COMM_TIMEOUT", "soon", 1);
    assert_int_equal(sl_comm_create_local(&c), SL_ERR_CONFIG);
    assert_non_null(strstr(sl_error_message(), "SHARDLAB_COMM_TIMEOUT"));
    unsetenv("SHARDLAB_COMM_TIMEOUT");
    setenv("SHARDLAB_COMM_DEBUG", "maybe", 1);
    assert_int_equal(sl_comm_create_local(&c), SL_ERR_CONFIG);
    assert_non_null(strstr(sl_error_message(), "SHARDLAB_COMM_DEBUG"));
    unsetenv("SHARDLAB_COMM_DEBUG");
    assert_null(c);
}

/* With one rank, a reduction is the divide rule applied to this rank's values: exactly the
 * reference with n = 1 (the rule's W may be larger, as for a replica group of one). */
static void test_reductions_apply_the_divide_rule(void **state) {
    (void)state;
    sl_comm *c = sl_local();
    const sl_dtype dts[] = {SL_DTYPE_F32, SL_DTYPE_BF16, SL_DTYPE_F16};
    const sl_grad_divide rules[] = {SL_DIVIDE_PRE_POST_POW2, SL_DIVIDE_AVG, SL_DIVIDE_PRE,
                                    SL_DIVIDE_POST};
    const size_t count = 37;
    int case_id = 0;
    for (size_t di = 0; di < 3; di++) {
        const sl_dtype dt = dts[di];
        for (size_t ri = 0; ri < 4; ri++) {
            for (int det = 0; det < 2; det++) {
                for (int blocking = 0; blocking < 2; blocking++, case_id++) {
                    sl_comm_opts o = sl_comm_opts_default();
                    o.deterministic = det;
                    o.divide = rules[ri];
                    o.divide_world = 6;
                    float *send = malloc(count * 4), *rs = malloc(count * 4),
                          *ar = malloc(count * 4);
                    assert_true(send && rs && ar);
                    sl_test_fill(send, count, dt, 7, 0, case_id, 0);
                    sl_comm_request *r1 = NULL, *r2 = NULL;
                    assert_int_equal(
                        sl_comm_reduce_scatter(c, send, rs, count, dt, &o, blocking ? NULL : &r1),
                        SL_OK);
                    assert_int_equal(
                        sl_comm_all_reduce(c, send, ar, count, dt, &o, blocking ? NULL : &r2),
                        SL_OK);
                    if (!blocking) {
                        assert_int_equal(sl_comm_wait(&r2), SL_OK);
                        bool done = false;
                        assert_int_equal(sl_comm_test(&r1, &done), SL_OK);
                        assert_true(done);
                        assert_null(r1);
                        assert_null(r2);
                    }
                    for (size_t i = 0; i < count; i++) {
                        const float x = sl_test_input(7, 0, case_id, i, dt);
                        const float want = sl_test_reduce_ref(&x, 1, dt, &o);
                        assert_true(sl_test_get(rs, i, dt) == want);
                        assert_true(sl_test_get(ar, i, dt) == want);
                    }
                    free(send);
                    free(rs);
                    free(ar);
                }
            }
        }
    }
    sl_comm_destroy(c);
}

static void test_gather_broadcast_barrier_copy_and_in_place(void **state) {
    (void)state;
    sl_comm *c = sl_local();
    uint16_t send[5] = {1, 2, 3, 4, 5}, recv[5] = {0}; /* bf16 bit patterns */
    assert_int_equal(sl_comm_all_gather(c, send, recv, 5, SL_DTYPE_BF16, NULL, NULL), SL_OK);
    assert_memory_equal(send, recv, sizeof send);
    /* in place: this rank's chunk of recv is the send buffer */
    assert_int_equal(sl_comm_all_gather(c, recv, recv, 5, SL_DTYPE_BF16, NULL, NULL), SL_OK);
    assert_memory_equal(send, recv, sizeof send);
    float buf[3] = {1.5f, -2.0f, 3.25f};
    sl_comm_request *r = NULL;
    assert_int_equal(sl_comm_broadcast(c, buf, 3, SL_DTYPE_F32, 0, NULL, &r), SL_OK);
    assert_int_equal(sl_comm_wait(&r), SL_OK);
    assert_true(buf[0] == 1.5f && buf[1] == -2.0f && buf[2] == 3.25f);
    assert_int_equal(sl_comm_barrier(c, NULL), SL_OK);
    float ar[3] = {1.0f, 2.0f, 3.0f};
    sl_comm_opts o = sl_comm_opts_default();
    o.divide_world = 2;
    o.divide = SL_DIVIDE_AVG;
    assert_int_equal(sl_comm_all_reduce(c, ar, ar, 3, SL_DTYPE_F32, &o, NULL), SL_OK);
    assert_true(ar[0] == 0.5f && ar[1] == 1.0f && ar[2] == 1.5f);
    sl_comm_destroy(c);
}

/* Records follow observe.h's schema; one rank sends nothing. */
static void test_every_call_is_counted(void **state) {
    (void)state;
    sl_comm *c = sl_local();
    float a[8] = {0}, b[8] = {0};
    sl_comm_opts o = sl_comm_opts_default();
    o.phase = SL_PHASE_BACKWARD;
    o.micro_step = 2;
    o.unit = 5;
    assert_int_equal(sl_comm_all_gather(c, a, b, 8, SL_DTYPE_F32, &o, NULL), SL_OK);
    assert_int_equal(sl_comm_reduce_scatter(c, a, b, 8, SL_DTYPE_F32, &o, NULL), SL_OK);
    assert_int_equal(sl_comm_all_reduce(c, a, b, 4, SL_DTYPE_BF16, &o, NULL), SL_OK);
    assert_int_equal(sl_comm_broadcast(c, a, 3, SL_DTYPE_F16, 0, &o, NULL), SL_OK);
    assert_int_equal(sl_comm_barrier(c, NULL), SL_OK);
    int n = 0;
    const sl_collective_record *rec = sl_comm_records(c, &n);
    assert_int_equal(n, 4);
    const sl_coll_op ops[] = {SL_COLL_ALL_GATHER, SL_COLL_REDUCE_SCATTER, SL_COLL_ALL_REDUCE,
                              SL_COLL_BROADCAST};
    const sl_dtype dts[] = {SL_DTYPE_F32, SL_DTYPE_F32, SL_DTYPE_BF16, SL_DTYPE_F16};
    const int64_t elements[] = {8, 8, 4, 3};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(rec[i].op, ops[i]);
        assert_int_equal(rec[i].dtype, dts[i]);
        assert_int_equal(rec[i].elements, elements[i]);
        assert_int_equal(rec[i].group, SL_GROUP_WORLD);
        assert_int_equal(rec[i].group_size, 1);
        assert_int_equal(rec[i].bytes_sent_per_rank, 0);
        assert_int_equal(rec[i].phase, SL_PHASE_BACKWARD);
        assert_int_equal(rec[i].micro_step, 2);
        assert_int_equal(rec[i].unit, 5);
    }
    sl_comm_totals t;
    sl_comm_get_totals(c, &t);
    assert_int_equal(t.calls[SL_COLL_ALL_REDUCE], 1);
    assert_int_equal(t.elements[SL_COLL_ALL_GATHER], 8);
    assert_int_equal(t.barriers, 1);
    sl_comm_reset_stats(c);
    sl_comm_records(c, &n);
    assert_int_equal(n, 0);
    sl_comm_get_totals(c, &t);
    assert_int_equal(t.calls[SL_COLL_ALL_REDUCE], 0);
    sl_comm_destroy(c);
}

/* The deterministic reduce-scatter stages a copy of its input: the peak says how much. */
static void test_scratch_peak_counts_staging(void **state) {
    (void)state;
    sl_comm *c = sl_local();
    float a[16] = {0}, b[16];
    sl_comm_opts o = sl_comm_opts_default();
    o.deterministic = true;
    assert_int_equal(sl_comm_reduce_scatter(c, a, b, 16, SL_DTYPE_F32, &o, NULL), SL_OK);
    sl_comm_totals t;
    sl_comm_get_totals(c, &t);
    assert_int_equal(t.scratch_bytes_peak, 16 * 4);
    sl_comm_destroy(c);
}

static void test_bad_arguments_name_the_collective(void **state) {
    (void)state;
    sl_comm *c = sl_local();
    int32_t i32[4] = {0};
    float f[8] = {0};
    assert_int_equal(sl_comm_all_reduce(c, i32, i32, 4, SL_DTYPE_I32, NULL, NULL),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "all_reduce"));
    assert_non_null(strstr(sl_error_message(), "int32"));
    assert_int_equal(sl_comm_broadcast(c, f, 4, SL_DTYPE_F32, 1, NULL, NULL), SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "root 1"));
    assert_int_equal(sl_comm_reduce_scatter(c, f, f + 2, 4, SL_DTYPE_F32, NULL, NULL),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "reduce_scatter"));
    assert_non_null(strstr(sl_error_message(), "overlap"));
    assert_int_equal(sl_comm_all_reduce(c, f, f + 1, 4, SL_DTYPE_F32, NULL, NULL),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "overlap"));
    sl_comm_opts o = sl_comm_opts_default();
    o.divide_world = -1;
    assert_int_equal(sl_comm_all_reduce(c, f, f, 4, SL_DTYPE_F32, &o, NULL), SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "divide_world"));
    assert_int_equal(sl_comm_all_gather(c, NULL, f, 4, SL_DTYPE_F32, NULL, NULL),
                     SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "NULL"));
    /* none of the refused calls was counted */
    int n = -1;
    sl_comm_records(c, &n);
    assert_int_equal(n, 0);
    sl_comm_destroy(c);
}

static void test_split_and_hybrid_groups_of_one_rank(void **state) {
    (void)state;
    sl_comm *c = sl_local(), *shard = NULL, *replica = NULL, *part = NULL;
    assert_int_equal(sl_comm_split_hybrid(c, 1, &shard, &replica), SL_OK);
    assert_int_equal(sl_comm_size(shard), 1);
    assert_int_equal(sl_comm_size(replica), 1);
    float a[2] = {1.0f, 2.0f}, b[2];
    assert_int_equal(sl_comm_all_reduce(replica, a, b, 2, SL_DTYPE_F32, NULL, NULL), SL_OK);
    int n = 0;
    const sl_collective_record *rec = sl_comm_records(replica, &n);
    assert_int_equal(n, 1);
    assert_int_equal(rec[0].group, SL_GROUP_REPLICA);
    assert_int_equal(sl_comm_split_hybrid(c, 2, &part, &part), SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "shard group size 2"));
    assert_int_equal(sl_comm_split(c, -1, 0, SL_GROUP_SHARD, &part), SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "color"));
    sl_comm_destroy(shard);
    sl_comm_destroy(replica);
    sl_comm_destroy(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_env_without_mpirun_is_local),
        cmocka_unit_test(test_bad_environment_is_a_config_error_naming_the_variable),
        cmocka_unit_test(test_reductions_apply_the_divide_rule),
        cmocka_unit_test(test_gather_broadcast_barrier_copy_and_in_place),
        cmocka_unit_test(test_every_call_is_counted),
        cmocka_unit_test(test_scratch_peak_counts_staging),
        cmocka_unit_test(test_bad_arguments_name_the_collective),
        cmocka_unit_test(test_split_and_hybrid_groups_of_one_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
