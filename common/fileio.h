/* Whole-file reads and crash-safe whole-file writes.
 *
 * An atomic write puts the content in "<path>.tmp.<pid>", flushes and fsyncs it, renames it over
 * `path` and fsyncs the directory: after a crash a reader sees either the old file or the complete
 * new one, never a prefix. Checkpoints, manifests and trajectories are written this way. */
#ifndef SHARDLAB_COMMON_FILEIO_H
#define SHARDLAB_COMMON_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "shardlab/status.h"

/* Writes the whole content to `f`. A non-OK return abandons the write (the message it set is
 * kept); write errors on `f` itself are detected by the caller, so plain fwrite/fprintf is fine. */
typedef sl_status (*sl_file_write_fn)(FILE *f, void *ctx);

/* Replaces `path` atomically with what `write` produces. On any failure the temporary file is
 * removed and `path` is left as it was. */
sl_status sl_file_write_atomic(const char *path, sl_file_write_fn write, void *ctx);

/* sl_file_write_atomic for a byte buffer. */
sl_status sl_file_write_atomic_bytes(const char *path, const void *data, size_t len);

/* fsync of a directory, so that a rename or a new entry in it survives a crash. */
sl_status sl_dir_fsync(const char *dir);

/* Reads all of `path` into a malloc'd buffer (*data, freed by the caller) of *len bytes plus a
 * terminating NUL that *len does not count, so text parsers may treat it as a C string. */
sl_status sl_file_read_all(const char *path, char **data, size_t *len);

#endif
