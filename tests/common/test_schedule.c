/* The collective schedule of one optimizer step and the memory prediction (DESIGN.md §5-§6, the
 * rules in plan.h), on gpt-tiny: root unit (wte 16384 + wpe 4096 + ln_f 128) = 20608 elements,
 * each block 49984, 120576 in all; every gpt-tiny tensor divides by 4, so W = 4 pads nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "plan_fixture.h"

#define AG SL_COLL_ALL_GATHER
#define RS SL_COLL_REDUCE_SCATTER
#define AR SL_COLL_ALL_REDUCE
#define FWD SL_PHASE_FORWARD
#define BWD SL_PHASE_BACKWARD
#define STEP SL_PHASE_STEP

static void expect_schedule(const sl_plan *plan, const sl_collective_record *want, int n) {
    const sl_observation *o = &plan->predicted;
    for (int i = 0; i < n && i < o->n_collectives; i++) {
        const sl_collective_record *g = &o->collectives[i], *w = &want[i];
        if (g->op != w->op || g->group != w->group || g->group_size != w->group_size ||
            g->phase != w->phase || g->micro_step != w->micro_step || g->unit != w->unit ||
            g->dtype != w->dtype || g->elements != w->elements ||
            g->bytes_sent_per_rank != w->bytes_sent_per_rank) {
            fail_msg("collective %d: %s %s/%d %s m%d unit %d %s %lld el %lld B; expected %s %s/%d "
                     "%s m%d unit %d %s %lld el %lld B",
                     i, sl_coll_op_name(g->op), sl_coll_group_name(g->group), g->group_size,
                     sl_phase_name(g->phase), g->micro_step, g->unit, sl_dtype_name(g->dtype),
                     (long long)g->elements, (long long)g->bytes_sent_per_rank,
                     sl_coll_op_name(w->op), sl_coll_group_name(w->group), w->group_size,
                     sl_phase_name(w->phase), w->micro_step, w->unit, sl_dtype_name(w->dtype),
                     (long long)w->elements, (long long)w->bytes_sent_per_rank);
        }
    }
    assert_int_equal(o->n_collectives, n);
}

#define R(op_, grp_, n_, ph_, m_, u_, dt_, el_, by_)                                               \
    {                                                                                              \
        .op = op_, .group = SL_GROUP_##grp_, .group_size = n_, .phase = ph_, .micro_step = m_,     \
        .unit = u_, .dtype = SL_DTYPE_##dt_, .elements = el_, .bytes_sent_per_rank = by_           \
    }

/* nccl-tests ring volumes: (n-1)/n of the buffer for all-gather and reduce-scatter, 2(n-1)/n
 * for all-reduce, the whole buffer from a broadcast root; nothing over one rank. */
static void test_bytes_sent_follow_ring_formulas(void **state) {
    (void)state;
    assert_int_equal(sl_collective_bytes_sent(AG, 4, 1000, SL_DTYPE_BF16), 1500);
    assert_int_equal(sl_collective_bytes_sent(RS, 4, 1000, SL_DTYPE_BF16), 1500);
    assert_int_equal(sl_collective_bytes_sent(AR, 4, 1000, SL_DTYPE_BF16), 3000);
    assert_int_equal(sl_collective_bytes_sent(SL_COLL_BROADCAST, 4, 1000, SL_DTYPE_BF16), 2000);
    assert_int_equal(sl_collective_bytes_sent(AR, 1, 1000, SL_DTYPE_F32), 0);
    assert_int_equal(sl_collective_bytes_sent(AR, 3, 10, SL_DTYPE_F32), 53); /* 160/3, floored */
}

/* FSDP1 FULL_SHARD: gather every unit forward; backward re-gathers all but the root (torch's
 * _post_forward_reshard keeps it) and reduce-scatters root last; one f32 norm all-reduce. */
