/* Parameter files (param_file.h). */
#include "common/param_file.h"

#include <stdlib.h>

#include "shardlab/safetensors.h"

sl_status sl_param_file_write(const sl_model_desc *desc, float *const *arrays, const char *producer,
                              const char *path) {
    sl_safetensors_writer *w = NULL;
    SL_TRY(sl_safetensors_writer_create(&w));
    sl_status st = SL_OK;
    for (int p = 0; p < desc->n_params && st == SL_OK; p++) {
        const sl_param_desc *pd = &desc->params[p];
        st = sl_safetensors_writer_add_f32(w, pd->name, SL_DTYPE_F32, pd->shape, pd->ndim,
                                           arrays[p]);
    }
    if (st == SL_OK) st = sl_safetensors_writer_set_metadata(w, "producer", producer);
    if (st == SL_OK) st = sl_safetensors_writer_write(w, path);
    sl_safetensors_writer_destroy(w);
    return st;
}

float **sl_param_arrays_alloc(const sl_model_desc *desc) {
    float **a = calloc((size_t)desc->n_params, sizeof *a);
    if (!a) return NULL;
    for (int p = 0; p < desc->n_params; p++) {
        a[p] = calloc((size_t)desc->params[p].numel, sizeof(float));
        if (!a[p]) {
            sl_param_arrays_free(desc, a);
            return NULL;
        }
    }
    return a;
}

void sl_param_arrays_free(const sl_model_desc *desc, float **arrays) {
    if (!arrays) return;
    for (int p = 0; p < desc->n_params; p++)
        free(arrays[p]);
    free(arrays);
}
