/* Checkpoint names, checksums and directory operations (common/ckpt_format.h). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ckpt_format.h"
#include "common/fileio.h"

const char *sl_state_dict_type_name(sl_state_dict_type t) {
    return t == SL_STATE_DICT_FULL ? "FULL_STATE_DICT" : "SHARDED_STATE_DICT";
}

sl_status sl_state_dict_type_parse(const char *text, sl_state_dict_type *out) {
    if (!strcmp(text, "FULL_STATE_DICT")) {
        *out = SL_STATE_DICT_FULL;
    } else if (!strcmp(text, "SHARDED_STATE_DICT") || !strcmp(text, "LOCAL_STATE_DICT")) {
        *out = SL_STATE_DICT_SHARDED;
    } else {
        return sl_error_set(SL_ERR_CONFIG,
                            "state dict type '%s': expected FULL_STATE_DICT or SHARDED_STATE_DICT "
                            "(LOCAL_STATE_DICT is saved as SHARDED_STATE_DICT)",
                            text);
    }
    return SL_OK;
}

void sl_ckpt_file_name(sl_state_dict_type type, bool optim, int rank, int world, char *buf,
                       size_t cap) {
    if (type == SL_STATE_DICT_FULL) {
        snprintf(buf, cap, "%s.safetensors", optim ? "optimizer" : "model");
    } else {
        snprintf(buf, cap, "%s-rank%05d-of-%05d.safetensors", optim ? "optim" : "params", rank,
                 world);
    }
}

void sl_ckpt_tensor_name(sl_ckpt_state which, const char *param, int64_t start, int64_t end,
                         bool full, char *buf, size_t cap) {
    static const char *const prefix[] = {"", "exp_avg.", "exp_avg_sq."};
    if (full) {
        snprintf(buf, cap, "%s%s", prefix[which], param);
        return;
    }
    snprintf(buf, cap, "%s%s@[%lld,%lld)", prefix[which], param, (long long)start, (long long)end);
}

uint64_t sl_ckpt_fnv1a64(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

sl_status sl_ckpt_file_checksum(const char *path, int64_t *bytes, uint64_t *sum) {
    char *data = NULL;
    size_t len = 0;
    SL_TRY(sl_file_read_all(path, &data, &len));
    *bytes = (int64_t)len;
    *sum = sl_ckpt_fnv1a64(data, len);
    free(data);
    return SL_OK;
}

static sl_status sl_ckpt_join(const char *dir, const char *name, char *buf, size_t cap) {
    const int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return sl_error_set(SL_ERR_INVALID_ARG, "checkpoint path %s/%s is too long", dir, name);
    return SL_OK;
}

sl_status sl_ckpt_dir_remove(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return SL_OK;
        return sl_error_set(SL_ERR_IO, "cannot open checkpoint directory %s to remove it: %s", dir,
                            strerror(errno));
    }
    sl_status st = SL_OK;
    for (struct dirent *ent; st == SL_OK && (ent = readdir(d));) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        char path[4096];
        struct stat sb;
        st = sl_ckpt_join(dir, ent->d_name, path, sizeof path);
        if (st != SL_OK) break;
        if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            st = sl_error_set(SL_ERR_IO,
                              "%s is not a regular file; a checkpoint directory holds only files, "
                              "so %s is left alone: remove it by hand",
                              path, dir);
        } else if (unlink(path) != 0) {
            st = sl_error_set(SL_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
        }
    }
    closedir(d);
    if (st == SL_OK && rmdir(dir) != 0)
        st = sl_error_set(SL_ERR_IO, "cannot remove directory %s: %s", dir, strerror(errno));
    return st;
}

sl_status sl_ckpt_latest_write(const char *parent, const char *name) {
    char path[4096], text[512];
    SL_TRY(sl_ckpt_join(parent, SL_CKPT_LATEST, path, sizeof path));
    const int n = snprintf(text, sizeof text, "%s\n", name);
    return sl_file_write_atomic_bytes(path, text, (size_t)n);
}

sl_status sl_ckpt_latest_read(const char *parent, char *name, size_t cap, bool *found) {
    char path[4096];
    *found = false;
    SL_TRY(sl_ckpt_join(parent, SL_CKPT_LATEST, path, sizeof path));
    if (access(path, F_OK) != 0) return SL_OK;
    char *data = NULL;
    size_t len = 0;
    SL_TRY(sl_file_read_all(path, &data, &len));
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        data[--len] = '\0';
    sl_status st = SL_OK;
    if (len == 0 || len >= cap || strchr(data, '/') || strchr(data, '\n') || data[0] == '.') {
        st = sl_error_set(SL_ERR_FORMAT,
                          "%s: expected the name of a checkpoint directory beside it on one line "
                          "(e.g. checkpoint_100), found '%.64s'; fix or delete the file",
                          path, data);
    } else {
        memcpy(name, data, len + 1);
        *found = true;
    }
    free(data);
    return st;
}

sl_status sl_ckpt_resolve(const char *spec, const char *output_dir, char *path, size_t cap,
                          bool *found) {
    *found = false;
    if (strcmp(spec, "latest") != 0) {
        if (strlen(spec) >= cap)
            return sl_error_set(SL_ERR_INVALID_ARG, "checkpoint path '%s' is too long", spec);
        strcpy(path, spec);
        *found = true;
        return SL_OK;
    }
    if (!output_dir) {
        return sl_error_set(SL_ERR_CONFIG,
                            "--resume_from_checkpoint latest needs --output_dir DIR: the latest "
                            "checkpoint is the one DIR/checkpoints/latest names");
    }
    char parent[4096], name[256];
    SL_TRY(sl_ckpt_join(output_dir, "checkpoints", parent, sizeof parent));
    SL_TRY(sl_ckpt_latest_read(parent, name, sizeof name, found));
    if (!*found) return SL_OK;
    return sl_ckpt_join(parent, name, path, cap);
}

/* N of a "checkpoint_N" name, or -1. */
static long long sl_ckpt_step_of(const char *name) {
    if (strncmp(name, "checkpoint_", 11) != 0 || !name[11]) return -1;
    char *end = NULL;
    errno = 0;
    const long long v = strtoll(name + 11, &end, 10);
    return *end || errno || v < 0 ? -1 : v;
}