static void test_fsdp1_full_shard_w4(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_fsdp --mixed_precision bf16 --num_processes 4");
    const sl_collective_record want[] = {
        R(AG, SHARD, 4, FWD, 0, 0, BF16, 20608, 30912),
        R(AG, SHARD, 4, FWD, 0, 1, BF16, 49984, 74976),
        R(AG, SHARD, 4, FWD, 0, 2, BF16, 49984, 74976),
        R(AG, SHARD, 4, BWD, 0, 2, BF16, 49984, 74976),
        R(RS, SHARD, 4, BWD, 0, 2, BF16, 49984, 74976),
        R(AG, SHARD, 4, BWD, 0, 1, BF16, 49984, 74976),
        R(RS, SHARD, 4, BWD, 0, 1, BF16, 49984, 74976),
        R(RS, SHARD, 4, BWD, 0, 0, BF16, 20608, 30912),
        R(AR, SHARD, 4, STEP, 0, -1, F32, 1, 6),
    };
    expect_schedule(fx.plan, want, 9);
    fixture_free(&fx);
}

/* With backward prefetch the next unit's all-gather goes out before the current reduction. */
static void test_backward_prefetch_reorders_gathers(void **state) {
    (void)state;
    const char *flags[] = {"--use_fsdp --num_processes 4 --fsdp_backward_prefetch BACKWARD_PRE",
                           "--use_fsdp --num_processes 4 --fsdp_backward_prefetch BACKWARD_POST",
                           "--use_fsdp --fsdp_version 2 --num_processes 4"};
    for (int i = 0; i < 3; i++) {
        fixture fx = fixture_compile(flags[i]);
        const sl_collective_record want[] = {
            R(AG, SHARD, 4, FWD, 0, 0, F32, 20608, 61824),
            R(AG, SHARD, 4, FWD, 0, 1, F32, 49984, 149952),
            R(AG, SHARD, 4, FWD, 0, 2, F32, 49984, 149952),
            R(AG, SHARD, 4, BWD, 0, 2, F32, 49984, 149952),
            R(AG, SHARD, 4, BWD, 0, 1, F32, 49984, 149952),
            R(RS, SHARD, 4, BWD, 0, 2, F32, 49984, 149952),
            R(RS, SHARD, 4, BWD, 0, 1, F32, 49984, 149952),
            R(RS, SHARD, 4, BWD, 0, 0, F32, 20608, 61824),
            R(AR, SHARD, 4, STEP, 0, -1, F32, 1, 6),
        };
        expect_schedule(fx.plan, want, 9);
        fixture_free(&fx);
    }
}

/* FSDP1 SHARD_GRAD_OP keeps params gathered through no_sync backwards: gathers in micro-step 0
 * only, reduce-scatters at the sync micro-step only. */
static void test_fsdp1_shard_grad_op_accumulation_gathers_once(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_fsdp --fsdp_sharding_strategy SHARD_GRAD_OP "
                                 "--num_processes 4 --gradient_accumulation_steps 2");
    const sl_collective_record want[] = {
        R(AG, SHARD, 4, FWD, 0, 0, F32, 20608, 61824),
        R(AG, SHARD, 4, FWD, 0, 1, F32, 49984, 149952),
        R(AG, SHARD, 4, FWD, 0, 2, F32, 49984, 149952),
        R(RS, SHARD, 4, BWD, 1, 2, F32, 49984, 149952),
        R(RS, SHARD, 4, BWD, 1, 1, F32, 49984, 149952),
        R(RS, SHARD, 4, BWD, 1, 0, F32, 20608, 61824),
        R(AR, SHARD, 4, STEP, 1, -1, F32, 1, 6),
    };
    expect_schedule(fx.plan, want, 7);
    fixture_free(&fx);
}

/* FSDP2 reshards after every backward, also without gradient sync: forward gathers each
 * micro-step. */
