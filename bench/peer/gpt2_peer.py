#!/usr/bin/env python3
"""PyTorch eager training of shardlab's GPT-2 (gpt2_torch.py) on one process: the peer row
`shardlab bench --suite e2e` prints beside the engine's single-rank runs.

Per model and dtype: the same batch (B, T), the same thread count (torch.set_num_threads), AdamW
(lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01, torch's default implementation), token
ids from a fixed generator. One step: zero_grad, forward, mean cross-entropy, backward,
optimizer step. fp32, or bf16 through torch.autocast on the CPU (parameters and optimizer in
fp32, matmuls in bf16) — the usual PyTorch mixed precision. A few untimed warm-up steps, then
`--steps` timed steps per repetition.

Output: Google Benchmark JSON (what bench/results.c reads and `shardlab bench compare` pairs),
one entry per repetition, run name peer/torch_eager/MODEL/DT/W:1/manual_time, counters
tokens_per_s, step_ms, mfu (when --peak_gflops is given: (6·N + 12·L·C·T) FLOPs per token, N
without wpe, as bench/e2e.c counts them) and world = 1.

    python3 bench/peer/gpt2_peer.py --models gpt-tiny,gpt-small --dtypes fp32,bf16 \
        --threads 2 --out peer.json
"""

import argparse
import datetime
import json
import os
import platform
import re
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from gpt2_torch import SIZES, GPT2  # noqa: E402

# The engine's single-rank e2e shapes (bench/e2e.c): model -> (B, T, timed steps).
SHAPES = {"gpt-tiny": (8, 64, 10), "gpt-small": (4, 256, 2), "gpt2-124m": (1, 1024, 2)}


def flops_per_token(model, T):
    n = sum(p.numel() for p in model.params) - model.T * model.C
    return 6.0 * n + 12.0 * model.L * model.C * T


def selected(name, pattern):
    """Google Benchmark's --benchmark_filter: a regex searched in the name; '-' negates."""
    if not pattern:
        return True
    if pattern.startswith("-"):
        return re.search(pattern[1:], name) is None
    return re.search(pattern, name) is not None


def run_case(model_name, dtype, threads, steps, warmup, reps, peak, quick):
    L, C, H, Tmax, V = SIZES[model_name]
    B, T, default_steps = SHAPES[model_name]
    steps = steps or (2 if quick else default_steps)
    torch.manual_seed(1234)
    model = GPT2(L, C, H, Tmax, V)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.01)
    gen = torch.Generator().manual_seed(7)
    batches = [(torch.randint(0, V, (B, T), generator=gen),
                torch.randint(0, V, (B, T), generator=gen)) for _ in range(4)]
    autocast = dtype == "bf16"

    def step(i):
        x, y = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, V), y.view(-1))
        loss.backward()
        opt.step()
        return float(loss)

    for i in range(warmup):
        step(i)
    name = "peer/torch_eager/%s/%s/W:1/manual_time" % (model_name, dtype)
    fpt = flops_per_token(model, T)
    entries = []
    for r in range(reps):
        times, cpu0 = [], time.process_time()
        for i in range(steps):
            t0 = time.perf_counter()
            step(warmup + i)
            times.append(time.perf_counter() - t0)
        cpu = time.process_time() - cpu0
        t = sum(times) / len(times)
        e = {
            "name": name, "run_name": name, "run_type": "iteration", "repetitions": reps,
            "repetition_index": r, "threads": 1, "iterations": steps,
            "real_time": t * 1e3, "cpu_time": cpu / steps * 1e3, "time_unit": "ms",
            "tokens_per_s": B * T / t, "step_ms": t * 1e3, "world": 1.0,
            "label": "B=%d T=%d W=1 threads=%d torch=%s" % (B, T, threads, torch.__version__),
        }
        if peak > 0:
            e["mfu"] = 100.0 * fpt * B * T / t / (peak * 1e9)
        entries.append(e)
        print("%-44s %10.0f tokens/s %9.1f ms/step" % (name, e["tokens_per_s"], e["step_ms"]),
              file=sys.stderr, flush=True)
    return entries


def context(threads):
    ctx = {
        "date": datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(),
        "host_name": socket.gethostname(),
        "executable": os.path.abspath(__file__),
        "num_cpus": os.cpu_count() or 1,
        "mhz_per_cpu": 0,
        "cpu_scaling_enabled": False,
        "caches": [],
        "library_build_type": "release",
        "torch_version": torch.__version__,
        "torch_threads": str(threads),
        "python": platform.python_version(),
    }
    try:
        ctx["load_avg"] = list(os.getloadavg())
    except OSError:
        pass
    return ctx


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="gpt-tiny,gpt-small",
                    help="comma-separated: %s" % ", ".join(SIZES))
    ap.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32, bf16")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch.set_num_threads (default: OMP_NUM_THREADS, else all cores)")
    ap.add_argument("--steps", type=int, default=0,
                    help="timed steps per repetition (default: the engine's e2e count)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    ap.add_argument("--repetitions", type=int, default=1)
    ap.add_argument("--peak_gflops", type=float, default=0.0,
                    help="the machine's sgemm peak, for the mfu counter")
    ap.add_argument("--filter", default="", help="regex on run names; -REGEX excludes")
    ap.add_argument("--quick", action="store_true", help="2 timed steps per run")
    ap.add_argument("--out", default="-", help="Google Benchmark JSON file (default: stdout)")
    a = ap.parse_args(argv)

    models = [m for m in a.models.split(",") if m]
    dtypes = [d for d in a.dtypes.split(",") if d]
    for m in models:
        if m not in SIZES:
            ap.error("--models: unknown model %r; expected one of %s" % (m, ", ".join(SIZES)))
    for d in dtypes:
        if d not in ("fp32", "bf16"):
            ap.error("--dtypes: unknown dtype %r; expected fp32 or bf16" % d)
    if a.repetitions < 1 or a.warmup < 0 or a.steps < 0:
        ap.error("--repetitions must be >= 1, --warmup and --steps >= 0")
    threads = a.threads
    if threads <= 0:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(threads)

    benchmarks = []
    for m in models:
        for d in dtypes:
            name = "peer/torch_eager/%s/%s/W:1/manual_time" % (m, d)
            if not selected(name, a.filter):
                continue
            for e in run_case(m, d, threads, a.steps, a.warmup, a.repetitions, a.peak_gflops,
                              a.quick):
                e["family_index"] = len(benchmarks) // a.repetitions
                e["per_family_instance_index"] = 0
                benchmarks.append(e)
    if not benchmarks and a.out != "-":
        print("gpt2_peer: the filter %r selects no run; nothing written" % a.filter,
              file=sys.stderr)
        return 0
    doc = {"context": context(threads), "benchmarks": benchmarks}
    text = json.dumps(doc, indent=2) + "\n"
    if a.out == "-":
        sys.stdout.write(text)
    else:
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
