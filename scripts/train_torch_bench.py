#!/usr/bin/env python3
"""Training throughput of msenas plans in PyTorch (the comparison for `cargo bench --bench train`).

Usage: train_torch_bench.py [--timesteps T] [--batch B] [--reps N] [--threads N] PLAN.json...

Each PLAN.json is a serialised `msenas::plan::Plan`. The network is rebuilt op by op by
`crosscheck_torch.Net` (the builder the cross-check uses: stock torch modules following
docs/design.md, conv padding k//2 without bias, the factorised reduce's shifted branch by
cropping/padding, batch norm with batch statistics over T*B*H*W, sign gates, LIF decay-input with
hard reset run layer by layer over T, add, concat, global average pool, linear, mean over T)
with torch's own weight initialisation. The spike uses the triangle surrogate (alpha 2) in the
backward pass and the reset is detached, as in msenas. One step = forward, cross-entropy with
label smoothing 0.1, backward, AdamW. Prints one JSON object: images per second per plan, on the
CPU with the given thread count, and on CUDA when available.
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


def bench(plan, t, b, reps, device):
    spec = plan["spec"]
    net = Net(torch, plan, t, spike=make_spike(torch, "triangle", 2.0))
    net.module.to(device)
    opt = torch.optim.AdamW(net.module.parameters(), lr=1e-4, weight_decay=0.01)
    x = torch.rand(b, spec["in_ch"], spec["height"], spec["width"], device=device)
    xt = x.unsqueeze(0).expand(t, -1, -1, -1, -1).reshape(t * b, *x.shape[1:])
    y = torch.arange(b, device=device) % spec["classes"]

    def step():
        opt.zero_grad(set_to_none=True)
        logits, _ = net.run(xt)
        loss = F.cross_entropy(logits, y, label_smoothing=0.1)
        loss.backward()
        opt.step()

    step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return reps * b / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("plans", nargs="+")
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    rows = []
    for path in a.plans:
        with open(path) as f:
            plan = json.load(f)
        row = {"plan": path, "cpu_images_per_s": round(bench(plan, a.timesteps, a.batch, a.reps, "cpu"), 2)}
        if torch.cuda.is_available():
            row["cuda_images_per_s"] = round(bench(plan, a.timesteps, a.batch, max(a.reps, 10), "cuda"), 2)
        rows.append(row)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "networks": rows}))


if __name__ == "__main__":
    main()
