#include "cli/model_args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *const sl_model_args_usage =
    "  --model NAME            gpt-tiny (default), gpt-small, gpt2-124m\n"
    "  --n_layer N --n_embd N --n_head N --block_size N --vocab_size N\n"
    "                          explicit GPT-2 sizes (override the named model's fields)\n";

void sl_model_args_init(sl_model_args *a) {
    memset(a, 0, sizeof *a);
    a->name = "gpt-tiny";
}

static sl_status sl_parse_positive_int(const char *flag, const char *text, int *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v <= 0 || v > 1000000000L) {
        return sl_error_set(SL_ERR_CONFIG, "%s: expected a positive integer, found '%s'", flag,
                            text);
    }
    *out = (int)v;
    return SL_OK;
}

bool sl_model_args_parse(sl_model_args *a, int argc, char **argv, int *i, sl_status *status) {
    const char *arg = argv[*i];
    struct {
        const char *flag;
        int *field;
    } ints[] = {{"--n_layer", &a->n_layer},
                {"--n_embd", &a->n_embd},
                {"--n_head", &a->n_head},
                {"--block_size", &a->block_size},
                {"--vocab_size", &a->vocab_size}};
    const bool is_model = strcmp(arg, "--model") == 0;
    int which = -1;
    for (int k = 0; k < (int)(sizeof ints / sizeof ints[0]); k++) {
        if (strcmp(arg, ints[k].flag) == 0) which = k;
    }
    if (!is_model && which < 0) return false;
    if (*i + 1 >= argc) {
        *status = sl_error_set(SL_ERR_CONFIG, "%s: missing value", arg);
        return true;
    }
    const char *value = argv[++*i];
    if (is_model) {
        a->name = value;
        *status = SL_OK;
    } else {
        *status = sl_parse_positive_int(arg, value, ints[which].field);
    }
    return true;
}

sl_status sl_model_args_resolve(const sl_model_args *a, sl_gpt2_config *out) {
    SL_TRY(sl_gpt2_config_from_name(a->name, out));
    if (a->n_layer) out->n_layer = a->n_layer;
    if (a->n_embd) out->n_embd = a->n_embd;
    if (a->n_head) out->n_head = a->n_head;
    if (a->block_size) out->block_size = a->block_size;
    if (a->vocab_size) out->vocab_size = a->vocab_size;
    return sl_gpt2_config_validate(out);
}
