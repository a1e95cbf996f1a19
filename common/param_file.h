/* common/param_file.h — a model's parameters as one f32 safetensors file under their Hugging
 * Face names (the init/final/grads files of a run, shared by every trainer). */
#ifndef SHARDLAB_COMMON_PARAM_FILE_H
#define SHARDLAB_COMMON_PARAM_FILE_H

#include "shardlab/model.h"
#include "shardlab/status.h"

/* Writes arrays[p] (desc->params[p].numel f32 values each) atomically to path, with metadata
 * producer = `producer`. */
sl_status sl_param_file_write(const sl_model_desc *desc, float *const *arrays, const char *producer,
                              const char *path);

/* arrays[p] = calloc'd (numel,) f32 for every parameter; NULL on OOM. */
float **sl_param_arrays_alloc(const sl_model_desc *desc);
void sl_param_arrays_free(const sl_model_desc *desc, float **arrays);

#endif
