/* Datasets and the data sampler.
 *
 * A dataset is a token array (int32, every value < vocab_size) cut into documents: contiguous,
 * non-empty token ranges that together cover the array in order. Sources:
 *   "default"  the embedded corpus, generated deterministically in C when opened (no files):
 *              one document per line, bytes as tokens (V = 256). Lines are integer arithmetic
 *              ("12+35=47\n", "7*8=56\n"), counting runs ("count 17 18 19 20\n") and short
 *              sentences from small word lists with number agreement and a/an
 *              ("the red fox sees an old owl.\n"). Train and held-out come from different
 *              generator streams, and a line goes to held-out exactly when its hash says so, so
 *              no held-out line ever appears in train. (A file named "default" reads as
 *              "./default".)
 *   PATH.bin, or any file whose first int32 is 20240520: an llm.c token file — a header of 256
 *              int32 (magic 20240520, version 1, token count), then uint16 tokens; the file size
 *              must be exactly 1024 + 2·count. Documents start at each GPT-2 end-of-text token
 *              50256 (llm.c writes it before every document); tokens before the first one form a
 *              document of their own; without any, the file is one document.
 *              vocab_size = max(50257, max token + 1).
 *   any other file: raw bytes (V = 256), one document per line, the '\n' ending its line.
 *
 * Splits of a file are by document: held-out is the last 10% of the documents (at least one) and
 * train the rest. A file with a single document is split by tokens instead (the last 10%, at least
 * one token, is held-out). SL_SPLIT_ALL is every document (for the default corpus: train, then
 * held-out). */
#ifndef SHARDLAB_DATA_H
#define SHARDLAB_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "shardlab/status.h"

#define SL_LLMC_MAGIC 20240520
#define SL_LLMC_VERSION 1
#define SL_LLMC_HEADER_INTS 256
#define SL_GPT2_EOT 50256

typedef enum sl_split { SL_SPLIT_TRAIN, SL_SPLIT_HELDOUT, SL_SPLIT_ALL } sl_split;

typedef struct sl_dataset sl_dataset;

/* Opens `spec` ("default" or a path, see above). Errors: SL_ERR_IO (cannot read, naming the
 * path), SL_ERR_FORMAT (a malformed llm.c header: names the file, the field, what was expected and
 * what was found), SL_ERR_INVALID_ARG (a file too small to split). */
sl_status sl_dataset_open(const char *spec, sl_split split, sl_dataset **out);

/* A dataset from memory (copied). doc_starts[0..n_docs) are the first token of each document,
 * strictly increasing from 0, each < n_tokens. `name` appears in error messages. */
sl_status sl_dataset_create_from_tokens(const char *name, const int32_t *tokens, int64_t n_tokens,
                                        const int64_t *doc_starts, int64_t n_docs,
                                        int32_t vocab_size, sl_dataset **out);
void sl_dataset_destroy(sl_dataset *ds);

/* "default (train)", "data/x.bin (held-out)", ... */
const char *sl_dataset_name(const sl_dataset *ds);
int32_t sl_dataset_vocab_size(const sl_dataset *ds);
/* The largest token id present (-1 for no tokens, which open never returns). */
int32_t sl_dataset_max_token(const sl_dataset *ds);
int64_t sl_dataset_num_tokens(const sl_dataset *ds);
const int32_t *sl_dataset_tokens(const sl_dataset *ds); /* (num_tokens) */
int64_t sl_dataset_num_documents(const sl_dataset *ds);
/* Document d is tokens[*start, *start + *len). */
void sl_dataset_document(const sl_dataset *ds, int64_t d, int64_t *start, int64_t *len);

/* SL_ERR_MISMATCH naming the dataset and its largest token id when a model with vocabulary
 * `model_vocab` could not embed every token. */
sl_status sl_dataset_check_vocab(const sl_dataset *ds, int32_t model_vocab);

/* How a sample (one row of a batch: inputs (T), targets (T); target -1 = padding, excluded from
 * the loss) is cut from the dataset. Sample ids are stable integers. */
typedef enum sl_sample_mode {
    /* Sample i = tokens [i·T, i·T + T + 1): inputs the first T, targets the last T. Every
     * position is valid. Samples: (num_tokens - 1) / T. */
    SL_SAMPLE_PACKED,
    /* Sample d = document d, truncated to T + 1 tokens (the rest is dropped): a document of L
     * tokens has min(L, T + 1) - 1 valid positions; later positions hold input 0, target -1.
     * Samples: num_documents. */
    SL_SAMPLE_DOCUMENTS
} sl_sample_mode;

