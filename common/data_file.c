/* Dataset files: llm.c token files (.bin) and raw bytes. Both are read in chunks straight into
 * the int32 token array, so the peak memory is the array plus one chunk. */
#include "common/data_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HEADER_BYTES (SL_LLMC_HEADER_INTS * 4)
#define CHUNK_BYTES (1 << 20)
#define LLMC_LLAMA3_MAGIC 20240801
#define LLMC_MODEL_MAGIC 20240326

static int32_t le32(const unsigned char *b) {
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                     (uint32_t)b[3] << 24);
}

/* Growable list of document starts. */
typedef struct starts {
    int64_t *v;
    int64_t n, cap;
} starts;

static int starts_push(starts *s, int64_t at) {
    if (s->n == s->cap) {
        int64_t cap = 2 * s->cap + 1024;
        int64_t *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) return 0;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = at;
    return 1;
}

/* Reads `n_items` items of `item_bytes` (1 or 2) from f, little-endian, into tokens[0..n_items),
 * recording document starts: at every `boundary` token (llm.c EOT) or after every '\n'. */
static sl_status read_tokens(FILE *f, const char *path, int item_bytes, int64_t n_items,
                             int32_t *tokens, starts *docs) {
    unsigned char *chunk = malloc(CHUNK_BYTES);
    if (!chunk)
        return sl_error_set(SL_ERR_OOM, "dataset file '%s': out of memory for a read buffer", path);
    sl_status st = SL_OK;
    int64_t done = 0;
    while (st == SL_OK && done < n_items) {
        int64_t want = n_items - done;
        if (want > CHUNK_BYTES / item_bytes) want = CHUNK_BYTES / item_bytes;
        size_t got = fread(chunk, (size_t)item_bytes, (size_t)want, f);
        if ((int64_t)got != want) {
            st = sl_error_set(SL_ERR_IO,
                              "dataset file '%s': read failed at token %lld of %lld (%s); the "
                              "file changed or the disk failed",
                              path, (long long)(done + (int64_t)got), (long long)n_items,
                              ferror(f) ? strerror(errno) : "unexpected end of file");
            break;
        }
        for (int64_t i = 0; i < want; i++) {
            int64_t at = done + i;
            int32_t t =
                item_bytes == 1 ? chunk[i] : (int32_t)(chunk[2 * i] | chunk[2 * i + 1] << 8);
            tokens[at] = t;
            int starts_doc =
                item_bytes == 1 ? at > 0 && tokens[at - 1] == '\n' : at > 0 && t == SL_GPT2_EOT;
            if (starts_doc && !starts_push(docs, at)) {
                st = sl_error_set(SL_ERR_OOM, "dataset file '%s': out of memory for documents",
                                  path);
                break;
            }
        }
        done += want;
    }
    free(chunk);
    return st;
}

static sl_status check_llmc_header(const char *path, const unsigned char *header, int64_t size,
                                   int64_t *n_tokens) {
    int32_t magic = le32(header), version = le32(header + 4), count = le32(header + 8);
    if (magic != SL_LLMC_MAGIC) {
        const char *hint = magic == LLMC_LLAMA3_MAGIC
                               ? " (20240801 is llm.c's llama-3 format with uint32 tokens, which "
                                 "is not supported)"
                           : magic == LLMC_MODEL_MAGIC ? " (20240326 is an llm.c model checkpoint, "
                                                         "not a token file)"
                                                       : "";
        return sl_error_set(SL_ERR_FORMAT,
                            "llm.c token file '%s': header field 'magic' (int32 0): expected %d, "
                            "found %d%s; write the file with llm.c's write_datafile",
                            path, SL_LLMC_MAGIC, (int)magic, hint);
    }
    if (version != SL_LLMC_VERSION)
        return sl_error_set(SL_ERR_FORMAT,
                            "llm.c token file '%s': header field 'version' (int32 1): expected %d, "
                            "found %d",
                            path, SL_LLMC_VERSION, (int)version);
    if (count <= 0)
        return sl_error_set(SL_ERR_FORMAT,
                            "llm.c token file '%s': header field 'token count' (int32 2): "
                            "expected > 0, found %d",
                            path, (int)count);
    int64_t expected = HEADER_BYTES + 2 * (int64_t)count;
    if (size != expected)
        return sl_error_set(SL_ERR_FORMAT,
                            "llm.c token file '%s': header field 'token count' (int32 2) is %d, "
                            "so the file size must be 1024 + 2*%d = %lld bytes, found %lld bytes "
                            "(truncated or trailing data)",
                            path, (int)count, (int)count, (long long)expected, (long long)size);
    *n_tokens = count;
    return SL_OK;
}

