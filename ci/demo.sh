#!/usr/bin/env bash
# make demo: the reference trains gpt-tiny on the embedded data on 4 logical ranks under two
# plans that Accelerate's documentation maps onto each other — FSDP FULL_SHARD (model loaded in
# fp32, bf16 mixed precision) and DeepSpeed ZeRO-3 (bf16) — and shows their dtype tables and loss
# curves side by side.
set -euo pipefail
bin=${1:-build/shardlab}
out=${SHARDLAB_DEMO_OUT:-out/demo}
mkdir -p "$out"

plan=(--model gpt-tiny --num_processes 4 --max_steps 120 --micro_batch_size 2 --seq_len 64
      --lr 3e-3 --seed 7)
fsdp=(--use_fsdp --fsdp_sharding_strategy FULL_SHARD --load_dtype fp32 --mixed_precision bf16)
zero3=(--use_deepspeed --zero_stage 3 --mixed_precision bf16)

echo "== FSDP FULL_SHARD, load fp32, mixed precision bf16 =="
"$bin" explain "${fsdp[@]}" "${plan[@]}" --dtype_table
echo
echo "== DeepSpeed ZeRO-3, bf16 =="
"$bin" explain "${zero3[@]}" "${plan[@]}" --dtype_table
echo

"$bin" ref "${fsdp[@]}" "${plan[@]}" --quiet --out "$out/fsdp_full_shard_bf16"
"$bin" ref "${zero3[@]}" "${plan[@]}" --quiet --out "$out/zero3_bf16"
echo
"$bin" curves --every 10 "$out/fsdp_full_shard_bf16" "$out/zero3_bf16"
echo
echo "trajectories, initial/final weights and step-1 batches and gradients are in $out/"
