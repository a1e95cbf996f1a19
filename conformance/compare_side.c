/* Resolving a side of `compare` (compare_side.h). */
#include "conformance/compare_side.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shardlab/config_file.h"

int sl_compare_split(const char *text, char *buf, size_t buf_cap, char **argv, int cap) {
    snprintf(buf, buf_cap, "%s", text);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, " \t\n", &save); t && n < cap;
         t = strtok_r(NULL, " \t\n", &save))
        argv[n++] = t;
    return n;
}

/* An Accelerate file names distributed_type (Accelerate requires it) or picks a dialect; a bare
 * DeepSpeed JSON does neither and needs --use_deepspeed, as `accelerate launch` would. */
static sl_status sl_side_classify(sl_compare_side *s) {
    sl_config *probe = NULL;
    SL_TRY(sl_config_create(&probe));
    sl_status st = sl_config_load_file(probe, s->spec, NULL);
    const bool accelerate = st == SL_OK && (sl_config_get(probe, "distributed_type", NULL) ||
                                            sl_config_get(probe, "use_fsdp", NULL) ||
                                            sl_config_get(probe, "use_deepspeed", NULL));
    sl_config_destroy(probe);
    if (st != SL_OK) return sl_error_prefix(st, "compare: %c (%s): ", s->name, s->spec);
    if (accelerate) {
        snprintf(s->config_file, sizeof s->config_file, "%.480s", s->spec);
    } else {
        snprintf(s->flags, sizeof s->flags, "--use_deepspeed --deepspeed_config_file %.480s",
                 s->spec);
    }
    return SL_OK;
}

sl_status sl_compare_side_open(sl_compare_side *s, char name, const char *spec, const char *common,
                               const sl_model_desc *model) {
    memset(s, 0, sizeof *s);
    s->name = name;
    snprintf(s->spec, sizeof s->spec, "%s", spec);
    if (spec[0] == '-') {
        snprintf(s->flags, sizeof s->flags, "%s", spec);
    } else if (strlen(spec) > 480) {
        return sl_error_set(SL_ERR_CONFIG,
                            "compare: %c: config file path longer than 480 "
                            "characters: %.80s...",
                            name, spec);
    } else if (access(spec, R_OK) != 0) {
        return sl_error_set(SL_ERR_CONFIG,
                            "compare: %c: config file '%s' not found or not readable; expected "
                            "an Accelerate config (YAML/JSON), a DeepSpeed JSON, or a quoted set "
                            "of plan flags such as \"--use_fsdp --mixed_precision bf16\"",
                            name, spec);
    } else {
        SL_TRY(sl_side_classify(s));
    }
    char line[2600], buf[2600];
    snprintf(line, sizeof line, "%s%s%s %s", s->flags, s->config_file[0] ? " --config_file " : "",
             s->config_file, common);
    char *argv[128], *rest[128];
    const int argc = sl_compare_split(line, buf, sizeof buf, argv, 128);
    int n_rest = 0;
    SL_TRY(sl_config_create(&s->cfg));
    sl_status st = sl_config_parse_args(s->cfg, argc, argv, rest, &n_rest);
    if (st != SL_OK) return sl_error_prefix(st, "compare: %c (%s): ", name, spec);
    if (n_rest > 0) {
        return sl_error_set(SL_ERR_CONFIG,
                            "compare: %c (%s): '%s' is not a plan flag (a side takes plan flags "
                            "only; model and run flags go to compare itself)",
                            name, spec, rest[0]);
    }
    st = sl_plan_compile(s->cfg, model, &s->plan);
    if (st != SL_OK) return sl_error_prefix(st, "compare: %c (%s): ", name, spec);
    return SL_OK;
}

void sl_compare_side_close(sl_compare_side *s) {
    sl_plan_destroy(s->plan);
    sl_config_destroy(s->cfg);
    s->plan = NULL;
    s->cfg = NULL;
}
