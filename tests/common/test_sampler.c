/* The data sampler: epoch order, rank/micro-step slices, even_batches, skip_first_batches,
 * packed windows and padded documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shardlab/data.h"

/* Packed data whose token i is i, so a window's first input names its position. */
static sl_dataset *counting_dataset(int64_t n_tokens) {
    int32_t *t = malloc((size_t)n_tokens * sizeof *t);
    assert_non_null(t);
    for (int64_t i = 0; i < n_tokens; i++)
        t[i] = (int32_t)i;
    int64_t start = 0;
    sl_dataset *ds = NULL;
    assert_int_equal(
        sl_dataset_create_from_tokens("counting", t, n_tokens, &start, 1, (int32_t)n_tokens, &ds),
        SL_OK);
    free(t);
    return ds;
}

/* Document d has length 1 + (7·d mod 13) and token k of it is 100·d + k + 1. */
static int64_t doc_length(int64_t d) {
    return 1 + (7 * d) % 13;
}

static sl_dataset *documents_dataset(int64_t n_docs) {
    int64_t n = 0;
    for (int64_t d = 0; d < n_docs; d++)
        n += doc_length(d);
    int32_t *t = malloc((size_t)n * sizeof *t);
    int64_t *starts = malloc((size_t)n_docs * sizeof *starts);
    assert_non_null(t);
    assert_non_null(starts);
    int64_t at = 0;
    for (int64_t d = 0; d < n_docs; d++) {
        starts[d] = at;
        for (int64_t k = 0; k < doc_length(d); k++)
            t[at++] = (int32_t)(100 * d + k + 1);
    }
    sl_dataset *ds = NULL;
    assert_int_equal(sl_dataset_create_from_tokens("documents", t, n, starts, n_docs,
                                                   (int32_t)(100 * n_docs + 20), &ds),
                     SL_OK);
    free(t);
    free(starts);
    return ds;
}

static sl_sampler_options options(int W, int k, int b, int T, sl_sample_mode mode) {
    sl_sampler_options o = sl_sampler_options_default();
    o.seed = 1234;
    o.world_size = W;
    o.grad_accum_steps = k;
    o.micro_batch_size = b;
    o.seq_len = T;
    o.mode = mode;
    return o;
}

static sl_sampler *make_sampler(const sl_dataset *ds, const sl_sampler_options *o) {
    sl_sampler *s = NULL;
    sl_status st = sl_sampler_create(ds, o, &s);
    if (st != SL_OK) fail_msg("sl_sampler_create failed: %s", sl_error_message());
    return s;
}

/* The whole global batch of `step`, in layout order: position (m·W + r)·b + i holds sample i of
 * rank r's micro-step m. ids and dups have G entries; inputs/targets G·T (either may be NULL). */
static void global_batch(sl_sampler *s, const sl_sampler_options *o, int64_t step, int64_t *ids,
                         uint8_t *dups, int32_t *inputs, int32_t *targets) {
    int b = o->micro_batch_size, T = o->seq_len;
    int32_t *in = malloc((size_t)b * T * sizeof *in);
    int32_t *tg = malloc((size_t)b * T * sizeof *tg);
    assert_non_null(in);
    assert_non_null(tg);
    for (int m = 0; m < o->grad_accum_steps; m++)
        for (int r = 0; r < o->world_size; r++) {
            int64_t p = ((int64_t)m * o->world_size + r) * b;
            assert_int_equal(sl_sampler_fill(s, step, r, m, in, tg, ids + p, dups + p), SL_OK);
            if (inputs) memcpy(inputs + p * T, in, (size_t)b * T * sizeof *in);
            if (targets) memcpy(targets + p * T, tg, (size_t)b * T * sizeof *tg);
        }
    free(in);
    free(tg);
}