static int has_bin_suffix(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && strcmp(path + n - 4, ".bin") == 0;
}

/* Reads the whole file as tokens + document starts; *vocab_size is the source's vocabulary. */
static sl_status load_file(FILE *f, const char *path, int64_t size, int32_t **tokens_out,
                           int64_t *n_tokens_out, starts *docs, int32_t *vocab_size) {
    unsigned char header[HEADER_BYTES];
    size_t peek = fread(header, 1, size < HEADER_BYTES ? (size_t)size : HEADER_BYTES, f);
    if ((int64_t)peek != (size < HEADER_BYTES ? size : HEADER_BYTES))
        return sl_error_set(SL_ERR_IO, "dataset file '%s': reading the first bytes failed (%s)",
                            path, strerror(errno));
    int is_llmc = has_bin_suffix(path) || (size >= 4 && le32(header) == SL_LLMC_MAGIC);
    int64_t n_tokens = size;
    int item_bytes = 1;
    if (is_llmc) {
        if (size < HEADER_BYTES)
            return sl_error_set(SL_ERR_FORMAT,
                                "llm.c token file '%s': truncated header: field 'header' expected "
                                "%d bytes (256 int32), found %lld bytes",
                                path, HEADER_BYTES, (long long)size);
        SL_TRY(check_llmc_header(path, header, size, &n_tokens));
        item_bytes = 2;
    } else {
        if (size == 0)
            return sl_error_set(SL_ERR_INVALID_ARG,
                                "dataset file '%s' is empty; a raw text dataset needs at least "
                                "one byte",
                                path);
        rewind(f);
    }
    int32_t *tokens = malloc((size_t)n_tokens * sizeof *tokens);
    if (!tokens)
        return sl_error_set(SL_ERR_OOM, "dataset file '%s': out of memory for %lld tokens", path,
                            (long long)n_tokens);
    if (!starts_push(docs, 0)) {
        free(tokens);
        return sl_error_set(SL_ERR_OOM, "dataset file '%s': out of memory", path);
    }
    sl_status st = read_tokens(f, path, item_bytes, n_tokens, tokens, docs);
    if (st != SL_OK) {
        free(tokens);
        return st;
    }
    *vocab_size = 256;
    if (is_llmc) {
        int32_t max = 0;
        for (int64_t i = 0; i < n_tokens; i++)
            max = tokens[i] > max ? tokens[i] : max;
        *vocab_size = max + 1 > SL_GPT2_EOT + 1 ? max + 1 : SL_GPT2_EOT + 1;
    }
    *tokens_out = tokens;
    *n_tokens_out = n_tokens;
    return SL_OK;
}

sl_status sl_data_file_open(const char *path, sl_split split, sl_dataset **out) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return sl_error_set(SL_ERR_IO,
                            "cannot open dataset '%s': %s; give an existing file or \"default\"",
                            path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return sl_error_set(SL_ERR_IO, "dataset '%s' is not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return sl_error_set(SL_ERR_IO, "cannot open dataset '%s': %s", path, strerror(errno));
    int32_t *tokens = NULL;
    int64_t n_tokens = 0;
    int32_t vocab_size = 0;
    starts docs = {0};
    sl_status st = load_file(f, path, (int64_t)sb.st_size, &tokens, &n_tokens, &docs, &vocab_size);
    fclose(f);
    if (st != SL_OK) {
        free(docs.v);
        return st;
    }
    return sl_dataset_adopt_split(path, tokens, n_tokens, docs.v, docs.n, vocab_size, split, out);
}
