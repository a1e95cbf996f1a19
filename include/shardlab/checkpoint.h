/* State checkpoints (DESIGN.md §7): a directory that any world size and any layout can resume
 * from.
 *
 * Layout of a checkpoint directory:
 *   manifest.json            format "shardlab-checkpoint", format_version, step, epoch, world
 *                            size, plan summary, model config, optimizer step counts, LR
 *                            schedule, loss scaler, data position, what determines the random
 *                            numbers, and every file with its size, FNV-1a 64 checksum and the
 *                            tensors (parameter + global element range) it holds.
 *   SHARDED_STATE_DICT:      params-rank00002-of-00004.safetensors and
 *                            optim-rank00002-of-00004.safetensors per writing rank (replica 0 of
 *                            every shard group; rank 0 alone for replicated layouts).
 *   FULL_STATE_DICT:         model.safetensors and optimizer.safetensors, written by rank 0.
 * Tensor names: a params file holds "NAME@[start,end)" — elements [start, end) of parameter NAME
 * (Hugging Face name, row-major in the export layout, flattened) as a 1-D tensor in the master
 * dtype —, an optim file "exp_avg.NAME@[start,end)" and "exp_avg_sq.NAME@[start,end)" in the
 * optimizer-state dtype. A FULL checkpoint names its tensors "NAME", "exp_avg.NAME" and
 * "exp_avg_sq.NAME" with the parameters' shapes (model.safetensors is then a Hugging Face-named
 * weight file --init_from reads). Because every entry carries its global range, a load re-slices
 * for any W and any layout (FSDP1 flat, ZeRO flat, FSDP2 dim-0, ZeRO-3 per-parameter, replicated).
 *
 * Writing is atomic: files go into "<dir>.tmp", are fsynced, the manifest is written last, the
 * temporary directory is fsynced and renamed to <dir>, the parent fsynced; then the parent's
 * `latest` file (the checkpoint's directory name) is replaced atomically. A crash at any point
 * leaves the previous checkpoint loadable and `latest` naming it.
 *
 * Testing hook: SHARDLAB_CKPT_FAULT="POINT[,step=S][,rank=R]" raises SIGKILL in the saving
 * process at POINT of the save of step S (any step when absent) on rank R (any rank): POINT is
 * after_file=N (after this rank's N-th file), before_manifest, before_rename or before_latest.
 * It exists so tests can kill a save at chosen points; never set it otherwise. */
#ifndef SHARDLAB_CHECKPOINT_H
#define SHARDLAB_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shardlab/data.h"
#include "shardlab/engine.h"
#include "shardlab/loss_scaler.h"
#include "shardlab/model.h"
#include "shardlab/status.h"

#define SL_CKPT_FORMAT_VERSION 1
#define SL_CKPT_MANIFEST "manifest.json"
#define SL_CKPT_LATEST "latest"

typedef enum sl_state_dict_type { SL_STATE_DICT_SHARDED, SL_STATE_DICT_FULL } sl_state_dict_type;

/* "SHARDED_STATE_DICT" / "FULL_STATE_DICT". */
const char *sl_state_dict_type_name(sl_state_dict_type t);
/* Also accepts FSDP1's LOCAL_STATE_DICT, saved as SHARDED (a superset: it reshards). */
sl_status sl_state_dict_type_parse(const char *text, sl_state_dict_type *out);

/* What a checkpoint holds per element. */
typedef enum sl_ckpt_state { SL_CKPT_PARAMS, SL_CKPT_EXP_AVG, SL_CKPT_EXP_AVG_SQ } sl_ckpt_state;

/* ---- engine API (impl/ckpt; collective over the engine's world) ---------------------------- */

typedef struct sl_ckpt_save_options {
    sl_state_dict_type type;
    bool has_data;
    sl_sampler_position data; /* where the next step's global batch starts */
    int64_t consumed_samples; /* samples of every epoch consumed so far (informative) */
    bool update_latest;       /* replace <parent of dir>/latest with dir's name afterwards */
    int total_limit;          /* > 0: afterwards keep only the newest total_limit checkpoint_N
                                 directories of the parent (never the one `latest` names) */
} sl_ckpt_save_options;

/* SHARDED, no data position, no `latest`, no limit. */
sl_ckpt_save_options sl_ckpt_save_options_default(void);

