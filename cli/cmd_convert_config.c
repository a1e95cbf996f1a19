/* shardlab convert-config — move a config between FSDP1, FSDP2 and DeepSpeed with the documented
 * mapping (Accelerate's usage_guides/fsdp.md: FULL_SHARD <-> ZeRO-3, SHARD_GRAD_OP <-> ZeRO-2,
 * NO_SHARD <-> ZeRO-0, HYBRID_SHARD <-> ZeRO++ hierarchical partitioning; FSDP1 -> FSDP2 as
 * `accelerate to-fsdp2` maps keys), then compile the input and the written output and print
 * every plan field that still differs (plan_diff.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/model_args.h"
#include "common/config_internal.h"
#include "common/config_tree.h"
#include "common/config_write.h"
#include "common/fileio.h"
#include "common/plan_diff.h"
#include "shardlab/config_file.h"
#include "shardlab/plan.h"

static const char *const sl_convert_usage =
    "usage: shardlab convert-config IN --to {fsdp1,fsdp2,deepspeed} [-o OUT] [--plan_name NAME]\n"
    "                               [plan flags] [model flags]\n"
    "Converts an Accelerate config (YAML or JSON) or a DeepSpeed JSON config:\n"
    "  FULL_SHARD <-> ZeRO-3, SHARD_GRAD_OP <-> ZeRO-2, NO_SHARD <-> ZeRO-0,\n"
    "  HYBRID_SHARD <-> ZeRO-3 with zero_hpz_partition_size = ranks per machine,\n"
    "  fsdp_offload_params <-> offload_optimizer_device/offload_param_device cpu,\n"
    "  fsdp_reduce_dtype <-> communication_data_type, fsdp_cpu_ram_efficient_loading <->\n"
    "  zero3_init_flag, max_grad_norm <-> gradient_clipping; FSDP1 -> FSDP2 as accelerate\n"
    "  to-fsdp2 does (fsdp_sharding_strategy -> fsdp_reshard_after_forward; backward/forward\n"
    "  prefetch, use_orig_params, sync_module_states removed).\n"
    "Then it compiles IN and the written OUT (with the same plan flags, which are context and\n"
    "are not written) and prints every plan field that differs: dtypes, strategy, layout,\n"
    "optimizer, collectives, memory. OUT: .yaml/.yml an Accelerate YAML, .json a DeepSpeed config\n"
    "(--to deepspeed) or Accelerate's JSON form; without -o the YAML goes to standard output and\n"
    "the report to standard error.\n"
    "model flags:\n";

static const char *const sl_convert_flags[] = {"to",     "output", "model",      "n_layer",
                                               "n_embd", "n_head", "block_size", "vocab_size",
                                               "help",   NULL};

typedef struct sl_convert {
    const char *in, *out, *to;
    bool to_ds;
    int to_version;
    sl_config *flags; /* the plan flags: context of both compiles */
    sl_config *a_cfg; /* flags + IN */
    sl_config *b_cfg; /* the converted entries */
    sl_plan *a, *b;
    sl_model_desc *model;
    char notes[32][320];
    int n_notes;
} sl_convert;

static void sl_note(sl_convert *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sl_note(sl_convert *c, const char *fmt, ...) {
    if (c->n_notes == (int)(sizeof c->notes / sizeof c->notes[0])) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->notes[c->n_notes++], sizeof c->notes[0], fmt, ap);
    va_end(ap);
}

static sl_status sl_put(sl_convert *c, const char *key, const char *value, const sl_source *src) {
    return sl_config_set(c->b_cfg, key, value, src);
}

/* A key set from another key's value: its source says so (and so no longer lies in the section
 * the original key came from). */
static sl_status sl_put_mapped(sl_convert *c, const char *key, const char *value,
                               const sl_source *from) {
    sl_source src = *from;
    snprintf(src.spelling, sizeof src.spelling, "converted from %.100s", from->spelling);
    return sl_config_set(c->b_cfg, key, value, &src);
}

static bool sl_is(const sl_config *cfg, const char *key, const char *value) {
    const char *v = sl_config_get(cfg, key, NULL);
    return v && sl_config_values_equal(sl_config_key_find(key), v, value);
}

