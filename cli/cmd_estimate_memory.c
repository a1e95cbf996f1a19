/* shardlab estimate-memory — predicted peak bytes per rank and memory category for every
 * strategy in one table (DESIGN.md §6), beside the ZeRO paper's per-device model-state formulas
 * (fsdp-zero-semantics.md §5: with mixed-precision Adam 16Ψ for DDP / stage 0, 4Ψ + 12Ψ/W for
 * stage 1, 2Ψ + 14Ψ/W for stage 2, 16Ψ/W for stage 3). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/model_args.h"
#include "common/config_internal.h"
#include "shardlab/plan.h"

static const char *const sl_estimate_usage =
    "usage: shardlab estimate-memory (--model NAME | --params N) [--num_processes W]\n"
    "                                [--num_machines M] [--mixed_precision {no,fp16,bf16}]\n"
    "                                [--load_dtype D] [--micro_batch_size b] [--seq_len T]\n"
    "                                [--gradient_accumulation_steps k] [--bytes] [model flags]\n"
    "Prints, for every strategy (DDP; FSDP1 NO_SHARD, SHARD_GRAD_OP, FULL_SHARD; FSDP2\n"
    "SHARD_GRAD_OP, FULL_SHARD; DeepSpeed ZeRO-0..3; the hybrid strategies when M >= 2), the\n"
    "plan's predicted peak bytes per rank in each memory category, and the ZeRO paper's\n"
    "model-state formula as a cross-check. With --model the plans are compiled for that model\n"
    "(activations for b x T tokens included). With --params N there is no model shape: the\n"
    "categories that follow from N alone are computed from the same dtype rules, and those that\n"
    "depend on the shape (activations, the largest gathered unit, communication buffers) are\n"
    "shown as n/a and left out of the totals. --bytes prints exact byte counts.\n"
    "model flags:\n";

static const char *const sl_estimate_flags[] = {"model",  "params", "bytes",      "n_layer",
                                                "n_embd", "n_head", "block_size", "vocab_size",
                                                "help",   NULL};

typedef struct sl_estimate_row {
    const char *label;
    const char *keys[4][2]; /* plan keys that select the strategy */
    int zero_stage;         /* the ZeRO paper's row it corresponds to */
    bool hybrid;            /* needs M >= 2; formulas over G = W / M */
} sl_estimate_row;

static const sl_estimate_row sl_rows[] = {
    {"ddp", {{NULL, NULL}}, 0, false},
    {"fsdp1 NO_SHARD", {{"use_fsdp", "true"}, {"fsdp_sharding_strategy", "NO_SHARD"}}, 0, false},
    {"fsdp1 SHARD_GRAD_OP",
     {{"use_fsdp", "true"}, {"fsdp_sharding_strategy", "SHARD_GRAD_OP"}},
     2,
     false},
    {"fsdp1 FULL_SHARD",
     {{"use_fsdp", "true"}, {"fsdp_sharding_strategy", "FULL_SHARD"}},
     3,
     false},
    {"fsdp1 HYBRID_SHARD",
     {{"use_fsdp", "true"}, {"fsdp_sharding_strategy", "HYBRID_SHARD"}},
     3,
     true},
    {"fsdp1 HYBRID_SHARD_ZERO2",
     {{"use_fsdp", "true"}, {"fsdp_sharding_strategy", "HYBRID_SHARD_ZERO2"}},
     2,
     true},
    {"fsdp2 SHARD_GRAD_OP",
     {{"use_fsdp", "true"}, {"fsdp_version", "2"}, {"fsdp_reshard_after_forward", "false"}},
     2,
     false},
    {"fsdp2 FULL_SHARD",
     {{"use_fsdp", "true"}, {"fsdp_version", "2"}, {"fsdp_reshard_after_forward", "true"}},
     3,
     false},
    {"deepspeed ZeRO-0", {{"use_deepspeed", "true"}, {"zero_stage", "0"}}, 0, false},
    {"deepspeed ZeRO-1", {{"use_deepspeed", "true"}, {"zero_stage", "1"}}, 1, false},
    {"deepspeed ZeRO-2", {{"use_deepspeed", "true"}, {"zero_stage", "2"}}, 2, false},
    {"deepspeed ZeRO-3", {{"use_deepspeed", "true"}, {"zero_stage", "3"}}, 3, false},
};

#define SL_N_ROWS (sizeof sl_rows / sizeof sl_rows[0])
#define SL_NA (-1) /* a cell that needs the model's shape */

static bool sl_exact_bytes; /* --bytes */

