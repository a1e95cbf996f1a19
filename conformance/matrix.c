/* The cases of the quick and full tiers (matrix.h). */
#include "conformance/matrix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const sl_conf_precisions[4] = {"fp32", "bf16", "fp16", "bf16-load"};

typedef struct sl_conf_strategy {
    const char *label;
    const char *flags;
    int world_multiple; /* W must be a multiple of this (hybrid: 2 machines) */
} sl_conf_strategy;

/* Every strategy of every dialect (DESIGN.md §5). */
static const sl_conf_strategy sl_conf_strategies[] = {
    {"fsdp1 FULL_SHARD", "--use_fsdp --fsdp_sharding_strategy FULL_SHARD", 1},
    {"fsdp1 SHARD_GRAD_OP", "--use_fsdp --fsdp_sharding_strategy SHARD_GRAD_OP", 1},
    {"fsdp1 NO_SHARD", "--use_fsdp --fsdp_sharding_strategy NO_SHARD", 1},
    {"fsdp1 HYBRID_SHARD", "--use_fsdp --fsdp_sharding_strategy HYBRID_SHARD --num_machines 2", 2},
    {"fsdp1 HYBRID_SHARD_ZERO2",
     "--use_fsdp --fsdp_sharding_strategy HYBRID_SHARD_ZERO2 --num_machines 2", 2},
    {"fsdp2 reshard", "--use_fsdp --fsdp_version 2 --fsdp_reshard_after_forward true", 1},
    {"fsdp2 no-reshard", "--use_fsdp --fsdp_version 2 --fsdp_reshard_after_forward false", 1},
    {"deepspeed zero0", "--use_deepspeed --zero_stage 0", 1},
    {"deepspeed zero1", "--use_deepspeed --zero_stage 1", 1},
    {"deepspeed zero2", "--use_deepspeed --zero_stage 2", 1},
    {"deepspeed zero3", "--use_deepspeed --zero_stage 3", 1},
};
#define SL_CONF_N_STRATEGIES (int)(sizeof sl_conf_strategies / sizeof sl_conf_strategies[0])

static const sl_conf_strategy *sl_conf_strategy_find(const char *label) {
    for (int i = 0; i < SL_CONF_N_STRATEGIES; i++) {
        if (!strcmp(sl_conf_strategies[i].label, label)) return &sl_conf_strategies[i];
    }
    return NULL;
}

void sl_conf_precision_flags(const char *label, const char *plan_flags, bool overflow, char *buf,
                             size_t cap) {
    const bool ds = strstr(plan_flags, "--use_deepspeed") != NULL;
    if (!strcmp(label, "bf16")) {
        snprintf(buf, cap, "--mixed_precision bf16");
    } else if (!strcmp(label, "fp16")) {
        snprintf(buf, cap, "--mixed_precision fp16%s",
                 ds && !overflow ? " --initial_scale_power 8" : "");
    } else if (!strcmp(label, "bf16-load")) {
        snprintf(buf, cap, "--mixed_precision no --load_dtype bf16");
    } else {
        snprintf(buf, cap, "--mixed_precision no");
    }
}

/* The shape of a run: world, micro-batch, accumulation, loss normalisation, sampling. */
typedef struct sl_conf_shape {
    int W, b, k;
    bool per_microbatch_mean;
    bool documents;
    bool overflow; /* DeepSpeed fp16 at its default initial scale */
} sl_conf_shape;

static const sl_conf_shape sl_conf_w2 = {.W = 2, .b = 2, .k = 1};

static sl_conf_run_spec sl_conf_spec(sl_conf_tool tool, const char *strategy, const char *extra,
                                     const char *precision, sl_conf_shape s) {
    sl_conf_run_spec r = sl_conf_run_spec_default();
    r.tool = tool;
    r.world_size = s.W;
    r.steps = SL_CONF_STEPS;
    char prec[128];
    sl_conf_precision_flags(precision, strategy, s.overflow, prec, sizeof prec);
    snprintf(r.plan_flags, sizeof r.plan_flags,
             "%s%s%s %s --micro_batch_size %d --seq_len 32 --seed 11 "
             "--gradient_accumulation_steps %d --loss_normalization %s",
             strategy, extra && *extra ? " " : "", extra ? extra : "", prec, s.b, s.k,
             s.per_microbatch_mean ? "per_microbatch_mean" : "global_tokens");
    if (s.documents) snprintf(r.extra_flags, sizeof r.extra_flags, "--sampling documents");
    return r;
}

