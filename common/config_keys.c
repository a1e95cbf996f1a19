/* The configuration vocabulary: one row per key. Names are Accelerate's `accelerate launch` flags
 * without the dashes (commands/launch.py, accelerate 1.15.0.dev0) where Accelerate has the knob;
 * DeepSpeed JSON knobs use DeepSpeed's own names (runtime/zero/config.py, fp16 section, 0.19.6);
 * the rest are shardlab's. Defaults of Accelerate keys are accelerate launch's (accelerate-facts.md
 * §1.3, §1.4), of DeepSpeed keys DeepSpeed's (fsdp-zero-semantics.md §3.0). Every frontend (flags,
 * config files, environment) fills the same store through this table, and the plan compiler reads
 * defaults from it. */
#include <ctype.h>
#include <string.h>

#include "common/config_internal.h"

typedef struct sl_key_row {
    sl_config_key key; /* first member: a key pointer is also a row pointer */
    const char *dflt;
    sl_key_family family;
} sl_key_row;

static const char *const sl_dtypes[] = {"fp32", "bf16", "fp16", NULL};
static const char *const sl_dtype_aliases[] = {
    "float32=fp32", "f32=fp32", "float=fp32", "bfloat16=bf16",
    "float16=fp16", "f16=fp16", "half=fp16",  NULL};
static const char *const sl_precisions[] = {"no", "fp16", "bf16", NULL};
static const char *const sl_precision_aliases[] = {"none=no", "fp32=no", NULL};
static const char *const sl_strategies[] = {"FULL_SHARD",   "SHARD_GRAD_OP",      "NO_SHARD",
                                            "HYBRID_SHARD", "HYBRID_SHARD_ZERO2", NULL};
/* torch's ShardingStrategy values (Accelerate accepts them as digits). */
static const char *const sl_strategy_aliases[] = {"1=FULL_SHARD",
                                                  "2=SHARD_GRAD_OP",
                                                  "3=NO_SHARD",
                                                  "4=HYBRID_SHARD",
                                                  "5=HYBRID_SHARD_ZERO2",
                                                  "_HYBRID_SHARD_ZERO2=HYBRID_SHARD_ZERO2",
                                                  NULL};
static const char *const sl_upcast[] = {"auto", "on", "off", NULL};
static const char *const sl_upcast_aliases[] = {"true=on", "yes=on", "1=on", "false=off",
                                                "no=off",  "0=off",  NULL};
static const char *const sl_prefetch[] = {"BACKWARD_PRE", "BACKWARD_POST", "NO_PREFETCH", NULL};
static const char *const sl_prefetch_aliases[] = {"1=BACKWARD_PRE", "2=BACKWARD_POST",
                                                  "none=NO_PREFETCH", NULL};
static const char *const sl_devices[] = {"none", "cpu", NULL};
static const char *const sl_loss_norms[] = {"global_tokens", "per_microbatch_mean", NULL};
static const char *const sl_schedules[] = {"constant", "warmup_cosine", "warmup_linear", NULL};
/* DeepSpeed's scheduler.type names for the same shapes (runtime/lr_schedules.py) */
static const char *const sl_schedule_aliases[] = {
    "WarmupLR=constant", "WarmupDecayLR=warmup_linear", "WarmupCosineLR=warmup_cosine", NULL};
static const char *const sl_warmup_types[] = {"linear", "log", NULL};
static const char *const sl_optimizers[] = {"AdamW", "Adam", NULL};
static const char *const sl_distributed_types[] = {"NO",   "MULTI_CPU", "MULTI_GPU",
                                                   "FSDP", "DEEPSPEED", NULL};
static const char *const sl_compute_envs[] = {"LOCAL_MACHINE", "AMAZON_SAGEMAKER", NULL};
static const char *const sl_wrap_policies[] = {"TRANSFORMER_BASED_WRAP", "SIZE_BASED_WRAP",
                                               "NO_WRAP", NULL};
static const char *const sl_state_dict_types[] = {"FULL_STATE_DICT", "LOCAL_STATE_DICT",
                                                  "SHARDED_STATE_DICT", NULL};
static const char *const sl_state_dict_aliases[] = {"1=FULL_STATE_DICT", "2=LOCAL_STATE_DICT",
                                                    "3=SHARDED_STATE_DICT", NULL};
