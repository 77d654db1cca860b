#!/usr/bin/env python3
"""Training throughput of msenas plans in PyTorch (the comparison for `cargo bench --bench train`).

Usage: train_torch_bench.py [--timesteps T] [--batch B] [--reps N] [--threads N] PLAN.json...

Each PLAN.json is a serialised `msenas::plan::Plan`. The network is rebuilt op by op with stock
torch modules following docs/design.md (conv padding k//2 without bias, the factorised reduce's
shifted branch by cropping/padding, batch norm with batch statistics over T*B*H*W, sign gates,
LIF decay-input with hard reset run layer by layer over T, add, concat, global average pool,
linear, mean over T). The spike uses the triangle surrogate (alpha 2) in the backward pass and
the reset is detached, as in msenas. One step = forward, cross-entropy with label smoothing 0.1,
backward, AdamW. Prints one JSON object: images per second per plan, on the CPU with the given
thread count, and on CUDA when available.
"""

import argparse
import json
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("null")
    sys.exit(0)


class Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, alpha):
        ctx.save_for_backward(u)
        ctx.alpha = alpha
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        a = ctx.alpha
        sg = torch.clamp(a - a * a * u.abs(), min=0.0)
        return g * sg, None


class Net(nn.Module):
    def __init__(self, plan, t):
        super().__init__()
        self.plan = plan
        self.t = t
        mods = []
        for op in plan["ops"]:
            kind = op["op"]
            m = nn.Identity()
            if kind == "conv":
                m = nn.Conv2d(op["cin"], op["cout"], op["k"], stride=op["stride"], padding=0, bias=False)
            elif kind == "batch_norm":
                m = nn.BatchNorm2d(plan["tensors"][op["x"]]["c"], eps=1e-5, momentum=0.1)
            elif kind == "linear":
                m = nn.Linear(plan["tensors"][op["x"]]["c"], plan["tensors"][op["y"]]["c"])
            mods.append(m)
        self.mods = nn.ModuleList(mods)

    def lif(self, x):
        t = self.t
        xs = x.reshape(t, -1)
        v = torch.zeros_like(xs[0])
        out = []
        for step in range(t):
            v = v + (xs[step] - v) * 0.5
            s = Spike.apply(v - 0.5, 2.0)
            out.append(s)
            v = v * (1.0 - s.detach())
        return torch.stack(out).reshape(x.shape)

    def forward(self, inp):
        plan = self.plan
        vals = {plan["input"]: inp}
        for op, m in zip(plan["ops"], self.mods):
            kind = op["op"]
            if kind == "lif":
                vals[op["s"]] = self.lif(vals[op["x"]])
                continue
            if kind == "conv":
                x = vals[op["x"]]
                p = op["k"] // 2
                sh = 1 if op["shift"] else 0
                lo, hi = p - sh, p + sh
                if lo < 0:
                    x = x[:, :, -lo:, -lo:]
                    lo = 0
                y = m(F.pad(x, (lo, hi, lo, hi)))
            elif kind == "batch_norm":
                y = m(vals[op["x"]])
                if op["gate"] == "excitatory":
                    y = torch.clamp(y, min=0.0)
                elif op["gate"] == "inhibitory":
                    y = torch.clamp(y, max=0.0)
            elif kind == "add":
                y = vals[op["xs"][0]]
                for i in op["xs"][1:]:
                    y = y + vals[i]
            elif kind == "concat":
                y = torch.cat([vals[i] for i in op["xs"]], dim=1)
            elif kind == "avg_pool":
                y = vals[op["x"]].mean(dim=(2, 3), keepdim=True)
            elif kind == "linear":
                y = m(vals[op["x"]].flatten(1)).reshape(-1, plan["tensors"][op["y"]]["c"], 1, 1)
            elif kind == "mean_time":
                x = vals[op["x"]]
                y = x.reshape(self.t, -1, x.shape[1]).mean(dim=0)
            else:
                raise SystemExit(f"unknown op {kind}")
            vals[op["y"]] = y
        return vals[plan["logits"]]


def bench(plan, t, b, reps, device):
    spec = plan["spec"]
    net = Net(plan, t).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01)
    x = torch.rand(b, spec["in_ch"], spec["height"], spec["width"], device=device)
    xt = x.unsqueeze(0).expand(t, -1, -1, -1, -1).reshape(t * b, *x.shape[1:])
    y = torch.arange(b, device=device) % spec["classes"]

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(xt), y, label_smoothing=0.1)
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