static void sl_conf_shape_label(const char *precision, sl_conf_shape s, char *buf, size_t cap) {
    snprintf(buf, cap, "%s W%d b%d k%d%s%s%s", precision, s.W, s.b, s.k,
             s.per_microbatch_mean ? " per_microbatch_mean" : "", s.documents ? " documents" : "",
             s.overflow ? " overflow" : "");
}

typedef struct sl_conf_builder {
    sl_conf_matrix *m;
    const char *filter;
    sl_status status;
} sl_conf_builder;

static void sl_conf_add(sl_conf_builder *bld, const sl_conf_case *c) {
    if (bld->status != SL_OK) return;
    char text[512];
    snprintf(text, sizeof text, "%s %s %s", c->tier, c->check, c->plan);
    if (bld->filter && *bld->filter && !strstr(text, bld->filter)) return;
    sl_conf_matrix *m = bld->m;
    if (m->n == m->cap) {
        const int cap = m->cap ? 2 * m->cap : 64;
        sl_conf_case *grown = realloc(m->cases, (size_t)cap * sizeof *grown);
        if (!grown) {
            bld->status = sl_error_set(SL_ERR_OOM, "conformance: out of memory (%d cases)", cap);
            return;
        }
        m->cases = grown;
        m->cap = cap;
    }
    m->cases[m->n++] = *c;
}

static sl_conf_case sl_conf_case_make(sl_conf_case_kind kind, const char *tier, const char *check,
                                      const char *floor_key) {
    sl_conf_case c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    snprintf(c.tier, sizeof c.tier, "%s", tier);
    snprintf(c.check, sizeof c.check, "%s", check);
    snprintf(c.floor_key, sizeof c.floor_key, "%s", floor_key ? floor_key : "");
    return c;
}

/* T1: explain's prediction against what `train` observed. */
static void sl_conf_add_observe(sl_conf_builder *bld, const sl_conf_strategy *st,
                                const char *precision, sl_conf_shape s) {
    sl_conf_case c = sl_conf_case_make(SL_CONF_CASE_OBSERVE, "T1", "observation", NULL);
    char shape[128];
    sl_conf_shape_label(precision, s, shape, sizeof shape);
    snprintf(c.plan, sizeof c.plan, "%s %s", st->label, shape);
    c.a = sl_conf_spec(SL_CONF_TOOL_TRAIN, st->flags, NULL, precision, s);
    c.b = sl_conf_spec(SL_CONF_TOOL_EXPLAIN, st->flags, NULL, precision, s);
    sl_conf_add(bld, &c);
}

/* T2: two deterministic runs of the engine, bit for bit. */
static void sl_conf_add_bitwise(sl_conf_builder *bld, const sl_conf_strategy *st,
                                const char *precision, sl_conf_shape s) {
    sl_conf_case c = sl_conf_case_make(SL_CONF_CASE_BITWISE, "T2", "bitwise", NULL);
    char shape[128];
    sl_conf_shape_label(precision, s, shape, sizeof shape);
    snprintf(c.plan, sizeof c.plan, "%s %s", st->label, shape);
    c.a = sl_conf_spec(SL_CONF_TOOL_TRAIN, st->flags, NULL, precision, s);
    c.b = c.a;
    snprintf(c.b.out_dir, sizeof c.b.out_dir, "rerun");
    sl_conf_add(bld, &c);
}

/* T2 (same W: bit for bit) or T3 (another W: within the floor) — a run checkpointed half-way
 * and resumed against the uninterrupted run. */