static const char *const sl_ds_launchers[] = {"pdsh",  "standard", "openmpi", "mvapich",
                                              "mpich", "nossh",    "slurm",   NULL};

#define SL_ROW(name_, type_, allowed_, aliases_, dflt_, family_, help_)                            \
    { {name_, type_, allowed_, aliases_, help_}, dflt_, family_ }

static const sl_key_row sl_key_rows[] = {
    /* which framework's semantics */
    SL_ROW("use_fsdp", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_COMMON,
           "Shard with PyTorch FSDP semantics (Accelerate --use_fsdp)."),
    SL_ROW("use_deepspeed", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_COMMON,
           "Shard with DeepSpeed ZeRO semantics (Accelerate --use_deepspeed). With neither, the "
           "plan is DDP (Accelerate MULTI_GPU / MULTI_CPU)."),
    SL_ROW("mixed_precision", SL_KEY_ENUM, sl_precisions, sl_precision_aliases, "no",
           SL_FAMILY_COMMON, "Compute dtype for forward/backward (Accelerate --mixed_precision)."),
    SL_ROW("load_dtype", SL_KEY_ENUM, sl_dtypes, sl_dtype_aliases, "fp32", SL_FAMILY_COMMON,
           "dtype the model is created or loaded in (transformers' torch_dtype)."),
    SL_ROW("num_processes", SL_KEY_INT, NULL, NULL, "1", SL_FAMILY_COMMON,
           "Total data-parallel ranks W across all machines (Accelerate --num_processes)."),
    SL_ROW("num_machines", SL_KEY_INT, NULL, NULL, "1", SL_FAMILY_COMMON,
           "Machines M; hybrid sharding shards within groups of W/M ranks."),
    SL_ROW("gradient_accumulation_steps", SL_KEY_INT, NULL, NULL, "1", SL_FAMILY_COMMON,
           "Micro-steps k per optimizer step."),
    SL_ROW("loss_normalization", SL_KEY_ENUM, sl_loss_norms, NULL, "global_tokens",
           SL_FAMILY_COMMON,
           "global_tokens: Σ token losses of the global batch ÷ its token count; "
           "per_microbatch_mean: each micro-step's mean × 1/k (what Accelerate does)."),
    SL_ROW("deterministic", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_COMMON,
           "Reduce in rank order with a running sum in reduce_dtype (bit-reproducible)."),
    SL_ROW("distributed_type", SL_KEY_ENUM, sl_distributed_types, NULL, NULL, SL_FAMILY_COMMON,
           "Accelerate's distributed_type: FSDP and DEEPSPEED pick the dialect when neither "
           "use_fsdp nor use_deepspeed is given; NO means one process. Default: from the "
           "use_* flags."),

    /* config files (config_file.h) */
    SL_ROW("config_file", SL_KEY_STRING, NULL, NULL, NULL, SL_FAMILY_COMMON,
           "An Accelerate config (YAML or JSON) or a DeepSpeed JSON file whose keys fill the "
           "configuration below the flags."),
    SL_ROW("plan_name", SL_KEY_STRING, NULL, NULL, NULL, SL_FAMILY_COMMON,
           "The entry of the config file's deepspeed_configs map to use (default: the first)."),

    /* FSDP (Accelerate fsdp_config / --fsdp_* flags) */
    SL_ROW("fsdp_version", SL_KEY_INT, NULL, NULL, "1", SL_FAMILY_FSDP,
           "1: FullyShardedDataParallel (FlatParameter); 2: fully_shard (per-parameter)."),
    SL_ROW("fsdp_sharding_strategy", SL_KEY_ENUM, sl_strategies, sl_strategy_aliases, "FULL_SHARD",
           SL_FAMILY_FSDP,
           "FSDP1 sharding strategy (names or torch's 1-5). FSDP2 derives it from "
           "fsdp_reshard_after_forward and accepts HYBRID_SHARD (HSDP)."),
    SL_ROW("fsdp_reshard_after_forward", SL_KEY_BOOL, NULL, NULL, "true", SL_FAMILY_FSDP,
           "FSDP2: true = FULL_SHARD, false = SHARD_GRAD_OP. FSDP1: used only when "
           "fsdp_sharding_strategy is not given."),
    SL_ROW("fsdp_use_orig_params", SL_KEY_BOOL, NULL, NULL, "true", SL_FAMILY_FSDP,
           "FSDP1: align each parameter to 16 bytes inside the flat parameter (default true as "
           "accelerate launch; the Python plugin default is false)."),
    SL_ROW("fsdp_upcast_sharded_params", SL_KEY_ENUM, sl_upcast, sl_upcast_aliases, "auto",
           SL_FAMILY_FSDP,
           "Upcast low-precision sharded params to fp32 (Accelerate >= 0.30 does it when mixed "
           "precision is on: auto); off reproduces raw PyTorch FSDP (accelerate#2624)."),
    SL_ROW("fsdp_reduce_dtype", SL_KEY_ENUM, sl_dtypes, sl_dtype_aliases, NULL, SL_FAMILY_FSDP,
           "MixedPrecision reduce_dtype (Accelerate: mixed_precision_policy, plugin only). "
           "Default: the compute dtype."),
    SL_ROW("fsdp_offload_params", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_FSDP,
           "CPU offload of the parameter shard, gradients and optimizer step."),
    SL_ROW("fsdp_forward_prefetch", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_FSDP,
           "FSDP1: issue unit i+1's all-gather before unit i's forward."),
    SL_ROW("fsdp_backward_prefetch", SL_KEY_ENUM, sl_prefetch, sl_prefetch_aliases, "NO_PREFETCH",
           SL_FAMILY_FSDP,
           "FSDP1 backward prefetch (default none, as accelerate launch passes None to torch). "
           "FSDP2 always prefetches one unit ahead."),
    SL_ROW("fsdp_limit_all_gathers", SL_KEY_BOOL, NULL, NULL, "true", SL_FAMILY_FSDP,
           "At most two all-gathers in flight (the FSDP rate limiter)."),
    SL_ROW("fsdp_auto_wrap_policy", SL_KEY_ENUM, sl_wrap_policies, NULL, "TRANSFORMER_BASED_WRAP",
           SL_FAMILY_FSDP,
           "Which modules become FSDP units. shardlab wraps each transformer block "
           "(TRANSFORMER_BASED_WRAP); the other policies are rejected."),
    SL_ROW("fsdp_transformer_layer_cls_to_wrap", SL_KEY_STRING, NULL, NULL, NULL, SL_FAMILY_FSDP,
           "Comma-separated block class names; the GPT-2 model's block is GPT2Block. Default: "
           "the model's own blocks (_no_split_modules)."),
    SL_ROW("fsdp_min_num_params", SL_KEY_INT, NULL, NULL, "100000000", SL_FAMILY_FSDP,
           "SIZE_BASED_WRAP threshold (recorded; shardlab wraps by transformer block)."),
    SL_ROW("fsdp_state_dict_type", SL_KEY_ENUM, sl_state_dict_types, sl_state_dict_aliases, NULL,
           SL_FAMILY_FSDP,
           "Checkpoint layout (names or 1-3). Default: FULL_STATE_DICT (FSDP1), "
           "SHARDED_STATE_DICT (FSDP2, which has no LOCAL_STATE_DICT)."),
    SL_ROW("fsdp_cpu_ram_efficient_loading", SL_KEY_BOOL, NULL, NULL, "true", SL_FAMILY_FSDP,
           "Rank 0 loads the weights and broadcasts them; needs fsdp_sync_module_states."),
    SL_ROW("fsdp_sync_module_states", SL_KEY_BOOL, NULL, NULL, "true", SL_FAMILY_FSDP,
           "FSDP1: broadcast rank 0's parameters at wrap time."),
    SL_ROW("fsdp_activation_checkpointing", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_FSDP,
           "Recompute block activations in backward (recorded; the memory prediction keeps "
           "every activation)."),

    /* DeepSpeed (Accelerate deepspeed_config / ZeRO JSON) */
    SL_ROW("zero_stage", SL_KEY_INT, NULL, NULL, "2", SL_FAMILY_DEEPSPEED,
           "ZeRO stage 0-3 (Accelerate's DeepSpeedPlugin default is 2)."),
    SL_ROW("communication_data_type", SL_KEY_ENUM, sl_dtypes, sl_dtype_aliases, NULL,
           SL_FAMILY_DEEPSPEED, "dtype gradients are reduced in. Default: the compute dtype."),
    SL_ROW("grad_accum_dtype", SL_KEY_ENUM, sl_dtypes, sl_dtype_aliases, NULL, SL_FAMILY_DEEPSPEED,
           "data_types.grad_accum_dtype. Default: the compute dtype."),
    SL_ROW("gradient_clipping", SL_KEY_FLOAT, NULL, NULL, "1.0", SL_FAMILY_DEEPSPEED,
           "Global-norm clipping threshold, 0 disables (Accelerate fills \"auto\" with 1.0; "
           "DeepSpeed >= 0.19.3 defaults to 1.0 too)."),
    SL_ROW("offload_optimizer_device", SL_KEY_ENUM, sl_devices, NULL, "none", SL_FAMILY_DEEPSPEED,
           "ZeRO-Offload of optimizer states, fp32 masters and gradient partitions (stage >= 1)."),
    SL_ROW("offload_param_device", SL_KEY_ENUM, sl_devices, NULL, "none", SL_FAMILY_DEEPSPEED,
           "ZeRO-3 parameter offload."),
    SL_ROW("stage3_param_persistence_threshold", SL_KEY_INT, NULL, NULL, "100000",
           SL_FAMILY_DEEPSPEED,
           "ZeRO-3: parameters with at most this many elements stay gathered."),
    SL_ROW("reduce_scatter", SL_KEY_BOOL, NULL, NULL, "true", SL_FAMILY_DEEPSPEED,
           "ZeRO-1/2 partition-aware reduction with pre-divide; false: all-reduce then ×1/W."),
    SL_ROW("loss_scale", SL_KEY_FLOAT, NULL, NULL, "0", SL_FAMILY_DEEPSPEED,
           "fp16: static loss scale; 0 = dynamic."),
    SL_ROW("initial_scale_power", SL_KEY_INT, NULL, NULL, "16", SL_FAMILY_DEEPSPEED,
           "fp16 dynamic scaling: initial scale 2^power."),
    SL_ROW("loss_scale_window", SL_KEY_INT, NULL, NULL, "1000", SL_FAMILY_DEEPSPEED,
           "fp16 dynamic scaling: clean steps before the scale doubles."),
    SL_ROW("hysteresis", SL_KEY_INT, NULL, NULL, "2", SL_FAMILY_DEEPSPEED,
           "fp16 dynamic scaling (ZeRO): overflows tolerated before the scale halves."),
    SL_ROW("consecutive_hysteresis", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_DEEPSPEED,
           "fp16 dynamic scaling: refill hysteresis after every clean step."),
    SL_ROW("min_loss_scale", SL_KEY_FLOAT, NULL, NULL, "1", SL_FAMILY_DEEPSPEED,
           "fp16 dynamic scaling: lowest scale."),
    SL_ROW("deepspeed_config_file", SL_KEY_STRING, NULL, NULL, NULL, SL_FAMILY_DEEPSPEED,
           "A DeepSpeed JSON config whose keys fill the configuration below the flags."),
    SL_ROW("fp16_enabled", SL_KEY_BOOL, NULL, NULL, NULL, SL_FAMILY_DEEPSPEED,
           "DeepSpeed fp16.enabled. Default: follows mixed_precision."),
    SL_ROW("bf16_enabled", SL_KEY_BOOL, NULL, NULL, NULL, SL_FAMILY_DEEPSPEED,
           "DeepSpeed bf16.enabled. Default: follows mixed_precision."),
    SL_ROW("train_batch_size", SL_KEY_INT, NULL, NULL, NULL, SL_FAMILY_DEEPSPEED,
           "Global batch: must equal micro_batch_size x gradient_accumulation_steps x "
           "num_processes; with one of those unset, DeepSpeed derives it from this."),
    SL_ROW("steps_per_print", SL_KEY_INT, NULL, NULL, "10", SL_FAMILY_DEEPSPEED,
           "DeepSpeed progress-report interval (recorded)."),
    SL_ROW("wall_clock_breakdown", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_DEEPSPEED,
           "DeepSpeed per-phase timers (recorded)."),
    SL_ROW("zero3_init_flag", SL_KEY_BOOL, NULL, NULL, NULL, SL_FAMILY_DEEPSPEED,
           "deepspeed.zero.Init: create ZeRO-3 parameters already partitioned. Default: true at "
           "stage 3 (Accelerate)."),
    SL_ROW("zero3_save_16bit_model", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_DEEPSPEED,
           "Gather 16-bit weights when saving the model (DeepSpeed "
           "stage3_gather_16bit_weights_on_model_save)."),
    SL_ROW("offload_optimizer_nvme_path", SL_KEY_STRING, NULL, NULL, NULL, SL_FAMILY_DEEPSPEED,
           "NVMe directory for offload_optimizer_device nvme (recorded; nvme is not supported)."),
    SL_ROW("offload_param_nvme_path", SL_KEY_STRING, NULL, NULL, NULL, SL_FAMILY_DEEPSPEED,
           "NVMe directory for offload_param_device nvme (recorded; nvme is not supported)."),
    SL_ROW("reduce_bucket_size", SL_KEY_INT, NULL, NULL, "500000000", SL_FAMILY_DEEPSPEED,
           "Elements per gradient-reduction bucket (recorded; the plan counts one bucket)."),
    SL_ROW("allgather_bucket_size", SL_KEY_INT, NULL, NULL, "500000000", SL_FAMILY_DEEPSPEED,
           "ZeRO-1/2 elements per parameter all-gather bucket (recorded)."),
    SL_ROW("overlap_comm", SL_KEY_BOOL, NULL, NULL, NULL, SL_FAMILY_DEEPSPEED,
           "Overlap gradient reduction with backward (recorded). Default: true at stage 3 only."),
    SL_ROW("contiguous_gradients", SL_KEY_BOOL, NULL, NULL, "true", SL_FAMILY_DEEPSPEED,
           "Copy gradients into one contiguous buffer as they are produced (recorded)."),
    SL_ROW("stage3_prefetch_bucket_size", SL_KEY_INT, NULL, NULL, "50000000", SL_FAMILY_DEEPSPEED,
           "ZeRO-3 elements prefetched ahead of use (recorded)."),
    SL_ROW("stage3_max_live_parameters", SL_KEY_INT, NULL, NULL, "1000000000", SL_FAMILY_DEEPSPEED,
           "ZeRO-3 gathered elements kept at most (recorded)."),
    SL_ROW("stage3_max_reuse_distance", SL_KEY_INT, NULL, NULL, "1000000000", SL_FAMILY_DEEPSPEED,
           "ZeRO-3: keep a parameter gathered when it is reused within this distance (recorded)."),
    SL_ROW("zero_hpz_partition_size", SL_KEY_INT, NULL, NULL, "1", SL_FAMILY_DEEPSPEED,
           "ZeRO++ hpZ: ranks holding a secondary parameter partition (a machine's GPUs); > 1 "
           "only at stage 3, and it must divide num_processes."),
    SL_ROW("optimizer_type", SL_KEY_ENUM, sl_optimizers, NULL, "AdamW", SL_FAMILY_DEEPSPEED,
           "DeepSpeed optimizer.type; \"Adam\" is AdamW unless adam_w_mode is false."),
    SL_ROW("adam_w_mode", SL_KEY_BOOL, NULL, NULL, "true", SL_FAMILY_DEEPSPEED,
           "optimizer.params.adam_w_mode: decoupled weight decay (false: L2, which shardlab "
           "supports only with weight_decay 0)."),
    SL_ROW("torch_adam", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_DEEPSPEED,
           "optimizer.params.torch_adam: torch.optim.AdamW instead of FusedAdam."),
    SL_ROW("warmup_type", SL_KEY_ENUM, sl_warmup_types, NULL, "linear", SL_FAMILY_DEEPSPEED,
           "scheduler.params.warmup_type; shardlab's schedules warm up linearly (DeepSpeed's "
           "default, log, is rejected when there is a warmup)."),
    SL_ROW("warmup_min_lr", SL_KEY_FLOAT, NULL, NULL, "0", SL_FAMILY_DEEPSPEED,
           "scheduler.params.warmup_min_lr; shardlab's warmups start at 0."),
    SL_ROW("warmup_min_ratio", SL_KEY_FLOAT, NULL, NULL, "0", SL_FAMILY_DEEPSPEED,
           "WarmupCosineLR's warmup_min_ratio; shardlab's warmups start at 0."),

    /* the run */
    SL_ROW("micro_batch_size", SL_KEY_INT, NULL, NULL, "4", SL_FAMILY_COMMON,
           "Sequences per rank per micro-step (b)."),
    SL_ROW("seq_len", SL_KEY_INT, NULL, NULL, "64", SL_FAMILY_COMMON,
           "Tokens per sequence (T <= the model's block_size)."),
    SL_ROW("max_steps", SL_KEY_INT, NULL, NULL, "100", SL_FAMILY_COMMON, "Optimizer steps."),
    SL_ROW("seed", SL_KEY_INT, NULL, NULL, "1234", SL_FAMILY_COMMON,
           "Seed of parameter init and data order."),

    /* the optimizer (AdamW) and schedule */
    SL_ROW("lr", SL_KEY_FLOAT, NULL, NULL, "1e-3", SL_FAMILY_COMMON, "Peak learning rate."),
    SL_ROW("weight_decay", SL_KEY_FLOAT, NULL, NULL, NULL, SL_FAMILY_COMMON,
           "Decoupled weight decay. Default: 0.01 for DDP/FSDP (torch AdamW), 0 for DeepSpeed "
           "(FusedAdam)."),
    SL_ROW("adam_beta1", SL_KEY_FLOAT, NULL, NULL, "0.9", SL_FAMILY_COMMON, "Adam beta1."),
    SL_ROW("adam_beta2", SL_KEY_FLOAT, NULL, NULL, "0.999", SL_FAMILY_COMMON, "Adam beta2."),
    SL_ROW("adam_epsilon", SL_KEY_FLOAT, NULL, NULL, "1e-8", SL_FAMILY_COMMON,
           "Adam epsilon (added after sqrt(v_hat))."),
    SL_ROW("lr_scheduler", SL_KEY_ENUM, sl_schedules, sl_schedule_aliases, "constant",
           SL_FAMILY_COMMON,
           "Learning-rate schedule (DeepSpeed scheduler.type names are aliases)."),
    SL_ROW("warmup_steps", SL_KEY_INT, NULL, NULL, "0", SL_FAMILY_COMMON,
           "Linear warmup steps of the warmup_* schedules."),
    SL_ROW("min_lr_ratio", SL_KEY_FLOAT, NULL, NULL, "0.0", SL_FAMILY_COMMON,
           "Final learning rate of the decaying schedules as a fraction of lr."),
    SL_ROW("max_grad_norm", SL_KEY_FLOAT, NULL, NULL, "0", SL_FAMILY_TORCH,
           "DDP/FSDP global-norm clipping (accelerator.clip_grad_norm_); 0 = off. DeepSpeed "
           "clips with gradient_clipping."),

    /* where processes run: read by `shardlab launch`, filled by config files */
    SL_ROW("compute_environment", SL_KEY_ENUM, sl_compute_envs, NULL, "LOCAL_MACHINE",
           SL_FAMILY_LAUNCH, "[launch] Accelerate's compute_environment (only this machine runs)."),
    SL_ROW("machine_rank", SL_KEY_INT, NULL, NULL, "0", SL_FAMILY_LAUNCH,
           "[launch] This machine's index among num_machines."),
    SL_ROW("main_process_ip", SL_KEY_STRING, NULL, NULL, NULL, SL_FAMILY_LAUNCH,
           "[launch] Address of machine 0."),
    SL_ROW("main_process_port", SL_KEY_INT, NULL, NULL, NULL, SL_FAMILY_LAUNCH,
           "[launch] Port of machine 0 (Accelerate: 29500)."),
    SL_ROW("rdzv_backend", SL_KEY_STRING, NULL, NULL, "static", SL_FAMILY_LAUNCH,
           "[launch] Accelerate's rendezvous backend (recorded)."),
    SL_ROW("same_network", SL_KEY_BOOL, NULL, NULL, NULL, SL_FAMILY_LAUNCH,
           "[launch] Whether all machines share a local network (recorded)."),
    SL_ROW("gpu_ids", SL_KEY_STRING, NULL, NULL, "all", SL_FAMILY_LAUNCH,
           "[launch] Comma-separated GPU ids this machine uses."),
    SL_ROW("use_cpu", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_LAUNCH,
           "[launch] Run on CPU even where a GPU is present."),
    SL_ROW("debug", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_LAUNCH,
           "[launch] Check every collective's signature across ranks."),
    SL_ROW("enable_cpu_affinity", SL_KEY_BOOL, NULL, NULL, "false", SL_FAMILY_LAUNCH,
           "[launch] Pin each rank to the cores near its device."),
    SL_ROW("mpirun_hostfile", SL_KEY_STRING, NULL, NULL, NULL, SL_FAMILY_LAUNCH,
           "[launch] Open MPI hostfile (Accelerate mpirun_config.mpirun_hostfile)."),
    SL_ROW("deepspeed_hostfile", SL_KEY_STRING, NULL, NULL, NULL, SL_FAMILY_LAUNCH,
           "[launch] Hostfile of a multi-machine DeepSpeed job."),
    SL_ROW("deepspeed_multinode_launcher", SL_KEY_ENUM, sl_ds_launchers, NULL, "pdsh",
           SL_FAMILY_LAUNCH, "[launch] Accelerate's multi-machine DeepSpeed launcher (recorded)."),
    SL_ROW("deepspeed_exclusion_filter", SL_KEY_STRING, NULL, NULL, NULL, SL_FAMILY_LAUNCH,
           "[launch] Hosts or GPUs to exclude (recorded)."),
    SL_ROW("deepspeed_inclusion_filter", SL_KEY_STRING, NULL, NULL, NULL, SL_FAMILY_LAUNCH,
           "[launch] Hosts or GPUs to include (recorded)."),
};

