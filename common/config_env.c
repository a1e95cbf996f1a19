/* The SHARDLAB_CONFIG_<KEY> encoding of a config (config_env.h). */
#include "shardlab/config_env.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardlab/config_file.h"

extern char **environ; /* POSIX: the process environment */

void sl_config_env_name(const char *key, char *buf, size_t cap) {
    const size_t prefix = strlen(SL_CONFIG_ENV_PREFIX);
    if (cap == 0) return;
    snprintf(buf, cap, "%s", SL_CONFIG_ENV_PREFIX);
    size_t n = prefix < cap - 1 ? prefix : cap - 1;
    for (; *key && n + 1 < cap; key++, n++)
        buf[n] = (char)(*key == '-' ? '_' : toupper((unsigned char)*key));
    buf[n] = '\0';
}

void sl_config_env_free(char **env) {
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

sl_status sl_config_export_env(const sl_config *cfg, char ***out) {
    const size_t n = sl_config_size(cfg);
    char **env = calloc(n + 1, sizeof *env);
    if (!env) return sl_error_set(SL_ERR_OOM, "out of memory exporting the configuration");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *value = NULL;
        const sl_source *src = NULL;
        const char *key = sl_config_entry(cfg, i, &value, &src);
        if (!src || (src->kind != SL_SOURCE_FLAG && src->kind != SL_SOURCE_ENV)) continue;
        char name[160];
        sl_config_env_name(key, name, sizeof name);
        const size_t len = strlen(name) + 1 + strlen(value) + 1;
        env[k] = malloc(len);
        if (!env[k]) {
            sl_config_env_free(env);
            return sl_error_set(SL_ERR_OOM, "out of memory exporting the configuration");
        }
        snprintf(env[k++], len, "%s=%s", name, value);
    }
    *out = env;
    return SL_OK;
}

/* The files a SHARDLAB_CONFIG_* variable named, loaded below the variables (as
 * sl_config_parse_args loads the files its flags name). */
static sl_status sl_config_env_load_files(sl_config *cfg) {
    const sl_source *src = NULL;
    const char *file = sl_config_get(cfg, "config_file", &src);
    if (file && src->kind == SL_SOURCE_ENV) {
        SL_TRY(sl_config_load_file(cfg, file, sl_config_get(cfg, "plan_name", NULL)));
    }
    file = sl_config_get(cfg, "deepspeed_config_file", &src);
    if (file && src->kind == SL_SOURCE_ENV) SL_TRY(sl_config_load_deepspeed_file(cfg, file));
    return SL_OK;
}

sl_status sl_config_load_env(sl_config *cfg, char *const *envp) {
    const size_t prefix = strlen(SL_CONFIG_ENV_PREFIX);
    for (char *const *e = envp ? envp : environ; e && *e; e++) {
        if (strncmp(*e, SL_CONFIG_ENV_PREFIX, prefix) != 0) continue;
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        char var[160], key[160];
        snprintf(var, sizeof var, "%.*s", (int)(eq - *e), *e);
        size_t n = 0;
        for (const char *p = var + prefix; *p && n + 1 < sizeof key; p++)
            key[n++] = (char)tolower((unsigned char)*p);
        key[n] = '\0';
        if (!sl_config_key_find(key)) {
            const char *hint = sl_config_key_suggest(key);
            char hint_var[160] = "";
            if (hint) sl_config_env_name(hint, hint_var, sizeof hint_var);
            return sl_error_set(
                SL_ERR_CONFIG, "environment variable $%s names no configuration key ('%s')%s%s%s",
                var, key, hint ? "; did you mean $" : "", hint ? hint_var : "", hint ? "?" : "");
        }
        sl_source src = {.kind = SL_SOURCE_ENV};
        snprintf(src.file, sizeof src.file, "%s", var);
        snprintf(src.spelling, sizeof src.spelling, "%.*s", (int)sizeof src.spelling - 1, key);
        SL_TRY(sl_config_set(cfg, key, eq + 1, &src));
    }
    return sl_config_env_load_files(cfg);
}