static void sl_conf_add_resume(sl_conf_builder *bld, const sl_conf_strategy *st,
                               const char *precision, sl_conf_shape s, int resume_world) {
    const bool same = resume_world == s.W;
    sl_conf_case c =
        sl_conf_case_make(SL_CONF_CASE_RESUME, same ? "T2" : "T3",
                          same ? "resume" : "resharded_resume", same ? NULL : precision);
    char shape[128];
    sl_conf_shape_label(precision, s, shape, sizeof shape);
    snprintf(c.plan, sizeof c.plan, "%s %s resumed at step %d on W%d", st->label, shape,
             SL_CONF_STEPS / 2, resume_world);
    c.a = sl_conf_spec(SL_CONF_TOOL_TRAIN, st->flags, NULL, precision, s);
    c.b = c.a;
    c.b.steps = SL_CONF_STEPS / 2;
    snprintf(c.b.extra_flags, sizeof c.b.extra_flags, "--checkpointing_steps %d",
             SL_CONF_STEPS / 2);
    sl_conf_shape r = s; /* the same global batch on the new world: G = W·b·k */
    r.W = resume_world;
    r.b = s.b * s.W / resume_world;
    c.c = sl_conf_spec(SL_CONF_TOOL_TRAIN, st->flags, NULL, precision, r);
    sl_conf_add(bld, &c);
}

/* T3: the engine against the reference on the same plan. */
static void sl_conf_add_impl_vs_ref(sl_conf_builder *bld, const sl_conf_strategy *st,
                                    const char *precision, sl_conf_shape s) {
    if (s.W % st->world_multiple) return;
    sl_conf_case c = sl_conf_case_make(SL_CONF_CASE_TOLERANCE, "T3", "impl_vs_ref", precision);
    char shape[128];
    sl_conf_shape_label(precision, s, shape, sizeof shape);
    snprintf(c.plan, sizeof c.plan, "%s %s", st->label, shape);
    c.a = sl_conf_spec(SL_CONF_TOOL_TRAIN, st->flags, NULL, precision, s);
    c.b = sl_conf_spec(SL_CONF_TOOL_REF, st->flags, NULL, precision, s);
    sl_conf_add(bld, &c);
}

/* T3 / T4: two plans (or two shapes) compared with one tool. */
static void sl_conf_add_pair(sl_conf_builder *bld, sl_conf_case_kind kind, const char *check,
                             const char *label, sl_conf_tool tool, const char *precision,
                             sl_conf_run_spec a, sl_conf_run_spec b) {
    sl_conf_case c =
        sl_conf_case_make(kind, kind == SL_CONF_CASE_DOCUMENTED ? "T4" : "T3", check, precision);
    snprintf(c.plan, sizeof c.plan, "%s", label);
    c.a = a;
    c.b = b;
    c.a.tool = c.b.tool = tool;
    sl_conf_add(bld, &c);
}

/* Plans of one dialect that must agree within the floor: they differ only in the layout, the
 * reduction split (reduce-scatter vs all-reduce, hybrid groups) and where the divide happens
 * (exact in fp32 for a power-of-two W) — reorderings of the floor's kind. DeepSpeed's pairs run
 * without clipping, as the reference's own family test does, so that the one step-dependent
 * nonlinearity does not amplify the reordering. */
static void sl_conf_add_equivalent_pairs(sl_conf_builder *bld, int W) {
    static const char *const pairs[][2] = {
        {"fsdp1 FULL_SHARD", "fsdp1 NO_SHARD"},     {"fsdp1 SHARD_GRAD_OP", "fsdp1 NO_SHARD"},
        {"fsdp1 HYBRID_SHARD", "fsdp1 FULL_SHARD"}, {"fsdp2 reshard", "fsdp2 no-reshard"},
        {"deepspeed zero1", "deepspeed zero0"},     {"deepspeed zero2", "deepspeed zero0"},
        {"deepspeed zero3", "deepspeed zero0"},
    };
    const sl_conf_shape s = {.W = W, .b = 2, .k = 1};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const sl_conf_strategy *x = sl_conf_strategy_find(pairs[i][0]);
        const sl_conf_strategy *y = sl_conf_strategy_find(pairs[i][1]);
        if (W % x->world_multiple || W % y->world_multiple) continue;
        const char *align = strstr(x->flags, "deepspeed") ? "--gradient_clipping 0" : NULL;
        char label[256];
        snprintf(label, sizeof label, "%s vs %s fp32 W%d", x->label, y->label, W);
        sl_conf_add_pair(bld, SL_CONF_CASE_TOLERANCE, "equivalent_pair", label, SL_CONF_TOOL_TRAIN,
                         "fp32", sl_conf_spec(SL_CONF_TOOL_TRAIN, x->flags, align, "fp32", s),
                         sl_conf_spec(SL_CONF_TOOL_TRAIN, y->flags, align, "fp32", s));
    }
}

