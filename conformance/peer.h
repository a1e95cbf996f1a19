/* T5 (DESIGN.md §9): the reference against PyTorch on the same weights and batch. A one-step
 * `shardlab ref` run writes init.safetensors, batch_step1.safetensors and grads_step1;
 * bench/peer/peer_check.py runs one forward and backward of the same GPT-2 in PyTorch eager (fp32)
 * on them; the run's step-1 loss and every step-1 gradient are compared with PyTorch's. Without
 * python3 + torch or without the script the check is a reported skip.
 *
 * Only fp32 plans: peer_check computes in fp32, and a bf16 run's gradients differ from those by
 * bf16 rounding of the parameters and activations, which is T3's business, not PyTorch's. */
#ifndef SHARDLAB_CONFORMANCE_PEER_H
#define SHARDLAB_CONFORMANCE_PEER_H

#include <stdbool.h>

#include "conformance/check.h"
#include "conformance/runner.h"

/* The plans T5 runs: fp32 at W = 1, and W = 2 with accumulation 2 under FSDP and ZeRO-3. */
#define SL_CONF_PEER_PLANS 3

/* Plan i's row label and its run (1-step reference run; out_dir left empty). */
void sl_conf_peer_plan(int i, char *label, size_t cap, sl_conf_run_spec *spec);

/* What T5 needs: the interpreter and peer_check.py, or why it is skipped. */
typedef struct sl_conf_peer_env {
    bool ok;
    char python[512];
    char script[1024];
    char why[512];
} sl_conf_peer_env;

void sl_conf_peer_env_find(sl_conf_peer_env *e);

/* T5 on a finished run in run_dir (its result `run`): runs peer_check.py there (output in
 * run_dir/peer.log, result in run_dir/peer_step1.safetensors) and compares. Fills c. */
void sl_conf_peer_check(const sl_conf_peer_env *e, const char *run_dir, const sl_conf_result *run,
                        double timeout_s, sl_conf_check *c);

/* The tolerance of the comparison for run (the derivation is in peer.c). */
double sl_conf_peer_tolerance(const sl_conf_result *run);

/* The comparison alone: the run's step-1 loss and every tensor of its grads_step1 against
 * peer_path ("loss" and one gradient per parameter, as peer_check.py writes it), each relative
 * to its own largest magnitude, within sl_conf_peer_tolerance. */
void sl_conf_peer_compare(const sl_conf_result *run, const char *peer_path, sl_conf_check *c);

#endif
