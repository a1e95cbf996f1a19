/* The data sampler: step -> global batch -> each rank's micro-batches (layout in data.h). */
#include "shardlab/data.h"
#include "shardlab/rng.h"

#include <stdlib.h>
#include <string.h>

struct sl_sampler {
    const sl_dataset *ds;
    sl_sampler_options opt;
    int64_t n_samples;       /* N */
    int64_t global_batch;    /* G = W·k·b */
    int64_t steps_per_epoch; /* ceil(N / G) */
    int64_t *order;          /* (N) the permutation of order_epoch; NULL without shuffle */
    int64_t order_epoch;     /* -1: order not computed yet */
};

sl_sampler_options sl_sampler_options_default(void) {
    return (sl_sampler_options){.seed = 0,
                                .world_size = 1,
                                .micro_batch_size = 1,
                                .grad_accum_steps = 1,
                                .seq_len = 64,
                                .shuffle = true,
                                .even_batches = true,
                                .mode = SL_SAMPLE_PACKED,
                                .skip_first_batches = 0,
                                .start_epoch = 0,
                                .start_sample = 0};
}

static sl_status check_positive(const char *option, long long value) {
    if (value >= 1) return SL_OK;
    return sl_error_set(SL_ERR_INVALID_ARG, "sampler option %s = %lld: must be >= 1", option,
                        value);
}

sl_status sl_sampler_create(const sl_dataset *ds, const sl_sampler_options *opt, sl_sampler **out) {
    *out = NULL;
    SL_TRY(check_positive("seq_len", opt->seq_len));
    SL_TRY(check_positive("world_size", opt->world_size));
    SL_TRY(check_positive("micro_batch_size", opt->micro_batch_size));
    SL_TRY(check_positive("grad_accum_steps", opt->grad_accum_steps));
    if (opt->skip_first_batches < 0)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sampler option skip_first_batches = %lld: must be >= 0",
                            (long long)opt->skip_first_batches);
    if (opt->mode != SL_SAMPLE_PACKED && opt->mode != SL_SAMPLE_DOCUMENTS)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sampler option mode = %d: must be SL_SAMPLE_PACKED or "
                            "SL_SAMPLE_DOCUMENTS",
                            (int)opt->mode);
    int64_t n_tokens = sl_dataset_num_tokens(ds);
    int64_t n = opt->mode == SL_SAMPLE_PACKED ? (n_tokens - 1) / opt->seq_len
                                              : sl_dataset_num_documents(ds);
    if (n < 1)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "dataset '%s' has %lld tokens, but packed sampling with seq_len %d "
                            "needs at least %lld; lower seq_len or use more data",
                            sl_dataset_name(ds), (long long)n_tokens, opt->seq_len,
                            (long long)opt->seq_len + 1);
    if (opt->start_epoch < 0 || opt->start_sample < 0 || opt->start_sample >= n)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sampler start position (epoch %lld, sample %lld) is outside the "
                            "dataset '%s' of %lld samples: the epoch must be >= 0 and the sample "
                            "in [0, %lld); a resumed run needs the data it was saved with",
                            (long long)opt->start_epoch, (long long)opt->start_sample,
                            sl_dataset_name(ds), (long long)n, (long long)n);
    sl_sampler *s = calloc(1, sizeof *s);
    int64_t *order = opt->shuffle ? malloc((size_t)n * sizeof *order) : NULL;
    if (!s || (opt->shuffle && !order)) {
        free(s);
        free(order);
        return sl_error_set(SL_ERR_OOM, "sampler: out of memory for the order of %lld samples",
                            (long long)n);
    }
    int64_t g = (int64_t)opt->world_size * opt->grad_accum_steps * opt->micro_batch_size;
    *s = (sl_sampler){.ds = ds,
                      .opt = *opt,
                      .n_samples = n,
                      .global_batch = g,
                      .steps_per_epoch = (n + g - 1) / g,
                      .order = order,
                      .order_epoch = -1};
    *out = s;
    return SL_OK;
}

void sl_sampler_destroy(sl_sampler *s) {
    if (!s) return;
    free(s->order);
    free(s);
}

int64_t sl_sampler_num_samples(const sl_sampler *s) {
    return s->n_samples;
}
int64_t sl_sampler_global_batch(const sl_sampler *s) {
    return s->global_batch;
}
int64_t sl_sampler_steps_per_epoch(const sl_sampler *s) {
    return s->steps_per_epoch;
}