static void test_each_epoch_visits_every_sample_exactly_once(void **state) {
    (void)state;
    sl_dataset *docs = documents_dataset(48);
    sl_dataset *packed = counting_dataset(48 * 5 + 1);
    for (int mode = 0; mode < 2; mode++) {
        /* N = 48 samples either way; G = 2·2·3 = 12 divides it: 4 steps per epoch. */
        sl_sampler_options o = options(2, 2, 3, 5, mode ? SL_SAMPLE_DOCUMENTS : SL_SAMPLE_PACKED);
        sl_sampler *s = make_sampler(mode ? docs : packed, &o);
        assert_int_equal(sl_sampler_num_samples(s), 48);
        assert_int_equal(sl_sampler_global_batch(s), 12);
        assert_int_equal(sl_sampler_steps_per_epoch(s), 4);
        for (int64_t epoch = 0; epoch < 3; epoch++) {
            int seen[48] = {0};
            for (int64_t j = 0; j < 4; j++) {
                int64_t ids[12];
                uint8_t dups[12];
                global_batch(s, &o, epoch * 4 + j, ids, dups, NULL, NULL);
                for (int p = 0; p < 12; p++) {
                    assert_in_range(ids[p], 0, 47);
                    assert_int_equal(dups[p], 0);
                    seen[ids[p]]++;
                }
            }
            for (int i = 0; i < 48; i++)
                if (seen[i] != 1)
                    fail_msg("mode %d epoch %lld: sample %d seen %d times", mode, (long long)epoch,
                             i, seen[i]);
        }
        sl_sampler_destroy(s);
    }
    sl_dataset_destroy(docs);
    sl_dataset_destroy(packed);
}

/* The ids of one whole epoch in order, for W = k = b = 1. */
static void epoch_order(const sl_dataset *ds, uint64_t seed, bool shuffle, int64_t epoch,
                        int64_t *ids, int64_t n) {
    sl_sampler_options o = options(1, 1, 1, 4, SL_SAMPLE_DOCUMENTS);
    o.seed = seed;
    o.shuffle = shuffle;
    sl_sampler *s = make_sampler(ds, &o);
    int32_t in[4], tg[4];
    for (int64_t j = 0; j < n; j++)
        assert_int_equal(sl_sampler_fill(s, epoch * n + j, 0, 0, in, tg, ids + j, NULL), SL_OK);
    sl_sampler_destroy(s);
}

static void test_order_depends_on_seed_and_epoch_only(void **state) {
    (void)state;
    sl_dataset *ds = documents_dataset(40);
    int64_t a[40], b[40], c[40], d[40];
    epoch_order(ds, 7, true, 0, a, 40);
    epoch_order(ds, 7, true, 0, b, 40);
    assert_memory_equal(a, b, sizeof a);
    epoch_order(ds, 7, true, 1, c, 40);
    assert_memory_not_equal(a, c, sizeof a);
    epoch_order(ds, 8, true, 0, d, 40);
    assert_memory_not_equal(a, d, sizeof a);
    /* A shuffled order is not the identity (probability 1/40! of a false failure). */
    int64_t identity[40];
    for (int i = 0; i < 40; i++)
        identity[i] = i;
    assert_memory_not_equal(a, identity, sizeof a);
    epoch_order(ds, 7, false, 3, b, 40);
    assert_memory_equal(b, identity, sizeof b);
    sl_dataset_destroy(ds);
}

static void test_global_batches_do_not_depend_on_how_w_and_k_split_them(void **state) {
    (void)state;
    /* N = 50 does not divide by G = 8, so the wrapped last batch is compared too. */
    sl_dataset *ds = documents_dataset(50);
    const int splits[][3] = {{1, 4, 2}, {4, 1, 2}, {2, 2, 2}, {1, 1, 8}, {8, 1, 1}, {2, 4, 1}};
    const int n_splits = (int)(sizeof splits / sizeof splits[0]);
    for (int even = 0; even < 2; even++) {
        int64_t ref_ids[8];
        uint8_t ref_dups[8];
        for (int64_t step = 0; step < 16; step++) { /* 7 steps per epoch: crosses two epochs */
            for (int c = 0; c < n_splits; c++) {
                sl_sampler_options o =
                    options(splits[c][0], splits[c][1], splits[c][2], 8, SL_SAMPLE_DOCUMENTS);
                o.even_batches = even;
                sl_sampler *s = make_sampler(ds, &o);
                assert_int_equal(sl_sampler_steps_per_epoch(s), 7);
                int64_t ids[8];
                uint8_t dups[8];
                global_batch(s, &o, step, ids, dups, NULL, NULL);
                /* The layout (m·W + r)·b + i enumerates the global batch in order for every
                 * split, so even the positions agree, which implies equal multisets. */
                if (c == 0) {
                    memcpy(ref_ids, ids, sizeof ids);
                    memcpy(ref_dups, dups, sizeof dups);
                } else {
                    for (int p = 0; p < 8; p++)
                        if (ids[p] != ref_ids[p] || dups[p] != ref_dups[p])
                            fail_msg("even_batches %d step %lld position %d: W=%d k=%d b=%d has "
                                     "sample %lld (dup %d), W=1 k=4 b=2 has %lld (dup %d)",
                                     even, (long long)step, p, splits[c][0], splits[c][1],
                                     splits[c][2], (long long)ids[p], dups[p],
                                     (long long)ref_ids[p], ref_dups[p]);
                }
                sl_sampler_destroy(s);
            }
        }
    }
    sl_dataset_destroy(ds);
}

