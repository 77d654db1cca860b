#!/usr/bin/env python3
"""Cross-check msenas's CPU reference against an independent PyTorch implementation.

Usage:
    crosscheck_torch.py DIR...                     check `msenas forward --dump DIR` folders
    crosscheck_torch.py --bench DIR [--repeats N] [--compile]  time the same network in PyTorch,
                                                  eager (and compiled) (JSON out)

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
  is checked on msenas's upstream spikes, and resets with msenas's own spikes of the previous
  steps, so one flip cascades neither downstream nor along time); a mismatch is allowed only
  where the torch membrane lies within --vtol (1e-5) of the threshold, and those are counted
  and printed;
- logits: max abs difference of the time-averaged logits within --rtol (1e-4) relative to the
  largest logit magnitude (at least 1). The free-running difference (torch's own spikes all
  the way) is printed too.

Gradients (when the dump holds them, `msenas forward --dump DIR --grads`): the same network
with autograd. The spike is a custom autograd function, Heaviside forward and the dump's
surrogate derivative sigma'(v - v_th) backward (triangle, sigmoid or atan, SpikingJelly's
conventions); the reset uses the spike detached (`detach_reset`); batch norm runs in training
mode (batch statistics, biased variance); the sign gates are relu(z) and -relu(-z) (gradient
where the gated output is non-zero); the loss is `F.cross_entropy(logits, labels,
label_smoothing=X)` or `F.mse_loss(logits, onehot(labels))`. `backward()` gives every
parameter's gradient, compared with the dump's:

- forced pass: msenas's spikes drive the network (forward values and resets), torch's own
  membranes give the surrogate derivatives; this is what is judged. Per parameter: max abs
  diff and max relative diff (abs diff / the dumped gradient's max-abs); a parameter fails when
  its max abs diff exceeds --grad-rtol (1e-3) times the larger of its gradient's max-abs and
  --grad-floor (1e-4) times the largest gradient of the network (a parameter whose gradient is
  tiny next to the rest is judged against the network's scale, not its own float noise);
- spikes: torch's own threshold decisions in the forced pass are compared with msenas's, as in
  the forward check (mismatches within --vtol of the threshold are reported, beyond fail);
- free-running pass: torch's own spikes all the way; its spike mismatches and gradient
  differences are printed (a near-threshold flip changes the network downstream and later in
  time, so they are reported, not judged);
- the loss value within --rtol relative (at least 1), dL/dlogits within --grad-rtol of its
  max-abs.

The labels are the manifest's (`msenas forward` takes those of the dumped test samples). Every
parameter gets one line (only failing ones with --quiet); a `GRADS {json}` line sums up a dump.

Without numpy or torch the script prints a message and exits 0 (the check is optional on a
bare machine); with MSENAS_REQUIRE_TORCH=1 in the environment (CI sets it, after installing
both) a missing package is an error, exit 1, so nothing is skipped silently there.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

try:  # numpy and torch are optional on a bare machine: main() says so and exits 0
    import numpy as np
except ImportError:
    np = None


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


def load_grads(d, man):
    """The dump's gradients: (grads section of the manifest, dL/dlogits, {param index: array}),
    or None for a dump without them."""
    g = man.get("grads")
    if not g:
        return None
    shapes = {e["name"]: e["shape"] for e in man["files"]}

    def raw(name):
        a = np.fromfile(os.path.join(d, name), dtype="<f4")
        want = int(np.prod(shapes[name]))
        if a.size != want:
            raise SystemExit(f"{d}/{name}: {a.size} values, manifest says {shapes[name]}")
        return a.reshape(shapes[name])

    grads = {p["index"]: raw(p["file"]) for p in g["params"]}
    return g, raw("grad_logits.f32"), grads


def surrogate_grad(torch, name, alpha):
    """sigma'(u) of a surrogate, as SpikingJelly defines it (and msenas's cpu::grad)."""
    if name == "triangle":  # PiecewiseQuadratic
        return lambda u: torch.clamp(alpha - alpha * alpha * u.abs(), min=0.0)
    if name == "sigmoid":

        def sig(u):
            s = torch.sigmoid(alpha * u)
            return alpha * s * (1.0 - s)

        return sig
    if name == "atan":
        return lambda u: (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * u) ** 2)
    raise SystemExit(f"unknown surrogate '{name}'")


def make_spike(torch, name="triangle", alpha=2.0):
    """The spike as an autograd function of u = v - v_th: Heaviside forward, sigma'(u) backward."""
    sg = surrogate_grad(torch, name, alpha)

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            ctx.save_for_backward(u)
            return (u > 0).to(u.dtype)

        @staticmethod
        def backward(ctx, g):
            (u,) = ctx.saved_tensors
            return g * sg(u)

    return Spike.apply


