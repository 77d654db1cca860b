#!/usr/bin/env python3
"""Cross-check msenas's CPU reference against an independent PyTorch implementation.

Usage:
    crosscheck_torch.py DIR                        check a `msenas forward --dump DIR` folder
    crosscheck_torch.py --bench DIR [--repeats N]  time the same network in PyTorch (JSON out)

The network is rebuilt from DIR/plan.json op by op with stock torch modules (conv2d, batch norm
in training mode, linear), loads DIR/params.f32 and runs DIR/input.f32 in float32, following
docs/design.md:

- conv: padding k//2, no bias; the factorised reduce's shifted branch reads input pixel
  (o*s + d - p + 1), done here by cropping/padding the input by (p - 1, p + 1) and a conv
  without padding;
- batch norm: batch statistics over all T*B*H*W values per channel (biased variance), eps from
  the manifest, then the sign gate (max(z, 0) excitatory, min(z, 0) inhibitory);
- LIF: decay-input, v = v + (x - v) * (1/tau), spike v > v_th, hard reset, v = 0 at t = 0,
  run layer by layer over T;
- add, channel concat, global average pool, linear, mean over T.

Checks (exit 1 on failure):
- spikes of every population: the torch LIF is fed the same inputs as msenas's (each population
  is checked on msenas's upstream spikes, so one flip does not cascade); a mismatch is allowed
  only where the torch membrane lies within --vtol (1e-5) of the threshold, and those are counted
  and printed;
- logits: max abs difference of the time-averaged logits within --rtol (1e-4) relative to the
  largest logit magnitude (at least 1). The free-running difference (torch's own spikes all
  the way) is printed too.

Without torch the script prints a message and exits 0.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def load_dump(d):
    with open(os.path.join(d, "manifest.json")) as f:
        man = json.load(f)
    with open(os.path.join(d, "plan.json")) as f:
        plan = json.load(f)
    shapes = {e["name"]: e["shape"] for e in man["files"]}

    def raw(name, dtype):
        a = np.fromfile(os.path.join(d, name), dtype=dtype)
        want = int(np.prod(shapes[name])) if shapes[name] else a.size
        if a.size != want:
            raise SystemExit(f"{d}/{name}: {a.size} values, manifest says {shapes[name]}")
        return a.reshape(shapes[name])

    params = raw("params.f32", "<f4")
    inp = raw("input.f32", "<f4")
    logits = raw("logits.f32", "<f4")
    per_step = raw("logits_per_step.f32", "<f4")
    spikes = {}
    for p in man["populations"]:
        words = raw(p["file"], "<u4")  # [T, B, words]
        t, b, w = words.shape
        bits = np.unpackbits(
            words.astype("<u4").reshape(t * b, w).view(np.uint8), axis=1, bitorder="little"
        )
        spikes[p["index"]] = bits[:, : p["neurons"]].astype(bool)  # [T*B, N]
    return man, plan, params, inp, logits, per_step, spikes


class Net:
    """The plan as torch modules, run op by op over [T*B, C, H, W] tensors."""

    def __init__(self, torch, man, plan, params):
        self.torch = torch
        nn = torch.nn
        self.t = man["timesteps"]
        self.b = man["batch"]
        self.tau_inv = float(np.float32(man["lif"]["tau_inv"]))
        self.v_th = float(np.float32(man["lif"]["v_th"]))
        self.eps = man["bn"]["eps"]
        self.plan = plan
        pv = torch.from_numpy(np.ascontiguousarray(params))
        pd = plan["params"]

        def param(i, shape):
            p = pd[i]
            return pv[p["offset"] : p["offset"] + p["len"]].reshape(shape).clone()

        self.mods = []
        for op in plan["ops"]:
            kind = op["op"]
            m = None
            if kind == "conv":
                k = op["k"]
                m = nn.Conv2d(op["cin"], op["cout"], k, stride=op["stride"], padding=0, bias=False)
                m.weight.data = param(op["weight"], (op["cout"], op["cin"], k, k))
            elif kind == "batch_norm":
                c = plan["tensors"][op["x"]]["c"]
                m = nn.BatchNorm2d(c, eps=self.eps, momentum=0.1, affine=True)
                m.weight.data = param(op["gamma"], (c,))
                m.bias.data = param(op["beta"], (c,))
                m.train()
            elif kind == "linear":
                fin = plan["tensors"][op["x"]]["c"]
                fout = plan["tensors"][op["y"]]["c"]
                m = nn.Linear(fin, fout)
                m.weight.data = param(op["weight"], (fout, fin))
                m.bias.data = param(op["bias"], (fout,))
            self.mods.append(m)

    def lif(self, x):
        """x: [T*B, ...] -> (spikes, membrane before reset), both [T*B, N]."""
        torch = self.torch
        t = self.t
        xs = x.reshape(t, -1)
        v = torch.zeros_like(xs[0])
        s_all, v_all = [], []
        for step in range(t):
            v = v + (xs[step] - v) * self.tau_inv
            s = (v > self.v_th).to(x.dtype)
            v_all.append(v)
            s_all.append(s)
            v = v * (1.0 - s)
        n = x.shape[0] // t
        s = torch.stack(s_all).reshape(t * n, -1)
        vp = torch.stack(v_all).reshape(t * n, -1)
        return s, vp

    def run(self, inp, forced=None, record=None):
        """Run the plan. `forced`: {pop: bool [T*B, N]} spikes used downstream instead of torch's
        own; `record`: dict filled with {pop: (spikes, membrane)}."""
        torch = self.torch
        F = torch.nn.functional
        tens = self.plan["tensors"]
        vals = {self.plan["input"]: torch.from_numpy(np.ascontiguousarray(inp)).reshape(
            self.t * self.b, *inp.shape[2:])}
        for op, m in zip(self.plan["ops"], self.mods):
            kind = op["op"]
            if kind == "lif":
                x = vals[op["x"]]
                s, vp = self.lif(x)
                if record is not None:
                    record[op["pop"]] = (s.bool(), vp)
                if forced is not None:
                    s = torch.from_numpy(forced[op["pop"]]).to(x.dtype)
                y = s.reshape(x.shape)
            elif kind == "conv":
                x = vals[op["x"]]
                p = op["k"] // 2
                sh = 1 if op["shift"] else 0
                lo, hi = p - sh, p + sh
                if lo < 0:
                    x = x[:, :, -lo:, -lo:]
                    lo = 0
                x = F.pad(x, (lo, hi, lo, hi))
                y = m(x)
            elif kind == "batch_norm":
                z = m(vals[op["x"]])
                g = op["gate"]
                if g == "excitatory":
                    z = torch.clamp(z, min=0.0)
                elif g == "inhibitory":
                    z = torch.clamp(z, max=0.0)
                y = z
            elif kind == "add":
                y = vals[op["xs"][0]]
                for i in op["xs"][1:]:
                    y = y + vals[i]
            elif kind == "concat":
                y = torch.cat([vals[i] for i in op["xs"]], dim=1)
            elif kind == "avg_pool":
                y = vals[op["x"]].mean(dim=(2, 3), keepdim=True)
            elif kind == "linear":
                y = m(vals[op["x"]].flatten(1))
                y = y.reshape(y.shape[0], -1, 1, 1)
            elif kind == "mean_time":
                x = vals[op["x"]].reshape(self.t, self.b, -1)
                vals["per_step"] = x
                y = x.mean(dim=0)
            else:
                raise SystemExit(f"plan.json: unknown op '{kind}'")
            yd = tens[op["y"] if "y" in op else op["s"]]
            if kind != "mean_time" and tuple(y.shape[1:]) != (yd["c"], yd["h"], yd["w"]):
                raise SystemExit(
                    f"plan.json: op {kind} -> {yd['name']}: torch shape {tuple(y.shape)}, "
                    f"plan says {(yd['c'], yd['h'], yd['w'])}"
                )
            vals[op["y"] if "y" in op else op["s"]] = y
        return vals[self.plan["logits"]], vals["per_step"]


def check(torch, d, vtol, rtol):
    man, plan, params, inp, logits, per_step, spikes = load_dump(d)
    net = Net(torch, man, plan, params)
    rec = {}
    with torch.no_grad():
        lg_forced, ps_forced = net.run(inp, forced=spikes, record=rec)
        lg_free, _ = net.run(inp)
    lg_forced = lg_forced.numpy()
    lg_free = lg_free.numpy()
    ok = True
    total_mis, near, far = 0, 0, 0
    worst_margin = 0.0
    lines = []
    for p in man["populations"]:
        i = p["index"]
        s_t, vp = rec[i]
        s_t = s_t.numpy()
        vp = vp.numpy()
        mis = s_t != spikes[i]
        n_mis = int(mis.sum())
        if n_mis:
            margin = np.abs(vp[mis] - net.v_th)
            n_near = int((margin <= vtol).sum())
            total_mis += n_mis
            near += n_near
            far += n_mis - n_near
            worst_margin = max(worst_margin, float(margin.max()))
            lines.append(
                f"  population {i} {p['name']}: {n_mis} of {mis.size} spikes differ, "
                f"{n_near} within {vtol:g} of the threshold (largest |v - v_th| {margin.max():.3g})"
            )
    scale = max(1.0, float(np.abs(logits).max()))
    diff = float(np.abs(lg_forced - logits).max())
    diff_step = float(np.abs(ps_forced.numpy() - per_step).max())
    diff_free = float(np.abs(lg_free - logits).max())
    print(f"{d}: {plan['key']}")
    print(
        f"  T {man['timesteps']}, B {man['batch']}, {man['num_params']} params, "
        f"{len(man['populations'])} populations"
    )
    for line in lines:
        print(line)
    print(
        f"  spikes: {total_mis} mismatches, {near} within {vtol:g} of the threshold, "
        f"{far} beyond"
    )
    print(
        f"  logits: max abs diff {diff:.3g} (per step {diff_step:.3g}; tolerance "
        f"{rtol * scale:.3g}); free-running {diff_free:.3g}"
    )
    if far:
        ok = False
        print("  FAIL: spikes differ away from the threshold")
    if not diff <= rtol * scale:
        ok = False
        print("  FAIL: logits differ beyond the tolerance")
    result = {
        "dir": d,
        "key": plan["key"],
        "ok": ok,
        "max_logit_diff": diff,
        "max_logit_diff_free_running": diff_free,
        "spike_mismatches": total_mis,
        "spike_mismatches_near_threshold": near,
        "spike_mismatches_beyond": far,
    }
    print("RESULT " + json.dumps(result))
    return ok


def bench(torch, d, repeats):
    man, plan, params, inp, _, _, _ = load_dump(d)
    net = Net(torch, man, plan, params)
    times = []
    with torch.no_grad():
        net.run(inp)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            net.run(inp)
            times.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "repeats": repeats,
                "median_s": statistics.median(times),
                "min_s": min(times),
                "max_s": max(times),
            }
        )
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", help="dump folders (msenas forward --dump DIR)")
    ap.add_argument("--bench", metavar="DIR", help="time the network of DIR, print JSON")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--vtol", type=float, default=1e-5, help="membrane distance allowed")
    ap.add_argument("--rtol", type=float, default=1e-4, help="relative logit tolerance")
    a = ap.parse_args()
    if not a.dirs and not a.bench:
        ap.error("give a dump folder (or --bench DIR)")
    try:
        import torch
    except ImportError:
        print("crosscheck_torch: torch is not installed; nothing checked (pip install torch)")
        return 0
    torch.set_grad_enabled(False)
    for d in a.dirs + ([a.bench] if a.bench else []):
        if not os.path.isfile(os.path.join(d, "manifest.json")):
            print(f"crosscheck_torch: {d}: no manifest.json (not a complete dump)", file=sys.stderr)
            return 2
    if a.bench:
        bench(torch, a.bench, a.repeats)
        return 0
    ok = all([check(torch, d, a.vtol, a.rtol) for d in a.dirs])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