/* Real (non-duplicate, non-missing) samples rank r gets in each micro-step of `step`. */
static int real_samples(sl_sampler *s, const sl_sampler_options *o, int64_t step, int r, int m,
                        int *duplicates, int *missing) {
    int b = o->micro_batch_size, T = o->seq_len;
    int32_t *in = malloc((size_t)b * T * sizeof *in), *tg = malloc((size_t)b * T * sizeof *tg);
    int64_t *ids = malloc((size_t)b * sizeof *ids);
    uint8_t *dups = malloc((size_t)b);
    assert_int_equal(sl_sampler_fill(s, step, r, m, in, tg, ids, dups), SL_OK);
    int real = 0;
    *duplicates = *missing = 0;
    for (int i = 0; i < b; i++) {
        if (ids[i] < 0) {
            (*missing)++;
            for (int t = 0; t < T; t++) {
                assert_int_equal(tg[i * T + t], -1);
                assert_int_equal(in[i * T + t], 0);
            }
        } else if (dups[i]) {
            (*duplicates)++;
        } else {
            real++;
        }
    }
    free(in);
    free(tg);
    free(ids);
    free(dups);
    return real;
}

/* Accelerate's even_batches cases (tests/test_data_loader.py, 2 processes): dataset 3, batch 1
 * -> [1,1]/[1,1] with even_batches, [1,1]/[1] without; dataset 7, batch 2 -> [2,2]/[2,2] and
 * [2,2]/[2,1]. A missing sample here is an all-padding row rather than a shorter batch. */
static void test_even_batches_matches_accelerate_batch_sizes(void **state) {
    (void)state;
    const int cases[2][2] = {{3, 1}, {7, 2}};             /* dataset size, batch size */
    const int expect_last_rank1[2][2] = {{1, 0}, {2, 1}}; /* rank 1, last step: {even, uneven} */
    for (int c = 0; c < 2; c++) {
        sl_dataset *ds = documents_dataset(cases[c][0]);
        for (int even = 1; even >= 0; even--) {
            sl_sampler_options o = options(2, 1, cases[c][1], 4, SL_SAMPLE_DOCUMENTS);
            o.even_batches = even;
            sl_sampler *s = make_sampler(ds, &o);
            assert_int_equal(sl_sampler_steps_per_epoch(s), 2);
            int dup, miss;
            /* Step 0 is full on both ranks; step 1 is short on rank 1 only. */
            for (int r = 0; r < 2; r++) {
                assert_int_equal(real_samples(s, &o, 0, r, 0, &dup, &miss), cases[c][1]);
                assert_int_equal(dup + miss, 0);
            }
            assert_int_equal(real_samples(s, &o, 1, 0, 0, &dup, &miss), cases[c][1]);
            assert_int_equal(dup + miss, 0);
            int real = real_samples(s, &o, 1, 1, 0, &dup, &miss);
            assert_int_equal(real + dup, expect_last_rank1[c][even ? 0 : 1]);
            assert_int_equal(dup, even ? 1 : 0);
            assert_int_equal(miss, even ? 0 : 1);
            sl_sampler_destroy(s);
        }
        sl_dataset_destroy(ds);
    }
}