/* "1.50 GiB", "482 KiB", "n/a"; with --bytes the exact count */
static void sl_bytes(long long b, char *buf, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (b < 0) {
        snprintf(buf, cap, "n/a");
        return;
    }
    if (sl_exact_bytes) {
        snprintf(buf, cap, "%lld", b);
        return;
    }
    double v = (double)b;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", v, units[u]);
}

/* The ZeRO paper's per-device model states, with Adam's K = 12 bytes per parameter (fp32
 * master, momentum, variance) beside 2-byte parameters and gradients under mixed precision; in
 * fp32 the optimizer holds the parameters themselves, so K = 8 beside 4-byte ones. */
static void sl_formula(int stage, bool mixed, double psi, int n, bool hybrid, char *text,
                       size_t cap, double *bytes) {
    const double p = mixed ? 2 : 4, g = mixed ? 2 : 4, k = mixed ? 12 : 8;
    const char *d = hybrid ? "G" : "W";
    switch (stage) {
    case 0:
        snprintf(text, cap, "%gΨ", p + g + k);
        *bytes = (p + g + k) * psi;
        return;
    case 1:
        snprintf(text, cap, "%gΨ+%gΨ/%s", p + g, k, d);
        *bytes = (p + g) * psi + k * psi / (double)n;
        return;
    case 2:
        snprintf(text, cap, "%gΨ+%gΨ/%s", p, g + k, d);
        *bytes = p * psi + (g + k) * psi / (double)n;
        return;
    default:
        snprintf(text, cap, "%gΨ/%s", p + g + k, d);
        *bytes = (p + g + k) * psi / (double)n;
        return;
    }
}

typedef struct sl_estimate {
    sl_config *base;
    sl_model_desc *model; /* the named model, or gpt-tiny for the dtype rules with --params */
    long long params;     /* Ψ given with --params, 0 with --model */
} sl_estimate;

static sl_status sl_row_plan(const sl_estimate *e, const sl_estimate_row *row, sl_plan **out) {
    sl_config *cfg = NULL;
    SL_TRY(sl_config_clone(e->base, &cfg));
    const sl_source src = {.kind = SL_SOURCE_FLAG, .spelling = "(estimate-memory row)"};
    sl_status st = SL_OK;
    for (int i = 0; st == SL_OK && i < 4 && row->keys[i][0]; i++)
        st = sl_config_set(cfg, row->keys[i][0], row->keys[i][1], &src);
    if (st == SL_OK) st = sl_plan_compile(cfg, e->model, out);
    sl_config_destroy(cfg);
    if (st != SL_OK) sl_error_prefix(st, "%s: ", row->label);
    return st;
}

/* With --params: the categories plan.h defines, from Ψ instead of the buffers. */
static void sl_params_cells(const sl_plan *plan, long long psi,
                            long long cells[SL_SPACE_COUNT][SL_MEM_CATEGORY_COUNT]) {
    const sl_precision *p = &plan->precision;
    const bool sharded = plan->layout != SL_LAYOUT_REPLICATED;
    const long long owned =
        sharded ? (psi + plan->shard_group_size - 1) / plan->shard_group_size : psi;
    const bool per_unit = plan->layout == SL_LAYOUT_FLAT_PER_UNIT ||
                          plan->layout == SL_LAYOUT_PER_PARAM_DIM0 ||
                          plan->layout == SL_LAYOUT_PER_PARAM_FLAT;
    const bool keeps_gathered = plan->strategy == SL_STRATEGY_SHARD_GRAD_OP ||
                                plan->strategy == SL_STRATEGY_HYBRID_SHARD_ZERO2;
    const int master = plan->offload_params ? SL_SPACE_HOST : SL_SPACE_DEVICE;
    const int optim = plan->offload_optimizer ? SL_SPACE_HOST : SL_SPACE_DEVICE;
    memset(cells, 0, sizeof(long long) * SL_SPACE_COUNT * SL_MEM_CATEGORY_COUNT);
    cells[master][SL_MEM_PARAMS_MASTER] = owned * (long long)sl_dtype_size(p->master_dtype);
    long long gathered = psi * (long long)sl_dtype_size(p->param_dtype);
    if (plan->layout == SL_LAYOUT_REPLICATED && p->param_dtype == p->master_dtype) gathered = 0;
    if (per_unit && !keeps_gathered) gathered = SL_NA;
    cells[SL_SPACE_DEVICE][SL_MEM_PARAMS_GATHERED] = gathered;
    const bool whole = !per_unit || plan->grad_accum_steps > 1;
    long long unsharded = SL_NA;
    if (plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED && whole) {
        unsharded = psi * (long long)sl_dtype_size(p->accum_dtype);
    } else if (plan->layout == SL_LAYOUT_FLAT_GLOBAL) {
        unsharded = psi * (long long)sl_dtype_size(p->param_dtype);
    }
    cells[SL_SPACE_DEVICE][SL_MEM_GRADS_UNSHARDED] = unsharded;
    const sl_dtype sharded_dt =
        plan->accum_mode == SL_ACCUM_REDUCED_SHARD ? p->accum_dtype : p->master_dtype;
    cells[optim][SL_MEM_GRADS_SHARDED] = owned * (long long)sl_dtype_size(sharded_dt);
    cells[optim][SL_MEM_OPTIM_STATES] = 2 * owned * (long long)sl_dtype_size(p->optim_dtype);
    cells[SL_SPACE_DEVICE][SL_MEM_ACTIVATIONS] = SL_NA;
    cells[SL_SPACE_DEVICE][SL_MEM_COMM_BUFFERS] = SL_NA;
    cells[SL_SPACE_DEVICE][SL_MEM_WORKSPACE] = SL_NA;
}