/* FSDP keys towards DeepSpeed: the few with an equivalent are mapped, and every FSDP key stays
 * in fsdp_config, which Accelerate and shardlab ignore under DeepSpeed, so that converting back
 * restores it. */
static sl_status sl_fsdp_to_ds(sl_convert *c, const char *key, const char *value,
                               const sl_source *src) {
    const int stage =
        c->a->strategy == SL_STRATEGY_FULL_SHARD || c->a->strategy == SL_STRATEGY_HYBRID_SHARD ? 3
                                                                                               : 2;
    if (!strcmp(key, "fsdp_offload_params") && sl_is(c->a_cfg, key, "true")) {
        SL_TRY(sl_put_mapped(c, "offload_optimizer_device", "cpu", src));
        if (stage == 3) SL_TRY(sl_put_mapped(c, "offload_param_device", "cpu", src));
    } else if (!strcmp(key, "fsdp_reduce_dtype")) {
        SL_TRY(sl_put_mapped(c, "communication_data_type", value, src));
    } else if (!strcmp(key, "fsdp_cpu_ram_efficient_loading") && stage == 3) {
        SL_TRY(sl_put_mapped(c, "zero3_init_flag", value, src));
    }
    return sl_put(c, key, value, src);
}

/* DeepSpeed keys towards FSDP: mapped where FSDP has the setting, and kept (Accelerate's
 * deepspeed_config section is ignored under FSDP; DeepSpeed JSON keys have no place in an
 * Accelerate file and are reported as not written). */
static sl_status sl_ds_to_fsdp(sl_convert *c, const char *key, const char *value,
                               const sl_source *src) {
    if ((!strcmp(key, "offload_optimizer_device") || !strcmp(key, "offload_param_device")) &&
        sl_is(c->a_cfg, key, "cpu")) {
        SL_TRY(sl_put_mapped(c, "fsdp_offload_params", "true", src));
    } else if (!strcmp(key, "communication_data_type")) {
        SL_TRY(sl_put_mapped(c, "fsdp_reduce_dtype", value, src));
    } else if (!strcmp(key, "zero3_init_flag")) {
        SL_TRY(sl_put_mapped(c, "fsdp_cpu_ram_efficient_loading", value, src));
    } else if (!strcmp(key, "gradient_clipping")) {
        SL_TRY(sl_put_mapped(c, "max_grad_norm", value, src));
    } else if ((!strcmp(key, "bf16_enabled") || !strcmp(key, "fp16_enabled")) &&
               sl_is(c->a_cfg, key, "true") && !sl_config_get(c->b_cfg, "mixed_precision", NULL)) {
        SL_TRY(sl_put_mapped(c, "mixed_precision", key[0] == 'b' ? "bf16" : "fp16", src));
    }
    return sl_put(c, key, value, src);
}

static sl_status sl_fsdp_to_fsdp(sl_convert *c, const char *key, const char *value,
                                 const sl_source *src) {
    static const char *const fsdp1_only[] = {"fsdp_backward_prefetch", "fsdp_forward_prefetch",
                                             "fsdp_use_orig_params",   "fsdp_sync_module_states",
                                             "fsdp_limit_all_gathers", NULL};
    if (c->to_version == 2) {
        for (const char *const *k = fsdp1_only; *k; k++) {
            if (strcmp(*k, key) != 0) continue;
            sl_note(c,
                    "dropped %s = %s: FSDP2 has no such setting (accelerate to-fsdp2 removes "
                    "it)",
                    key, value);
            return SL_OK;
        }
        if (!strcmp(key, "fsdp_state_dict_type") && sl_is(c->a_cfg, key, "LOCAL_STATE_DICT")) {
            sl_note(c, "fsdp_state_dict_type LOCAL_STATE_DICT -> SHARDED_STATE_DICT: FSDP2 has no "
                       "LOCAL_STATE_DICT");
            return sl_put(c, key, "SHARDED_STATE_DICT", src);
        }
    }
    return sl_put(c, key, value, src);
}