static void test_even_batches_fill_from_the_start_of_the_epoch_order(void **state) {
    (void)state;
    /* N = 10, G = 2·1·2 = 4: the last batch holds positions 8, 9 and wraps to 0, 1. */
    sl_dataset *ds = documents_dataset(10);
    sl_sampler_options o = options(2, 1, 2, 16, SL_SAMPLE_DOCUMENTS);
    sl_sampler *s = make_sampler(ds, &o);
    assert_int_equal(sl_sampler_steps_per_epoch(s), 3);
    int64_t first[4], last[4];
    uint8_t dup_first[4], dup_last[4];
    int32_t in_first[4 * 16], tg_first[4 * 16], in_last[4 * 16], tg_last[4 * 16];
    for (int64_t epoch = 0; epoch < 2; epoch++) {
        global_batch(s, &o, epoch * 3, first, dup_first, in_first, tg_first);
        global_batch(s, &o, epoch * 3 + 2, last, dup_last, in_last, tg_last);
        assert_int_equal(dup_last[0] + dup_last[1], 0);
        assert_int_equal(last[2], first[0]);
        assert_int_equal(last[3], first[1]);
        assert_int_equal(dup_last[2], 1);
        assert_int_equal(dup_last[3], 1);
        /* The duplicates carry the same rows as the samples they repeat. */
        assert_memory_equal(in_last + 2 * 16, in_first, 2 * 16 * sizeof(int32_t));
        assert_memory_equal(tg_last + 2 * 16, tg_first, 2 * 16 * sizeof(int32_t));
    }
    sl_sampler_destroy(s);
    sl_dataset_destroy(ds);
}

static void test_uneven_batches_pad_missing_samples(void **state) {
    (void)state;
    sl_dataset *ds = counting_dataset(10 * 4 + 1); /* 10 packed windows of T = 4 */
    sl_sampler_options o = options(2, 2, 2, 4, SL_SAMPLE_PACKED);
    o.even_batches = false;
    sl_sampler *s = make_sampler(ds, &o);
    /* G = 8: step 1 holds positions 8, 9 and six missing samples. */
    int64_t ids[8];
    uint8_t dups[8];
    int32_t in[8 * 4], tg[8 * 4];
    global_batch(s, &o, 1, ids, dups, in, tg);
    for (int p = 0; p < 8; p++) {
        assert_int_equal(dups[p], 0);
        if (p < 2) {
            assert_in_range(ids[p], 0, 9);
            assert_int_equal(in[p * 4], ids[p] * 4);
        } else {
            assert_int_equal(ids[p], -1);
            for (int t = 0; t < 4; t++)
                assert_int_equal(tg[p * 4 + t], -1);
        }
    }
    sl_sampler_destroy(s);
    sl_dataset_destroy(ds);
}

static void test_skip_first_batches_starts_the_run_later(void **state) {
    (void)state;
    sl_dataset *ds = documents_dataset(30);
    sl_sampler_options o = options(2, 1, 3, 8, SL_SAMPLE_DOCUMENTS); /* G = 6: 5 steps/epoch */
    sl_sampler *plain = make_sampler(ds, &o);
    o.skip_first_batches = 7;
    sl_sampler *skipped = make_sampler(ds, &o);
    sl_sampler_position p = sl_sampler_position_of(skipped, 0);
    assert_int_equal(p.epoch, 1);
    assert_int_equal(p.batch_in_epoch, 2);
    for (int64_t step = 0; step < 12; step++) {
        int64_t a[6], b[6];
        uint8_t da[6], db[6];
        int32_t ia[6 * 8], ib[6 * 8], ta[6 * 8], tb[6 * 8];
        global_batch(plain, &o, step + 7, a, da, ia, ta);
        global_batch(skipped, &o, step, b, db, ib, tb);
        assert_memory_equal(a, b, sizeof a);
        assert_memory_equal(ia, ib, sizeof ia);
        assert_memory_equal(ta, tb, sizeof ta);
    }
    sl_sampler_destroy(plain);
    sl_sampler_destroy(skipped);
    sl_dataset_destroy(ds);
}

static void test_position_maps_steps_to_epoch_and_batch(void **state) {
    (void)state;
    sl_dataset *ds = documents_dataset(25);
    sl_sampler_options o = options(1, 2, 3, 8, SL_SAMPLE_DOCUMENTS); /* G = 6: ceil(25/6) = 5 */
    sl_sampler *s = make_sampler(ds, &o);
    assert_int_equal(sl_sampler_steps_per_epoch(s), 5);
    const int64_t steps[] = {0, 4, 5, 9, 10, 123};
    const int64_t epochs[] = {0, 0, 1, 1, 2, 24};
    const int64_t batches[] = {0, 4, 0, 4, 0, 3};
    for (int i = 0; i < 6; i++) {
        sl_sampler_position p = sl_sampler_position_of(s, steps[i]);
        assert_int_equal(p.epoch, epochs[i]);
        assert_int_equal(p.batch_in_epoch, batches[i]);
    }
    sl_sampler_destroy(s);
    sl_dataset_destroy(ds);
}

