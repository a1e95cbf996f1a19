#include "common/optim_json.h"

void sl_optim_hparams_write_json(sl_json_writer *w, const sl_optim_config *o) {
    sl_json_writer_kv_double(w, "lr", o->lr);
    sl_json_writer_kv_double(w, "beta1", o->beta1);
    sl_json_writer_kv_double(w, "beta2", o->beta2);
    sl_json_writer_kv_double(w, "eps", o->eps);
    sl_json_writer_kv_double(w, "weight_decay", o->weight_decay);
    sl_json_writer_kv_double(w, "max_grad_norm", o->max_grad_norm);
}