/* k micro-steps of b against one step of k·b: the same global batch (data.h), regrouped sums.
 * Variable-length documents make the token counts differ per row, which global_tokens weighs
 * correctly. */
static void sl_conf_add_accumulation(sl_conf_builder *bld, const sl_conf_strategy *st, int W,
                                     int k) {
    const sl_conf_shape acc = {.W = W, .b = 1, .k = k, .documents = true};
    const sl_conf_shape big = {.W = W, .b = k, .k = 1, .documents = true};
    char label[256];
    snprintf(label, sizeof label, "%s fp32 W%d: k%d x b1 vs k1 x b%d documents", st->label, W, k,
             k);
    sl_conf_add_pair(bld, SL_CONF_CASE_TOLERANCE, "accumulation", label, SL_CONF_TOOL_TRAIN, "fp32",
                     sl_conf_spec(SL_CONF_TOOL_TRAIN, st->flags, NULL, "fp32", acc),
                     sl_conf_spec(SL_CONF_TOOL_TRAIN, st->flags, NULL, "fp32", big));
}

/* The same global batch of G samples on W ranks of G/W against W = 1. */
static void sl_conf_add_world(sl_conf_builder *bld, const sl_conf_strategy *st, int G, int W) {
    const sl_conf_shape one = {.W = 1, .b = G, .k = 1};
    const sl_conf_shape many = {.W = W, .b = G / W, .k = 1};
    char label[256];
    snprintf(label, sizeof label, "%s fp32 G%d: W%d x b%d vs W1 x b%d", st->label, G, W, G / W, G);
    sl_conf_add_pair(bld, SL_CONF_CASE_TOLERANCE, "world_size", label, SL_CONF_TOOL_TRAIN, "fp32",
                     sl_conf_spec(SL_CONF_TOOL_TRAIN, st->flags, NULL, "fp32", many),
                     sl_conf_spec(SL_CONF_TOOL_TRAIN, st->flags, NULL, "fp32", one));
}

/* T4: the documented non-equivalences (DESIGN.md §4.2, issue "The equivalence report"), with
 * the reference, which is the specification of both sides. */
static void sl_conf_add_documented(sl_conf_builder *bld, int W) {
    const sl_conf_shape s = {.W = W, .b = 2, .k = 1};
    const char *fsdp = "--use_fsdp --fsdp_sharding_strategy FULL_SHARD";
    const char *z3 = "--use_deepspeed --zero_stage 3";
    char label[256];
    /* bf16-load FSDP steps its optimizer in bf16, DeepSpeed bf16 in fp32 (accelerate#2624) */
    snprintf(label, sizeof label, "fsdp1 FULL_SHARD bf16-load vs deepspeed zero3 bf16 W%d", W);
    sl_conf_add_pair(bld, SL_CONF_CASE_DOCUMENTED, "documented", label, SL_CONF_TOOL_REF, "bf16",
                     sl_conf_spec(SL_CONF_TOOL_REF, fsdp, NULL, "bf16-load", s),
                     sl_conf_spec(SL_CONF_TOOL_REF, z3, NULL, "bf16", s));
    /* raw PyTorch FSDP: loaded in bf16, bf16 mixed precision, no fp32 upcast of the sharded
     * params — the optimizer steps bf16 masters, the same gap as above (accelerate#2624) */
    snprintf(label, sizeof label,
             "fsdp1 FULL_SHARD bf16-load bf16 upcast_sharded_params=off vs deepspeed zero3 bf16 "
             "W%d",
             W);
    sl_conf_add_pair(bld, SL_CONF_CASE_DOCUMENTED, "documented", label, SL_CONF_TOOL_REF, "bf16",
                     sl_conf_spec(SL_CONF_TOOL_REF, fsdp,
                                  "--load_dtype bf16 --fsdp_upcast_sharded_params off", "bf16", s),
                     sl_conf_spec(SL_CONF_TOOL_REF, z3, NULL, "bf16", s));
    /* fp32-load + bf16 MP vs DeepSpeed bf16: master rounding, divide, clip, Adam, decay */
    snprintf(label, sizeof label, "fsdp1 FULL_SHARD bf16 vs deepspeed zero3 bf16 W%d", W);
    sl_conf_add_pair(bld, SL_CONF_CASE_DOCUMENTED, "documented", label, SL_CONF_TOOL_REF, "bf16",
                     sl_conf_spec(SL_CONF_TOOL_REF, fsdp, NULL, "bf16", s),
                     sl_conf_spec(SL_CONF_TOOL_REF, z3, NULL, "bf16", s));
    /* per_microbatch_mean weighs the tokens of short documents more than global_tokens */
    const sl_conf_shape mean = {
        .W = W, .b = 1, .k = 4, .per_microbatch_mean = true, .documents = true};
    const sl_conf_shape global = {.W = W, .b = 1, .k = 4, .documents = true};
    snprintf(label, sizeof label,
             "fsdp1 FULL_SHARD fp32 W%d k4 documents: per_microbatch_mean vs "
             "global_tokens",
             W);
    sl_conf_add_pair(bld, SL_CONF_CASE_DOCUMENTED, "documented", label, SL_CONF_TOOL_REF, "fp32",
                     sl_conf_spec(SL_CONF_TOOL_REF, fsdp, NULL, "fp32", mean),
                     sl_conf_spec(SL_CONF_TOOL_REF, fsdp, NULL, "fp32", global));
}