static void test_fsdp2_shard_grad_op_gathers_every_micro_step(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_fsdp --fsdp_version 2 --fsdp_reshard_after_forward false "
                                 "--num_processes 4 --gradient_accumulation_steps 2");
    const sl_observation *o = &fx.plan->predicted;
    int gathers[2] = {0, 0}, reductions[2] = {0, 0};
    for (int i = 0; i < o->n_collectives; i++) {
        const sl_collective_record *c = &o->collectives[i];
        if (c->op == AG) gathers[c->micro_step] += c->phase == FWD;
        if (c->op == RS) reductions[c->micro_step]++;
        assert_false(c->op == AG && c->phase == BWD);
    }
    assert_int_equal(gathers[0], 3);
    assert_int_equal(gathers[1], 3);
    assert_int_equal(reductions[0], 0);
    assert_int_equal(reductions[1], 3);
    fixture_free(&fx);
}

/* DDP: one all-reduce per unit in backward order at the sync micro-step, in the master dtype. */
static void test_ddp_all_reduces_at_the_sync_micro_step(void **state) {
    (void)state;
    fixture fx = fixture_compile("--num_processes 2 --gradient_accumulation_steps 2 "
                                 "--mixed_precision bf16");
    const sl_collective_record want[] = {
        R(AR, WORLD, 2, BWD, 1, 2, F32, 49984, 199936),
        R(AR, WORLD, 2, BWD, 1, 1, F32, 49984, 199936),
        R(AR, WORLD, 2, BWD, 1, 0, F32, 20608, 82432),
    };
    expect_schedule(fx.plan, want, 3);
    fixture_free(&fx);
}

/* ZeRO-1: all gradients all-reduced once at the boundary, then the updated partitions
 * all-gathered; ZeRO-2 reduces every micro-step. */
static void test_zero1_and_zero2_all_reduce_then_gather_params(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_deepspeed --zero_stage 1 --mixed_precision bf16 "
                                 "--num_processes 4 --gradient_accumulation_steps 2");
    const sl_collective_record z1[] = {
        R(AR, WORLD, 4, BWD, 1, -1, BF16, 120576, 361728),
        R(AR, SHARD, 4, STEP, 1, -1, F32, 1, 6),
        R(AG, SHARD, 4, STEP, 1, -1, BF16, 120576, 180864),
    };
    expect_schedule(fx.plan, z1, 3);
    fixture_free(&fx);
    fx = fixture_compile("--use_deepspeed --zero_stage 2 --mixed_precision bf16 "
                         "--num_processes 4 --gradient_accumulation_steps 2");
    const sl_collective_record z2[] = {
        R(AR, WORLD, 4, BWD, 0, -1, BF16, 120576, 361728),
        R(AR, WORLD, 4, BWD, 1, -1, BF16, 120576, 361728),
        R(AR, SHARD, 4, STEP, 1, -1, F32, 1, 6),
        R(AG, SHARD, 4, STEP, 1, -1, BF16, 120576, 180864),
    };
    expect_schedule(fx.plan, z2, 4);
    fixture_free(&fx);
}

/* ZeRO-3 (threshold 100): ln weights/biases and the 64-element projection biases persist
 * (6·64 per block + 128 for ln_f = 896 elements), so the root gathers wte + wpe = 20480 and a
 * block 49984 - 384 = 49600; one reduce-scatter per parameter, the unit's last first; fp16 adds
 * the overflow all-reduce; persistent params are re-gathered after the step. */