static int sl_ckpt_cmp_ll(const void *a, const void *b) {
    const long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

sl_status sl_ckpt_prune(const char *parent, int keep) {
    char latest[256] = "";
    bool has_latest = false;
    SL_TRY(sl_ckpt_latest_read(parent, latest, sizeof latest, &has_latest));
    DIR *d = opendir(parent);
    if (!d) return sl_error_set(SL_ERR_IO, "cannot list %s: %s", parent, strerror(errno));
    long long *steps = NULL;
    size_t n = 0, cap = 0;
    sl_status st = SL_OK;
    for (struct dirent *ent; st == SL_OK && (ent = readdir(d));) {
        const size_t len = strlen(ent->d_name);
        char path[4096];
        if (len > 4 && !strcmp(ent->d_name + len - 4, ".tmp") && sl_ckpt_step_of(ent->d_name) < 0 &&
            !strncmp(ent->d_name, "checkpoint_", 11)) {
            st = sl_ckpt_join(parent, ent->d_name, path, sizeof path);
            if (st == SL_OK) st = sl_ckpt_dir_remove(path); /* a save that never completed */
            continue;
        }
        const long long step = sl_ckpt_step_of(ent->d_name);
        if (step < 0 || (has_latest && !strcmp(ent->d_name, latest))) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            long long *grown = realloc(steps, cap * sizeof *steps);
            if (!grown) {
                st = sl_error_set(SL_ERR_OOM, "out of memory listing %s", parent);
                break;
            }
            steps = grown;
        }
        steps[n++] = step;
    }
    closedir(d);
    if (st == SL_OK && n > 0) qsort(steps, n, sizeof *steps, sl_ckpt_cmp_ll);
    /* `latest` itself counts as one of the kept */
    const size_t others = has_latest && keep > 0 ? (size_t)keep - 1 : (size_t)keep;
    for (size_t i = 0; st == SL_OK && i + others < n; i++) {
        char name[64], path[4096];
        snprintf(name, sizeof name, "checkpoint_%lld", steps[i]);
        st = sl_ckpt_join(parent, name, path, sizeof path);
        if (st == SL_OK) st = sl_ckpt_dir_remove(path);
    }
    free(steps);
    if (st == SL_OK) st = sl_dir_fsync(parent);
    return st;
}
