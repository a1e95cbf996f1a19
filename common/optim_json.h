/* The AdamW hyperparameters of an sl_optim_config as JSON object members, under the same keys in
 * every document that carries them (`explain --json`, checkpoint manifests). */
#ifndef SHARDLAB_COMMON_OPTIM_JSON_H
#define SHARDLAB_COMMON_OPTIM_JSON_H

#include "common/json.h"
#include "shardlab/lr_schedule.h"

/* lr, beta1, beta2, eps, weight_decay, max_grad_norm (not the LR schedule). */
void sl_optim_hparams_write_json(sl_json_writer *w, const sl_optim_config *o);

#endif
