/* common/hf_model.h — a model's parameters in the Hugging Face layout (DESIGN.md §7), the
 * directory `save_pretrained` writes and `from_pretrained` reads:
 *
 *     DIR/config.json                        GPT2LMHeadModel's configuration (GPT-2 models)
 *     DIR/model.safetensors                  every parameter, when they fit in one shard, or
 *     DIR/model-00001-of-0000N.safetensors   shards of at most max_shard_size bytes of tensor
 *     DIR/model.safetensors.index.json       data, {"metadata": {"total_size": bytes},
 *                                            "weight_map": {tensor name: shard file}}
 *
 * Names and shapes are the description's (model.h): GPT-2's Hugging Face names with Conv1D
 * weights (in, out), which is what transformers' Conv1D holds, so nothing is transposed. The LM
 * head is tied to transformer.wte.weight and, as in transformers' safetensors files, not stored.
 * Every shard carries the metadata {"format": "pt"}, which from_pretrained requires. */
#ifndef SHARDLAB_COMMON_HF_MODEL_H
#define SHARDLAB_COMMON_HF_MODEL_H

#include <stdint.h>

#include "shardlab/dtype.h"
#include "shardlab/model.h"
#include "shardlab/status.h"

/* The index file of a sharded export. */
#define SL_HF_INDEX_NAME "model.safetensors.index.json"

/* transformers' default max_shard_size, "5GB" (decimal). */
#define SL_HF_DEFAULT_MAX_SHARD_SIZE INT64_C(5000000000)

/* Parses a size the way transformers' convert_file_size_to_int does: an integer number of bytes,
 * or a number followed by KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024),
 * case-insensitive, where a unit ending in a lowercase "b" ("500Mb") counts bits. `what` (a flag
 * name) opens the error message. The result must be at least 1 byte. */
sl_status sl_hf_size_parse(const char *text, const char *what, int64_t *out);

typedef struct sl_hf_save_options {
    int64_t max_shard_size; /* bytes of tensor data per shard file; <= 0: the default */
    sl_dtype dtype;         /* storage of every tensor: F32, BF16 or F16 (round to nearest even) */
    const char *producer;   /* "__metadata__" producer entry; NULL: none */
} sl_hf_save_options;

sl_hf_save_options sl_hf_save_options_default(void); /* 5 GB shards, F32 */

/* Writes arrays[p] (desc->params[p].numel f32 values each) as the export DIR. The files are
 * written into "DIR.tmp.<pid>" and that directory is renamed to DIR, so DIR never holds a
 * partial export. An existing DIR is replaced only when it is empty or holds nothing but a
 * previous export's files (config.json, model*.safetensors, model.safetensors.index.json);
 * anything else there is an error naming the file. config.json is written for GPT-2
 * descriptions only (a custom model has no transformers class). Shards are cut as
 * transformers cuts them: parameters in order, a new shard when the next tensor would push the
 * current one past max_shard_size, a tensor larger than that alone in a shard of its own. */
sl_status sl_hf_model_save(const sl_model_desc *desc, float *const *arrays,
                           const sl_hf_save_options *opt, const char *dir);

/* buf = "dir/name"; SL_ERR_INVALID_ARG naming both when it does not fit in cap bytes. */
sl_status sl_hf_path_join(char *buf, size_t cap, const char *dir, const char *name);

/* File name of shard `index` (0-based) of n: "model.safetensors" when n == 1, else
 * "model-0000k-of-0000n.safetensors". */
void sl_hf_shard_name(int index, int n, char *buf, size_t cap);

/* config.json for a GPT-2 description: GPT2Config's keys (sorted, as transformers writes them)
 * with the description's sizes, architectures ["GPT2LMHeadModel"], tie_word_embeddings true,
 * torch_dtype the stored dtype, the "gelu_new" activation, layer_norm_epsilon 1e-5 and no dropout
 * (shardlab trains without it). Written atomically. */
sl_status sl_hf_config_write(const sl_model_desc *desc, sl_dtype dtype, const char *path);

/* Checks a config.json against a GPT-2 description: model_type "gpt2"; n_layer, n_embd, n_head,
 * n_positions and vocab_size equal to the description's (a missing key counts as GPT2Config's
 * default, as in transformers); n_inner null or 4·n_embd; activation gelu_new (or its alias
 * gelu_pytorch_tanh); layer_norm_epsilon 1e-5; tied embeddings; attention scaled by
 * 1/sqrt(head_dim) only. The error names the file, line and key, and the flag to change. */
sl_status sl_hf_config_check(const char *path, const sl_model_desc *desc);

/* ---- reading ---- */

typedef struct sl_hf_model sl_hf_model;

/* Opens the weights of `desc` at `path`: a safetensors file, an index file
 * (*.safetensors.index.json), or a directory holding model.safetensors.index.json or
 * model.safetensors. Everything is checked before anything is read, and the first problem is
 * reported by file and tensor name: an index whose weight_map names a file that is missing or
 * does not hold the tensor; a parameter that is missing, has another shape or a non-float
 * dtype; a tensor that is not a parameter of the model; a config.json beside the weights whose
 * model_type or sizes (n_layer, n_embd, n_head, n_positions, vocab_size) differ from the
 * description. Accepted as transformers writes them: names without the "transformer." prefix
 * (GPT2Model's own files), the causal-mask buffers "*.attn.bias" and "*.attn.masked_bias"
 * (ignored), and an "lm_head.weight" equal to the embedding it is tied to. */
sl_status sl_hf_model_open(const char *path, const sl_model_desc *desc, sl_hf_model **out);
void sl_hf_model_close(sl_hf_model *m);

/* out[0..numel) = parameter p as f32: 16-bit values widened exactly, F64 rounded to nearest
 * even. */
sl_status sl_hf_model_read(const sl_hf_model *m, int p, float *out);

/* The file parameter p is read from (for messages). */
const char *sl_hf_model_file_of(const sl_hf_model *m, int p);

#endif
