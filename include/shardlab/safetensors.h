/* safetensors files (the Hugging Face format): an 8-byte little-endian header length N, N bytes of
 * JSON header {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"key": "value"}}, then the tensor bytes; offsets count from the first byte
 * after the header. Tensor data is little-endian, which is also what this library assumes the
 * host to be. Supported dtypes: F32, BF16, F16, F64, I32, I64.
 *
 * The writer emits what the reference implementation emits: "__metadata__" first (only when
 * there is metadata), header padded with spaces to a multiple of 8 bytes, data packed without
 * gaps. Tensors are laid out in the order they were added. The reader validates as strictly as
 * the reference implementation (plus a few checks of its own) and names the file and the tensor
 * in every error. */
#ifndef SHARDLAB_SAFETENSORS_H
#define SHARDLAB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "shardlab/dtype.h"
#include "shardlab/status.h"

/* Largest accepted header (the reference implementation's limit, 100,000,000 bytes). */
#define SL_SAFETENSORS_MAX_HEADER 100000000u

/* ---- writing ---- */

typedef struct sl_safetensors_writer sl_safetensors_writer;

sl_status sl_safetensors_writer_create(sl_safetensors_writer **out);
void sl_safetensors_writer_destroy(sl_safetensors_writer *w);

/* Adds a tensor whose bytes (numel x sl_dtype_size(dtype), host = little-endian order) are at
 * `data`. The writer copies name and shape but only REFERENCES `data`: it must stay valid and
 * unchanged until sl_safetensors_writer_write returns. `data` may be NULL when numel is 0; ndim 0
 * is a scalar. SL_ERR_INVALID_ARG for a duplicate or reserved ("__metadata__") name, a negative
 * dimension or an unsupported dtype. */
sl_status sl_safetensors_writer_add(sl_safetensors_writer *w, const char *name, sl_dtype dtype,
                                    const int64_t *shape, int ndim, const void *data);

/* Adds a tensor stored as `storage` (F32, BF16, F16 or F64) from f32 values, converted with the
 * rounding of dtype.h while the file is written. `src` is referenced, as in _add. */
sl_status sl_safetensors_writer_add_f32(sl_safetensors_writer *w, const char *name,
                                        sl_dtype storage, const int64_t *shape, int ndim,
                                        const float *src);

/* Sets a string metadata entry (both strings copied; a second set of the same key replaces it). */
sl_status sl_safetensors_writer_set_metadata(sl_safetensors_writer *w, const char *key,
                                             const char *value);

/* Writes the file atomically (temporary file, fsync, rename, fsync of the directory). The writer
 * can write again or be destroyed afterwards. */
sl_status sl_safetensors_writer_write(sl_safetensors_writer *w, const char *path);

/* ---- reading ---- */

typedef struct sl_safetensors sl_safetensors;

/* One tensor of an open file; valid until sl_safetensors_close. */
typedef struct sl_safetensors_tensor {
    const char *name;
    sl_dtype dtype;
    int ndim;
    const int64_t *shape; /* ndim entries */
    size_t numel;         /* product of shape (1 for a scalar) */
    const void *data;     /* raw bytes; not necessarily aligned for the dtype: copy with memcpy */
    size_t nbytes;
} sl_safetensors_tensor;

/* Reads and validates the whole file. Errors: SL_ERR_IO (cannot read), SL_ERR_FORMAT (malformed;
 * the message names the file, the tensor and what was expected vs found). */
sl_status sl_safetensors_open(const char *path, sl_safetensors **out);
/* The same for a file already in memory; the bytes are copied. `name` is used in messages. */
sl_status sl_safetensors_open_memory(const void *bytes, size_t len, const char *name,
                                     sl_safetensors **out);
void sl_safetensors_close(sl_safetensors *st);

const char *sl_safetensors_path(const sl_safetensors *st);

/* Tensors in header order (the order of the JSON object, "__metadata__" excluded). */
size_t sl_safetensors_count(const sl_safetensors *st);
const sl_safetensors_tensor *sl_safetensors_at(const sl_safetensors *st, size_t i);

/* The tensor called `name`, or NULL. */
const sl_safetensors_tensor *sl_safetensors_find(const sl_safetensors *st, const char *name);
/* As _find, but a missing tensor is an SL_ERR_MISMATCH naming the file and the tensor. */
sl_status sl_safetensors_get(const sl_safetensors *st, const char *name,
                             const sl_safetensors_tensor **out);

/* Copies tensor `name` into dst as f32, widening BF16/F16 exactly and narrowing F64 with round to
 * nearest even. `n` must equal the tensor's numel (SL_ERR_MISMATCH otherwise); integer tensors are
 * an SL_ERR_MISMATCH too. */
sl_status sl_safetensors_read_f32(const sl_safetensors *st, const char *name, float *dst, size_t n);

/* "__metadata__" entries in header order; _metadata returns NULL for an absent key. */
size_t sl_safetensors_metadata_count(const sl_safetensors *st);
void sl_safetensors_metadata_at(const sl_safetensors *st, size_t i, const char **key,
                                const char **value);
const char *sl_safetensors_metadata(const sl_safetensors *st, const char *key);

#endif