static void sl_print_header(const sl_estimate *e, const sl_plan *any, FILE *f) {
    const double psi = e->params ? (double)e->params : (double)e->model->total_numel;
    if (e->params) {
        fprintf(f, "estimate-memory: Ψ = %.0f parameters (--params: no model shape)", psi);
    } else {
        fprintf(f, "estimate-memory: %s L%d C%d H%d T%d V%d, Ψ = %.0f parameters", e->model->kind,
                e->model->gpt2.n_layer, e->model->gpt2.n_embd, e->model->gpt2.n_head,
                e->model->gpt2.block_size, e->model->gpt2.vocab_size, psi);
    }
    fprintf(f, "; W = %d on %d machine%s, load %s, compute %s, b = %d, T = %d, k = %d\n",
            any->world_size, any->num_machines, any->num_machines == 1 ? "" : "s",
            sl_dtype_name(any->precision.load_dtype), sl_dtype_name(any->precision.param_dtype),
            any->micro_batch_size, any->seq_len, any->grad_accum_steps);
    fprintf(f, "peak bytes per rank (elements x dtype size); host = offloaded\n");
    fprintf(f, "%-25s", "strategy");
    for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++)
        fprintf(f, " %15s", sl_mem_category_name((sl_mem_category)c));
    fprintf(f, " %12s %12s | %12s %14s %12s\n", "device", "host", "model states", "ZeRO formula",
            "= bytes");
}

static sl_status sl_print_row(const sl_estimate *e, const sl_estimate_row *row, FILE *f) {
    sl_plan *plan = NULL;
    SL_TRY(sl_row_plan(e, row, &plan));
    long long cells[SL_SPACE_COUNT][SL_MEM_CATEGORY_COUNT];
    if (e->params) {
        sl_params_cells(plan, e->params, cells);
    } else {
        for (int s = 0; s < SL_SPACE_COUNT; s++)
            for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++)
                cells[s][c] = plan->predicted.memory[0].peak[s][c];
    }
    long long total[SL_SPACE_COUNT] = {0}, states = 0;
    bool partial = false;
    fprintf(f, "%-25s", row->label);
    char buf[32];
    for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++) {
        long long sum = 0;
        bool na = false;
        for (int s = 0; s < SL_SPACE_COUNT; s++) {
            if (cells[s][c] == SL_NA) {
                na = true;
                continue;
            }
            sum += cells[s][c];
            total[s] += cells[s][c];
        }
        partial |= na;
        if (c != SL_MEM_ACTIVATIONS && c != SL_MEM_COMM_BUFFERS && c != SL_MEM_WORKSPACE)
            states += sum;
        sl_bytes(na ? SL_NA : sum, buf, sizeof buf);
        fprintf(f, " %15s", buf);
    }
    char dev[32], host[32], st_text[32], formula[32], fbytes[32];
    sl_bytes(total[SL_SPACE_DEVICE], dev, sizeof dev);
    sl_bytes(total[SL_SPACE_HOST], host, sizeof host);
    sl_bytes(states, st_text, sizeof st_text);
    const double psi = e->params ? (double)e->params : (double)e->model->total_numel;
    const bool mixed = plan->precision.param_dtype != SL_DTYPE_F32;
    double fb;
    sl_formula(row->zero_stage, mixed, psi, row->hybrid ? plan->shard_group_size : plan->world_size,
               row->hybrid, formula, sizeof formula, &fb);
    sl_bytes((long long)llround(fb), fbytes, sizeof fbytes);
    fprintf(f, " %11s%s %12s | %11s%s %14s %12s\n", dev, partial ? "+" : " ", host, st_text,
            partial ? "+" : " ", formula, fbytes);
    sl_plan_destroy(plan);
    return SL_OK;
}

