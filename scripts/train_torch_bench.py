#!/usr/bin/env python3
"""Training throughput of msenas plans in PyTorch (the comparison for `cargo bench --bench train`).

Usage: train_torch_bench.py [--timesteps T] [--batch B] [--reps N] [--threads N] [--compile] PLAN.json...

Each PLAN.json is a serialised `msenas::plan::Plan`. The network is rebuilt op by op by
`crosscheck_torch.Net` (the builder the cross-check uses: stock torch modules following
docs/design.md, conv padding k//2 without bias, the factorised reduce's shifted branch by
cropping/padding, batch norm with batch statistics over T*B*H*W, sign gates, LIF decay-input with
hard reset run layer by layer over T, add, concat, global average pool, linear, mean over T)
with torch's own weight initialisation. The spike uses the triangle surrogate (alpha 2) in the
backward pass and the reset is detached, as in msenas. One step = forward, cross-entropy with
label smoothing 0.1, backward, AdamW. Prints one JSON object: images per second per plan (the
best of --reps rounds of three steps, after two warm-up steps), on the CPU with the given thread
count, and on CUDA when available; with --compile also with the forward pass and loss under
`torch.compile` (default inductor backend; its compilation time is reported apart).
"""

import argparse
import json
import os
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("null")
    sys.exit(0)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crosscheck_torch import Net, make_spike  # noqa: E402  (the network builder, shared)


def bench(plan, t, b, reps, device, compile=False):
    """(images per second, seconds of the two warm-up steps, which include compilation)."""
    spec = plan["spec"]
    net = Net(torch, plan, t, spike=make_spike(torch, "triangle", 2.0))
    net.module.to(device)
    opt = torch.optim.AdamW(net.module.parameters(), lr=1e-4, weight_decay=0.01)
    x = torch.rand(b, spec["in_ch"], spec["height"], spec["width"], device=device)
    xt = x.unsqueeze(0).expand(t, -1, -1, -1, -1).reshape(t * b, *x.shape[1:])
    y = torch.arange(b, device=device) % spec["classes"]

    def loss_of(xt, y):
        logits, _ = net.run(xt)
        return F.cross_entropy(logits, y, label_smoothing=0.1)

    loss_fn = torch.compile(loss_of) if compile else loss_of

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(xt, y)
        loss.backward()
        opt.step()

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    step()
    step()
    sync()
    warmup = time.perf_counter() - start
    best = 0.0
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(3):
            step()
        sync()
        best = max(best, 3 * b / (time.perf_counter() - start))
    return best, warmup


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("plans", nargs="+")
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    rows = []
    for path in a.plans:
        with open(path) as f:
            plan = json.load(f)
        ips, _ = bench(plan, a.timesteps, a.batch, a.reps, "cpu")
        row = {"plan": path, "cpu_images_per_s": round(ips, 2)}
        if a.compile:
            ips, warm = bench(plan, a.timesteps, a.batch, a.reps, "cpu", compile=True)
            row["cpu_compiled_images_per_s"] = round(ips, 2)
            row["cpu_compile_warmup_s"] = round(warm, 1)
        if torch.cuda.is_available():
            row["cuda_images_per_s"] = round(bench(plan, a.timesteps, a.batch, max(a.reps, 10), "cuda")[0], 2)
            if a.compile:
                ips, warm = bench(plan, a.timesteps, a.batch, max(a.reps, 10), "cuda", compile=True)
                row["cuda_compiled_images_per_s"] = round(ips, 2)
        rows.append(row)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "networks": rows}))


if __name__ == "__main__":
    main()
