/* Writing the Hugging Face layout (hf_model.h): sizes, shard cutting, the shards, the index and
 * the atomic installation of the directory. */
#include "common/hf_model.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/json.h"
#include "shardlab/safetensors.h"

/* ---- sizes ---------------------------------------------------------------------------------- */

typedef struct sl_hf_unit {
    const char *name; /* upper case */
    double mult;
    int may_be_bits; /* decimal units: a lowercase final "b" means bits */
} sl_hf_unit;

static const sl_hf_unit sl_hf_units[] = {
    {"TIB", 1099511627776.0, 0},
    {"GIB", 1073741824.0, 0},
    {"MIB", 1048576.0, 0},
    {"KIB", 1024.0, 0},
    {"TB", 1e12, 1},
    {"GB", 1e9, 1},
    {"MB", 1e6, 1},
    {"KB", 1e3, 1},
};

static sl_status sl_hf_size_error(const char *what, const char *text) {
    return sl_error_set(SL_ERR_CONFIG,
                        "%s: expected a size such as 5GB, 500MB, 10KB, 2GiB or a number of bytes, "
                        "found '%s'",
                        what, text);
}

sl_status sl_hf_size_parse(const char *text, const char *what, int64_t *out) {
    const size_t len = strlen(text);
    size_t digits = 0;
    while (digits < len && (isdigit((unsigned char)text[digits]) || text[digits] == '.'))
        digits++;
    if (digits == 0 || digits > 30) return sl_hf_size_error(what, text);
    char number[32];
    memcpy(number, text, digits);
    number[digits] = '\0';
    char *end = NULL;
    const double value = strtod(number, &end);
    if (*end || !isfinite(value)) return sl_hf_size_error(what, text);
    const char *unit = text + digits;
    double bytes = -1.0;
    if (!*unit) {
        if (strchr(number, '.')) return sl_hf_size_error(what, text); /* bytes are whole */
        bytes = value;
    }
    for (size_t u = 0; *unit && u < sizeof sl_hf_units / sizeof sl_hf_units[0]; u++) {
        const sl_hf_unit *un = &sl_hf_units[u];
        if (strlen(unit) != strlen(un->name)) continue;
        bool same = true;
        for (size_t i = 0; same && unit[i]; i++)
            same = toupper((unsigned char)unit[i]) == un->name[i];
        if (!same) continue;
        bytes = value * un->mult;
        if (un->may_be_bits && unit[strlen(unit) - 1] == 'b') bytes /= 8.0;
    }
    if (bytes < 0.0) return sl_hf_size_error(what, text);
    bytes = floor(bytes);
    if (bytes < 1.0 || bytes > 9.0e18) {
        return sl_error_set(SL_ERR_CONFIG, "%s: '%s' is %.0f bytes; expected 1 byte to 9 EB", what,
                            text, bytes);
    }
    *out = (int64_t)bytes;
    return SL_OK;
}

sl_hf_save_options sl_hf_save_options_default(void) {
    return (sl_hf_save_options){
        .max_shard_size = SL_HF_DEFAULT_MAX_SHARD_SIZE, .dtype = SL_DTYPE_F32, .producer = NULL};
}

sl_status sl_hf_path_join(char *buf, size_t cap, const char *dir, const char *name) {
    const int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) {
        return sl_error_set(SL_ERR_INVALID_ARG, "path %s/%s is longer than %zu bytes", dir, name,
                            cap - 1);
    }
    return SL_OK;
}

void sl_hf_shard_name(int index, int n, char *buf, size_t cap) {
    if (n == 1) {
        snprintf(buf, cap, "model.safetensors");
    } else {
        snprintf(buf, cap, "model-%05d-of-%05d.safetensors", index + 1, n);
    }
}

/* ---- shard cutting -------------------------------------------------------------------------- */

/* shard[p] = the shard of parameter p, numbered in file order; returns the count. This is
 * huggingface_hub's split_state_dict_into_shards_factory: parameters in order; the shard being
 * filled is closed when the next tensor would push it past `max`; a tensor larger than `max` is
 * appended at once as a shard of its own (so it precedes the shard still being filled). */
static int sl_hf_cut_shards(const sl_model_desc *desc, int64_t elem, int64_t max, int *shard) {
    int n = 0;
    int64_t filled = 0; /* bytes of the open shard, whose members have shard[p] == -1 */
    for (int p = 0; p < desc->n_params; p++) {
        const int64_t bytes = desc->params[p].numel * elem;
        if (bytes > max) {
            shard[p] = n++;
            continue;
        }
        if (filled + bytes > max) {
            for (int q = 0; q < p; q++)
                if (shard[q] == -1) shard[q] = n;
            n++;
            filled = 0;
        }
        shard[p] = -1;
        filled += bytes;
    }
    if (filled > 0) {
        for (int q = 0; q < desc->n_params; q++)
            if (shard[q] == -1) shard[q] = n;
        n++;
    }
    return n;
}

/* ---- files ---------------------------------------------------------------------------------- */

