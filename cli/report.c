#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "shardlab/config.h"

int sl_cli_report(sl_status st) {
    if (st == SL_OK) return 0;
    fprintf(stderr, "shardlab: error: %s\n", sl_error_message());
    return st == SL_ERR_CONFIG || st == SL_ERR_INVALID_ARG ? 2 : 1;
}

sl_status sl_cli_unknown_flag(const char *arg, const char *usage) {
    const char *name = arg;
    while (*name == '-')
        name++;
    const char *suggestion = sl_config_key_suggest(name);
    if (suggestion) {
        return sl_error_set(SL_ERR_CONFIG, "unknown argument '%s' (did you mean --%s?)\n%s", arg,
                            suggestion, usage);
    }
    return sl_error_set(SL_ERR_CONFIG, "unknown argument '%s'\n%s", arg, usage);
}
