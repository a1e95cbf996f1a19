/* The FSDP-vs-DeepSpeed equivalence report (reports/equivalence.md, issue 6): for every pair of
 * strategies Accelerate's documentation maps onto each other — FULL_SHARD ↔ ZeRO-3,
 * SHARD_GRAD_OP ↔ ZeRO-2, NO_SHARD ↔ ZeRO-0, HYBRID_SHARD ↔ ZeRO-3 with ZeRO++ hierarchical
 * partitioning (zero_hpz_partition_size = ranks per machine) — under each precision (fp32, bf16
 * mixed precision from fp32 weights, fp16 with loss scaling, and FSDP loading bf16 without mixed
 * precision against DeepSpeed bf16): equivalent within the noise floor or not, and if not, how far
 * they drift and which plan fields cause it (compare_ablate.h). Then the documented facts
 * (DESIGN.md §4.2): Accelerate issue #2624 and upcast_sharded_params, the small rules between
 * FSDP fp32 + bf16 MP and DeepSpeed bf16, accumulation over variable-length sequences, and fp16
 * skipped steps of the engine against the reference. */
#ifndef SHARDLAB_CONFORMANCE_EQUIVALENCE_H
#define SHARDLAB_CONFORMANCE_EQUIVALENCE_H

#include <stdbool.h>

#include "shardlab/status.h"

typedef struct sl_equiv_opts {
    const char *dir; /* where equivalence.md and its plots go (must exist) */
    int steps;       /* optimizer steps per run */
    bool with_impl;  /* fact 4 runs the engine through `shardlab launch` (the runner) */
    bool plots;      /* run gnuplot on the scripts (when it is installed) */
} sl_equiv_opts;

/* Runs everything and writes dir/equivalence.md and dir/equiv-*.{dat,gp,png}. */
sl_status sl_equiv_report(const sl_equiv_opts *o);

/* The run shape every equivalence run shares (gpt-tiny, W = 4, ...), as plan flags. */
extern const char *const sl_equiv_run_flags;

#endif
