#!/usr/bin/env python3
"""The PyTorch side of the peer check (DESIGN.md §9 T5): one forward and backward of shardlab's
GPT-2 in PyTorch eager on the initial weights and the step-1 batch of a shardlab run, written
where the C side can compare them.

    python3 bench/peer/peer_check.py RUN_DIR [--out FILE] [--n_head H] [--tolerance T]

RUN_DIR is what `shardlab ref --out` or `shardlab train --out` wrote: init.safetensors (F32,
Hugging Face GPT-2 names), batch_step1.safetensors (inputs/targets I32 (W, k, b, T)) and
trajectory.json (the model's n_head, the plan's loss normalisation). The loss is the sum of the
token losses of the whole global batch over its number of targets (loss_normalization
global_tokens; targets < 0 are padding), computed in fp32, and the gradients are of that loss:
the run's grads_step1 (averaged, unscaled, before clipping).

Writes FILE (default RUN_DIR/peer_step1.safetensors, F32): "loss" (shape [1]) and one gradient
per parameter under its own name; metadata: torch_version, loss (as text, 17 digits), tokens.
Prints the loss beside the run's step-1 loss and, when RUN_DIR has grads_step1.safetensors, the
largest gradient difference relative to each tensor's largest magnitude. With --tolerance T the
exit status is 1 when the loss or a gradient differs by more than T (relative).
Exit status 2: unreadable or inconsistent input, named in the message.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from gpt2_torch import GPT2, loss_sum, read_safetensors, write_safetensors  # noqa: E402


def fail(msg):
    print("peer_check: error: " + msg, file=sys.stderr)
    sys.exit(2)


def load_run(run, n_head):
    paths = {k: os.path.join(run, k) for k in
             ("init.safetensors", "batch_step1.safetensors", "trajectory.json")}
    for p in paths.values():
        if not os.path.isfile(p):
            fail("%s is missing: RUN_DIR must be the --out directory of `shardlab ref` or "
                 "`shardlab train`" % p)
    try:
        with open(paths["trajectory.json"]) as f:
            traj = json.load(f)
        init = read_safetensors(paths["init.safetensors"])
        batch = read_safetensors(paths["batch_step1.safetensors"])
    except (ValueError, KeyError, OSError) as e:
        fail(str(e))
    plan = traj.get("plan", {})
    model = plan.get("model", {})
    norm = plan.get("plan", {}).get("loss_normalization", "global_tokens")
    if norm != "global_tokens":
        fail("%s: loss_normalization is %s; this check computes the global_tokens loss only"
             % (paths["trajectory.json"], norm))
    if n_head is None:
        n_head = model.get("n_head")
        if not n_head:
            fail("%s has no plan.model.n_head; pass --n_head" % paths["trajectory.json"])
    for name in ("inputs", "targets"):
        if name not in batch:
            fail("%s has no tensor '%s'" % (paths["batch_step1.safetensors"], name))
    if batch["inputs"].shape != batch["targets"].shape or batch["inputs"].dim() != 4:
        fail("%s: inputs %s and targets %s, expected two equal (W, k, b, T) shapes"
             % (paths["batch_step1.safetensors"], tuple(batch["inputs"].shape),
                tuple(batch["targets"].shape)))
    steps = traj.get("steps") or [{}]
    return traj, init, batch, int(n_head), steps[0].get("loss")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="the --out directory of a shardlab ref/train run")
    ap.add_argument("--out", help="output safetensors (default RUN/peer_step1.safetensors)")
    ap.add_argument("--n_head", type=int, help="attention heads (default: from trajectory.json)")
    ap.add_argument("--tolerance", type=float,
                    help="exit 1 when the loss or a gradient differs from the run's by more")
    a = ap.parse_args(argv)
    traj, init, batch, H, run_loss = load_run(a.run, a.n_head)

    if "transformer.wte.weight" not in init or "transformer.wpe.weight" not in init:
        fail("%s/init.safetensors lacks transformer.wte.weight / transformer.wpe.weight" % a.run)
    V, C = init["transformer.wte.weight"].shape
    Tmax = init["transformer.wpe.weight"].shape[0]
    L = len({k.split(".")[2] for k in init if k.startswith("transformer.h.")})
    if C % H:
        fail("n_embd %d is not divisible by n_head %d" % (C, H))
    torch.manual_seed(0)
    model = GPT2(L, C, H, Tmax, V)
    try:
        model.load(init)
    except ValueError as e:
        fail("%s/init.safetensors: %s" % (a.run, e))

    T = batch["inputs"].shape[-1]
    x = batch["inputs"].reshape(-1, T).long()
    y = batch["targets"].reshape(-1, T)
    if int(x.min()) < 0 or int(x.max()) >= V or int(y.max()) >= V:
        fail("token ids outside [0, %d) in %s/batch_step1.safetensors" % (V, a.run))
    s, n = loss_sum(model(x), y)
    loss = s / n
    loss.backward()

    out = a.out or os.path.join(a.run, "peer_step1.safetensors")
    tensors = {"loss": loss.detach().reshape(1)}
    for name, p in zip(model.names, model.params):
        tensors[name] = p.grad
    write_safetensors(out, tensors, {"torch_version": torch.__version__,
                                     "loss": "%.17g" % float(loss), "tokens": n})
    print("peer loss %.9f  run step-1 loss %s  (%d targets)  -> %s"
          % (float(loss), "%.9f" % run_loss if run_loss is not None else "n/a", n, out))

    worst = abs(float(loss) - run_loss) / abs(run_loss) if run_loss else 0.0
    grads_path = os.path.join(a.run, "grads_step1.safetensors")
    if os.path.isfile(grads_path):
        try:
            ref = read_safetensors(grads_path)
        except ValueError as e:
            fail(str(e))
        worst_name, worst_grad = "", 0.0
        for name, p in zip(model.names, model.params):
            if name not in ref:
                fail("%s has no tensor %s" % (grads_path, name))
            r = ref[name].float()
            scale = float(r.abs().max()) or 1.0
            d = float((p.grad - r).abs().max()) / scale
            if d > worst_grad:
                worst_name, worst_grad = name, d
        print("largest gradient difference: %.3g of the tensor's largest magnitude (%s)"
              % (worst_grad, worst_name))
        worst = max(worst, worst_grad)
    if a.tolerance is not None and worst > a.tolerance:
        print("peer_check: difference %.3g exceeds --tolerance %.3g" % (worst, a.tolerance),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
