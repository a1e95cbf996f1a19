/* The plan variants whose observation must equal the plan's prediction, for the reference's test
 * (tests/ref/test_ref_observation.c) and the engine's (tests/engine/engine_worker.c) alike. */
#include "tests/support/support.h"

const char *const sl_ts_strategies[] = {
    "",
    "--use_fsdp --fsdp_sharding_strategy FULL_SHARD",
    "--use_fsdp --fsdp_sharding_strategy FULL_SHARD --fsdp_use_orig_params false",
    "--use_fsdp --fsdp_sharding_strategy FULL_SHARD --fsdp_backward_prefetch BACKWARD_PRE",
    "--use_fsdp --fsdp_sharding_strategy FULL_SHARD --fsdp_forward_prefetch true "
    "--fsdp_backward_prefetch NO_PREFETCH",
    "--use_fsdp --fsdp_sharding_strategy SHARD_GRAD_OP",
    "--use_fsdp --fsdp_sharding_strategy NO_SHARD",
    "--use_fsdp --fsdp_sharding_strategy HYBRID_SHARD --num_machines 2",
    "--use_fsdp --fsdp_sharding_strategy HYBRID_SHARD_ZERO2 --num_machines 2",
    "--use_fsdp --fsdp_version 2 --fsdp_reshard_after_forward true",
    "--use_fsdp --fsdp_version 2 --fsdp_reshard_after_forward false",
    "--use_deepspeed --zero_stage 0",
    "--use_deepspeed --zero_stage 1",
    "--use_deepspeed --zero_stage 2",
    "--use_deepspeed --zero_stage 3 --stage3_param_persistence_threshold 0",
    "--use_deepspeed --zero_stage 3",
    "--use_fsdp --fsdp_sharding_strategy FULL_SHARD --fsdp_offload_params true",
    "--use_deepspeed --zero_stage 2 --offload_optimizer_device cpu",
};
const size_t sl_ts_n_strategies = sizeof sl_ts_strategies / sizeof sl_ts_strategies[0];

const char *const sl_ts_precisions[] = {
    "--mixed_precision no",
    "--mixed_precision bf16",
    "--mixed_precision fp16",
    "--mixed_precision no --load_dtype bf16",
};
const size_t sl_ts_n_precisions = sizeof sl_ts_precisions / sizeof sl_ts_precisions[0];
