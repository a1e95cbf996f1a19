/* Knobs over the differing plan fields and the attribution arithmetic (ablate.h). */
#include "conformance/ablate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const sl_structure_fields[] = {"dialect",
                                                  "strategy",
                                                  "fsdp_version",
                                                  "zero_stage",
                                                  "world_size",
                                                  "num_machines",
                                                  "reshard_after_forward",
                                                  "use_orig_params",
                                                  "forward_prefetch",
                                                  "backward_prefetch",
                                                  "limit_all_gathers",
                                                  "offload_params",
                                                  "offload_optimizer",
                                                  "persistence_threshold",
                                                  "accum_mode",
                                                  NULL};

static const char *const sl_derived_fields[] = {"shard_group_size",
                                                "n_replicas",
                                                "layout",
                                                "n_buffers",
                                                "layout.digest",
                                                "collectives",
                                                "collective_bytes_per_rank",
                                                NULL};

static bool sl_in_list(const char *field, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(field, *list)) return true;
    return false;
}

/* The knob kind of a field and, for SWITCH, the name of the knob it belongs to. */
static sl_knob_kind sl_field_kind(const char *field, const char **group) {
    *group = field;
    if (sl_in_list(field, sl_structure_fields)) return SL_KNOB_STRUCTURE;
    if (sl_in_list(field, sl_derived_fields) || !strncmp(field, "memory.", 7)) {
        return SL_KNOB_DERIVED;
    }
    if (!strcmp(field, "precision.optim_dtype") ||
        !strcmp(field, "precision.upcast_sharded_params")) {
        *group = "precision.master_dtype";
    } else if (!strncmp(field, "scaler.", 7)) {
        *group = "precision.loss_scale";
    }
    return SL_KNOB_SWITCH;
}

static void sl_append(char *dst, size_t cap, const char *fmt, const char *x, const char *y) {
    const size_t n = strlen(dst);
    if (n + 1 < cap) snprintf(dst + n, cap - n, fmt, x, y);
}

static const char *sl_short_name(const char *field) {
    const char *dot = strrchr(field, '.');
    return dot ? dot + 1 : field;
}

static void sl_knob_add(sl_knob *k, const sl_plan_difference *d) {
    if (!k->fields[0]) {
        snprintf(k->fields, sizeof k->fields, "%s", d->field);
        snprintf(k->a, sizeof k->a, "%s", d->a);
        snprintf(k->b, sizeof k->b, "%s", d->b);
        return;
    }
    sl_append(k->fields, sizeof k->fields, "%s%s", ", ", d->field);
    sl_append(k->a, sizeof k->a, ", %s=%s", sl_short_name(d->field), d->a);
    sl_append(k->b, sizeof k->b, ", %s=%s", sl_short_name(d->field), d->b);
}

size_t sl_ablate_knobs(const sl_plan *a, const sl_plan *b, sl_knob *out, size_t cap) {
    sl_plan_difference diffs[160];
    size_t n_diffs = sl_plan_diff(a, b, diffs, sizeof diffs / sizeof diffs[0]);
    if (n_diffs > sizeof diffs / sizeof diffs[0]) n_diffs = sizeof diffs / sizeof diffs[0];
    sl_knob structure = {.kind = SL_KNOB_STRUCTURE}, derived = {.kind = SL_KNOB_DERIVED};
    snprintf(structure.name, sizeof structure.name, "structure");
    snprintf(structure.group, sizeof structure.group, "structure");
    snprintf(derived.name, sizeof derived.name, "derived");
    size_t n = 0;
    for (size_t i = 0; i < n_diffs; i++) {
        const char *group;
        const sl_knob_kind kind = sl_field_kind(diffs[i].field, &group);
        if (kind == SL_KNOB_STRUCTURE) {
            sl_knob_add(&structure, &diffs[i]);
            continue;
        }
        if (kind == SL_KNOB_DERIVED) {
            sl_knob_add(&derived, &diffs[i]);
            continue;
        }
        size_t k = 0;
        while (k < n && strcmp(out[k].group, group) != 0)
            k++;
        if (k == n) {
            if (n == cap) continue;
            memset(&out[n], 0, sizeof out[n]);
            out[n].kind = SL_KNOB_SWITCH;
            snprintf(out[n].group, sizeof out[n].group, "%.47s", group);
            snprintf(out[n].name, sizeof out[n].name, "%.47s", diffs[i].field);
            n++;
        }
        sl_knob_add(&out[k], &diffs[i]);
    }
    if (structure.fields[0] && n < cap) out[n++] = structure;
    if (derived.fields[0] && n < cap) out[n++] = derived;
    return n;
}

