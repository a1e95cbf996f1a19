/* sl_plan_diff (plan_diff.h): each field printed the way explain prints it, compared as text. */
#include "common/plan_diff.h"

#include <stdio.h>
#include <string.h>

#include "common/plan_internal.h"

typedef void (*sl_field_fn)(const sl_plan *p, int arg, char *buf, size_t cap);

static void sl_f_dialect(const sl_plan *p, int arg, char *buf, size_t cap) {
    (void)arg;
    snprintf(buf, cap, "%s", sl_dialect_name(p->dialect));
}

static void sl_f_strategy(const sl_plan *p, int arg, char *buf, size_t cap) {
    (void)arg;
    snprintf(buf, cap, "%s", sl_strategy_name(p->strategy));
}

static void sl_f_layout(const sl_plan *p, int arg, char *buf, size_t cap) {
    (void)arg;
    snprintf(buf, cap, "%s", sl_layout_name(p->layout));
}

static void sl_f_accum(const sl_plan *p, int arg, char *buf, size_t cap) {
    (void)arg;
    snprintf(buf, cap, "%s", sl_accum_mode_name(p->accum_mode));
}

static void sl_f_loss_norm(const sl_plan *p, int arg, char *buf, size_t cap) {
    (void)arg;
    snprintf(buf, cap, "%s", sl_loss_norm_name(p->loss_norm));
}

static void sl_f_prefetch(const sl_plan *p, int arg, char *buf, size_t cap) {
    (void)arg;
    snprintf(buf, cap, "%s", sl_backward_prefetch_name(p->backward_prefetch));
}

static void sl_f_schedule(const sl_plan *p, int arg, char *buf, size_t cap) {
    (void)arg;
    snprintf(buf, cap, "%s", sl_lr_schedule_name(p->optim.schedule));
}

static void sl_f_precision(const sl_plan *p, int arg, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", sl_precision_field_value(&p->precision, (sl_precision_field)arg));
}

/* Integer and boolean fields, by index into the list below. */
static long long sl_int_field(const sl_plan *p, int i) {
    switch (i) {
    case 0: return p->fsdp_version;
    case 1: return p->zero_stage;
    case 2: return p->world_size;
    case 3: return p->num_machines;
    case 4: return p->shard_group_size;
    case 5: return p->n_replicas;
    case 6: return p->grad_accum_steps;
    case 7: return p->deterministic;
    case 8: return p->reshard_after_forward;
    case 9: return p->use_orig_params;
    case 10: return p->forward_prefetch;
    case 11: return p->limit_all_gathers;
    case 12: return p->offload_params;
    case 13: return p->offload_optimizer;
    case 14: return p->persistence_threshold;
    case 15: return p->scaler.growth_interval;
    case 16: return p->scaler.hysteresis;
    case 17: return p->scaler.consecutive_hysteresis;
    case 18: return p->optim.warmup_steps;
    case 19: return p->micro_batch_size;
    case 20: return p->seq_len;
    case 21: return p->steps;
    case 22: return (long long)p->seed;
    case 23: return p->n_buffers;
    case 24: return p->predicted.n_collectives;
    default: return 0;
    }
}

static void sl_f_int(const sl_plan *p, int arg, char *buf, size_t cap) {
    snprintf(buf, cap, "%lld", sl_int_field(p, arg));
}

static double sl_double_field(const sl_plan *p, int i) {
    switch (i) {
    case 0: return p->scaler.init_scale;
    case 1: return p->scaler.growth_factor;
    case 2: return p->scaler.backoff_factor;
    case 3: return p->scaler.min_scale;
    case 4: return p->optim.lr;
    case 5: return p->optim.beta1;
    case 6: return p->optim.beta2;
    case 7: return p->optim.eps;
    case 8: return p->optim.weight_decay;
    case 9: return p->optim.max_grad_norm;
    case 10: return p->optim.min_lr_ratio;
    default: return 0.0;
    }
}

static void sl_f_double(const sl_plan *p, int arg, char *buf, size_t cap) {
    snprintf(buf, cap, "%.17g", sl_double_field(p, arg));
}

/* FNV-1a over every buffer's unit, sizes, persistence and segments: equal layouts, equal digest. */
static void sl_f_layout_digest(const sl_plan *p, int arg, char *buf, size_t cap) {
    (void)arg;
    unsigned long long h = 1469598103934665603ULL;
    for (int b = 0; b < p->n_buffers; b++) {
        const sl_flat_buffer *fb = &p->buffers[b];
        const long long head[4] = {fb->unit, fb->numel_padded, fb->shard_numel, fb->persistent};
        for (int i = 0; i < 4; i++)
            h = (h ^ (unsigned long long)head[i]) * 1099511628211ULL;
        for (int s = 0; s < fb->n_segments; s++) {
            const sl_segment *g = &fb->segments[s];
            const long long v[4] = {g->param, g->param_offset, g->flat_offset, g->numel};
            for (int i = 0; i < 4; i++)
                h = (h ^ (unsigned long long)v[i]) * 1099511628211ULL;
        }
    }
    snprintf(buf, cap, "%016llx", h);
}

