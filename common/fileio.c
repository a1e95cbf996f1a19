#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

sl_status sl_dir_fsync(const char *dir) {
    int fd = open(dir, O_RDONLY);
    if (fd < 0)
        return sl_error_set(SL_ERR_IO, "cannot open directory %s to fsync it: %s", dir,
                            strerror(errno));
    /* Some file systems cannot fsync a directory (EINVAL); there is nothing more to make durable.
     */
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL)
        return sl_error_set(SL_ERR_IO, "fsync of directory %s failed: %s", dir, strerror(err));
    return SL_OK;
}

static sl_status fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return sl_dir_fsync(".");
    if (slash == path) return sl_dir_fsync("/");
    size_t n = (size_t)(slash - path);
    char *dir = malloc(n + 1);
    if (!dir) return sl_error_set(SL_ERR_OOM, "out of memory fsyncing the directory of %s", path);
    memcpy(dir, path, n);
    dir[n] = '\0';
    sl_status st = sl_dir_fsync(dir);
    free(dir);
    return st;
}

sl_status sl_file_write_atomic(const char *path, sl_file_write_fn write, void *ctx) {
    size_t cap = strlen(path) + 32;
    char *tmp = malloc(cap);
    if (!tmp) return sl_error_set(SL_ERR_OOM, "out of memory writing %s", path);
    snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());

    sl_status st = SL_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = sl_error_set(SL_ERR_IO,
                          "cannot create %s (to write %s): %s; check that the directory "
                          "exists and is writable",
                          tmp, path, strerror(errno));
        free(tmp);
        return st;
    }
    st = write(f, ctx);
    if (st == SL_OK && (ferror(f) || fflush(f) != 0))
        st = sl_error_set(SL_ERR_IO, "writing %s failed: %s", tmp, strerror(errno));
    if (st == SL_OK && fsync(fileno(f)) != 0)
        st = sl_error_set(SL_ERR_IO, "fsync of %s failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && st == SL_OK)
        st = sl_error_set(SL_ERR_IO, "closing %s failed: %s", tmp, strerror(errno));
    if (st == SL_OK && rename(tmp, path) != 0)
        st = sl_error_set(SL_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st != SL_OK) {
        remove(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return fsync_parent_dir(path);
}

typedef struct {
    const void *data;
    size_t len;
} byte_span;

static sl_status write_span(FILE *f, void *ctx) {
    const byte_span *span = ctx;
    if (span->len) fwrite(span->data, 1, span->len, f);
    return SL_OK;
}

sl_status sl_file_write_atomic_bytes(const char *path, const void *data, size_t len) {
    byte_span span = {data, len};
    return sl_file_write_atomic(path, write_span, &span);
}

sl_status sl_file_read_all(const char *path, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return sl_error_set(SL_ERR_IO, "cannot open %s for reading: %s; check the path", path,
                            strerror(errno));
    struct stat sb;
    size_t cap = 1 << 16;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode)) cap = (size_t)sb.st_size + 1;
    char *buf = malloc(cap);
    size_t n = 0;
    sl_status st = SL_OK;
    for (;;) {
        if (!buf) {
            fclose(f);
            return sl_error_set(SL_ERR_OOM, "out of memory reading %s", path);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) { /* end of file or an error */
            if (ferror(f))
                st = sl_error_set(SL_ERR_IO, "reading %s failed: %s", path, strerror(errno));
            break;
        }
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) free(buf);
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (st != SL_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return SL_OK;
}