static void test_zero3_schedule(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_deepspeed --zero_stage 3 --mixed_precision fp16 "
                                 "--num_processes 4 --stage3_param_persistence_threshold 100");
    const sl_observation *o = &fx.plan->predicted;
    assert_int_equal(o->n_collectives, 3 + 2 + 28 + 3);
    const sl_collective_record head[] = {
        R(AG, SHARD, 4, FWD, 0, 0, F16, 20480, 30720),
        R(AG, SHARD, 4, FWD, 0, 1, F16, 49600, 74400),
        R(AG, SHARD, 4, FWD, 0, 2, F16, 49600, 74400),
        R(AG, SHARD, 4, BWD, 0, 2, F16, 49600, 74400),
        R(RS, SHARD, 4, BWD, 0, 2, F16, 64, 96), /* transformer.h.1.mlp.c_proj.bias */
        R(RS, SHARD, 4, BWD, 0, 2, F16, 16384, 24576),
    };
    for (int i = 0; i < 6; i++) {
        const sl_collective_record *g = &o->collectives[i];
        assert_int_equal(g->op, head[i].op);
        assert_int_equal(g->phase, head[i].phase);
        assert_int_equal(g->unit, head[i].unit);
        assert_int_equal(g->elements, head[i].elements);
        assert_int_equal(g->bytes_sent_per_rank, head[i].bytes_sent_per_rank);
    }
    const sl_collective_record tail[] = {
        R(AR, SHARD, 4, STEP, 0, -1, F32, 1, 6),
        R(AR, SHARD, 4, STEP, 0, -1, F32, 1, 6),
        R(AG, SHARD, 4, STEP, 0, -1, F16, 896, 1344),
    };
    for (int i = 0; i < 3; i++) {
        const sl_collective_record *g = &o->collectives[o->n_collectives - 3 + i];
        assert_int_equal(g->op, tail[i].op);
        assert_int_equal(g->phase, STEP);
        assert_int_equal(g->dtype, tail[i].dtype);
        assert_int_equal(g->elements, tail[i].elements);
    }
    fixture_free(&fx);
}

/* HYBRID_SHARD, W = 8 on 2 machines: reduce-scatter over the 4 ranks of a machine, then the shard
 * all-reduced across the 2 replicas (49984 / 4 = 12496, 20608 / 4 = 5152). */
static void test_hybrid_reduce_scatter_then_replica_all_reduce(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_fsdp --fsdp_sharding_strategy HYBRID_SHARD "
                                 "--mixed_precision bf16 --num_processes 8 --num_machines 2");
    const sl_collective_record want[] = {
        R(AG, SHARD, 4, FWD, 0, 0, BF16, 20608, 30912),
        R(AG, SHARD, 4, FWD, 0, 1, BF16, 49984, 74976),
        R(AG, SHARD, 4, FWD, 0, 2, BF16, 49984, 74976),
        R(AG, SHARD, 4, BWD, 0, 2, BF16, 49984, 74976),
        R(RS, SHARD, 4, BWD, 0, 2, BF16, 49984, 74976),
        R(AR, REPLICA, 2, BWD, 0, 2, BF16, 12496, 24992),
        R(AG, SHARD, 4, BWD, 0, 1, BF16, 49984, 74976),
        R(RS, SHARD, 4, BWD, 0, 1, BF16, 49984, 74976),
        R(AR, REPLICA, 2, BWD, 0, 1, BF16, 12496, 24992),
        R(RS, SHARD, 4, BWD, 0, 0, BF16, 20608, 30912),
        R(AR, REPLICA, 2, BWD, 0, 0, BF16, 5152, 10304),
        R(AR, SHARD, 4, STEP, 0, -1, F32, 1, 6),
    };
    expect_schedule(fx.plan, want, 12);
    fixture_free(&fx);
}

static void test_single_rank_issues_no_collectives(void **state) {
    (void)state;
    const char *flags[] = {"", "--use_fsdp", "--use_fsdp --fsdp_version 2 --mixed_precision fp16",
                           "--use_deepspeed --zero_stage 1", "--use_deepspeed --zero_stage 3"};
    for (int i = 0; i < 5; i++) {
        fixture fx = fixture_compile(flags[i]);
        assert_int_equal(fx.plan->predicted.n_collectives, 0);
        assert_int_equal(fx.plan->predicted.memory[0].peak[SL_SPACE_DEVICE][SL_MEM_COMM_BUFFERS],
                         0);
        fixture_free(&fx);
    }
}