static void sl_conf_build_quick(sl_conf_builder *bld) {
    static const char *const t1[] = {"fsdp1 FULL_SHARD", "fsdp2 reshard", "deepspeed zero2",
                                     "deepspeed zero3"};
    for (size_t i = 0; i < sizeof t1 / sizeof t1[0]; i++)
        sl_conf_add_observe(bld, sl_conf_strategy_find(t1[i]), "bf16", sl_conf_w2);
    sl_conf_add_observe(bld, sl_conf_strategy_find("fsdp1 NO_SHARD"), "fp32", sl_conf_w2);

    sl_conf_add_bitwise(bld, sl_conf_strategy_find("deepspeed zero3"), "bf16", sl_conf_w2);
    const sl_conf_shape w2k2 = {.W = 2, .b = 2, .k = 2};
    sl_conf_add_bitwise(bld, sl_conf_strategy_find("fsdp2 reshard"), "fp32", w2k2);

    sl_conf_add_resume(bld, sl_conf_strategy_find("fsdp1 FULL_SHARD"), "bf16", sl_conf_w2, 2);
    sl_conf_add_resume(bld, sl_conf_strategy_find("deepspeed zero3"), "fp32", sl_conf_w2, 1);

    static const char *const t3[] = {"fsdp1 FULL_SHARD", "fsdp1 NO_SHARD", "fsdp2 reshard",
                                     "deepspeed zero1", "deepspeed zero3"};
    for (size_t i = 0; i < sizeof t3 / sizeof t3[0]; i++) {
        sl_conf_add_impl_vs_ref(bld, sl_conf_strategy_find(t3[i]), "fp32", sl_conf_w2);
        sl_conf_add_impl_vs_ref(bld, sl_conf_strategy_find(t3[i]), "bf16", sl_conf_w2);
    }
    const sl_conf_shape overflow = {.W = 2, .b = 2, .k = 1, .overflow = true};
    sl_conf_add_impl_vs_ref(bld, sl_conf_strategy_find("deepspeed zero2"), "fp16", overflow);
    sl_conf_add_impl_vs_ref(bld, sl_conf_strategy_find("fsdp1 SHARD_GRAD_OP"), "fp16", sl_conf_w2);
    const sl_conf_shape w1 = {.W = 1, .b = 2, .k = 1};
    sl_conf_add_impl_vs_ref(bld, sl_conf_strategy_find("fsdp1 FULL_SHARD"), "fp32", w1);
    const sl_conf_shape w4 = {.W = 4, .b = 2, .k = 1};
    sl_conf_add_impl_vs_ref(bld, sl_conf_strategy_find("fsdp1 HYBRID_SHARD"), "fp32", w4);

    sl_conf_add_equivalent_pairs(bld, 2);
    sl_conf_add_accumulation(bld, sl_conf_strategy_find("fsdp1 FULL_SHARD"), 2, 4);
    sl_conf_add_world(bld, sl_conf_strategy_find("fsdp1 FULL_SHARD"), 4, 2);
    sl_conf_add_world(bld, sl_conf_strategy_find("fsdp1 FULL_SHARD"), 4, 4);
    sl_conf_add_documented(bld, 2);
}

