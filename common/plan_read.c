#include "common/plan_read.h"

#include <stdlib.h>
#include <string.h>

#include "common/config_internal.h"

const char *sl_plan_src(sl_plan_reader *rd, const char *key) {
    char *buf = rd->ring[rd->ring_next];
    rd->ring_next = (rd->ring_next + 1) % 8;
    const sl_source *src = NULL;
    sl_config_get(rd->cfg, key, &src);
    sl_source_describe(src, buf, sizeof rd->ring[0]);
    return buf;
}

bool sl_plan_is_set(const sl_plan_reader *rd, const char *key) {
    return sl_config_get(rd->cfg, key, NULL) != NULL;
}

/* Adds the default the compiler used for an unset key to plan->config. */
static sl_status sl_plan_note_default(sl_plan_reader *rd, const char *key, const char *text) {
    if (sl_plan_is_set(rd, key) || !text) return SL_OK;
    return sl_config_set(rd->plan->config, key, text, NULL);
}

static const char *sl_table_default(const char *key) {
    const sl_config_key *k = sl_config_key_find(key);
    return k ? sl_config_key_default(k) : NULL;
}

sl_status sl_plan_read_bool(sl_plan_reader *rd, const char *key, bool *out) {
    const char *text = sl_table_default(key);
    SL_TRY(sl_config_get_bool(rd->cfg, key, text && strcmp(text, "true") == 0, out));
    return sl_plan_note_default(rd, key, text);
}

sl_status sl_plan_read_int(sl_plan_reader *rd, const char *key, long long min, long long max,
                           long long *out) {
    const char *text = sl_table_default(key);
    SL_TRY(sl_config_get_int(rd->cfg, key, text ? strtoll(text, NULL, 10) : 0, min, max, out));
    return sl_plan_note_default(rd, key, text);
}

sl_status sl_plan_read_double(sl_plan_reader *rd, const char *key, const char *dflt, double min,
                              double max, double *out) {
    const char *text = dflt ? dflt : sl_table_default(key);
    SL_TRY(sl_config_get_double(rd->cfg, key, text ? strtod(text, NULL) : 0.0, min, max, out));
    return sl_plan_note_default(rd, key, text);
}

sl_status sl_plan_read_enum(sl_plan_reader *rd, const char *key, const char **out) {
    const char *text = sl_table_default(key);
    SL_TRY(sl_config_get_enum(rd->cfg, key, text, out));
    return sl_plan_note_default(rd, key, text);
}

sl_status sl_plan_read_dtype(sl_plan_reader *rd, const char *key, sl_dtype *out, bool *set) {
    const char *name;
    SL_TRY(sl_plan_read_enum(rd, key, &name));
    *set = name != NULL;
    if (name) SL_TRY(sl_dtype_parse(name, key, out));
    return SL_OK;
}
