/* Checks an Open MPI hostfile before mpirun sees it, so a mistake is reported with its line
 * instead of as an ssh failure halfway through starting the job. Format (Open MPI's): one host
 * per line, optionally followed by slots=N, max_slots=N (or max-slots=N); '#' starts a comment. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/launch.h"

static bool sl_host_name_ok(const char *h) {
    for (; *h; h++) {
        if (!isalnum((unsigned char)*h) && !strchr(".-_:[]", *h)) return false;
    }
    return true;
}

static sl_status sl_hostfile_option(const char *path, int line, const char *opt) {
    const char *eq = strchr(opt, '=');
    const size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
    const bool known =
        (klen == 5 && !strncmp(opt, "slots", 5)) ||
        (klen == 9 && (!strncmp(opt, "max_slots", 9) || !strncmp(opt, "max-slots", 9)));
    if (!known || !eq) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s:%d: unknown host option '%s'; expected slots=N or max_slots=N",
                            path, line, opt);
    }
    char *end = NULL;
    errno = 0;
    const long v = strtol(eq + 1, &end, 10);
    if (errno || end == eq + 1 || *end || v < 1 || v > 1 << 20) {
        return sl_error_set(SL_ERR_CONFIG, "%s:%d: '%s' needs a positive integer, found '%s'", path,
                            line, opt, eq + 1);
    }
    return SL_OK;
}

sl_status sl_launch_check_hostfile(const char *path, int *n_hosts) {
    *n_hosts = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        return sl_error_set(SL_ERR_CONFIG, "launch: cannot read the hostfile '%s': %s", path,
                            strerror(errno));
    }
    char buf[4096];
    sl_status st = SL_OK;
    for (int line = 1; st == SL_OK && fgets(buf, sizeof buf, f); line++) {
        char *hash = strchr(buf, '#');
        if (hash) *hash = '\0';
        char *save = NULL;
        const char *host = strtok_r(buf, " \t\r\n", &save);
        if (!host) continue;
        if (!sl_host_name_ok(host)) {
            st = sl_error_set(SL_ERR_CONFIG,
                              "%s:%d: '%s' is not a host name or address; each line is "
                              "\"HOST [slots=N] [max_slots=N]\"",
                              path, line, host);
            break;
        }
        for (const char *opt; st == SL_OK && (opt = strtok_r(NULL, " \t\r\n", &save));)
            st = sl_hostfile_option(path, line, opt);
        (*n_hosts)++;
    }
    if (st == SL_OK && ferror(f)) {
        st = sl_error_set(SL_ERR_IO, "launch: reading the hostfile '%s' failed", path);
    }
    fclose(f);
    if (st == SL_OK && *n_hosts == 0) {
        st = sl_error_set(SL_ERR_CONFIG,
                          "launch: the hostfile '%s' lists no hosts; each line is \"HOST "
                          "[slots=N]\"",
                          path);
    }
    return st;
}