/* Saves the engine's state between optimizer steps into directory `dir` (replaced when it
 * exists). Every rank must see the same filesystem. */
sl_status sl_engine_save_state(sl_engine *e, const char *dir, const sl_ckpt_save_options *opt);

/* What a load restored besides the engine's state. */
typedef struct sl_ckpt_info {
    sl_state_dict_type type;
    int64_t step;          /* optimizer steps done */
    int64_t applied_steps; /* of which not skipped: AdamW's step count and the LR schedule's */
    int world_size;        /* of the run that saved */
    bool has_data;
    sl_sampler_position data;
    int64_t consumed_samples;
} sl_ckpt_info;

/* Loads a checkpoint saved under any world size and layout. Everything is validated on every
 * rank before the engine is touched (manifest, format version, model, each needed file's size
 * and checksum, tensor names, dtypes and ranges, coverage of every element): on any failure on
 * any rank, every rank returns an error and the engine's state is unchanged. info may be NULL. */
sl_status sl_engine_load_state(sl_engine *e, const char *dir, sl_ckpt_info *info);

/* ---- reading without an engine (common/; used by merge-weights) ---------------------------- */

/* Elements [start, end) of parameter `param` (an index into the model description). */
typedef struct sl_ckpt_range {
    int param;
    int64_t start, end;
} sl_ckpt_range;

typedef struct sl_ckpt_file {
    char name[128]; /* inside the checkpoint directory */
    int rank;       /* the rank that wrote it */
    bool optim;     /* exp_avg + exp_avg_sq of its ranges; else the parameters (masters) */
    int64_t bytes;
    uint64_t fnv1a64;
    int n_ranges;
    sl_ckpt_range *ranges;
} sl_ckpt_file;

typedef struct sl_ckpt_manifest {
    int format_version;
    sl_state_dict_type type;
    int64_t step, applied_steps;
    int world_size;
    char dialect[16], strategy[32], layout[32];
    int shard_group_size, grad_accum_steps, micro_batch_size, seq_len, total_steps;
    uint64_t seed;
    bool deterministic;
    sl_dtype master_dtype, optim_dtype;
    sl_optim_config optim; /* AdamW hyperparameters and the LR schedule */
    char model_kind[32];
    sl_gpt2_config gpt2; /* zero for a model that is not GPT-2 */
    sl_loss_scaler scaler;
    bool has_data;
    sl_sampler_position data;
    int64_t consumed_samples;
    int n_files;
    sl_ckpt_file *files;
} sl_ckpt_manifest;

/* Reads and validates DIR/manifest.json against `model` (parameter names and shapes; each
 * file's ranges inside its parameter; full coverage of every parameter by the params files and
 * by the optim files) and checks every listed file exists with its listed size. Errors name the
 * file, the key or the tensor. */
sl_status sl_ckpt_manifest_read(const char *dir, const sl_model_desc *model, sl_ckpt_manifest *out);
void sl_ckpt_manifest_free(sl_ckpt_manifest *m);

/* FNV-1a 64 over bytes (the manifest's file checksum). */
uint64_t sl_ckpt_fnv1a64(const void *data, size_t len);

/* Copies elements [start, end) of parameter `param`'s state `which` into out (f32; the stored
 * dtype widened exactly) from whichever files hold them, opening and verifying (size, checksum,
 * tensor name, dtype, length) each file the first time it is needed. */
typedef struct sl_ckpt_reader sl_ckpt_reader;
sl_status sl_ckpt_reader_open(const char *dir, const sl_model_desc *model, sl_ckpt_reader **out);
const sl_ckpt_manifest *sl_ckpt_reader_manifest(const sl_ckpt_reader *r);
sl_status sl_ckpt_reader_read(sl_ckpt_reader *r, sl_ckpt_state which, int param, int64_t start,
                              int64_t end, float *out);
void sl_ckpt_reader_close(sl_ckpt_reader *r);

/* The checkpoint `spec` resolves to: "latest" = output_dir/checkpoints/<name in its `latest`>
 * (*found false, and no error, when there is no `latest` file yet), anything else a path. */
sl_status sl_ckpt_resolve(const char *spec, const char *output_dir, char *path, size_t cap,
                          bool *found);

#endif
