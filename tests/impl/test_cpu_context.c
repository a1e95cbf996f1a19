/* The CPU kernel context (impl/cpu/context.c): host blocks from k->alloc are 64-byte aligned and
 * writable over their whole size; a released block of 1 MiB or more comes back for the next
 * request of exactly its size (what saves the engine's per-micro-step page faults) and never
 * for another size; and the progress function installed with
 * sl_kctx_set_progress is what sl_kctx_progress calls, until it is removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "shardlab/kernels.h"

static void test_blocks_are_aligned_and_same_size_requests_reuse_released_blocks(void **state) {
    (void)state;
    const sl_kernels *k = sl_kernels_cpu();
    sl_kctx *ctx = NULL;
    assert_int_equal(k->context_create(&ctx), SL_OK);
    const size_t big = (size_t)3 << 20;
    void *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(k->alloc(ctx, big, &a), SL_OK);
    assert_int_equal((uintptr_t)a % 64, 0);
    memset(a, 0xab, big);
    k->release(ctx, a);
    assert_int_equal(k->alloc(ctx, big + 64, &b), SL_OK); /* another size: a fresh block */
    assert_ptr_not_equal(b, a);
    assert_int_equal(k->alloc(ctx, big, &c), SL_OK); /* the same size: the released block */
    assert_ptr_equal(c, a);
    memset(c, 0, big);
    k->release(ctx, b);
    k->release(ctx, c);
    k->release(ctx, NULL);
    k->context_destroy(ctx);
}

static void count_calls(void *arg) {
    (*(int *)arg)++;
}

static void test_progress_calls_the_installed_function_until_removed(void **state) {
    (void)state;
    const sl_kernels *k = sl_kernels_cpu();
    sl_kctx *ctx = NULL;
    assert_int_equal(k->context_create(&ctx), SL_OK);
    int calls = 0;
    sl_kctx_progress(ctx); /* nothing installed: nothing happens */
    sl_kctx_set_progress(ctx, count_calls, &calls);
    sl_kctx_progress(ctx);
    sl_kctx_progress(ctx);
    assert_int_equal(calls, 2);
    sl_kctx_set_progress(ctx, NULL, NULL);
    sl_kctx_progress(ctx);
    assert_int_equal(calls, 2);
    k->context_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_are_aligned_and_same_size_requests_reuse_released_blocks),
        cmocka_unit_test(test_progress_calls_the_installed_function_until_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