typedef struct sl_sampler_options {
    uint64_t seed;
    int world_size;       /* W */
    int micro_batch_size; /* b: samples per rank per micro-step */
    int grad_accum_steps; /* k */
    int seq_len;          /* T */
    bool shuffle;
    bool even_batches; /* Accelerate's default: true */
    sl_sample_mode mode;
    int64_t skip_first_batches; /* global batches skipped once, at the start of the run */
    /* Where a resumed run starts: epoch `start_epoch`, after the first `start_sample` positions
     * of that epoch's order (0 <= start_sample < N). A position counts samples, not steps, so a
     * run resumed with another W, k or b (another G) neither skips nor repeats a sample. */
    int64_t start_epoch;
    int64_t start_sample;
} sl_sampler_options;

/* seed 0, W = b = k = 1, T = 64, shuffle, even_batches, packed, no skip, start (0, 0). */
sl_sampler_options sl_sampler_options_default(void);

/* The sampler maps an optimizer step to its global batch of G = W·k·b samples.
 *
 * Order: epoch e visits the N sample ids in a permutation drawn from (seed, e) alone — a
 * Fisher–Yates shuffle fed by the counter-based RNG — or in id order without shuffle. It does not
 * depend on W, k or b, so every split of the same G sees the same global batches.
 * Global batch j of an epoch is order[j·G, (j+1)·G); inside it, micro-step m of rank r holds
 * positions [(m·W + r)·b, (m·W + r + 1)·b). An epoch has ceil(N / G) global batches. When G does
 * not divide N, the positions of the last batch past N are
 *   even_batches = true:  filled from the start of the same epoch's order (position p holds
 *                         order[p mod N]) and flagged as duplicates, so metrics can drop them
 *                         (Accelerate's `even_batches` / `gather_for_metrics`);
 *   even_batches = false: missing: sample id -1, inputs 0, targets all -1.
 * Step s is global batch g = s + skip_first_batches of the run. From the start position (E, o)
 * (start_epoch, start_sample; (0, 0) for a fresh run) the rest of epoch E is cut into
 * ceil((N - o) / G) global batches starting at positions o, o + G, ...; every later epoch into
 * ceil(N / G) batches starting at 0, G, .... The answer is a pure function of (dataset, options,
 * s), so resuming with the same G is asking a new sampler for step s, and resuming with another
 * G is creating the sampler at the position sl_sampler_position_of(old, steps done) reports. */
typedef struct sl_sampler sl_sampler;

/* Where step s's global batch starts: its epoch, its first position in that epoch's order
 * (sample_in_epoch: samples of the epoch consumed before it), and sample_in_epoch / G rounded
 * down. position_of(steps done) is where a resumed run continues; it is (E + 1, 0) after a step
 * that ended epoch E. */
typedef struct sl_sampler_position {
    int64_t epoch;
    int64_t batch_in_epoch;
    int64_t sample_in_epoch;
} sl_sampler_position;

/* Validates the options (each bad one is an SL_ERR_INVALID_ARG naming it) and that the dataset
 * holds at least one sample. The dataset must outlive the sampler. */
sl_status sl_sampler_create(const sl_dataset *ds, const sl_sampler_options *opt, sl_sampler **out);
void sl_sampler_destroy(sl_sampler *s);

int64_t sl_sampler_num_samples(const sl_sampler *s);     /* N */
int64_t sl_sampler_global_batch(const sl_sampler *s);    /* G = W·k·b */
int64_t sl_sampler_steps_per_epoch(const sl_sampler *s); /* ceil(N / G) */
sl_sampler_position sl_sampler_position_of(const sl_sampler *s, int64_t step);

/* Fills rank `rank`'s micro-step `micro` of step `step`: inputs and targets (b, T), sample_ids
 * (b; -1 for a missing sample) and is_duplicate (b; 1 for an even_batches wrap-around filler).
 * sample_ids and is_duplicate may be NULL. */
sl_status sl_sampler_fill(sl_sampler *s, int64_t step, int rank, int micro, int32_t *inputs,
                          int32_t *targets, int64_t *sample_ids, uint8_t *is_duplicate);

#endif