static int64_t step_bytes_without_scalars(const sl_plan *plan) {
    int64_t total = 0;
    for (int i = 0; i < plan->predicted.n_collectives; i++) {
        const sl_collective_record *c = &plan->predicted.collectives[i];
        if (!(c->phase == STEP && c->elements == 1)) total += c->bytes_sent_per_rank;
    }
    return total;
}

/* ZeRO paper §7: stage 3 moves 3Ψ (gather forward, gather backward, reduce-scatter) against the
 * 2Ψ of stage 0's all-reduce: 1.5×. It holds where nothing is padded or persistent and the
 * dtypes agree (W = 4, threshold 0, bf16), with one correction: like FULL_SHARD the root unit is
 * not re-gathered in backward (DESIGN.md §5), so ZeRO-3 + root gather = 1.5 × ZeRO-0.
 * DeepSpeed's ZeRO-1/2 all-reduce gradients (not reduce-scatter) and all-gather params, so they
 * move 3Ψ as well: ZeRO-2 = ZeRO-3 + root gather. */
static void test_zero3_moves_one_and_a_half_times_zero0(void **state) {
    (void)state;
    fixture z0 = fixture_compile("--use_deepspeed --zero_stage 0 --mixed_precision bf16 "
                                 "--num_processes 4");
    fixture z2 = fixture_compile("--use_deepspeed --zero_stage 2 --mixed_precision bf16 "
                                 "--num_processes 4");
    fixture z3 = fixture_compile("--use_deepspeed --zero_stage 3 --mixed_precision bf16 "
                                 "--num_processes 4 --stage3_param_persistence_threshold 0");
    const int64_t root_gather = sl_collective_bytes_sent(AG, 4, 20608, SL_DTYPE_BF16);
    const int64_t b0 = step_bytes_without_scalars(z0.plan);
    const int64_t b2 = step_bytes_without_scalars(z2.plan);
    const int64_t b3 = step_bytes_without_scalars(z3.plan);
    assert_int_equal(b0, 361728); /* 2·(3/4)·120576·2 bytes */
    assert_int_equal(2 * (b3 + root_gather), 3 * b0);
    assert_int_equal(b2, b3 + root_gather);
    fixture_free(&z0);
    fixture_free(&z2);
    fixture_free(&z3);
}

/* ------------------------------------------------------------------ memory */

static void expect_peaks(const sl_plan *plan, const int64_t device[SL_MEM_CATEGORY_COUNT],
                         const int64_t host[SL_MEM_CATEGORY_COUNT]) {
    for (int r = 0; r < plan->world_size; r++) {
        const sl_mem_usage *m = &plan->predicted.memory[r];
        for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++) {
            if (m->peak[SL_SPACE_DEVICE][c] != device[c] || m->peak[SL_SPACE_HOST][c] != host[c]) {
                fail_msg("rank %d %s: device %lld host %lld, expected %lld / %lld", r,
                         sl_mem_category_name((sl_mem_category)c),
                         (long long)m->peak[SL_SPACE_DEVICE][c],
                         (long long)m->peak[SL_SPACE_HOST][c], (long long)device[c],
                         (long long)host[c]);
            }
        }
    }
}

/* gpt-tiny's kept activations (model.h, sl_gpt2_buf) for a (b, t) micro-batch in a `size`-byte
 * dtype, counted here independently of common/gpt2_memory.c: (B,T,C) tensors — encoded, lnf, and
 * per layer ln1, atty, residual2, ln2, residual3, qkv (3), fch and fch_gelu (4 each) — the
 * (B,H,T,T) att per layer and the (B,T,V) logits, in the activation dtype; per layer the two
 * LayerNorms' mean and rstd, then ln_f's and the classifier's two numbers per row, in f32. Every
 * buffer here is a multiple of 64 bytes, so the alignment adds nothing. */
