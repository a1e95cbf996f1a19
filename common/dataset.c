/* The dataset core: ownership, validation, splits and accessors. Sources live in data_default.c
 * (the embedded corpus) and data_file.c (raw text and llm.c .bin files). */
#include "common/data_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_dataset {
    char *name;
    int32_t *tokens; /* (n_tokens) */
    int64_t n_tokens;
    int64_t *doc_starts; /* (n_docs + 1); doc_starts[n_docs] = n_tokens */
    int64_t n_docs;
    int32_t vocab_size;
    int32_t max_token;
};

static const char *split_label(sl_split split) {
    switch (split) {
    case SL_SPLIT_TRAIN: return "train";
    case SL_SPLIT_HELDOUT: return "held-out";
    case SL_SPLIT_ALL: return "all";
    }
    return "?";
}

static sl_status validate_arrays(const char *name, const int32_t *tokens, int64_t n_tokens,
                                 const int64_t *doc_starts, int64_t n_docs, int32_t vocab_size,
                                 int32_t *max_token) {
    if (vocab_size < 1)
        return sl_error_set(SL_ERR_INVALID_ARG, "dataset '%s': vocab_size %d must be >= 1", name,
                            (int)vocab_size);
    if (n_tokens < 1 || n_docs < 1)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "dataset '%s' is empty (%lld tokens, %lld documents); it needs at "
                            "least one token in one document",
                            name, (long long)n_tokens, (long long)n_docs);
    if (doc_starts[0] != 0)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "dataset '%s': document 0 starts at token %lld; it must start at 0",
                            name, (long long)doc_starts[0]);
    for (int64_t d = 1; d < n_docs; d++) {
        if (doc_starts[d] <= doc_starts[d - 1] || doc_starts[d] >= n_tokens)
            return sl_error_set(SL_ERR_INVALID_ARG,
                                "dataset '%s': document %lld starts at token %lld; starts must "
                                "increase strictly (previous %lld) and stay below %lld tokens",
                                name, (long long)d, (long long)doc_starts[d],
                                (long long)doc_starts[d - 1], (long long)n_tokens);
    }
    int32_t max = -1;
    for (int64_t i = 0; i < n_tokens; i++) {
        if (tokens[i] < 0 || tokens[i] >= vocab_size)
            return sl_error_set(SL_ERR_INVALID_ARG,
                                "dataset '%s': token %lld is %d, outside the vocabulary [0, %d)",
                                name, (long long)i, (int)tokens[i], (int)vocab_size);
        if (tokens[i] > max) max = tokens[i];
    }
    *max_token = max;
    return SL_OK;
}

sl_status sl_dataset_adopt(const char *name, int32_t *tokens, int64_t n_tokens, int64_t *doc_starts,
                           int64_t n_docs, int32_t vocab_size, sl_dataset **out) {
    *out = NULL;
    int32_t max_token = -1;
    sl_status st =
        validate_arrays(name, tokens, n_tokens, doc_starts, n_docs, vocab_size, &max_token);
    sl_dataset *ds = NULL;
    int64_t *starts = NULL;
    char *copy = NULL;
    if (st == SL_OK) {
        ds = calloc(1, sizeof *ds);
        starts = realloc(doc_starts, (size_t)(n_docs + 1) * sizeof *starts);
        copy = malloc(strlen(name) + 1);
        if (starts) doc_starts = starts;
        if (!ds || !starts || !copy)
            st = sl_error_set(SL_ERR_OOM, "dataset '%s': out of memory for %lld documents", name,
                              (long long)n_docs);
    }
    if (st != SL_OK) {
        free(ds);
        free(copy);
        free(tokens);
        free(doc_starts);
        return st;
    }
    strcpy(copy, name);
    starts[n_docs] = n_tokens;
    *ds = (sl_dataset){.name = copy,
                       .tokens = tokens,
                       .n_tokens = n_tokens,
                       .doc_starts = starts,
                       .n_docs = n_docs,
                       .vocab_size = vocab_size,
                       .max_token = max_token};
    *out = ds;
    return SL_OK;
}

/* Keeps tokens [t0, t1) and documents [d0, d1) (rebased to t0) of the arrays, in place. */
static void keep_range(int32_t **tokens, int64_t t0, int64_t t1, int64_t **doc_starts, int64_t d0,
                       int64_t d1) {
    memmove(*tokens, *tokens + t0, (size_t)(t1 - t0) * sizeof **tokens);
    for (int64_t d = d0; d < d1; d++)
        (*doc_starts)[d - d0] = (*doc_starts)[d] - t0;
    /* Shrinking never needs the block to move; a failed shrink keeps the larger, valid block. */
    int32_t *t = realloc(*tokens, (size_t)(t1 - t0) * sizeof **tokens);
    if (t) *tokens = t;
}

