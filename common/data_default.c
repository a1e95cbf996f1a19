/* The embedded default corpus: text generated from the counter-based RNG when opened, one line
 * per document, bytes as tokens. Every line has a short, regular structure (correct arithmetic,
 * counting, number agreement), so a two-layer model's loss visibly falls within a few hundred
 * steps, while the grammar leaves enough freedom that the loss does not collapse to zero. */
#include "common/data_internal.h"
#include "shardlab/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sizes in bytes; generation stops after the line that reaches them. */
#define TRAIN_BYTES (1 << 20)
#define HELDOUT_BYTES (100 << 10)
#define CORPUS_SEED 0x5ca1ab1eULL
/* A line belongs to held-out iff its hash mod HELDOUT_MODULUS is 0, in both streams; so the two
 * splits never share a line. */
#define HELDOUT_MODULUS 10
#define MAX_LINE 128

typedef struct line_gen {
    uint64_t stream;
    uint64_t counter;
} line_gen;

static int below(line_gen *g, int n) {
    return (int)(sl_rng_bits(CORPUS_SEED, g->stream, g->counter++) % (uint64_t)n);
}

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const nouns_sg[] = {"fox",   "dog", "cat",      "bird", "owl",   "child",
                                       "mouse", "man", "elephant", "ant",  "horse", "frog"};
static const char *const nouns_pl[] = {"foxes", "dogs", "cats",      "birds", "owls",   "children",
                                       "mice",  "men",  "elephants", "ants",  "horses", "frogs"};
static const char *const adjectives[] = {"red",   "small", "big",    "old",   "quick", "lazy",
                                         "happy", "angry", "orange", "brown", "young", "tiny"};
static const char *const verbs_sg[] = {"sees",    "chases",  "likes", "finds",
                                       "follows", "watches", "helps", "hears"};
static const char *const verbs_pl[] = {"see",    "chase", "like", "find",
                                       "follow", "watch", "help", "hear"};
/* "a" becomes "an" before a vowel. */
static const char *const dets_sg[] = {"the", "a", "one", "this", "that", "every"};
static const char *const dets_pl[] = {"the", "two", "some", "these", "those", "many"};

static int starts_with_vowel(const char *w) {
    return strchr("aeiou", w[0]) != NULL;
}

static int put(char *line, int at, const char *s) {
    int n = (int)strlen(s);
    memcpy(line + at, s, (size_t)n);
    return at + n;
}

/* "det [adjective] noun" agreeing in number; returns the new end. */
static int noun_phrase(line_gen *g, char *line, int at, int plural, int allow_adjective) {
    int n = below(g, COUNT(nouns_sg));
    const char *noun = plural ? nouns_pl[n] : nouns_sg[n];
    const char *adj =
        allow_adjective && below(g, 2) ? adjectives[below(g, COUNT(adjectives))] : NULL;
    const char *det =
        plural ? dets_pl[below(g, COUNT(dets_pl))] : dets_sg[below(g, COUNT(dets_sg))];
    const char *next = adj ? adj : noun;
    at = put(line, at, strcmp(det, "a") == 0 && starts_with_vowel(next) ? "an" : det);
    if (adj) {
        at = put(line, at, " ");
        at = put(line, at, adj);
    }
    at = put(line, at, " ");
    return put(line, at, noun);
}

static int sentence(line_gen *g, char *line) {
    int at = 0;
    int form = below(g, 20);
    int v = below(g, COUNT(verbs_sg));
    if (form < 12) { /* NP verb NP. — the verb agrees with the subject */
        int plural = below(g, 2);
        at = noun_phrase(g, line, at, plural, 1);
        at = put(line, at, " ");
        at = put(line, at, plural ? verbs_pl[v] : verbs_sg[v]);
        at = put(line, at, " ");
        at = noun_phrase(g, line, at, below(g, 2), 1);
    } else if (form < 17) { /* NP is/are adjective. */
        int plural = below(g, 2);
        at = noun_phrase(g, line, at, plural, 1);
        at = put(line, at, plural ? " are " : " is ");
        at = put(line, at, adjectives[below(g, COUNT(adjectives))]);
    } else { /* NP and NP verb NP. — a compound subject takes the plural verb */
        at = noun_phrase(g, line, at, below(g, 2), 0);
        at = put(line, at, " and ");
        at = noun_phrase(g, line, at, below(g, 2), 0);
        at = put(line, at, " ");
        at = put(line, at, verbs_pl[v]);
        at = put(line, at, " ");
        at = noun_phrase(g, line, at, below(g, 2), 0);
    }
    return put(line, at, ".\n");
}