/* Issue 6's matrix: every dialect × strategy × precision × W 1..4 × accumulation {1, 4} × both
 * loss normalisations (identical at k = 1, so only with k = 4), hybrid sharding where W is even. */
static void sl_conf_build_full(sl_conf_builder *bld) {
    for (int i = 0; i < SL_CONF_N_STRATEGIES; i++) {
        for (int p = 0; p < 4; p++) {
            for (int W = 1; W <= 4; W++) {
                const sl_conf_shape shapes[] = {
                    {.W = W, .b = 2, .k = 1},
                    {.W = W, .b = 1, .k = 4},
                    {.W = W, .b = 1, .k = 4, .per_microbatch_mean = true},
                };
                for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                    sl_conf_add_impl_vs_ref(bld, &sl_conf_strategies[i], sl_conf_precisions[p],
                                            shapes[s]);
            }
            const sl_conf_shape w4k4 = {.W = 4, .b = 1, .k = 4};
            sl_conf_add_observe(bld, &sl_conf_strategies[i], sl_conf_precisions[p], w4k4);
            const sl_conf_shape w3 = {.W = 3, .b = 2, .k = 1};
            if (3 % sl_conf_strategies[i].world_multiple == 0)
                sl_conf_add_observe(bld, &sl_conf_strategies[i], sl_conf_precisions[p], w3);
        }
        const sl_conf_shape w4 = {.W = 4, .b = 2, .k = 1};
        sl_conf_add_bitwise(bld, &sl_conf_strategies[i], "bf16", w4);
        sl_conf_add_resume(bld, &sl_conf_strategies[i], "bf16", w4, 4);
        if (sl_conf_strategies[i].world_multiple == 1)
            sl_conf_add_resume(bld, &sl_conf_strategies[i], "fp32", w4, 2);
    }
    const sl_conf_shape overflow = {.W = 4, .b = 2, .k = 1, .overflow = true};
    for (int i = 0; i < SL_CONF_N_STRATEGIES; i++) { /* DeepSpeed's scalers on overflowing runs */
        if (strstr(sl_conf_strategies[i].flags, "--use_deepspeed"))
            sl_conf_add_impl_vs_ref(bld, &sl_conf_strategies[i], "fp16", overflow);
    }
    sl_conf_add_equivalent_pairs(bld, 2);
    sl_conf_add_equivalent_pairs(bld, 4);
    for (int i = 0; i < SL_CONF_N_STRATEGIES; i++) {
        if (sl_conf_strategies[i].world_multiple == 1)
            sl_conf_add_accumulation(bld, &sl_conf_strategies[i], 2, 4);
    }
    sl_conf_add_world(bld, sl_conf_strategy_find("fsdp1 FULL_SHARD"), 4, 2);
    sl_conf_add_world(bld, sl_conf_strategy_find("fsdp1 FULL_SHARD"), 4, 4);
    sl_conf_add_world(bld, sl_conf_strategy_find("deepspeed zero3"), 4, 2);
    sl_conf_add_world(bld, sl_conf_strategy_find("deepspeed zero3"), 4, 4);
    sl_conf_add_world(bld, sl_conf_strategy_find("fsdp2 reshard"), 4, 4);
    sl_conf_add_documented(bld, 2);
    sl_conf_add_documented(bld, 4);
}

sl_status sl_conf_matrix_build(sl_conf_tier tier, const char *filter, sl_conf_matrix *out) {
    memset(out, 0, sizeof *out);
    sl_conf_builder bld = {.m = out, .filter = filter, .status = SL_OK};
    if (tier == SL_CONF_TIER_FULL) {
        sl_conf_build_full(&bld);
    } else {
        sl_conf_build_quick(&bld);
    }
    if (bld.status != SL_OK) sl_conf_matrix_free(out);
    return bld.status;
}

void sl_conf_matrix_free(sl_conf_matrix *m) {
    free(m->cases);
    memset(m, 0, sizeof *m);
}