static void sl_f_comm_bytes(const sl_plan *p, int arg, char *buf, size_t cap) {
    (void)arg;
    long long total = 0;
    for (int i = 0; i < p->predicted.n_collectives; i++)
        total += p->predicted.collectives[i].bytes_sent_per_rank;
    snprintf(buf, cap, "%lld", total);
}

static void sl_f_memory(const sl_plan *p, int arg, char *buf, size_t cap) {
    const sl_mem_usage *m = &p->predicted.memory[0];
    snprintf(buf, cap, "device %lld, host %lld", (long long)m->peak[SL_SPACE_DEVICE][arg],
             (long long)m->peak[SL_SPACE_HOST][arg]);
}

typedef struct sl_field {
    const char *name;
    sl_field_fn fn;
    int arg;
} sl_field;

static const sl_field sl_fields[] = {
    {"dialect", sl_f_dialect, 0},
    {"strategy", sl_f_strategy, 0},
    {"fsdp_version", sl_f_int, 0},
    {"zero_stage", sl_f_int, 1},
    {"world_size", sl_f_int, 2},
    {"num_machines", sl_f_int, 3},
    {"shard_group_size", sl_f_int, 4},
    {"n_replicas", sl_f_int, 5},
    {"grad_accum_steps", sl_f_int, 6},
    {"loss_norm", sl_f_loss_norm, 0},
    {"deterministic", sl_f_int, 7},
    {"reshard_after_forward", sl_f_int, 8},
    {"use_orig_params", sl_f_int, 9},
    {"forward_prefetch", sl_f_int, 10},
    {"backward_prefetch", sl_f_prefetch, 0},
    {"limit_all_gathers", sl_f_int, 11},
    {"offload_params", sl_f_int, 12},
    {"offload_optimizer", sl_f_int, 13},
    {"persistence_threshold", sl_f_int, 14},
    {"accum_mode", sl_f_accum, 0},
    {"scaler.init_scale", sl_f_double, 0},
    {"scaler.growth_factor", sl_f_double, 1},
    {"scaler.backoff_factor", sl_f_double, 2},
    {"scaler.growth_interval", sl_f_int, 15},
    {"scaler.hysteresis", sl_f_int, 16},
    {"scaler.consecutive_hysteresis", sl_f_int, 17},
    {"scaler.min_scale", sl_f_double, 3},
    {"optim.lr", sl_f_double, 4},
    {"optim.beta1", sl_f_double, 5},
    {"optim.beta2", sl_f_double, 6},
    {"optim.eps", sl_f_double, 7},
    {"optim.weight_decay", sl_f_double, 8},
    {"optim.max_grad_norm", sl_f_double, 9},
    {"optim.schedule", sl_f_schedule, 0},
    {"optim.warmup_steps", sl_f_int, 18},
    {"optim.min_lr_ratio", sl_f_double, 10},
    {"micro_batch_size", sl_f_int, 19},
    {"seq_len", sl_f_int, 20},
    {"steps", sl_f_int, 21},
    {"seed", sl_f_int, 22},
    {"layout", sl_f_layout, 0},
    {"n_buffers", sl_f_int, 23},
    {"layout.digest", sl_f_layout_digest, 0},
    {"collectives", sl_f_int, 24},
    {"collective_bytes_per_rank", sl_f_comm_bytes, 0},
};

#define SL_N_FIELDS (sizeof sl_fields / sizeof sl_fields[0])

static void sl_diff_one(const sl_plan *a, const sl_plan *b, const char *name, sl_field_fn fn,
                        int arg, sl_plan_difference *out, size_t cap, size_t *n) {
    char va[64], vb[64];
    fn(a, arg, va, sizeof va);
    fn(b, arg, vb, sizeof vb);
    if (!strcmp(va, vb)) return;
    if (*n < cap) {
        snprintf(out[*n].field, sizeof out[*n].field, "%s", name);
        snprintf(out[*n].a, sizeof out[*n].a, "%s", va);
        snprintf(out[*n].b, sizeof out[*n].b, "%s", vb);
    }
    (*n)++;
}

size_t sl_plan_diff(const sl_plan *a, const sl_plan *b, sl_plan_difference *out, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < 2; i++)
        sl_diff_one(a, b, sl_fields[i].name, sl_fields[i].fn, sl_fields[i].arg, out, cap, &n);
    /* the precision fields right after the strategy: they are what a reader checks first */
    for (int f = 0; f < SL_PREC_FIELD_COUNT; f++) {
        char name[48];
        snprintf(name, sizeof name, "precision.%s", sl_precision_field_name((sl_precision_field)f));
        sl_diff_one(a, b, name, sl_f_precision, f, out, cap, &n);
    }
    for (size_t i = 2; i < SL_N_FIELDS; i++)
        sl_diff_one(a, b, sl_fields[i].name, sl_fields[i].fn, sl_fields[i].arg, out, cap, &n);
    for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++) {
        char name[48];
        snprintf(name, sizeof name, "memory.%s", sl_mem_category_name((sl_mem_category)c));
        sl_diff_one(a, b, name, sl_f_memory, c, out, cap, &n);
    }
    return n;
}