/* The FSDP strategy IN's own (inactive) fsdp_config names, or -1. */
static int sl_inactive_fsdp_strategy(const sl_convert *c) {
    static const char *const names[] = {"NO_SHARD",   "SHARD_OPTIM",  "SHARD_GRAD_OP",
                                        "FULL_SHARD", "HYBRID_SHARD", "HYBRID_SHARD_ZERO2"};
    const sl_source *src;
    const char *v = sl_config_get(c->a_cfg, "fsdp_sharding_strategy", &src);
    if (!v || src->kind != SL_SOURCE_FILE) {
        v = sl_config_get(c->a_cfg, "fsdp_reshard_after_forward", &src);
        if (!v || src->kind != SL_SOURCE_FILE) return -1;
        const sl_config_key *k = sl_config_key_find("fsdp_reshard_after_forward");
        if (sl_config_values_equal(k, v, "true")) return SL_STRATEGY_FULL_SHARD;
        if (sl_config_values_equal(k, v, "false")) return SL_STRATEGY_SHARD_GRAD_OP;
    }
    const char *name = sl_config_key_resolve_enum(sl_config_key_find("fsdp_sharding_strategy"), v);
    for (int i = 0; name && i < 6; i++) {
        if (!strcmp(name, names[i])) return i;
    }
    return -1;
}

/* Whether ZeRO stage `stage` and FSDP strategy `s` are the same sharding under the documented
 * mapping (ZeRO-1 has no FSDP equivalent and goes with SHARD_GRAD_OP). */
static bool sl_stage_matches(int stage, int s) {
    switch (s) {
    case SL_STRATEGY_NO_SHARD: return stage == 0;
    case SL_STRATEGY_SHARD_GRAD_OP: return stage == 1 || stage == 2;
    case SL_STRATEGY_HYBRID_SHARD_ZERO2: return stage == 2;
    case SL_STRATEGY_FULL_SHARD:
    case SL_STRATEGY_HYBRID_SHARD: return stage == 3;
    default: return false;
    }
}

static sl_status sl_convert_to_ds(sl_convert *c, const sl_source *src) {
    const sl_plan *a = c->a;
    char text[32];
    SL_TRY(sl_put(c, "distributed_type", "DEEPSPEED", src));
    /* IN's own stage (active, or kept in an inactive deepspeed_config) wins when it is the same
     * sharding: that is how ZeRO-1 survives a trip through FSDP */
    const sl_source *s;
    const char *own = sl_config_get(c->a_cfg, "zero_stage", &s);
    const int own_stage = own && s->kind == SL_SOURCE_FILE ? (int)strtol(own, NULL, 10) : -1;
    if (a->dialect == SL_DIALECT_DEEPSPEED || sl_stage_matches(own_stage, a->strategy)) {
        if (own) SL_TRY(sl_put(c, "zero_stage", own, s));
        const char *hpz = sl_config_get(c->a_cfg, "zero_hpz_partition_size", &s);
        if (hpz && s->kind == SL_SOURCE_FILE) SL_TRY(sl_put(c, "zero_hpz_partition_size", hpz, s));
        if (a->dialect == SL_DIALECT_DEEPSPEED || a->strategy != SL_STRATEGY_HYBRID_SHARD) {
            return SL_OK;
        }
    } else {
        static const int stage_of[] = {0, 1, 2, 3, 3, 2}; /* sl_strategy order */
        snprintf(text, sizeof text, "%d", stage_of[a->strategy]);
        SL_TRY(sl_put(c, "zero_stage", text, src));
    }
    if (a->strategy == SL_STRATEGY_HYBRID_SHARD) {
        snprintf(text, sizeof text, "%d", a->shard_group_size);
        SL_TRY(sl_put(c, "zero_hpz_partition_size", text, src));
    }
    if (a->strategy == SL_STRATEGY_HYBRID_SHARD_ZERO2) {
        sl_note(c,
                "HYBRID_SHARD_ZERO2 -> ZeRO-2: ZeRO++ hierarchical partitioning exists for "
                "stage 3 only, so ZeRO-2 shards over all %d ranks",
                a->world_size);
    }
    return SL_OK;
}