sl_sampler_position sl_sampler_position_of(const sl_sampler *s, int64_t step) {
    const int64_t n = s->n_samples, gb = s->global_batch, o = s->opt.start_sample;
    int64_t g = step + s->opt.skip_first_batches;
    const int64_t first_epoch_batches = (n - o + gb - 1) / gb; /* what is left of start_epoch */
    sl_sampler_position pos = {.epoch = s->opt.start_epoch, .sample_in_epoch = o + g * gb};
    if (g >= first_epoch_batches) {
        g -= first_epoch_batches;
        pos.epoch += 1 + g / s->steps_per_epoch;
        pos.sample_in_epoch = (g % s->steps_per_epoch) * gb;
    }
    pos.batch_in_epoch = pos.sample_in_epoch / gb;
    return pos;
}

/* Fisher–Yates from (seed, epoch): draw i swaps position N-1-i with a position in [0, N-1-i].
 * The modulo's bias is below N / 2^64. */
static void shuffle_epoch(sl_sampler *s, int64_t epoch) {
    uint64_t stream = sl_rng_stream_from_name("sampler.epoch") + (uint64_t)epoch;
    int64_t n = s->n_samples;
    for (int64_t i = 0; i < n; i++)
        s->order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t r = sl_rng_bits(s->opt.seed, stream, (uint64_t)(n - 1 - i));
        int64_t j = (int64_t)(r % (uint64_t)(i + 1));
        int64_t t = s->order[i];
        s->order[i] = s->order[j];
        s->order[j] = t;
    }
    s->order_epoch = epoch;
}

/* One sample into inputs/targets (T). */
static void fill_sample(const sl_sampler *s, int64_t id, int32_t *inputs, int32_t *targets) {
    int T = s->opt.seq_len;
    const int32_t *tok = sl_dataset_tokens(s->ds);
    int64_t start, valid;
    if (s->opt.mode == SL_SAMPLE_PACKED) {
        start = id * T;
        valid = T;
    } else {
        int64_t len;
        sl_dataset_document(s->ds, id, &start, &len);
        valid = (len < T + 1 ? len : T + 1) - 1;
    }
    for (int64_t t = 0; t < T; t++) {
        inputs[t] = t < valid ? tok[start + t] : 0;
        targets[t] = t < valid ? tok[start + t + 1] : -1;
    }
}

sl_status sl_sampler_fill(sl_sampler *s, int64_t step, int rank, int micro, int32_t *inputs,
                          int32_t *targets, int64_t *sample_ids, uint8_t *is_duplicate) {
    const sl_sampler_options *o = &s->opt;
    if (step < 0)
        return sl_error_set(SL_ERR_INVALID_ARG, "sampler: step %lld must be >= 0", (long long)step);
    if (rank < 0 || rank >= o->world_size)
        return sl_error_set(SL_ERR_INVALID_ARG, "sampler: rank %d outside [0, world_size %d)", rank,
                            o->world_size);
    if (micro < 0 || micro >= o->grad_accum_steps)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sampler: micro-step %d outside [0, grad_accum_steps %d)", micro,
                            o->grad_accum_steps);
    sl_sampler_position pos = sl_sampler_position_of(s, step);
    if (o->shuffle && s->order_epoch != pos.epoch) shuffle_epoch(s, pos.epoch);
    int b = o->micro_batch_size, T = o->seq_len;
    int64_t first = pos.sample_in_epoch + ((int64_t)micro * o->world_size + rank) * b;
    for (int i = 0; i < b; i++) {
        int64_t p = first + i; /* position in the epoch's order */
        int duplicate = p >= s->n_samples;
        int64_t id = -1;
        if (!duplicate || o->even_batches) {
            int64_t q = p % s->n_samples;
            id = o->shuffle ? s->order[q] : q;
        }
        if (id >= 0) {
            fill_sample(s, id, inputs + (int64_t)i * T, targets + (int64_t)i * T);
        } else {
            memset(inputs + (int64_t)i * T, 0, (size_t)T * sizeof *inputs);
            for (int t = 0; t < T; t++)
                targets[(int64_t)i * T + t] = -1;
        }
        if (sample_ids) sample_ids[i] = id;
        if (is_duplicate) is_duplicate[i] = (uint8_t)(duplicate && id >= 0);
    }
    return SL_OK;
}
