/* common/ckpt_format.h — the pieces of the checkpoint format (include/shardlab/checkpoint.h) that
 * the saving engine and the readers share: file and tensor names, the manifest writer, and the
 * directory operations of an atomic save. */
#ifndef SHARDLAB_COMMON_CKPT_FORMAT_H
#define SHARDLAB_COMMON_CKPT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shardlab/checkpoint.h"

/* "params-rank00002-of-00004.safetensors" / "optim-rank..." (SHARDED), "model.safetensors" /
 * "optimizer.safetensors" (FULL). */
void sl_ckpt_file_name(sl_state_dict_type type, bool optim, int rank, int world, char *buf,
                       size_t cap);

/* "NAME@[start,end)", "exp_avg.NAME@[start,end)", "exp_avg_sq.NAME@[start,end)"; in a FULL
 * checkpoint (full = true) "NAME", "exp_avg.NAME", "exp_avg_sq.NAME". */
void sl_ckpt_tensor_name(sl_ckpt_state which, const char *param, int64_t start, int64_t end,
                         bool full, char *buf, size_t cap);

/* Writes the manifest atomically to path. */
sl_status sl_ckpt_manifest_write(const sl_ckpt_manifest *m, const sl_model_desc *model,
                                 const char *path);

/* Size and FNV-1a 64 of a whole file. */
sl_status sl_ckpt_file_checksum(const char *path, int64_t *bytes, uint64_t *sum);

/* Removes a checkpoint directory: its regular files, then the directory. A missing directory is
 * not an error; anything but regular files inside is (a checkpoint holds nothing else). */
sl_status sl_ckpt_dir_remove(const char *dir);

/* Replaces parent/latest atomically with `name` and a newline. */
sl_status sl_ckpt_latest_write(const char *parent, const char *name);
/* The name in parent/latest; *found false when there is none. */
sl_status sl_ckpt_latest_read(const char *parent, char *name, size_t cap, bool *found);

/* Deletes the oldest checkpoint_N directories of parent (by N) until `keep` remain, sparing the
 * one `latest` names; stale temporary directories ("*.tmp") are removed too. */
sl_status sl_ckpt_prune(const char *parent, int keep);

#endif