/* The FSDP strategy for IN's plan: IN's own (inactive) fsdp_config choice when it is the same
 * sharding, else the documented mapping. */
static int sl_fsdp_strategy_for(sl_convert *c) {
    const sl_plan *a = c->a;
    const int own = sl_inactive_fsdp_strategy(c);
    const bool hybrid_ok = a->num_machines > 1;
    if (a->dialect == SL_DIALECT_DEEPSPEED && own >= 0 && sl_stage_matches(a->zero_stage, own) &&
        (hybrid_ok || (own != SL_STRATEGY_HYBRID_SHARD && own != SL_STRATEGY_HYBRID_SHARD_ZERO2))) {
        return own;
    }
    int s = a->strategy;
    if (s == SL_STRATEGY_SHARD_OPTIM) {
        sl_note(c, "ZeRO-1 -> SHARD_GRAD_OP: FSDP cannot shard the optimizer states alone");
        s = SL_STRATEGY_SHARD_GRAD_OP;
    }
    const char *hpz_text = sl_config_get(c->a_cfg, "zero_hpz_partition_size", NULL);
    const long long hpz = hpz_text ? strtoll(hpz_text, NULL, 10) : 1;
    if (s == SL_STRATEGY_FULL_SHARD && hpz > 1) {
        if (hybrid_ok && a->world_size / a->num_machines == hpz) return SL_STRATEGY_HYBRID_SHARD;
        sl_note(c,
                "zero_hpz_partition_size %lld -> FULL_SHARD: HYBRID_SHARD needs num_machines = "
                "num_processes / %lld",
                hpz, hpz);
    }
    return s;
}

static sl_status sl_convert_to_fsdp(sl_convert *c, const sl_source *src) {
    char text[32];
    snprintf(text, sizeof text, "%d", c->to_version);
    SL_TRY(sl_put(c, "distributed_type", "FSDP", src));
    SL_TRY(sl_put(c, "fsdp_version", text, src));
    sl_strategy s = (sl_strategy)sl_fsdp_strategy_for(c);
    if (c->to_version == 2 && (s == SL_STRATEGY_NO_SHARD || s == SL_STRATEGY_HYBRID_SHARD_ZERO2)) {
        sl_note(c,
                "%s -> fsdp_reshard_after_forward false (SHARD_GRAD_OP): FSDP2 has no %s "
                "(accelerate to-fsdp2 maps it so)",
                sl_strategy_name(s), sl_strategy_name(s));
        s = SL_STRATEGY_SHARD_GRAD_OP;
    }
    if (c->to_version == 1 || s == SL_STRATEGY_HYBRID_SHARD) {
        return sl_put(c, "fsdp_sharding_strategy", sl_strategy_name(s), src);
    }
    return sl_put(c, "fsdp_reshard_after_forward", s == SL_STRATEGY_FULL_SHARD ? "true" : "false",
                  src);
}

/* Keys the conversion writes itself rather than copies. */
static bool sl_regenerated(const sl_convert *c, const char *key) {
    static const char *const always[] = {"use_fsdp",    "use_deepspeed", "distributed_type",
                                         "config_file", "plan_name",     NULL};
    static const char *const ds[] = {"zero_stage", "zero_hpz_partition_size", NULL};
    static const char *const fsdp[] = {"fsdp_version", "fsdp_sharding_strategy",
                                       "fsdp_reshard_after_forward", NULL};
    for (const char *const *k = always; *k; k++)
        if (!strcmp(*k, key)) return true;
    for (const char *const *k = c->to_ds ? ds : fsdp; *k; k++)
        if (!strcmp(*k, key)) return true;
    return false;
}

