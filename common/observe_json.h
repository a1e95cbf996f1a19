/* Internal: the parts of an observation as JSON values, for documents that lay them out
 * themselves (explain puts them at its top level). */
#ifndef SHARDLAB_COMMON_OBSERVE_JSON_H
#define SHARDLAB_COMMON_OBSERVE_JSON_H

#include "common/json.h"
#include "shardlab/observe.h"

/* {"preparation": "fp32", ...} */
void sl_observation_json_dtype_table(sl_json_writer *w, const sl_dtype table[SL_STAGE_COUNT]);
/* [{"op": "all_gather", "group": "shard", ...}, ...] */
void sl_observation_json_collectives(sl_json_writer *w, const sl_observation *obs);
/* [{"rank": 0, "device": {"params_master": bytes, ...}, "host": {...}}, ...] (peaks) */
void sl_observation_json_memory(sl_json_writer *w, const sl_observation *obs);

#endif