static sl_status sl_hf_write_shard(const sl_model_desc *desc, float *const *arrays,
                                   const sl_hf_save_options *opt, const int *shard, int s,
                                   const char *path) {
    sl_safetensors_writer *w = NULL;
    SL_TRY(sl_safetensors_writer_create(&w));
    sl_status st = sl_safetensors_writer_set_metadata(w, "format", "pt");
    if (st == SL_OK && opt->producer)
        st = sl_safetensors_writer_set_metadata(w, "producer", opt->producer);
    for (int p = 0; st == SL_OK && p < desc->n_params; p++) {
        if (shard[p] != s) continue;
        const sl_param_desc *pd = &desc->params[p];
        st = sl_safetensors_writer_add_f32(w, pd->name, opt->dtype, pd->shape, pd->ndim, arrays[p]);
    }
    if (st == SL_OK) st = sl_safetensors_writer_write(w, path);
    sl_safetensors_writer_destroy(w);
    return st;
}

typedef struct sl_hf_index_ctx {
    const sl_model_desc *desc;
    const int *shard;
    int n_shards;
    int64_t total_size;
} sl_hf_index_ctx;

static int sl_hf_cmp_names(const void *a, const void *b) {
    return strcmp((*(const sl_param_desc *const *)a)->name,
                  (*(const sl_param_desc *const *)b)->name);
}

/* transformers writes the index with json.dumps(indent=2, sort_keys=True): names sorted. */
static sl_status sl_hf_write_index(FILE *f, void *vctx) {
    const sl_hf_index_ctx *c = vctx;
    const sl_param_desc **sorted = malloc((size_t)c->desc->n_params * sizeof *sorted);
    if (!sorted) return sl_error_set(SL_ERR_OOM, "out of memory writing the index");
    for (int p = 0; p < c->desc->n_params; p++)
        sorted[p] = &c->desc->params[p];
    qsort(sorted, (size_t)c->desc->n_params, sizeof *sorted, sl_hf_cmp_names);
    sl_json_writer jw;
    sl_json_writer_init(&jw, f, 2);
    sl_json_writer_begin_object(&jw);
    sl_json_writer_key(&jw, "metadata");
    sl_json_writer_begin_object(&jw);
    sl_json_writer_key(&jw, "total_size");
    sl_json_writer_int64(&jw, c->total_size);
    sl_json_writer_end_object(&jw);
    sl_json_writer_key(&jw, "weight_map");
    sl_json_writer_begin_object(&jw);
    for (int i = 0; i < c->desc->n_params; i++) {
        const int p = (int)(sorted[i] - c->desc->params);
        char file[64];
        sl_hf_shard_name(c->shard[p], c->n_shards, file, sizeof file);
        sl_json_writer_key(&jw, sorted[i]->name);
        sl_json_writer_string(&jw, file);
    }
    sl_json_writer_end_object(&jw);
    sl_json_writer_end_object(&jw);
    free(sorted);
    return sl_json_writer_finish(&jw);
}

/* ---- the directory -------------------------------------------------------------------------- */

static bool sl_hf_export_file_name(const char *name) {
    const size_t n = strlen(name);
    static const char ext[] = ".safetensors";
    const size_t e = sizeof ext - 1;
    return !strcmp(name, "config.json") || !strcmp(name, SL_HF_INDEX_NAME) ||
           (n > e + 5 && !strncmp(name, "model", 5) && !strcmp(name + n - e, ext));
}

/* Removes the plain files of `dir` (only export files unless any_file) and then `dir`. */
static sl_status sl_hf_remove_dir(const char *dir, bool any_file) {
    DIR *d = opendir(dir);
    if (!d) return sl_error_set(SL_ERR_IO, "cannot open directory %s: %s", dir, strerror(errno));
    sl_status st = SL_OK;
    for (struct dirent *ent = readdir(d); st == SL_OK && ent; ent = readdir(d)) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        if (!any_file && !sl_hf_export_file_name(ent->d_name)) continue;
        char path[4096];
        st = sl_hf_path_join(path, sizeof path, dir, ent->d_name);
        if (st == SL_OK && unlink(path) != 0)
            st = sl_error_set(SL_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    }
    closedir(d);
    if (st == SL_OK && rmdir(dir) != 0)
        st = sl_error_set(SL_ERR_IO, "cannot remove directory %s: %s", dir, strerror(errno));
    return st;
}

/* An existing destination is replaced only when it holds nothing but an export's files. */
static sl_status sl_hf_check_replaceable(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        return sl_error_set(SL_ERR_IO, "%s exists but cannot be read as a directory: %s", dir,
                            strerror(errno));
    }
    sl_status st = SL_OK;
    for (struct dirent *ent = readdir(d); st == SL_OK && ent; ent = readdir(d)) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        if (sl_hf_export_file_name(ent->d_name)) continue;
        st = sl_error_set(SL_ERR_IO,
                          "refusing to replace %s: it holds '%s', which is not part of a model "
                          "export; save the model to a new or empty directory",
                          dir, ent->d_name);
    }
    closedir(d);
    return st;
}

static sl_status sl_hf_fsync_parent(const char *path) {
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash) return sl_dir_fsync(".");
    if (slash == parent) return sl_dir_fsync("/");
    *slash = '\0';
    return sl_dir_fsync(parent);
}