static void test_resume_at_any_step_matches_a_continuous_run(void **state) {
    (void)state;
    sl_dataset *ds = documents_dataset(23);
    sl_sampler_options o = options(2, 2, 2, 8, SL_SAMPLE_DOCUMENTS); /* 3 steps per epoch */
    sl_sampler *run = make_sampler(ds, &o);
    int64_t continuous[12][8];
    uint8_t dups[8];
    for (int64_t step = 0; step < 12; step++)
        global_batch(run, &o, step, continuous[step], dups, NULL, NULL);
    /* Fresh samplers asked for steps out of order, as a resumed run would. */
    const int64_t resume_steps[] = {11, 4, 0, 7, 3, 10};
    for (int i = 0; i < 6; i++) {
        sl_sampler *fresh = make_sampler(ds, &o);
        int64_t ids[8];
        global_batch(fresh, &o, resume_steps[i], ids, dups, NULL, NULL);
        assert_memory_equal(ids, continuous[resume_steps[i]], sizeof ids);
        sl_sampler_destroy(fresh);
    }
    sl_sampler_destroy(run);
    sl_dataset_destroy(ds);
}

static void test_packed_targets_are_inputs_shifted_by_one(void **state) {
    (void)state;
    const int T = 8;
    sl_dataset *ds = counting_dataset(20 * T + 3); /* (163 - 1) / 8 = 20 windows */
    sl_sampler_options o = options(1, 1, 4, T, SL_SAMPLE_PACKED);
    sl_sampler *s = make_sampler(ds, &o);
    assert_int_equal(sl_sampler_num_samples(s), 20);
    for (int64_t step = 0; step < 5; step++) {
        int32_t in[4 * 8], tg[4 * 8];
        int64_t ids[4];
        assert_int_equal(sl_sampler_fill(s, step, 0, 0, in, tg, ids, NULL), SL_OK);
        for (int i = 0; i < 4; i++)
            for (int t = 0; t < T; t++) {
                /* Token j of the counting dataset is j: window id starts at id·T. */
                assert_int_equal(in[i * T + t], ids[i] * T + t);
                assert_int_equal(tg[i * T + t], ids[i] * T + t + 1);
                if (t + 1 < T) assert_int_equal(tg[i * T + t], in[i * T + t + 1]);
            }
    }
    sl_sampler_destroy(s);
    sl_dataset_destroy(ds);
}

static void test_documents_pad_exactly_past_each_document(void **state) {
    (void)state;
    const int T = 6;
    sl_dataset *ds = documents_dataset(26); /* lengths 1..13: shorter and longer than T + 1 */
    sl_sampler_options o = options(1, 1, 2, T, SL_SAMPLE_DOCUMENTS);
    o.shuffle = false;
    sl_sampler *s = make_sampler(ds, &o);
    assert_int_equal(sl_sampler_num_samples(s), 26);
    for (int64_t step = 0; step < 13; step++) {
        int32_t in[2 * 6], tg[2 * 6];
        int64_t ids[2];
        assert_int_equal(sl_sampler_fill(s, step, 0, 0, in, tg, ids, NULL), SL_OK);
        for (int i = 0; i < 2; i++) {
            int64_t d = ids[i], len = doc_length(d);
            assert_int_equal(d, 2 * step + i);
            int64_t valid = (len < T + 1 ? len : T + 1) - 1;
            for (int t = 0; t < T; t++) {
                if (t < valid) {
                    assert_int_equal(in[i * T + t], 100 * d + t + 1);
                    assert_int_equal(tg[i * T + t], 100 * d + t + 2);
                } else {
                    if (tg[i * T + t] != -1 || in[i * T + t] != 0)
                        fail_msg("document %lld (length %lld) position %d: input %d target %d, "
                                 "want padding 0/-1",
                                 (long long)d, (long long)len, t, in[i * T + t], tg[i * T + t]);
                }
            }
        }
    }
    sl_sampler_destroy(s);
    sl_dataset_destroy(ds);
}

