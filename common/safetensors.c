/* safetensors reader: the whole file is read into memory, the header is parsed with the JSON
 * parser, and every tensor entry is validated before anything is handed out. */
#include "shardlab/safetensors.h"

#include "common/fileio.h"
#include "common/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_safetensors {
    char *path;
    unsigned char *bytes; /* the whole file */
    size_t len;
    const unsigned char *data; /* the byte buffer after the header */
    size_t data_len;
    sl_json *header; /* owns the name and metadata strings the tensors point to */
    sl_safetensors_tensor *tensors;
    const sl_safetensors_tensor **by_name; /* sorted by name, for lookup */
    int64_t *shapes;                       /* every tensor's shape, concatenated */
    size_t n;
    const sl_json *metadata; /* NULL when the file has none */
};

static sl_status bad(const sl_safetensors *st, const char *tensor, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "<file>: tensor \"<name>\": <message>" (or "<file>: <message>" for file-level problems). */
static sl_status bad(const sl_safetensors *st, const char *tensor, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (tensor)
        return sl_error_set(SL_ERR_FORMAT, "%s: tensor \"%.200s\": %s", st->path, tensor, msg);
    return sl_error_set(SL_ERR_FORMAT, "%s: %s", st->path, msg);
}

static sl_status validate_metadata(const sl_safetensors *st, const sl_json *meta) {
    if (sl_json_type_of(meta) != SL_JSON_OBJECT)
        return bad(st, NULL, "__metadata__ is a JSON %s; expected an object of strings",
                   sl_json_type_name(sl_json_type_of(meta)));
    for (size_t i = 0; i < sl_json_count(meta); i++) {
        const sl_json *v = sl_json_at(meta, i);
        if (sl_json_type_of(v) != SL_JSON_STRING)
            return bad(st, NULL,
                       "__metadata__ entry \"%.200s\" is a JSON %s; expected a string "
                       "(metadata maps strings to strings)",
                       sl_json_key_at(meta, i), sl_json_type_name(sl_json_type_of(v)));
    }
    return SL_OK;
}

/* A JSON value that must be an integer in [0, INT64_MAX]. */
static bool non_negative_int(const sl_json *v, int64_t *out) {
    return sl_json_int64(v, out) && *out >= 0;
}

static sl_status parse_tensor(sl_safetensors *st, const char *name, const sl_json *info,
                              sl_safetensors_tensor *t, int64_t *shape_out) {
    if (sl_json_type_of(info) != SL_JSON_OBJECT)
        return bad(st, name,
                   "entry is a JSON %s; expected an object with dtype, shape and "
                   "data_offsets",
                   sl_json_type_name(sl_json_type_of(info)));
    for (size_t i = 0; i < sl_json_count(info); i++) {
        const char *key = sl_json_key_at(info, i);
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return bad(st, name,
                       "unexpected key \"%.100s\"; expected only dtype, shape and "
                       "data_offsets",
                       key);
    }
    const sl_json *dtype = sl_json_get(info, "dtype");
    const sl_json *shape = sl_json_get(info, "shape");
    const sl_json *offsets = sl_json_get(info, "data_offsets");
    if (!dtype || !shape || !offsets)
        return bad(st, name, "missing \"%s\"",
                   !dtype   ? "dtype"
                   : !shape ? "shape"
                            : "data_offsets");
    if (sl_json_type_of(dtype) != SL_JSON_STRING)
        return bad(st, name, "dtype is a JSON %s; expected a string such as \"F32\"",
                   sl_json_type_name(sl_json_type_of(dtype)));
    if (sl_dtype_from_safetensors_name(sl_json_string(dtype), &t->dtype) != SL_OK)
        return bad(st, name, "%s", sl_error_message());

    if (sl_json_type_of(shape) != SL_JSON_ARRAY)
        return bad(st, name, "shape is a JSON %s; expected a list of non-negative integers",
                   sl_json_type_name(sl_json_type_of(shape)));
    t->ndim = (int)sl_json_count(shape);
    t->numel = 1;
    bool overflow = false;
    for (int d = 0; d < t->ndim; d++) {
        const sl_json *dim = sl_json_at(shape, (size_t)d);
        if (!non_negative_int(dim, &shape_out[d]))
            return bad(st, name, "shape[%d] is %s; expected a non-negative integer", d,
                       sl_json_type_of(dim) == SL_JSON_NUMBER
                           ? sl_json_number_text(dim)
                           : sl_json_type_name(sl_json_type_of(dim)));
        const uint64_t extent = (uint64_t)shape_out[d];
        if (extent != 0 && t->numel > SIZE_MAX / extent)
            overflow = true;
        else
            t->numel *= (size_t)extent;
    }
    t->shape = shape_out;

    int64_t begin, end;
    if (sl_json_type_of(offsets) != SL_JSON_ARRAY || sl_json_count(offsets) != 2 ||
        !non_negative_int(sl_json_at(offsets, 0), &begin) ||
        !non_negative_int(sl_json_at(offsets, 1), &end))
        return bad(st, name,
                   "data_offsets must be a list of two non-negative integers [begin, "
                   "end] (header %d:%d)",
                   sl_json_line(offsets), sl_json_column(offsets));
    if (begin > end)
        return bad(st, name, "data_offsets [%lld, %lld] end before they begin", (long long)begin,
                   (long long)end);
    const size_t size = sl_dtype_size(t->dtype);
    if (overflow || t->numel > SIZE_MAX / size || t->numel * size != (uint64_t)(end - begin))
        return bad(st, name,
                   "shape has %s%zu elements of %s (%zu bytes each), but data_offsets "
                   "[%lld, %lld] span %lld bytes",
                   overflow ? "more than " : "", t->numel, sl_json_string(dtype), size,
                   (long long)begin, (long long)end, (long long)(end - begin));
    if ((uint64_t)end > st->data_len)
        return bad(st, name,
                   "data_offsets [%lld, %lld] run past the end of the data buffer (%zu "
                   "bytes); the file is truncated",
                   (long long)begin, (long long)end, st->data_len);
    t->name = name;
    t->data = st->data + begin;
    t->nbytes = (size_t)(end - begin);
    return SL_OK;
}

static int by_offset(const void *a, const void *b) {
    const sl_safetensors_tensor *x = *(const sl_safetensors_tensor *const *)a;
    const sl_safetensors_tensor *y = *(const sl_safetensors_tensor *const *)b;
    if (x->data != y->data) return x->data < y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : (x->nbytes > y->nbytes);
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const sl_safetensors_tensor *const *)a)->name,
                  (*(const sl_safetensors_tensor *const *)b)->name);
}