#define SL_KEY_COUNT (sizeof sl_key_rows / sizeof sl_key_rows[0])

size_t sl_config_key_count(void) {
    return SL_KEY_COUNT;
}

const sl_config_key *sl_config_key_at(size_t i) {
    return i < SL_KEY_COUNT ? &sl_key_rows[i].key : NULL;
}

/* Key names compare with '-' and '_' equivalent: Accelerate accepts both spellings. */
static int sl_key_char(char c) {
    return c == '-' ? '_' : (unsigned char)c;
}

static int sl_key_name_equal(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        if (sl_key_char(*a) != sl_key_char(*b)) return 0;
    }
    return *a == *b;
}

const sl_config_key *sl_config_key_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < SL_KEY_COUNT; i++) {
        if (sl_key_name_equal(sl_key_rows[i].key.name, name)) return &sl_key_rows[i].key;
    }
    return NULL;
}

const char *sl_config_key_default(const sl_config_key *key) {
    return ((const sl_key_row *)key)->dflt;
}

sl_key_family sl_config_key_family(const sl_config_key *key) {
    return ((const sl_key_row *)key)->family;
}

static int sl_equal_nocase(const char *a, const char *b, size_t n_b) {
    size_t i = 0;
    for (; a[i] && i < n_b; i++) {
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) return 0;
    }
    return a[i] == '\0' && i == n_b;
}