static void test_default_corpus_documents_have_variable_lengths(void **state) {
    (void)state;
    sl_dataset *ds = NULL;
    assert_int_equal(sl_dataset_open("default", SL_SPLIT_HELDOUT, &ds), SL_OK);
    sl_sampler_options o = options(2, 2, 4, 64, SL_SAMPLE_DOCUMENTS);
    sl_sampler *s = make_sampler(ds, &o);
    int min_valid = 64, max_valid = 0;
    for (int r = 0; r < 2; r++) {
        int32_t in[4 * 64], tg[4 * 64];
        assert_int_equal(sl_sampler_fill(s, 0, r, 1, in, tg, NULL, NULL), SL_OK);
        for (int i = 0; i < 4; i++) {
            int valid = 0;
            while (valid < 64 && tg[i * 64 + valid] >= 0)
                valid++;
            for (int t = valid; t < 64; t++)
                assert_int_equal(tg[i * 64 + t], -1);
            /* Each line ends in '\n', so the last valid target is a newline. */
            assert_int_equal(tg[i * 64 + valid - 1], '\n');
            min_valid = valid < min_valid ? valid : min_valid;
            max_valid = valid > max_valid ? valid : max_valid;
        }
    }
    assert_true(min_valid < max_valid);
    sl_sampler_destroy(s);
    sl_dataset_destroy(ds);
}

static void expect_invalid(const sl_dataset *ds, const sl_sampler_options *o, const char *needle) {
    sl_sampler *s = (sl_sampler *)1;
    assert_int_equal(sl_sampler_create(ds, o, &s), SL_ERR_INVALID_ARG);
    assert_null(s);
    if (!strstr(sl_error_message(), needle))
        fail_msg("error message lacks \"%s\": %s", needle, sl_error_message());
}

static void test_invalid_options_are_rejected_naming_the_option(void **state) {
    (void)state;
    sl_dataset *ds = counting_dataset(33);
    sl_sampler_options o = options(1, 1, 1, 8, SL_SAMPLE_PACKED);
    o.seq_len = 0;
    expect_invalid(ds, &o, "seq_len = 0");
    o = options(0, 1, 1, 8, SL_SAMPLE_PACKED);
    expect_invalid(ds, &o, "world_size = 0");
    o = options(1, 1, 0, 8, SL_SAMPLE_PACKED);
    expect_invalid(ds, &o, "micro_batch_size = 0");
    o = options(1, -2, 1, 8, SL_SAMPLE_PACKED);
    expect_invalid(ds, &o, "grad_accum_steps = -2");
    o = options(1, 1, 1, 8, SL_SAMPLE_PACKED);
    o.skip_first_batches = -1;
    expect_invalid(ds, &o, "skip_first_batches = -1");
    /* 33 tokens hold one window of T = 32 but none of T = 33. */
    o = options(1, 1, 1, 32, SL_SAMPLE_PACKED);
    sl_sampler *s = make_sampler(ds, &o);
    assert_int_equal(sl_sampler_num_samples(s), 1);
    int32_t in[32], tg[32];
    assert_int_equal(sl_sampler_fill(s, 0, 1, 0, in, tg, NULL, NULL), SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "rank 1"));
    assert_int_equal(sl_sampler_fill(s, 0, 0, 1, in, tg, NULL, NULL), SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "micro-step 1"));
    assert_int_equal(sl_sampler_fill(s, -1, 0, 0, in, tg, NULL, NULL), SL_ERR_INVALID_ARG);
    assert_non_null(strstr(sl_error_message(), "step -1"));
    sl_sampler_destroy(s);
    o.seq_len = 33;
    expect_invalid(ds, &o, "'counting'");
    expect_invalid(ds, &o, "seq_len 33");
    sl_dataset_destroy(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_epoch_visits_every_sample_exactly_once),
        cmocka_unit_test(test_order_depends_on_seed_and_epoch_only),
        cmocka_unit_test(test_global_batches_do_not_depend_on_how_w_and_k_split_them),
        cmocka_unit_test(test_even_batches_matches_accelerate_batch_sizes),
        cmocka_unit_test(test_even_batches_fill_from_the_start_of_the_epoch_order),
        cmocka_unit_test(test_uneven_batches_pad_missing_samples),
        cmocka_unit_test(test_skip_first_batches_starts_the_run_later),
        cmocka_unit_test(test_position_maps_steps_to_epoch_and_batch),
        cmocka_unit_test(test_resume_at_any_step_matches_a_continuous_run),
        cmocka_unit_test(test_packed_targets_are_inputs_shifted_by_one),
        cmocka_unit_test(test_documents_pad_exactly_past_each_document),
        cmocka_unit_test(test_default_corpus_documents_have_variable_lengths),
        cmocka_unit_test(test_invalid_options_are_rejected_naming_the_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