sl_status sl_dataset_adopt_split(const char *source, int32_t *tokens, int64_t n_tokens,
                                 int64_t *doc_starts, int64_t n_docs, int32_t vocab_size,
                                 sl_split split, sl_dataset **out) {
    *out = NULL;
    size_t name_cap = strlen(source) + 16;
    char *name = malloc(name_cap);
    if (!name) {
        free(tokens);
        free(doc_starts);
        return sl_error_set(SL_ERR_OOM, "'%s': out of memory", source);
    }
    snprintf(name, name_cap, "%s (%s)", source, split_label(split));
    if (split != SL_SPLIT_ALL && n_docs == 1 && n_tokens < 2) {
        free(name);
        free(tokens);
        free(doc_starts);
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "'%s' holds a single token; a train/held-out split needs at least 2 "
                            "(add data, or open the whole file as SL_SPLIT_ALL)",
                            source);
    }
    if (split != SL_SPLIT_ALL && n_docs >= 2) {
        int64_t n_held = n_docs / 10 > 1 ? n_docs / 10 : 1;
        int64_t cut_doc = n_docs - n_held;
        int64_t cut_tok = doc_starts[cut_doc];
        if (split == SL_SPLIT_TRAIN) {
            keep_range(&tokens, 0, cut_tok, &doc_starts, 0, cut_doc);
            n_tokens = cut_tok;
            n_docs = cut_doc;
        } else {
            keep_range(&tokens, cut_tok, n_tokens, &doc_starts, cut_doc, n_docs);
            n_tokens -= cut_tok;
            n_docs = n_held;
        }
    } else if (split != SL_SPLIT_ALL) {
        /* One document: the only cut left is inside it. */
        int64_t n_held = n_tokens / 10 > 1 ? n_tokens / 10 : 1;
        int64_t cut_tok = n_tokens - n_held;
        if (split == SL_SPLIT_TRAIN) {
            keep_range(&tokens, 0, cut_tok, &doc_starts, 0, 0);
            n_tokens = cut_tok;
        } else {
            keep_range(&tokens, cut_tok, n_tokens, &doc_starts, 0, 0);
            n_tokens = n_held;
        }
    }
    sl_status st = sl_dataset_adopt(name, tokens, n_tokens, doc_starts, n_docs, vocab_size, out);
    free(name);
    return st;
}

sl_status sl_dataset_create_from_tokens(const char *name, const int32_t *tokens, int64_t n_tokens,
                                        const int64_t *doc_starts, int64_t n_docs,
                                        int32_t vocab_size, sl_dataset **out) {
    *out = NULL;
    if (!name || (!tokens && n_tokens > 0) || (!doc_starts && n_docs > 0) || n_tokens < 0 ||
        n_docs < 0)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sl_dataset_create_from_tokens: name, tokens and doc_starts must be "
                            "given with non-negative counts");
    int32_t *t = malloc((size_t)(n_tokens > 0 ? n_tokens : 1) * sizeof *t);
    int64_t *d = malloc((size_t)(n_docs + 1) * sizeof *d);
    if (!t || !d) {
        free(t);
        free(d);
        return sl_error_set(SL_ERR_OOM, "dataset '%s': out of memory for %lld tokens", name,
                            (long long)n_tokens);
    }
    if (n_tokens > 0) memcpy(t, tokens, (size_t)n_tokens * sizeof *t);
    if (n_docs > 0) memcpy(d, doc_starts, (size_t)n_docs * sizeof *d);
    return sl_dataset_adopt(name, t, n_tokens, d, n_docs, vocab_size, out);
}

sl_status sl_dataset_open(const char *spec, sl_split split, sl_dataset **out) {
    *out = NULL;
    if (!spec || !*spec)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "dataset spec is empty; give \"default\" or a file path");
    if (split != SL_SPLIT_TRAIN && split != SL_SPLIT_HELDOUT && split != SL_SPLIT_ALL)
        return sl_error_set(SL_ERR_INVALID_ARG, "dataset '%s': unknown split %d", spec, (int)split);
    if (strcmp(spec, "default") == 0) return sl_data_default_open(split, out);
    return sl_data_file_open(spec, split, out);
}

void sl_dataset_destroy(sl_dataset *ds) {
    if (!ds) return;
    free(ds->name);
    free(ds->tokens);
    free(ds->doc_starts);
    free(ds);
}

const char *sl_dataset_name(const sl_dataset *ds) {
    return ds->name;
}
int32_t sl_dataset_vocab_size(const sl_dataset *ds) {
    return ds->vocab_size;
}
int32_t sl_dataset_max_token(const sl_dataset *ds) {
    return ds->max_token;
}
int64_t sl_dataset_num_tokens(const sl_dataset *ds) {
    return ds->n_tokens;
}
const int32_t *sl_dataset_tokens(const sl_dataset *ds) {
    return ds->tokens;
}
int64_t sl_dataset_num_documents(const sl_dataset *ds) {
    return ds->n_docs;
}

void sl_dataset_document(const sl_dataset *ds, int64_t d, int64_t *start, int64_t *len) {
    *start = ds->doc_starts[d];
    *len = ds->doc_starts[d + 1] - ds->doc_starts[d];
}

sl_status sl_dataset_check_vocab(const sl_dataset *ds, int32_t model_vocab) {
    if (ds->max_token < model_vocab) return SL_OK;
    return sl_error_set(SL_ERR_MISMATCH,
                        "dataset '%s' holds token id %d but the model's vocab_size is %d; use a "
                        "model with vocab_size >= %d (e.g. gpt2-124m for GPT-2 token files) or a "
                        "byte-level dataset",
                        ds->name, (int)ds->max_token, (int)model_vocab, (int)ds->max_token + 1);
}