static sl_status sl_convert_entries(sl_convert *c) {
    sl_source gen = {.kind = SL_SOURCE_FILE};
    snprintf(gen.file, sizeof gen.file, "%s", c->in);
    snprintf(gen.spelling, sizeof gen.spelling, "converted");
    SL_TRY(c->to_ds ? sl_convert_to_ds(c, &gen) : sl_convert_to_fsdp(c, &gen));
    /* an Accelerate file needs the world it runs on: IN's, when IN does not say (a DeepSpeed
     * JSON cannot) */
    char text[32];
    snprintf(text, sizeof text, "%d", c->a->world_size);
    SL_TRY(sl_put(c, "num_processes", text, &gen));
    snprintf(text, sizeof text, "%d", c->a->num_machines);
    if (c->a->num_machines > 1) SL_TRY(sl_put(c, "num_machines", text, &gen));
    const bool from_ds = c->a->dialect == SL_DIALECT_DEEPSPEED;
    for (size_t i = 0; i < sl_config_size(c->a_cfg); i++) {
        const char *value;
        const sl_source *src;
        const char *key = sl_config_entry(c->a_cfg, i, &value, &src);
        if (src->kind != SL_SOURCE_FILE || sl_regenerated(c, key)) continue;
        char path[1024];
        if (!strcmp(value, "auto") && !c->to_ds) {
            /* only DeepSpeed resolves "auto": leaving it, take the value IN's plan used */
            const char *used = sl_config_get(c->a->config, key, NULL);
            if (used) value = used;
        } else if (!strcmp(key, "deepspeed_config_file")) {
            /* the output may live elsewhere: name the JSON by its full path */
            char found[500], cwd[500];
            SL_TRY(sl_config_resolve_path(src->file, value, found, sizeof found));
            if (found[0] != '/' && getcwd(cwd, sizeof cwd)) {
                snprintf(path, sizeof path, "%s/%s", cwd, found);
            } else {
                snprintf(path, sizeof path, "%s", found);
            }
            value = path;
        }
        const sl_key_family fam = sl_config_key_family(sl_config_key_find(key));
        if (fam == SL_FAMILY_COMMON || fam == SL_FAMILY_LAUNCH) {
            SL_TRY(sl_put(c, key, value, src));
        } else if (fam == SL_FAMILY_TORCH) {
            SL_TRY(c->to_ds ? sl_put_mapped(c, "gradient_clipping", value, src)
                            : sl_put(c, key, value, src));
        } else if (fam == SL_FAMILY_FSDP) {
            SL_TRY(c->to_ds ? sl_fsdp_to_ds(c, key, value, src)
                            : sl_fsdp_to_fsdp(c, key, value, src));
        } else if (c->to_ds || !from_ds) {
            SL_TRY(sl_put(c, key, value, src));
        } else {
            SL_TRY(sl_ds_to_fsdp(c, key, value, src));
        }
    }
    const char *json = sl_config_get(c->b_cfg, "deepspeed_config_file", NULL);
    const char *mp = sl_config_get(c->b_cfg, "mixed_precision", NULL);
    if (c->to_ds && json && mp) {
        sl_note(c,
                "mixed_precision = %s is not written: %s's fp16/bf16 sections give the dtype "
                "(Accelerate refuses both)",
                mp, json);
        sl_config_unset(c->b_cfg, "mixed_precision");
    }
    return SL_OK;
}

static sl_config_out sl_out_format(const sl_convert *c) {
    const char *o = c->out;
    const size_t n = o ? strlen(o) : 0;
    const bool json = n > 5 && !strcmp(o + n - 5, ".json");
    if (!json) return SL_OUT_ACCELERATE_YAML;
    return c->to_ds ? SL_OUT_DEEPSPEED_JSON : SL_OUT_ACCELERATE_JSON;
}

/* flags + the file (or the text written for it). A bare DeepSpeed config carries no
 * distributed_type: reading one means DeepSpeed. */
static sl_status sl_load_side(const char *name, const char *text, size_t len,
                              const sl_config *flags, const char *plan_name, sl_config **out) {
    SL_TRY(sl_config_clone(flags, out));
    sl_node *root = NULL;
    SL_TRY(text ? sl_config_parse_text(text, len, name, SL_FORMAT_GUESS, &root)
                : sl_config_parse_tree(name, SL_FORMAT_GUESS, &root));
    const bool accelerate = sl_node_is_accelerate(root);
    sl_node_free(root);
    SL_TRY(text ? sl_config_load_text(*out, text, len, name, SL_FORMAT_GUESS, NULL)
                : sl_config_load_file(*out, name, accelerate ? plan_name : NULL));
    if (accelerate) return SL_OK;
    return sl_config_file_set(*out, name, 1, "a DeepSpeed config file", "distributed_type",
                              "DEEPSPEED");
}