class Net:
    """The plan as torch modules, run op by op over [T*B, C, H, W] tensors.

    `params`: the plan's flat parameter vector (numpy) to load, or None to keep torch's own
    initialisation. `spike`: the spike function of u = v - v_th (`make_spike`) for autograd, or
    None for a plain threshold. `self.module` holds the trainable modules (`.parameters()`,
    `.to(device)`); `self.mods[i]` is the module of plan op i (None for ops without one)."""

    def __init__(self, torch, plan, timesteps, params=None, tau_inv=0.5, v_th=0.5, eps=1e-5,
                 spike=None):
        self.torch = torch
        nn = torch.nn
        self.t = timesteps
        self.tau_inv = float(np.float32(tau_inv))
        self.v_th = float(np.float32(v_th))
        self.eps = eps
        self.spike = spike
        self.plan = plan
        pv = None if params is None else torch.from_numpy(np.ascontiguousarray(params))
        pd = plan["params"]

        def load(t, i, shape):
            if pv is not None:
                p = pd[i]
                t.data = pv[p["offset"] : p["offset"] + p["len"]].reshape(shape).clone()

        self.mods = []
        for op in plan["ops"]:
            kind = op["op"]
            m = None
            if kind == "conv":
                k = op["k"]
                m = nn.Conv2d(op["cin"], op["cout"], k, stride=op["stride"], padding=0, bias=False)
                load(m.weight, op["weight"], (op["cout"], op["cin"], k, k))
            elif kind == "batch_norm":
                c = plan["tensors"][op["x"]]["c"]
                m = nn.BatchNorm2d(c, eps=self.eps, momentum=0.1, affine=True)
                load(m.weight, op["gamma"], (c,))
                load(m.bias, op["beta"], (c,))
                m.train()
            elif kind == "linear":
                fin = plan["tensors"][op["x"]]["c"]
                fout = plan["tensors"][op["y"]]["c"]
                m = nn.Linear(fin, fout)
                load(m.weight, op["weight"], (fout, fin))
                load(m.bias, op["bias"], (fout,))
            self.mods.append(m)
        self.module = nn.ModuleList([m if m is not None else nn.Identity() for m in self.mods])

    @classmethod
    def from_dump(cls, torch, man, plan, params, spike=None):
        return cls(torch, plan, man["timesteps"], params, man["lif"]["tau_inv"], man["lif"]["v_th"],
                   man["bn"]["eps"], spike)

    def param_grads(self):
        """{plan param index: gradient (numpy)} after backward(); a parameter read by several
        ops sums their gradients."""
        out = {}

        def add(i, t):
            g = t.grad.detach().cpu().numpy().copy() if t.grad is not None else np.zeros(
                tuple(t.shape), np.float32)
            out[i] = out[i] + g if i in out else g

        for op, m in zip(self.plan["ops"], self.mods):
            if op["op"] == "conv":
                add(op["weight"], m.weight)
            elif op["op"] == "batch_norm":
                add(op["gamma"], m.weight)
                add(op["beta"], m.bias)
            elif op["op"] == "linear":
                add(op["weight"], m.weight)
                add(op["bias"], m.bias)
        return out

    def lif(self, x, forced=None, forced_reset=False, record=False):
        """x: [T*B, ...] -> (output spikes, own spikes, membrane before reset), each [T*B, N]
        (the last two only with `record`, else None).

        Own spikes are torch's threshold decisions. With `forced` ([T*B, N] 0/1 tensor) the
        output takes its values (the surrogate gradient still flows through torch's membrane),
        and with `forced_reset` the reset uses them too."""
        torch = self.torch
        t = self.t
        xs = x.reshape(t, -1)
        fs = None if forced is None else forced.reshape(t, -1)
        v = torch.zeros_like(xs[0])
        out_all, s_all, v_all = [], [], []
        for step in range(t):
            v = v + (xs[step] - v) * self.tau_inv
            if self.spike is None:
                s = (v > self.v_th).to(x.dtype)
            else:
                s = self.spike(v - self.v_th)
            if record:
                v_all.append(v.detach())
                s_all.append(s.detach())
            out = s
            if fs is not None:
                # forced values, surrogate gradient: s - s.detach() is exactly 0
                out = fs[step] + (s - s.detach())
            out_all.append(out)
            r = out if forced_reset else s
            v = v * (1.0 - r.detach())
        n = x.shape[0] // t
        o = torch.stack(out_all).reshape(t * n, -1)
        if not record:
            return o, None, None
        s = torch.stack(s_all).reshape(t * n, -1)
        vp = torch.stack(v_all).reshape(t * n, -1)
        return o, s, vp

    def run(self, inp, forced=None, record=None, forced_reset=False):
        """Run the plan on inp ([T*B, C, H, W] tensor, or a [T, B, C, H, W] numpy array).
        `forced`: {pop: bool [T*B, N]} spikes used downstream instead of torch's own (and in the
        reset too with `forced_reset`); `record`: dict filled with {pop: (spikes, membrane)}.
        Returns the time-averaged logits [B, K] and the per-step logits [T, B, K]."""
        torch = self.torch
        F = torch.nn.functional
        tens = self.plan["tensors"]
        if isinstance(inp, np.ndarray):
            inp = torch.from_numpy(np.ascontiguousarray(inp))
            inp = inp.reshape(inp.shape[0] * inp.shape[1], *inp.shape[2:])
        vals = {self.plan["input"]: inp}
        for op, m in zip(self.plan["ops"], self.mods):
            kind = op["op"]
            if kind == "lif":
                x = vals[op["x"]]
                f = None
                if forced is not None:
                    f = torch.from_numpy(forced[op["pop"]]).to(x.dtype)
                o, s, vp = self.lif(x, f, forced_reset, record is not None)
                if record is not None:
                    record[op["pop"]] = (s.bool(), vp)
                y = o.reshape(x.shape)
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
                    z = torch.relu(z)  # max(z, 0); gradient where z > 0
                elif g == "inhibitory":
                    z = -torch.relu(-z)  # min(z, 0); gradient where z < 0
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
                x = vals[op["x"]]
                x = x.reshape(self.t, x.shape[0] // self.t, -1)
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


def spike_report(man, rec, spikes, v_th, vtol):
    """Compare torch's own spikes (rec) with msenas's: (lines, total, near, far)."""
    total, near, far = 0, 0, 0
    lines = []
    for p in man["populations"]:
        i = p["index"]
        s_t, vp = rec[i]
        s_t = s_t.numpy()
        vp = vp.numpy()
        mis = s_t != spikes[i]
        n_mis = int(mis.sum())
        if n_mis:
            margin = np.abs(vp[mis] - v_th)
            n_near = int((margin <= vtol).sum())
            total += n_mis
            near += n_near
            far += n_mis - n_near
            lines.append(
                f"  population {i} {p['name']}: {n_mis} of {mis.size} spikes differ, "
                f"{n_near} within {vtol:g} of the threshold (largest |v - v_th| {margin.max():.3g})"
            )
    return lines, total, near, far


def check(torch, d, vtol, rtol):
    man, plan, params, inp, logits, per_step, spikes = load_dump(d)
    net = Net.from_dump(torch, man, plan, params)
    rec = {}
    with torch.no_grad():
        lg_forced, ps_forced = net.run(inp, forced=spikes, record=rec, forced_reset=True)
        lg_free, _ = net.run(inp)
    lg_forced = lg_forced.numpy()
    lg_free = lg_free.numpy()
    ok = True
    lines, total_mis, near, far = spike_report(man, rec, spikes, net.v_th, vtol)
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


def torch_loss(torch, gsec, logits, labels, classes):
    F = torch.nn.functional
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    if gsec["loss"] == "ce":
        return F.cross_entropy(logits, y, label_smoothing=float(gsec["label_smoothing"]))
    if gsec["loss"] == "mse":
        return F.mse_loss(logits, F.one_hot(y, classes).to(logits.dtype))
    raise SystemExit(f"unknown loss '{gsec['loss']}'")


def grad_pass(torch, man, plan, params, inp, spikes, gsec, forced, record=None):
    """One forward + backward in torch: (loss, dL/dlogits, {param index: gradient})."""
    sg = gsec["surrogate"]
    net = Net.from_dump(torch, man, plan, params, spike=make_spike(torch, sg["name"], sg["alpha"]))
    with torch.enable_grad():
        lg, _ = net.run(inp, forced=spikes if forced else None, record=record, forced_reset=forced)
        lg.retain_grad()
        loss = torch_loss(torch, gsec, lg, man["labels"], man["classes"])
        loss.backward()
    return float(loss.item()), lg.grad.numpy(), net.param_grads()


def compare_grads(dumped, got):
    """Per parameter (index, max abs diff, max rel diff, max-abs of the dumped gradient) and the
    network's largest gradient."""
    gmax = max((float(np.abs(g).max()) for g in dumped.values() if g.size), default=0.0)
    rows = []
    for i in sorted(dumped):
        a, b = dumped[i], got[i]
        if a.shape != b.shape:
            raise SystemExit(f"parameter {i}: dump shape {a.shape}, torch {b.shape}")
        diff = float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0
        amax = float(np.abs(a).max()) if a.size else 0.0
        rel = diff / amax if amax > 0 else (0.0 if diff == 0 else math.inf)
        rows.append((i, diff, rel, amax))
    return rows, gmax


def check_grads(torch, d, vtol, rtol, grad_rtol, grad_floor, verbose):
    man, plan, params, inp, _, _, spikes = load_dump(d)
    loaded = load_grads(d, man)
    if loaded is None:
        return True
    gsec, gl_dump, dumped = loaded
    names = {p["index"]: p["name"] for p in gsec["params"]}
    rec = {}
    loss_f, gl_f, got_f = grad_pass(torch, man, plan, params, inp, spikes, gsec, True, rec)
    rec_r = {}
    loss_r, _, got_r = grad_pass(torch, man, plan, params, inp, spikes, gsec, False, rec_r)
    free_mis = sum(int((rec_r[i][0].numpy() != spikes[i]).sum()) for i in spikes)
    v_th = float(np.float32(man["lif"]["v_th"]))
    lines, total_mis, near, far = spike_report(man, rec, spikes, v_th, vtol)
    rows, gmax = compare_grads(dumped, got_f)
    rows_r, _ = compare_grads(dumped, got_r)
    sg = gsec["surrogate"]
    print(
        f"{d}: gradients, loss {gsec['loss']}"
        + (f" (label smoothing {gsec['label_smoothing']:g})" if gsec["loss"] == "ce" else "")
        + f", surrogate {sg['name']}:{sg['alpha']:g}, {len(rows)} parameters, "
        f"largest |grad| {gmax:.3g}"
    )
    ok = True
    failed = []
    for (i, diff, rel, amax), (_, diff_r, rel_r, _) in zip(rows, rows_r):
        tol = grad_rtol * max(amax, grad_floor * gmax)
        bad = not diff <= tol
        if bad:
            failed.append(i)
        if verbose or bad:
            print(
                f"  {'FAIL ' if bad else ''}grad {i} {names[i]}: max|g| {amax:.3g}, "
                f"max abs diff {diff:.3g}, rel {rel:.3g} (tolerance {tol:.3g}); "
                f"free-running abs {diff_r:.3g}, rel {rel_r:.3g}"
            )
    for line in lines:
        print(line)
    max_abs = max((r[1] for r in rows), default=0.0)
    max_rel = max((r[2] for r in rows), default=0.0)
    # relative to each gradient's own max-abs, over parameters at or above the floor
    judged = [r for r in rows if r[3] >= grad_floor * gmax]
    max_rel_judged = max((r[2] for r in judged), default=0.0)
    max_abs_r = max((r[1] for r in rows_r), default=0.0)
    max_rel_r = max((r[2] for r in rows_r), default=0.0)
    gl_diff = float(np.abs(gl_f - gl_dump).max())
    loss_diff = abs(loss_f - gsec["loss_value"])
    loss_tol = rtol * max(1.0, abs(gsec["loss_value"]))
    print(
        f"  loss: msenas {gsec['loss_value']:.7g}, torch {loss_f:.7g} (diff {loss_diff:.3g}, "
        f"tolerance {loss_tol:.3g}); dL/dlogits max abs diff {gl_diff:.3g}"
    )
    print(
        f"  spikes (forced pass): {total_mis} mismatches, {near} within {vtol:g} of the "
        f"threshold, {far} beyond"
    )
    print(
        f"  gradients: max abs diff {max_abs:.3g}, max rel diff {max_rel_judged:.3g} "
        f"({len(judged)} parameters with max|g| >= {grad_floor:g} x largest; all {len(rows)}: "
        f"{max_rel:.3g}); {len(failed)} beyond the tolerance"
    )
    print(
        f"  free-running: {free_mis} spikes differ from msenas's, loss {loss_r:.7g}, gradients "
        f"max abs diff {max_abs_r:.3g}, max rel diff {max_rel_r:.3g}"
    )
    if far:
        ok = False
        print("  FAIL: spikes differ away from the threshold")
    if failed:
        ok = False
        print(f"  FAIL: {len(failed)} parameter gradients differ beyond the tolerance")
    if not loss_diff <= loss_tol:
        ok = False
        print("  FAIL: the loss differs beyond the tolerance")
    if not gl_diff <= grad_rtol * float(np.abs(gl_dump).max()):
        ok = False
        print("  FAIL: dL/dlogits differs beyond the tolerance")
    result = {
        "dir": d,
        "key": plan["key"],
        "ok": ok,
        "loss": gsec["loss"],
        "label_smoothing": gsec["label_smoothing"],
        "surrogate": f"{sg['name']}:{sg['alpha']:g}",
        "params": len(rows),
        "max_grad": gmax,
        "max_abs_grad_diff": max_abs,
        "max_rel_grad_diff": max_rel_judged,
        "max_rel_grad_diff_all": max_rel,
        "max_abs_grad_diff_free_running": max_abs_r,
        "max_rel_grad_diff_free_running": max_rel_r,
        "spike_mismatches_free_running": free_mis,
        "loss_diff": loss_diff,
        "grad_logits_diff": gl_diff,
        "spike_mismatches": total_mis,
        "spike_mismatches_near_threshold": near,
        "spike_mismatches_beyond": far,
        "params_failed": [names[i] for i in failed],
    }
    print("GRADS " + json.dumps(result))
    return ok


def bench(torch, d, repeats, compile=False):
    """Time the dumped network's forward pass: eager, and with `compile` also under
    `torch.compile` (its first calls, which compile, reported apart). JSON on stdout."""
    man, plan, params, inp, _, _, _ = load_dump(d)
    net = Net.from_dump(torch, man, plan, params)
    x = torch.from_numpy(np.ascontiguousarray(inp))
    x = x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])

    def timed(run):
        with torch.no_grad():
            start = time.perf_counter()
            run(x)  # warm-up (and compilation)
            run(x)
            warm = time.perf_counter() - start
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                run(x)
                times.append(time.perf_counter() - t0)
        return times, warm

    times, _ = timed(net.run)
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
    }
    if compile:
        times, warm = timed(torch.compile(net.run))
        out["compiled"] = {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "warmup_s": warm,
        }
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", help="dump folders (msenas forward --dump DIR)")
    ap.add_argument("--bench", metavar="DIR", help="time the network of DIR, print JSON")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="with --bench: also torch.compile")
    ap.add_argument("--vtol", type=float, default=1e-5, help="membrane distance allowed")
    ap.add_argument("--rtol", type=float, default=1e-4, help="relative logit and loss tolerance")
    ap.add_argument("--grad-rtol", type=float, default=1e-3,
                    help="gradient tolerance relative to the gradient's max-abs")
    ap.add_argument("--grad-floor", type=float, default=1e-4,
                    help="smallest gradient scale, relative to the network's largest gradient")
    ap.add_argument("--quiet", action="store_true", help="print failing parameters only")
    a = ap.parse_args()
    if not a.dirs and not a.bench:
        ap.error("give a dump folder (or --bench DIR)")
    try:
        if np is None:
            raise ImportError("numpy is missing", name="numpy")
        import torch
    except ImportError as e:
        if os.environ.get("MSENAS_REQUIRE_TORCH") == "1":
            print(f"crosscheck_torch: {e.name} is not installed but MSENAS_REQUIRE_TORCH=1 "
                  "(pip install numpy torch)", file=sys.stderr)
            return 1
        print(f"crosscheck_torch: skipped, {e.name} is not installed; nothing checked "
              "(pip install numpy torch)")
        return 0
    torch.set_grad_enabled(False)
    for d in a.dirs + ([a.bench] if a.bench else []):
        if not os.path.isfile(os.path.join(d, "manifest.json")):
            print(f"crosscheck_torch: {d}: no manifest.json (not a complete dump)", file=sys.stderr)
            return 2
    if a.bench:
        bench(torch, a.bench, a.repeats, a.compile)
        return 0
    ok = True
    for d in a.dirs:
        ok &= check(torch, d, a.vtol, a.rtol)
        ok &= check_grads(torch, d, a.vtol, a.rtol, a.grad_rtol, a.grad_floor, not a.quiet)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
