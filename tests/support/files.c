/* Scratch directories and whole files (support.h). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "tests/support/support.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

void sl_ts_mkdtemp(const char *tag, char *dir, size_t cap) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/shardlab-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (!mkdtemp(dir)) fail_msg("mkdtemp %s: %s (is TMPDIR writable?)", dir, strerror(errno));
}

static char sl_ts_rm_failed[4096];

static int sl_ts_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT && !sl_ts_rm_failed[0])
        snprintf(sl_ts_rm_failed, sizeof sl_ts_rm_failed, "%s: %s", path, strerror(errno));
    return 0;
}

void sl_ts_rmtree(const char *dir) {
    struct stat sb;
    if (lstat(dir, &sb) != 0) return;
    sl_ts_rm_failed[0] = '\0';
    nftw(dir, sl_ts_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (sl_ts_rm_failed[0]) fail_msg("cannot remove %s", sl_ts_rm_failed);
}

const char *sl_ts_join(const char *dir, const char *name) {
    static char paths[64][4096];
    static int next;
    char *path = paths[next++ % 64];
    snprintf(path, 4096, "%s/%s", dir, name);
    return path;
}

const char *sl_ts_write(const char *path, const char *text, bool executable) {
    FILE *f = fopen(path, "wb");
    const size_t len = strlen(text);
    if (!f) fail_msg("cannot write %s: %s", path, strerror(errno));
    const bool ok = fwrite(text, 1, len, f) == len;
    if (fclose(f) != 0 || !ok) fail_msg("cannot write %s: %s", path, strerror(errno));
    if (executable && chmod(path, 0755) != 0) fail_msg("chmod %s: %s", path, strerror(errno));
    return path;
}

char *sl_ts_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t n = 0, cap = 4096;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (size_t got; (got = fread(buf + n, 1, cap - 1 - n, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

char *sl_ts_read_or_fail(const char *path) {
    char *text = sl_ts_read(path, NULL);
    if (!text) fail_msg("cannot read %s: %s", path, strerror(errno));
    return text;
}

void sl_ts_read_into(const char *path, char *buf, size_t cap) {
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return;
    const size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

int sl_ts_count_lines(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

bool sl_ts_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}