static int64_t tiny_activations(int b, int t, int64_t size) {
    const int64_t L = 2, C = 64, H = 4, V = 256, BT = (int64_t)b * t;
    return size * (BT * C * (2 + 16 * L) + L * b * H * t * t + BT * V) + 4 * (4 * L * BT + 4 * BT);
}

/* The one-layer scratch: 13 (B,T,C) tensors — proj, dresidual, dresidual2, dln, dx, datty, dqkv
 * (3), dfch (4) — in the activation dtype. */
static int64_t tiny_scratch(int b, int t, int64_t size) {
    return 13 * (int64_t)b * t * 64 * size;
}

/* FSDP1 FULL_SHARD, W = 4, fp32 masters, bf16 compute. Owned: 5152 + 2·12496 = 30144 elements.
 * master 30144·4; gathered root + largest block (20608 + 49984)·2; reduced shard 30144·4;
 * unsharded grads: the root's, alive through the whole backward, plus one block's
 * (20608 + 49984)·2; Adam 2·30144·4; comm: the largest reduce-scatter input 49984·2; workspace:
 * the one-layer scratch (one buffer per unit: no gather map). With k = 2, no_sync holds the bf16
 * accumulator of every unit's grad, 120576·2, beside one micro-step's root and block grads. */
static void test_memory_fsdp1_full_shard(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_fsdp --mixed_precision bf16 --num_processes 4");
    const int64_t none[SL_MEM_CATEGORY_COUNT] = {0};
    int64_t dev[SL_MEM_CATEGORY_COUNT] = {120576, 141184,
                                          120576, 141184,
                                          241152, tiny_activations(4, 64, 2),
                                          99968,  tiny_scratch(4, 64, 2)};
    expect_peaks(fx.plan, dev, none);
    fixture_free(&fx);
    fx = fixture_compile("--use_fsdp --mixed_precision bf16 --num_processes 4 "
                         "--gradient_accumulation_steps 2 --micro_batch_size 2 --seq_len 16");
    dev[SL_MEM_GRADS_UNSHARDED] = 241152 + 141184;
    dev[SL_MEM_ACTIVATIONS] = tiny_activations(2, 16, 2);
    dev[SL_MEM_WORKSPACE] = tiny_scratch(2, 16, 2);
    expect_peaks(fx.plan, dev, none);
    fixture_free(&fx);
}

/* ZeRO-2, W = 4, bf16, optimizer offload: the fp32 master partition, the bf16 reduced-gradient
 * partition and Adam live on the host; every rank keeps full bf16 params and a full bf16
 * gradient bucket on the device; comm: the 120576-element bf16 all-reduce. */
static void test_memory_zero2_with_optimizer_offload(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_deepspeed --zero_stage 2 --mixed_precision bf16 "
                                 "--num_processes 4 --offload_optimizer_device cpu");
    const int64_t dev[SL_MEM_CATEGORY_COUNT] = {
        0, 241152, 0, 241152, 0, tiny_activations(4, 64, 2), 241152, tiny_scratch(4, 64, 2)};
    const int64_t host[SL_MEM_CATEGORY_COUNT] = {120576, 0, 60288, 0, 241152, 0, 0, 0};
    expect_peaks(fx.plan, dev, host);
    fixture_free(&fx);
}

/* ZeRO-3 (threshold 100, fp16): gathered = root 20480 + block 49600 + persistent 896, ·2; the
 * reduced shard accumulates in fp16 (30144·2); unsharded grads: the root's params padded to a
 * multiple of 4 (16384 + 4096 + 64 + 64) plus one block's 49984, ·2; comm: the largest
 * per-param reduce-scatter, 16384·2; workspace: the scratch plus the map of a block's gather,
 * one bit per element, 49600 / 8. */