/* One line, '\n' included, into line[MAX_LINE]; returns its length. */
static int make_line(line_gen *g, char *line) {
    int kind = below(g, 20);
    if (kind < 6) {
        int a = below(g, 100), b = below(g, 100);
        return snprintf(line, MAX_LINE, "%d+%d=%d\n", a, b, a + b);
    }
    if (kind < 9) {
        int a = below(g, 13), b = below(g, 13);
        return snprintf(line, MAX_LINE, "%d*%d=%d\n", a, b, a * b);
    }
    if (kind < 11) {
        int start = below(g, 95), n = 3 + below(g, 5);
        int at = put(line, 0, "count");
        for (int i = 0; i < n; i++)
            at += snprintf(line + at, (size_t)(MAX_LINE - at), " %d", start + i);
        return put(line, at, "\n");
    }
    return sentence(g, line);
}

static int line_is_heldout(const char *line, int len) {
    char text[MAX_LINE + 1];
    memcpy(text, line, (size_t)len);
    text[len] = '\0';
    uint64_t h = sl_rng_stream_from_name(text);
    return sl_rng_bits(CORPUS_SEED, h, 0) % HELDOUT_MODULUS == 0;
}

typedef struct corpus {
    int32_t *tokens;
    int64_t n_tokens, cap_tokens;
    int64_t *doc_starts;
    int64_t n_docs, cap_docs;
} corpus;

static sl_status corpus_reserve(corpus *c, int64_t more_tokens) {
    if (c->n_tokens + more_tokens > c->cap_tokens) {
        int64_t cap = 2 * (c->n_tokens + more_tokens);
        int32_t *t = realloc(c->tokens, (size_t)cap * sizeof *t);
        if (!t)
            return sl_error_set(SL_ERR_OOM, "default corpus: out of memory at %lld tokens",
                                (long long)c->n_tokens);
        c->tokens = t;
        c->cap_tokens = cap;
    }
    if (c->n_docs + 1 > c->cap_docs) {
        int64_t cap = 2 * c->n_docs + 64;
        int64_t *d = realloc(c->doc_starts, (size_t)cap * sizeof *d);
        if (!d)
            return sl_error_set(SL_ERR_OOM, "default corpus: out of memory at %lld lines",
                                (long long)c->n_docs);
        c->doc_starts = d;
        c->cap_docs = cap;
    }
    return SL_OK;
}

/* Appends the lines of one split's stream until `bytes` are reached. */
static sl_status generate_split(corpus *c, sl_split split) {
    int heldout = split == SL_SPLIT_HELDOUT;
    line_gen g = {sl_rng_stream_from_name(heldout ? "data.default.heldout" : "data.default.train"),
                  0};
    int64_t target = c->n_tokens + (heldout ? HELDOUT_BYTES : TRAIN_BYTES);
    char line[MAX_LINE];
    while (c->n_tokens < target) {
        int len = make_line(&g, line);
        if (line_is_heldout(line, len) != heldout) continue;
        SL_TRY(corpus_reserve(c, len));
        c->doc_starts[c->n_docs++] = c->n_tokens;
        for (int i = 0; i < len; i++)
            c->tokens[c->n_tokens++] = (unsigned char)line[i];
    }
    return SL_OK;
}

sl_status sl_data_default_open(sl_split split, sl_dataset **out) {
    corpus c = {0};
    sl_status st = SL_OK;
    if (split == SL_SPLIT_TRAIN || split == SL_SPLIT_ALL) st = generate_split(&c, SL_SPLIT_TRAIN);
    if (st == SL_OK && (split == SL_SPLIT_HELDOUT || split == SL_SPLIT_ALL))
        st = generate_split(&c, SL_SPLIT_HELDOUT);
    if (st != SL_OK) {
        free(c.tokens);
        free(c.doc_starts);
        return st;
    }
    const char *name = split == SL_SPLIT_TRAIN     ? "default (train)"
                       : split == SL_SPLIT_HELDOUT ? "default (held-out)"
                                                   : "default (all)";
    return sl_dataset_adopt(name, c.tokens, c.n_tokens, c.doc_starts, c.n_docs, 256, out);
}