const char *sl_config_key_resolve_enum(const sl_config_key *key, const char *text) {
    if (!key->allowed || !text) return NULL;
    for (const char *const *a = key->allowed; *a; a++) {
        if (sl_equal_nocase(text, *a, strlen(*a))) return *a;
    }
    for (const char *const *a = key->aliases; a && *a; a++) {
        const char *eq = strchr(*a, '=');
        if (!eq || !sl_equal_nocase(text, *a, (size_t)(eq - *a))) continue;
        for (const char *const *c = key->allowed; *c; c++) {
            if (strcmp(*c, eq + 1) == 0) return *c;
        }
    }
    return NULL;
}

static int sl_fold(char c) {
    return c == '-' ? '_' : tolower((unsigned char)c);
}

int sl_config_edit_distance(const char *a, const char *b) {
    const size_t na = strlen(a), nb = strlen(b);
    if (na > 200 || nb > 200) return (int)(na > nb ? na : nb);
    /* three rolling rows of the optimal-string-alignment table */
    int rows[3][201];
    int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= nb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            const int cost = sl_fold(a[i - 1]) != sl_fold(b[j - 1]);
            int best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            if (prev[j - 1] + cost < best) best = prev[j - 1] + cost;
            if (i > 1 && j > 1 && sl_fold(a[i - 1]) == sl_fold(b[j - 2]) &&
                sl_fold(a[i - 2]) == sl_fold(b[j - 1]) && prev2[j - 2] + 1 < best) {
                best = prev2[j - 2] + 1;
            }
            cur[j] = best;
        }
        int *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[nb];
}