static void test_memory_zero3(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_deepspeed --zero_stage 3 --mixed_precision fp16 "
                                 "--num_processes 4 --stage3_param_persistence_threshold 100");
    const int64_t none[SL_MEM_CATEGORY_COUNT] = {0};
    const int64_t dev[SL_MEM_CATEGORY_COUNT] = {120576, 141952,
                                                60288,  141184,
                                                241152, tiny_activations(4, 64, 2),
                                                32768,  tiny_scratch(4, 64, 2) + 49600 / 8};
    expect_peaks(fx.plan, dev, none);
    fixture_free(&fx);
}

/* DDP, W = 2, fp32: everything full size; no separate compute copy; comm: a block's all-reduce
 * 49984·4. FSDP1 NO_SHARD with bf16 compute adds the bf16 copy 120576·2. */
static void test_memory_replicated(void **state) {
    (void)state;
    fixture fx = fixture_compile("--num_processes 2");
    const int64_t none[SL_MEM_CATEGORY_COUNT] = {0};
    int64_t dev[SL_MEM_CATEGORY_COUNT] = {482304, 0,
                                          482304, 482304,
                                          964608, tiny_activations(4, 64, 4),
                                          199936, tiny_scratch(4, 64, 4)};
    expect_peaks(fx.plan, dev, none);
    fixture_free(&fx);
    fx = fixture_compile("--use_fsdp --fsdp_sharding_strategy NO_SHARD --mixed_precision bf16 "
                         "--num_processes 2");
    dev[SL_MEM_PARAMS_GATHERED] = 241152;
    dev[SL_MEM_GRADS_UNSHARDED] = 241152; /* accumulated in bf16 */
    dev[SL_MEM_ACTIVATIONS] = tiny_activations(4, 64, 2);
    dev[SL_MEM_COMM_BUFFERS] = 99968;
    dev[SL_MEM_WORKSPACE] = tiny_scratch(4, 64, 2);
    expect_peaks(fx.plan, dev, none);
    fixture_free(&fx);
}

/* Backward prefetch gathers the next block while the current one is still gathered: root plus
 * two blocks, (20608 + 2·49984)·4 in fp32. FSDP2 always prefetches; FSDP1 only when asked. */
static void test_memory_backward_prefetch_holds_two_units(void **state) {
    (void)state;
    const char *flags[] = {"--use_fsdp --fsdp_version 2 --num_processes 4",
                           "--use_fsdp --num_processes 4 --fsdp_backward_prefetch BACKWARD_PRE",
                           "--use_fsdp --num_processes 4"};
    const int64_t expected[] = {(20608 + 2 * 49984) * 4, (20608 + 2 * 49984) * 4,
                                (20608 + 49984) * 4};
    for (int i = 0; i < 3; i++) {
        fixture fx = fixture_compile(flags[i]);
        assert_int_equal(fx.plan->predicted.memory[0].peak[SL_SPACE_DEVICE][SL_MEM_PARAMS_GATHERED],
                         expected[i]);
        fixture_free(&fx);
    }
}

/* FSDP CPU offload moves the parameter shard, the reduced gradients and Adam to the host. */
static void test_memory_fsdp_offload_moves_shards_to_host(void **state) {
    (void)state;
    fixture fx = fixture_compile("--use_fsdp --num_processes 4 --fsdp_offload_params");
    const sl_mem_usage *m = &fx.plan->predicted.memory[3];
    assert_int_equal(m->peak[SL_SPACE_HOST][SL_MEM_PARAMS_MASTER], 120576);
    assert_int_equal(m->peak[SL_SPACE_HOST][SL_MEM_GRADS_SHARDED], 120576);
    assert_int_equal(m->peak[SL_SPACE_HOST][SL_MEM_OPTIM_STATES], 241152);
    assert_int_equal(m->peak[SL_SPACE_DEVICE][SL_MEM_PARAMS_MASTER], 0);
    assert_int_equal(m->peak[SL_SPACE_DEVICE][SL_MEM_PARAMS_GATHERED], (20608 + 49984) * 4);
    fixture_free(&fx);
}

