/* DeepSpeed "auto" values, resolved from the run as Accelerate's _prepare_deepspeed does
 * (accelerate-facts.md §1.5): bucket sizes from the hidden size h (reduce_bucket_size = h*h,
 * stage3_prefetch_bucket_size = 0.9*h*h, stage3_param_persistence_threshold = 10*h),
 * train_batch_size = micro_batch_size x gradient_accumulation_steps x W, fp16/bf16 from
 * mixed_precision, and everything else from the value the run has without the file (a flag, or
 * the default: micro_batch_size 4, gradient_accumulation_steps 1, gradient_clipping 1.0, the
 * optimizer's and the scheduler's own settings). Each resolution is logged and recorded in the
 * plan's config with the file's source. The file frontend has already refused "auto" where
 * Accelerate could not fill it either. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config_internal.h"
#include "common/plan_read.h"
#include "shardlab/log.h"

static bool sl_is_auto(const char *value, const sl_source *src) {
    return value && src && src->kind == SL_SOURCE_FILE && strcmp(value, "auto") == 0;
}

static void sl_auto_source(const sl_source *src, sl_source *out) {
    *out = *src;
    const size_t n = strlen(out->spelling);
    snprintf(out->spelling + n, sizeof out->spelling - n, "%s", n ? ": auto" : "auto");
}

/* Hidden-size rules: the value, or -1 when the key has none. */
static long long sl_auto_from_hidden(const char *key, long long h) {
    if (!strcmp(key, "reduce_bucket_size")) return h * h;
    if (!strcmp(key, "stage3_prefetch_bucket_size")) return (long long)(0.9 * (double)(h * h));
    if (!strcmp(key, "stage3_param_persistence_threshold")) return 10 * h;
    return -1;
}

sl_status sl_plan_autos_strip(sl_config *work, const sl_model_desc *model, sl_plan_autos *autos) {
    memset(autos, 0, sizeof *autos);
    const size_t n = sl_config_size(work);
    autos->items = calloc(n ? n : 1, sizeof *autos->items);
    if (!autos->items) return sl_error_set(SL_ERR_OOM, "out of memory resolving \"auto\" values");
    for (size_t i = 0; i < sl_config_size(work);) {
        const char *value;
        const sl_source *src;
        const char *key = sl_config_entry(work, i, &value, &src);
        if (!sl_is_auto(value, src)) {
            i++;
            continue;
        }
        const long long h = model->gpt2.n_embd;
        const long long v = sl_auto_from_hidden(key, h);
        if (v >= 0) {
            char text[32], where[512];
            snprintf(text, sizeof text, "%lld", v);
            sl_source s;
            sl_auto_source(src, &s);
            sl_source_describe(src, where, sizeof where);
            SL_LOG_INFO("%s: \"auto\" resolved: %s = %s (from the hidden size %lld)", where, key,
                        text, h);
            SL_TRY(sl_config_set(work, key, text, &s));
            i++;
            continue;
        }
        autos->items[autos->n].key = key;
        autos->items[autos->n].src = *src;
        autos->n++;
        sl_config_unset(work, key);
    }
    return SL_OK;
}

void sl_plan_autos_free(sl_plan_autos *autos) {
    free(autos->items);
    memset(autos, 0, sizeof *autos);
}

sl_status sl_plan_autos_resolve(sl_plan *plan, const sl_plan_autos *autos) {
    for (size_t i = 0; i < autos->n; i++) {
        const char *key = autos->items[i].key;
        char value[64], how[160];
        const char *used = sl_config_get(plan->config, key, NULL);
        const sl_config_key *k = sl_config_key_find(key);
        if (!strcmp(key, "train_batch_size")) {
            snprintf(value, sizeof value, "%lld",
                     (long long)plan->micro_batch_size * plan->grad_accum_steps * plan->world_size);
            snprintf(how, sizeof how, "micro_batch_size %d x gradient_accumulation_steps %d x W %d",
                     plan->micro_batch_size, plan->grad_accum_steps, plan->world_size);
        } else if (!strcmp(key, "fp16_enabled") || !strcmp(key, "bf16_enabled")) {
            const sl_dtype want = key[0] == 'f' ? SL_DTYPE_F16 : SL_DTYPE_BF16;
            snprintf(value, sizeof value, "%s",
                     plan->precision.param_dtype == want ? "true" : "false");
            snprintf(how, sizeof how, "follows mixed_precision");
        } else if (used) {
            snprintf(value, sizeof value, "%s", used);
            snprintf(how, sizeof how, "the run's value without the file");
        } else {
            const char *dflt = sl_config_key_default(k);
            snprintf(value, sizeof value, "%s", dflt ? dflt : "none");
            snprintf(how, sizeof how, "%s", dflt ? "the default" : "unset");
        }
        char where[512];
        sl_source_describe(&autos->items[i].src, where, sizeof where);
        SL_LOG_INFO("%s: \"auto\" resolved: %s = %s (%s)", where, key, value, how);
        sl_source s;
        sl_auto_source(&autos->items[i].src, &s);
        SL_TRY(sl_config_set(plan->config, key, value, &s));
    }
    return SL_OK;
}
