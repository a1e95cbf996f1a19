/* Internal to the plan compiler: reading config values while remembering where they came from.
 * Every read of a key the user did not set adds the default to plan->config with an
 * SL_SOURCE_DEFAULT source, so the compiled plan lists every value it used. */
#ifndef SHARDLAB_COMMON_PLAN_READ_H
#define SHARDLAB_COMMON_PLAN_READ_H

#include <stdbool.h>

#include "shardlab/config.h"
#include "shardlab/plan.h"

typedef struct sl_plan_reader {
    const sl_config *cfg; /* what the user said */
    sl_plan *plan;        /* plan->config receives the defaults used */
    char ring[8][300];    /* storage for sl_plan_src results, reused round-robin */
    int ring_next;
} sl_plan_reader;

/* Where `key`'s value comes from: "--zero_stage", "ds.json:4 (zero_optimization.stage)", or
 * "default". Valid until eight more calls. */
const char *sl_plan_src(sl_plan_reader *rd, const char *key);
bool sl_plan_is_set(const sl_plan_reader *rd, const char *key);

/* Typed reads with the default from the key table (or `dflt` where the table has none). */
sl_status sl_plan_read_bool(sl_plan_reader *rd, const char *key, bool *out);
sl_status sl_plan_read_int(sl_plan_reader *rd, const char *key, long long min, long long max,
                           long long *out);
sl_status sl_plan_read_double(sl_plan_reader *rd, const char *key, const char *dflt, double min,
                              double max, double *out);
/* *out is NULL when the key is unset and has no default. */
sl_status sl_plan_read_enum(sl_plan_reader *rd, const char *key, const char **out);
/* A dtype-valued enum key; *set tells whether it had a value (set or defaulted). */
sl_status sl_plan_read_dtype(sl_plan_reader *rd, const char *key, sl_dtype *out, bool *set);

/* plan_auto.c: DeepSpeed "auto" values. strip removes the "auto" entries of files from `work`
 * (those computed from the model's hidden size are set instead) and remembers them; resolve
 * records, after compiling, the value each removed key took in plan->config with the file's
 * source, and logs it. */
typedef struct sl_plan_autos {
    size_t n;
    struct {
        const char *key;
        sl_source src;
    } * items;
} sl_plan_autos;
sl_status sl_plan_autos_strip(sl_config *work, const sl_model_desc *model, sl_plan_autos *autos);
sl_status sl_plan_autos_resolve(sl_plan *plan, const sl_plan_autos *autos);
void sl_plan_autos_free(sl_plan_autos *autos);

/* plan_checks.c: the rules of the keys config files bring. */
/* Removes the entries of an Accelerate file's section for another dialect (fsdp_config under
 * DeepSpeed, deepspeed_config under FSDP or DDP): Accelerate ignores those sections, and users
 * keep both to switch with distributed_type. Logs the keys it removes. */
sl_status sl_plan_strip_inactive(sl_config *work);
/* Accelerate's distributed_type picks the dialect when neither use_fsdp nor use_deepspeed is true
 * (a use_* flag beats the file, as in accelerate launch). */
sl_status sl_plan_dialect_from_type(sl_plan_reader *rd, bool *fsdp, bool *ds);
/* distributed_type NO means one process. Needs world_size. */
sl_status sl_plan_check_distributed_type(sl_plan_reader *rd);
/* FSDP keys that do not change a plan field but must be coherent: state-dict type, wrap policy,
 * RAM-efficient loading, activation checkpointing. */
sl_status sl_plan_check_fsdp_keys(sl_plan_reader *rd, const sl_model_desc *model);
/* DeepSpeed keys of the same kind: ZeRO++ hpZ partition size, dtype sources. */
sl_status sl_plan_check_deepspeed_keys(sl_plan_reader *rd);
/* micro_batch_size b and gradient_accumulation_steps k, derived from or checked against
 * DeepSpeed's train_batch_size = b x k x W as DeepSpeed does (runtime/config.py
 * _batch_assertion / _set_batch_related_parameters). */
sl_status sl_plan_read_batch(sl_plan_reader *rd, long long *b, long long *k);
/* DeepSpeed's optimizer and scheduler keys that have no plan field but limit what the plan can
 * represent (adam_w_mode, warmup_type, warmup_min_lr, warmup_min_ratio). */
sl_status sl_plan_check_deepspeed_optim(sl_plan_reader *rd);

/* plan_precision.c: the dialect's precision rules (DESIGN.md §4.2) fill plan->precision,
 * plan->precision_why and plan->scaler. Needs dialect, strategy and world already set. */
sl_status sl_plan_resolve_precision(sl_plan_reader *rd);

#endif