static void sl_copy_precision(sl_precision *d, const sl_precision *s, const char *name) {
    if (!strcmp(name, "load_dtype"))
        d->load_dtype = s->load_dtype;
    else if (!strcmp(name, "master_dtype"))
        d->master_dtype = s->master_dtype;
    else if (!strcmp(name, "master_init"))
        d->master_init = s->master_init;
    else if (!strcmp(name, "param_dtype"))
        d->param_dtype = s->param_dtype;
    else if (!strcmp(name, "reduce_dtype"))
        d->reduce_dtype = s->reduce_dtype;
    else if (!strcmp(name, "grad_divide"))
        d->grad_divide = s->grad_divide;
    else if (!strcmp(name, "accum_dtype"))
        d->accum_dtype = s->accum_dtype;
    else if (!strcmp(name, "optim_dtype"))
        d->optim_dtype = s->optim_dtype;
    else if (!strcmp(name, "norm"))
        d->norm = s->norm;
    else if (!strcmp(name, "clip"))
        d->clip = s->clip;
    else if (!strcmp(name, "adam"))
        d->adam = s->adam;
    else if (!strcmp(name, "loss_scale"))
        d->loss_scale = s->loss_scale;
    else if (!strcmp(name, "upcast_sharded_params"))
        d->upcast_sharded_params = s->upcast_sharded_params;
}

static void sl_copy_optim(sl_optim_config *d, const sl_optim_config *s, const char *name) {
    if (!strcmp(name, "lr"))
        d->lr = s->lr;
    else if (!strcmp(name, "beta1"))
        d->beta1 = s->beta1;
    else if (!strcmp(name, "beta2"))
        d->beta2 = s->beta2;
    else if (!strcmp(name, "eps"))
        d->eps = s->eps;
    else if (!strcmp(name, "weight_decay"))
        d->weight_decay = s->weight_decay;
    else if (!strcmp(name, "max_grad_norm"))
        d->max_grad_norm = s->max_grad_norm;
    else if (!strcmp(name, "schedule"))
        d->schedule = s->schedule;
    else if (!strcmp(name, "warmup_steps"))
        d->warmup_steps = s->warmup_steps;
    else if (!strcmp(name, "min_lr_ratio"))
        d->min_lr_ratio = s->min_lr_ratio;
}

static void sl_copy_field(sl_plan *d, const sl_plan *s, const char *field) {
    if (!strncmp(field, "precision.", 10)) {
        sl_copy_precision(&d->precision, &s->precision, field + 10);
        if (!strcmp(field, "precision.loss_scale")) d->scaler = s->scaler;
    } else if (!strncmp(field, "optim.", 6)) {
        sl_copy_optim(&d->optim, &s->optim, field + 6);
    } else if (!strncmp(field, "scaler.", 7)) {
        d->scaler = s->scaler;
    } else if (!strcmp(field, "loss_norm")) {
        d->loss_norm = s->loss_norm;
    } else if (!strcmp(field, "grad_accum_steps")) {
        d->grad_accum_steps = s->grad_accum_steps;
    } else if (!strcmp(field, "deterministic")) {
        d->deterministic = s->deterministic;
    } else if (!strcmp(field, "micro_batch_size")) {
        d->micro_batch_size = s->micro_batch_size;
    } else if (!strcmp(field, "seq_len")) {
        d->seq_len = s->seq_len;
    } else if (!strcmp(field, "steps")) {
        d->steps = s->steps;
    } else if (!strcmp(field, "seed")) {
        d->seed = s->seed;
    }
}

void sl_ablate_apply(sl_plan *plan, const sl_plan *from, const sl_knob *knob) {
    char fields[sizeof knob->fields];
    snprintf(fields, sizeof fields, "%s", knob->fields);
    for (char *save = NULL, *f = strtok_r(fields, ", ", &save); f; f = strtok_r(NULL, ", ", &save))
        sl_copy_field(plan, from, f);
    /* optim_dtype is master_dtype by definition (DESIGN.md §4.1): they move together */
    if (!strcmp(knob->group, "precision.master_dtype")) {
        plan->precision.optim_dtype = from->precision.optim_dtype;
        plan->precision.upcast_sharded_params = from->precision.upcast_sharded_params;
    }
}

void sl_ablate_apply_numerics(sl_plan *layout, const sl_plan *numerics) {
    layout->precision = numerics->precision;
    layout->optim = numerics->optim;
    layout->scaler = numerics->scaler;
    layout->loss_norm = numerics->loss_norm;
    layout->grad_accum_steps = numerics->grad_accum_steps;
    layout->deterministic = numerics->deterministic;
    layout->micro_batch_size = numerics->micro_batch_size;
    layout->seq_len = numerics->seq_len;
    layout->steps = numerics->steps;
    layout->seed = numerics->seed;
}

double sl_ablate_loss_share(double loss_a, double loss_b, double loss_i) {
    const double total = loss_b - loss_a;
    return total != 0.0 ? (loss_i - loss_a) / total : NAN;
}

double sl_ablate_param_share(const sl_compare_result *a, const sl_compare_result *b,
                             const sl_compare_result *i) {
    if (a->n_values != b->n_values || a->n_values != i->n_values) return NAN;
    double dot = 0.0, norm2 = 0.0; /* f64 sums over f32 differences */
    for (int64_t k = 0; k < a->n_values; k++) {
        const double total = (double)b->params[k] - (double)a->params[k];
        const double own = (double)i->params[k] - (double)a->params[k];
        dot += own * total;
        norm2 += total * total;
    }
    return norm2 > 0.0 ? dot / norm2 : NAN;
}