static void sl_convert_report(const sl_convert *c, FILE *f) {
    fprintf(f, "converted %s (%s %s) to %s (%s %s)\n", c->in, sl_dialect_name(c->a->dialect),
            sl_strategy_name(c->a->strategy), c->out ? c->out : "standard output",
            sl_dialect_name(c->b->dialect), sl_strategy_name(c->b->strategy));
    for (int i = 0; i < c->n_notes; i++)
        fprintf(f, "  note: %s\n", c->notes[i]);
    sl_plan_difference diffs[96];
    const size_t n = sl_plan_diff(c->a, c->b, diffs, sizeof diffs / sizeof diffs[0]);
    if (n == 0) {
        fprintf(f, "no semantic difference: the two plans agree in every compared field\n");
        return;
    }
    fprintf(f, "semantic differences between the plans (%zu):\n", n);
    fprintf(f, "  %-36s %-28s %s\n", "field", c->in, c->out ? c->out : "output");
    for (size_t i = 0; i < n && i < sizeof diffs / sizeof diffs[0]; i++)
        fprintf(f, "  %-36s %-28s %s\n", diffs[i].field, diffs[i].a, diffs[i].b);
}

/* Whether a key means something under the target dialect. */
static bool sl_active_in_target(const sl_convert *c, const char *key) {
    switch (sl_config_key_family(sl_config_key_find(key))) {
    case SL_FAMILY_COMMON:
    case SL_FAMILY_LAUNCH: return true;
    case SL_FAMILY_TORCH:
    case SL_FAMILY_FSDP: return !c->to_ds;
    case SL_FAMILY_DEEPSPEED: return c->to_ds;
    }
    return false;
}

/* Entries the output could not hold: settings of the target's dialect (or of every dialect) are
 * reported to be passed alongside and kept in `context`; the others are dropped. */
static sl_status sl_convert_unwritten(sl_convert *c, const sl_config *unwritten,
                                      sl_config *context) {
    for (size_t i = 0; i < sl_config_size(unwritten); i++) {
        const char *value;
        const sl_source *src;
        const char *key = sl_config_entry(unwritten, i, &value, &src);
        char where[512];
        sl_source_describe(src, where, sizeof where);
        if (!sl_active_in_target(c, key)) {
            sl_note(c, "dropped %s = %s (from %s): %s setting, with no place in the output", key,
                    value, where, c->to_ds ? "an FSDP" : "a DeepSpeed");
            continue;
        }
        SL_TRY(sl_config_set(context, key, value, src));
        if (!strcmp(key, "compute_environment")) continue;
        sl_note(c,
                "not written %s = %s (from %s): the output format has no place for it; the "
                "output's plan is compiled with it, so pass --%s %s when you use the output",
                key, value, where, key, value);
    }
    return SL_OK;
}

static sl_status sl_convert_run(sl_convert *c, const char *plan_name) {
    SL_TRY(sl_load_side(c->in, NULL, 0, c->flags, plan_name, &c->a_cfg));
    SL_TRY(sl_plan_compile(c->a_cfg, c->model, &c->a));
    SL_TRY(sl_config_create(&c->b_cfg));
    SL_TRY(sl_convert_entries(c));
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) return sl_error_set(SL_ERR_OOM, "out of memory converting %s", c->in);
    sl_config *unwritten = NULL, *context = NULL;
    sl_status st = sl_config_create(&unwritten);
    if (st == SL_OK) st = sl_config_create(&context);
    if (st == SL_OK) st = sl_config_write(c->b_cfg, sl_out_format(c), mem, unwritten);
    fclose(mem);
    if (st == SL_OK) st = sl_convert_unwritten(c, unwritten, context);
    sl_config_destroy(unwritten);
    /* The output's plan: the file as written, run with the same flags and with what the file
     * could not hold passed alongside (as the notes tell the user to). */
    sl_config *b_loaded = NULL;
    if (st == SL_OK) {
        st = sl_load_side(c->out ? c->out : "<output>", text, len, c->flags, NULL, &b_loaded);
    }
    for (size_t i = 0; st == SL_OK && i < sl_config_size(context); i++) {
        const char *value;
        const sl_source *src;
        const char *key = sl_config_entry(context, i, &value, &src);
        st = sl_config_set(b_loaded, key, value, src);
    }
    sl_config_destroy(context);
    if (st == SL_OK) st = sl_plan_compile(b_loaded, c->model, &c->b);
    sl_config_destroy(b_loaded);
    if (st == SL_OK && c->out) st = sl_file_write_atomic_bytes(c->out, text, len);
    if (st == SL_OK && !c->out) fwrite(text, 1, len, stdout);
    free(text);
    SL_TRY(st);
    sl_convert_report(c, c->out ? stdout : stderr);
    return SL_OK;
}