static sl_status sl_estimate_run(sl_estimate *e) {
    sl_plan *first = NULL;
    SL_TRY(sl_row_plan(e, &sl_rows[0], &first));
    sl_print_header(e, first, stdout);
    const int machines = first->num_machines;
    sl_plan_destroy(first);
    for (size_t i = 0; i < SL_N_ROWS; i++) {
        if (sl_rows[i].hybrid && machines < 2) continue;
        SL_TRY(sl_print_row(e, &sl_rows[i], stdout));
    }
    printf("model states = params_master + params_gathered + grads_sharded + grads_unsharded + "
           "optim_states; the ZeRO paper counts no gathered working set (units), no padding and "
           "fp32 Adam (K = 12 with 2-byte params and grads, K = 8 in fp32).\n");
    if (e->params) {
        printf("+ : a lower bound: with --params there is no model shape, so activations, the "
               "largest gathered unit (FULL_SHARD, ZeRO-3) and communication buffers are n/a "
               "and not summed; use --model for them.\n");
    }
    return SL_OK;
}

/* Only plan keys every strategy shares make sense here: the rows pick the strategy. */
static sl_status sl_estimate_check_keys(const sl_config *cfg) {
    for (size_t i = 0; i < sl_config_size(cfg); i++) {
        const char *key = sl_config_entry(cfg, i, NULL, NULL);
        if (sl_config_key_family(sl_config_key_find(key)) == SL_FAMILY_COMMON &&
            strcmp(key, "use_fsdp") && strcmp(key, "use_deepspeed") &&
            strcmp(key, "distributed_type") && strcmp(key, "config_file")) {
            continue;
        }
        return sl_error_set(SL_ERR_CONFIG,
                            "estimate-memory compares every strategy, so --%s (which selects or "
                            "tunes one) does not apply; remove it",
                            key);
    }
    return SL_OK;
}

static sl_status sl_estimate_parse(sl_estimate *e, int argc, char **argv) {
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) return sl_error_set(SL_ERR_OOM, "out of memory parsing arguments");
    int n_rest = 0;
    sl_model_args margs;
    sl_model_args_init(&margs);
    bool named = false;
    sl_status st = sl_config_parse_args(e->base, argc, argv, rest, &n_rest);
    for (int i = 0; st == SL_OK && i < n_rest; i++) {
        if (!strcmp(rest[i], "--params") && i + 1 < n_rest) {
            char *end = NULL;
            const double v = strtod(rest[++i], &end);
            if (end == rest[i] || *end || !(v >= 1) || v > 1e15) {
                st = sl_error_set(SL_ERR_CONFIG,
                                  "--params: expected a parameter count (1 to 1e15, e.g. 7e9), "
                                  "found '%s'",
                                  rest[i]);
            }
            e->params = (long long)v;
            continue;
        }
        const char *a = rest[i];
        if (!strcmp(a, "--bytes")) {
            sl_exact_bytes = true;
            continue;
        }
        if (sl_model_args_parse(&margs, n_rest, rest, &i, &st)) {
            named = true;
            continue;
        }
        st = sl_config_unknown_arg("estimate-memory", a, sl_estimate_flags);
    }
    free(rest);
    SL_TRY(st);
    SL_TRY(sl_estimate_check_keys(e->base));
    if (named == (e->params > 0)) {
        return sl_error_set(SL_ERR_CONFIG, "estimate-memory needs --model NAME (or GPT-2 sizes) "
                                           "or --params N, one of them");
    }
    sl_gpt2_config g;
    if (e->params) {
        /* gpt-tiny with room for any seq_len: it only supplies the dtype rules */
        sl_model_args_init(&margs);
        margs.block_size = 1 << 16;
    }
    SL_TRY(sl_model_args_resolve(&margs, &g));
    return sl_model_desc_create_gpt2(&g, &e->model);
}

int sl_cmd_estimate_memory(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sl_estimate_usage, stdout);
            fputs(sl_model_args_usage, stdout);
            return 0;
        }
    }
    sl_estimate e = {0};
    sl_status st = sl_config_create(&e.base);
    if (st == SL_OK) st = sl_estimate_parse(&e, argc, argv);
    if (st == SL_OK) st = sl_estimate_run(&e);
    sl_config_destroy(e.base);
    sl_model_desc_destroy(e.model);
    return sl_cli_report(st);
}