/* ZeRO-3 on gpt-small: per rank, the sharded model states (fp32 masters, reduced gradients,
 * Adam moments) fall as 1/W — W · peak(W) exceeds peak(1) only by the padding of each parameter
 * to a multiple of W, at most W - 1 elements per parameter — while what every rank holds whole
 * (activations, workspace) does not change with W. */
static void test_memory_zero3_sharded_states_fall_as_one_over_w_gpt_small(void **state) {
    (void)state;
    const sl_mem_category sharded[] = {SL_MEM_PARAMS_MASTER, SL_MEM_GRADS_SHARDED,
                                       SL_MEM_OPTIM_STATES};
    int64_t at1[SL_MEM_CATEGORY_COUNT] = {0};
    for (int w = 1; w <= 4; w *= 2) {
        char flags[256];
        snprintf(flags, sizeof flags,
                 "--use_deepspeed --zero_stage 3 --mixed_precision bf16 --num_processes %d "
                 "--micro_batch_size 2 --seq_len 16",
                 w);
        fixture fx = {.model = fixture_model("gpt-small")};
        sl_config *cfg = fixture_config(flags);
        assert_int_equal(sl_plan_compile(cfg, fx.model, &fx.plan), SL_OK);
        sl_config_destroy(cfg);
        const int64_t *peak = fx.plan->predicted.memory[w - 1].peak[SL_SPACE_DEVICE];
        if (w == 1) memcpy(at1, peak, sizeof at1);
        for (size_t i = 0; i < sizeof sharded / sizeof *sharded; i++) {
            const sl_mem_category c = sharded[i];
            /* bytes per element of the category: its W = 1 peak over the model's numel */
            const int64_t size = at1[c] / fx.model->total_numel;
            const int64_t slack = (int64_t)(w - 1) * fx.model->n_params * size;
            if (w * peak[c] < at1[c] || w * peak[c] > at1[c] + slack) {
                fail_msg("W = %d %s: %lld bytes per rank; expected %lld / W plus at most %lld of "
                         "padding",
                         w, sl_mem_category_name(c), (long long)peak[c], (long long)at1[c],
                         (long long)slack / w);
            }
        }
        assert_int_equal(peak[SL_MEM_ACTIVATIONS], at1[SL_MEM_ACTIVATIONS]);
        fixture_free(&fx);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_sent_follow_ring_formulas),
        cmocka_unit_test(test_fsdp1_full_shard_w4),
        cmocka_unit_test(test_backward_prefetch_reorders_gathers),
        cmocka_unit_test(test_fsdp1_shard_grad_op_accumulation_gathers_once),
        cmocka_unit_test(test_fsdp2_shard_grad_op_gathers_every_micro_step),
        cmocka_unit_test(test_ddp_all_reduces_at_the_sync_micro_step),
        cmocka_unit_test(test_zero1_and_zero2_all_reduce_then_gather_params),
        cmocka_unit_test(test_zero3_schedule),
        cmocka_unit_test(test_hybrid_reduce_scatter_then_replica_all_reduce),
        cmocka_unit_test(test_single_rank_issues_no_collectives),
        cmocka_unit_test(test_zero3_moves_one_and_a_half_times_zero0),
        cmocka_unit_test(test_memory_fsdp1_full_shard),
        cmocka_unit_test(test_memory_zero2_with_optimizer_offload),
        cmocka_unit_test(test_memory_zero3),
        cmocka_unit_test(test_memory_replicated),
        cmocka_unit_test(test_memory_backward_prefetch_holds_two_units),
        cmocka_unit_test(test_memory_fsdp_offload_moves_shards_to_host),
        cmocka_unit_test(test_memory_zero3_sharded_states_fall_as_one_over_w_gpt_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
