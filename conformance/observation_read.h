/* Reading back the JSON that sl_observation_write_json and `explain --json` write: the dtype
 * table, the collectives of one step and the peak bytes per rank, space and category. */
#ifndef SHARDLAB_CONFORMANCE_OBSERVATION_READ_H
#define SHARDLAB_CONFORMANCE_OBSERVATION_READ_H

#include "common/json.h"
#include "shardlab/observe.h"

/* obj holds "dtype_table", `collectives_key` ("collectives" in an observation, "schedule" in a
 * plan) and "memory". *out is initialised here (free with sl_observation_free). Errors name the
 * file, line and member. */
sl_status sl_conf_observation_read(const sl_json *obj, const char *collectives_key,
                                   sl_observation *out);

/* v re-serialised as one compact line (malloc'd), for equality of whole sub-documents. */
char *sl_conf_json_compact(const sl_json *v);

#endif