/* The tensors must tile the data buffer exactly: no overlap, no gap, nothing after the last. */
static sl_status check_layout(sl_safetensors *st) {
    const sl_safetensors_tensor **order =
        st->by_name; /* reused as scratch, re-sorted by name below */
    for (size_t i = 0; i < st->n; i++)
        order[i] = &st->tensors[i];
    qsort(order, st->n, sizeof *order, by_offset);
    size_t at = 0;
    for (size_t i = 0; i < st->n; i++) {
        const size_t begin = (size_t)((const unsigned char *)order[i]->data - st->data);
        if (begin < at)
            return bad(st, order[i]->name,
                       "bytes [%zu, %zu) overlap tensor \"%.200s\", which ends "
                       "at %zu",
                       begin, begin + order[i]->nbytes, order[i - 1]->name, at);
        if (begin > at)
            return bad(st, order[i]->name,
                       "starts at byte %zu, but the bytes before it are "
                       "claimed only up to %zu; the data buffer may not have gaps",
                       begin, at);
        at = begin + order[i]->nbytes;
    }
    if (at != st->data_len)
        return bad(st, st->n ? order[st->n - 1]->name : NULL,
                   "the tensors cover %zu bytes of data, "
                   "but the file holds %zu bytes after the header; the file has trailing bytes",
                   at, st->data_len);
    qsort(order, st->n, sizeof *order, by_name);
    return SL_OK;
}