static sl_status sl_convert_parse(sl_convert *c, int argc, char **argv, const char **plan_name,
                                  sl_model_args *margs) {
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) return sl_error_set(SL_ERR_OOM, "out of memory parsing arguments");
    int n_rest = 0;
    sl_status st = sl_config_parse_args(c->flags, argc, argv, rest, &n_rest);
    for (int i = 0; st == SL_OK && i < n_rest; i++) {
        const char *a = rest[i];
        if (sl_model_args_parse(margs, n_rest, rest, &i, &st)) continue;
        const bool valued = !strcmp(a, "--to") || !strcmp(a, "-o") || !strcmp(a, "--output");
        if (valued && i + 1 >= n_rest) {
            st = sl_error_set(SL_ERR_CONFIG, "%s needs a value", a);
        } else if (!strcmp(a, "--to")) {
            c->to = rest[++i];
        } else if (valued) {
            c->out = rest[++i];
        } else if (a[0] != '-' && !c->in) {
            c->in = a;
        } else {
            st = sl_config_unknown_arg("convert-config", a, sl_convert_flags);
        }
    }
    free(rest);
    SL_TRY(st);
    if (sl_config_get(c->flags, "config_file", NULL)) {
        return sl_error_set(SL_ERR_CONFIG, "convert-config: give the file to convert as IN, not "
                                           "as --config_file");
    }
    if (!c->in || !c->to) {
        return sl_error_set(SL_ERR_CONFIG, "convert-config needs IN and --to; run 'shardlab "
                                           "convert-config --help'");
    }
    c->to_ds = !strcmp(c->to, "deepspeed");
    c->to_version = !strcmp(c->to, "fsdp2") ? 2 : 1;
    if (!c->to_ds && strcmp(c->to, "fsdp1") && strcmp(c->to, "fsdp2")) {
        return sl_error_set(SL_ERR_CONFIG, "--to %s: expected fsdp1, fsdp2 or deepspeed", c->to);
    }
    *plan_name = sl_config_get(c->flags, "plan_name", NULL);
    return SL_OK;
}

int sl_cmd_convert_config(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sl_convert_usage, stdout);
            fputs(sl_model_args_usage, stdout);
            return 0;
        }
    }
    sl_convert c = {0};
    sl_model_args margs;
    sl_model_args_init(&margs);
    const char *plan_name = NULL;
    sl_gpt2_config gcfg;
    sl_status st = sl_config_create(&c.flags);
    if (st == SL_OK) st = sl_convert_parse(&c, argc, argv, &plan_name, &margs);
    if (st == SL_OK) st = sl_model_args_resolve(&margs, &gcfg);
    if (st == SL_OK) st = sl_model_desc_create_gpt2(&gcfg, &c.model);
    if (st == SL_OK) st = sl_convert_run(&c, plan_name);
    sl_plan_destroy(c.a);
    sl_plan_destroy(c.b);
    sl_config_destroy(c.flags);
    sl_config_destroy(c.a_cfg);
    sl_config_destroy(c.b_cfg);
    sl_model_desc_destroy(c.model);
    return sl_cli_report(st);
}
