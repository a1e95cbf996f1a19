/* One side of `shardlab compare A B`: a config file (Accelerate YAML/JSON or a bare DeepSpeed
 * JSON) or a quoted set of plan flags, resolved into the flags a run is launched with and the
 * plan they compile to. */
#ifndef SHARDLAB_CONFORMANCE_COMPARE_SIDE_H
#define SHARDLAB_CONFORMANCE_COMPARE_SIDE_H

#include "shardlab/config.h"
#include "shardlab/model.h"
#include "shardlab/plan.h"

typedef struct sl_compare_side {
    char name;             /* 'A' or 'B' */
    char spec[1024];       /* as the user gave it */
    char flags[1024];      /* plan flags that describe it, without config_file */
    char config_file[512]; /* an Accelerate config file, or "" */
    sl_config *cfg;
    sl_plan *plan;
} sl_compare_side;

/* Resolves `spec` and compiles it with `common` (flags applied to both sides after the side's
 * own, e.g. "--max_steps 20 --seed 1234") for `model`. A spec starting with '-' is a flag set;
 * anything else must be a readable config file. Errors name the side and the file or flag. */
sl_status sl_compare_side_open(sl_compare_side *s, char name, const char *spec, const char *common,
                               const sl_model_desc *model);
void sl_compare_side_close(sl_compare_side *s);

/* Splits `text` at blanks into argv (pointers into buf, which receives a copy); at most cap. */
int sl_compare_split(const char *text, char *buf, size_t buf_cap, char **argv, int cap);

#endif
