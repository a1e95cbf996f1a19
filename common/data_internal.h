/* Between the dataset core (dataset.c) and its sources (data_default.c, data_file.c). */
#ifndef SHARDLAB_DATA_INTERNAL_H
#define SHARDLAB_DATA_INTERNAL_H

#include "shardlab/data.h"

/* Builds the `split` of a whole source from arrays the call takes ownership of (freed on every
 * path): tokens (n_tokens), doc_starts (n_docs, strictly increasing from 0). `source` names the
 * source in messages and in the dataset name. File splits follow data.h. */
sl_status sl_dataset_adopt_split(const char *source, int32_t *tokens, int64_t n_tokens,
                                 int64_t *doc_starts, int64_t n_docs, int32_t vocab_size,
                                 sl_split split, sl_dataset **out);

/* Builds a dataset that is exactly the given arrays (ownership taken as above). */
sl_status sl_dataset_adopt(const char *name, int32_t *tokens, int64_t n_tokens, int64_t *doc_starts,
                           int64_t n_docs, int32_t vocab_size, sl_dataset **out);

sl_status sl_data_default_open(sl_split split, sl_dataset **out);
sl_status sl_data_file_open(const char *path, sl_split split, sl_dataset **out);

#endif