static sl_status sl_hf_install(const char *tmp, const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT)
            return sl_error_set(SL_ERR_IO, "cannot inspect %s: %s", dir, strerror(errno));
        if (rename(tmp, dir) != 0)
            return sl_error_set(SL_ERR_IO, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
        return sl_hf_fsync_parent(dir);
    }
    if (!S_ISDIR(sb.st_mode)) {
        return sl_error_set(SL_ERR_IO,
                            "%s exists and is not a directory; the export is a directory: choose "
                            "another path",
                            dir);
    }
    SL_TRY(sl_hf_check_replaceable(dir));
    /* Two renames: a crash between them leaves the previous export whole under DIR.old.<pid>. */
    char old[4200];
    const int len = snprintf(old, sizeof old, "%s.old.%ld", dir, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof old)
        return sl_error_set(SL_ERR_INVALID_ARG, "model export: path %s is too long", dir);
    if (rename(dir, old) != 0)
        return sl_error_set(SL_ERR_IO, "cannot move %s aside: %s", dir, strerror(errno));
    if (rename(tmp, dir) != 0) {
        const sl_status st =
            sl_error_set(SL_ERR_IO, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
        (void)rename(old, dir);
        return st;
    }
    SL_TRY(sl_hf_fsync_parent(dir));
    return sl_hf_remove_dir(old, false);
}

static sl_status sl_hf_save_into(const sl_model_desc *desc, float *const *arrays,
                                 const sl_hf_save_options *opt, const char *tmp, int *shard,
                                 int n_shards) {
    char path[4096];
    int64_t total = 0;
    for (int p = 0; p < desc->n_params; p++)
        total += desc->params[p].numel * (int64_t)sl_dtype_size(opt->dtype);
    for (int s = 0; s < n_shards; s++) {
        char name[64];
        sl_hf_shard_name(s, n_shards, name, sizeof name);
        SL_TRY(sl_hf_path_join(path, sizeof path, tmp, name));
        SL_TRY(sl_hf_write_shard(desc, arrays, opt, shard, s, path));
    }
    if (n_shards > 1) {
        sl_hf_index_ctx ctx = {
            .desc = desc, .shard = shard, .n_shards = n_shards, .total_size = total};
        SL_TRY(sl_hf_path_join(path, sizeof path, tmp, SL_HF_INDEX_NAME));
        SL_TRY(sl_file_write_atomic(path, sl_hf_write_index, &ctx));
    }
    if (!strcmp(desc->kind, "gpt2")) {
        SL_TRY(sl_hf_path_join(path, sizeof path, tmp, "config.json"));
        SL_TRY(sl_hf_config_write(desc, opt->dtype, path));
    }
    return sl_dir_fsync(tmp);
}

sl_status sl_hf_model_save(const sl_model_desc *desc, float *const *arrays,
                           const sl_hf_save_options *opt, const char *dir_in) {
    sl_hf_save_options o = opt ? *opt : sl_hf_save_options_default();
    if (o.max_shard_size <= 0) o.max_shard_size = SL_HF_DEFAULT_MAX_SHARD_SIZE;
    if (o.dtype != SL_DTYPE_F32 && o.dtype != SL_DTYPE_BF16 && o.dtype != SL_DTYPE_F16) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "model export to %s: dtype %s cannot be exported; expected fp32, "
                            "bf16 or fp16",
                            dir_in, sl_dtype_name(o.dtype));
    }
    char dir[4096];
    size_t n = strlen(dir_in);
    while (n > 1 && dir_in[n - 1] == '/')
        n--; /* "out/model/" names the directory out/model */
    if (n == 0 || n + 32 >= sizeof dir)
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "model export: directory path '%s' is empty or too long", dir_in);
    memcpy(dir, dir_in, n);
    dir[n] = '\0';
    int *shard = malloc((size_t)desc->n_params * sizeof *shard);
    if (!shard) return sl_error_set(SL_ERR_OOM, "out of memory exporting the model to %s", dir);
    const int n_shards =
        sl_hf_cut_shards(desc, (int64_t)sl_dtype_size(o.dtype), o.max_shard_size, shard);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
    struct stat sb;
    sl_status st = SL_OK;
    if (stat(tmp, &sb) == 0) st = sl_hf_remove_dir(tmp, true); /* left by a crashed save */
    if (st == SL_OK && mkdir(tmp, 0777) != 0) {
        st = sl_error_set(SL_ERR_IO,
                          "cannot create %s (to write the export %s): %s; check that the parent "
                          "directory exists and is writable",
                          tmp, dir, strerror(errno));
        free(shard);
        return st;
    }
    if (st == SL_OK) st = sl_hf_save_into(desc, arrays, &o, tmp, shard, n_shards);
    if (st == SL_OK) st = sl_hf_install(tmp, dir);
    if (st != SL_OK && stat(tmp, &sb) == 0) {
        char keep[2048];
        snprintf(keep, sizeof keep, "%s", sl_error_message());
        (void)sl_hf_remove_dir(tmp, true);
        sl_error_set(st, "%s", keep);
    }
    free(shard);
    return st;
}