static sl_status parse_header(sl_safetensors *st) {
    if (st->len < 8)
        return bad(st, NULL,
                   "file is %zu bytes long, shorter than the 8-byte header length; it is "
                   "truncated or not a safetensors file",
                   st->len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | st->bytes[i];
    if (n > SL_SAFETENSORS_MAX_HEADER)
        return bad(st, NULL,
                   "oversized header: length field says %llu bytes, the limit is %u; it "
                   "is corrupt or not a safetensors file",
                   (unsigned long long)n, SL_SAFETENSORS_MAX_HEADER);
    if (n > st->len - 8)
        return bad(st, NULL,
                   "header length %llu runs past the end of the file (%zu bytes after "
                   "the length field); the file is truncated",
                   (unsigned long long)n, st->len - 8);
    const char *text = (const char *)st->bytes + 8;
    st->data = st->bytes + 8 + n;
    st->data_len = st->len - 8 - (size_t)n;
    if (n == 0 || text[0] != '{')
        return bad(st, NULL, "header does not start with '{'; expected a JSON object");
    if (sl_json_parse(text, (size_t)n, "header", &st->header) != SL_OK)
        return sl_error_prefix(SL_ERR_FORMAT, "%s: malformed JSON header: ", st->path);

    /* A valid document that starts with '{' is an object: one entry per tensor plus metadata. */
    const size_t members = sl_json_count(st->header);
    size_t dims = 0;
    for (size_t i = 0; i < members; i++) {
        const sl_json *v = sl_json_at(st->header, i);
        const sl_json *shape =
            sl_json_type_of(v) == SL_JSON_OBJECT ? sl_json_get(v, "shape") : NULL;
        if (shape) dims += sl_json_count(shape);
    }
    st->tensors = calloc(members ? members : 1, sizeof *st->tensors);
    st->by_name = calloc(members ? members : 1, sizeof *st->by_name);
    st->shapes = calloc(dims ? dims : 1, sizeof *st->shapes);
    if (!st->tensors || !st->by_name || !st->shapes)
        return sl_error_set(SL_ERR_OOM, "out of memory reading %s", st->path);
    int64_t *shape_at = st->shapes;
    for (size_t i = 0; i < members; i++) {
        const char *name = sl_json_key_at(st->header, i);
        const sl_json *v = sl_json_at(st->header, i);
        if (strcmp(name, "__metadata__") == 0) {
            SL_TRY(validate_metadata(st, v));
            st->metadata = v;
            continue;
        }
        SL_TRY(parse_tensor(st, name, v, &st->tensors[st->n], shape_at));
        shape_at += st->tensors[st->n].ndim;
        st->n++;
    }
    return check_layout(st);
}

/* Takes ownership of `bytes`. */
static sl_status open_bytes(unsigned char *bytes, size_t len, const char *name,
                            sl_safetensors **out) {
    *out = NULL;
    sl_safetensors *st = calloc(1, sizeof *st);
    char *path = malloc(strlen(name) + 1);
    if (!st || !path) {
        free(st);
        free(path);
        free(bytes);
        return sl_error_set(SL_ERR_OOM, "out of memory reading %s", name);
    }
    strcpy(path, name);
    st->path = path;
    st->bytes = bytes;
    st->len = len;
    sl_status status = parse_header(st);
    if (status != SL_OK) {
        sl_safetensors_close(st);
        return status;
    }
    *out = st;
    return SL_OK;
}

sl_status sl_safetensors_open(const char *path, sl_safetensors **out) {
    char *bytes;
    size_t len;
    *out = NULL;
    SL_TRY(sl_file_read_all(path, &bytes, &len));
    return open_bytes((unsigned char *)bytes, len, path, out);
}

sl_status sl_safetensors_open_memory(const void *bytes, size_t len, const char *name,
                                     sl_safetensors **out) {
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy) return sl_error_set(SL_ERR_OOM, "out of memory reading %s", name);
    if (len) memcpy(copy, bytes, len);
    return open_bytes(copy, len, name, out);
}

void sl_safetensors_close(sl_safetensors *st) {
    if (!st) return;
    sl_json_free(st->header);
    free(st->tensors);
    free(st->by_name);
    free(st->shapes);
    free(st->bytes);
    free(st->path);
    free(st);
}

const char *sl_safetensors_path(const sl_safetensors *st) {
    return st->path;
}
size_t sl_safetensors_count(const sl_safetensors *st) {
    return st->n;
}

const sl_safetensors_tensor *sl_safetensors_at(const sl_safetensors *st, size_t i) {
    return i < st->n ? &st->tensors[i] : NULL;
}

const sl_safetensors_tensor *sl_safetensors_find(const sl_safetensors *st, const char *name) {
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        const int c = strcmp(st->by_name[mid]->name, name);
        if (c == 0) return st->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

sl_status sl_safetensors_get(const sl_safetensors *st, const char *name,
                             const sl_safetensors_tensor **out) {
    *out = sl_safetensors_find(st, name);
    if (!*out)
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: no tensor named \"%s\" (the file has %zu "
                            "tensors)",
                            st->path, name, st->n);
    return SL_OK;
}

sl_status sl_safetensors_read_f32(const sl_safetensors *st, const char *name, float *dst,
                                  size_t n) {
    const sl_safetensors_tensor *t;
    SL_TRY(sl_safetensors_get(st, name, &t));
    if (!sl_dtype_is_float(t->dtype))
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: tensor \"%s\" is %s; expected a float dtype to "
                            "read as f32",
                            st->path, name, sl_dtype_safetensors_name(t->dtype));
    if (n != t->numel)
        return sl_error_set(SL_ERR_MISMATCH,
                            "%s: tensor \"%s\" has %zu elements; the caller "
                            "expected %zu",
                            st->path, name, t->numel, n);
    sl_convert_to_f32(dst, t->data, t->dtype, n);
    return SL_OK;
}

size_t sl_safetensors_metadata_count(const sl_safetensors *st) {
    return st->metadata ? sl_json_count(st->metadata) : 0;
}

void sl_safetensors_metadata_at(const sl_safetensors *st, size_t i, const char **key,
                                const char **value) {
    const bool valid = i < sl_safetensors_metadata_count(st);
    *key = valid ? sl_json_key_at(st->metadata, i) : NULL;
    *value = valid ? sl_json_string(sl_json_at(st->metadata, i)) : NULL;
}

const char *sl_safetensors_metadata(const sl_safetensors *st, const char *key) {
    const sl_json *v = st->metadata ? sl_json_get(st->metadata, key) : NULL;
    return v ? sl_json_string(v) : NULL;
}
