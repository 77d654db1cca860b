"""Found networks as PyTorch modules, to train further (on CUDA, with PyTorch's tools) or to
deploy.

- :func:`build` makes the module from a genome (msenas's counter-based initial weights) or a
  trained checkpoint, through the extension;
- :func:`load` makes it from a folder written by ``msenas export SOURCE --to torch`` with
  numpy and torch only (no msenas needed on the machine that loads it).

The module follows msenas's network exactly (``docs/design.md``): convolutions without bias
(padding ``k // 2``; the factorised reduction's shifted branch reads the input one pixel
down-right), batch norm over all ``T*B*H*W`` values of a channel then the sign gate
(``max(z, 0)`` excitatory, ``min(z, 0)`` inhibitory), the LIF neuron
``v <- v + (x - v) * tau_inv``, a spike where ``v > v_th``, hard reset to 0, ``v = 0`` at
``t = 0``, layer by layer over T; add, channel concatenation, global average pool, linear, and
the logits averaged over time. The spike's backward pass is the surrogate msenas trains with
(triangle, sigmoid or atan, SpikingJelly's conventions; the reset uses the detached spike).

In ``train()`` mode batch norm uses the batch's statistics (as msenas's training and
training-free scores), in ``eval()`` mode the running statistics (as ``msenas evaluate``).
Modules built from a checkpoint start in ``eval()`` mode, from a genome in ``train()`` mode.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, Optional, Union

import numpy as np

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("msenas.torch needs PyTorch: pip install torch") from e

__all__ = ["SpikingNetwork", "build", "load"]


def _surrogate_grad(name: str, alpha: float):
    if name == "triangle":
        return lambda u: torch.clamp(alpha - alpha * alpha * u.abs(), min=0.0)
    if name == "sigmoid":

        def sig(u):
            s = torch.sigmoid(alpha * u)
            return alpha * s * (1.0 - s)

        return sig
    if name == "atan":
        return lambda u: (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * u) ** 2)
    raise ValueError(f"surrogate: '{name}' unknown (allowed: triangle, sigmoid, atan)")


def _make_spike(name: str, alpha: float):
    sg = _surrogate_grad(name, alpha)

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


class SpikingNetwork(nn.Module):
    """An msenas network: ``forward(x)`` takes ``[T, B, C, H, W]`` (or ``[B, C, H, W]``,
    repeated over T) and returns the time-averaged logits ``[B, classes]``."""

    def __init__(self, manifest: Dict[str, Any], plan: Dict[str, Any], params: np.ndarray,
                 bn_mean: np.ndarray, bn_var: np.ndarray) -> None:
        super().__init__()
        self.manifest = manifest
        self.plan = plan
        self.timesteps = int(manifest["timesteps"])
        self.tau_inv = float(np.float32(manifest["lif"]["tau_inv"]))
        self.v_th = float(np.float32(manifest["lif"]["v_th"]))
        eps = float(manifest["bn"]["eps"])
        momentum = float(manifest["bn"]["momentum"])
        sur = manifest["surrogate"]
        self._spike = _make_spike(sur["name"], float(sur["alpha"]))
        pv = torch.from_numpy(np.ascontiguousarray(params, dtype=np.float32))
        pd = plan["params"]
        bn_offsets = np.concatenate([[0], np.cumsum(manifest["bn"]["channels"])]).astype(int)

        def take(i, shape):
            p = pd[i]
            return pv[p["offset"]: p["offset"] + p["len"]].reshape(shape).clone()

        mods = []
        for op in plan["ops"]:
            kind = op["op"]
            m = nn.Identity()
            if kind == "conv":
                k = op["k"]
                m = nn.Conv2d(op["cin"], op["cout"], k, stride=op["stride"], padding=0, bias=False)
                m.weight.data = take(op["weight"], (op["cout"], op["cin"], k, k))
            elif kind == "batch_norm":
                c = plan["tensors"][op["x"]]["c"]
                m = nn.BatchNorm2d(c, eps=eps, momentum=momentum, affine=True)
                m.weight.data = take(op["gamma"], (c,))
                m.bias.data = take(op["beta"], (c,))
                lo, hi = bn_offsets[op["bn"]], bn_offsets[op["bn"] + 1]
                m.running_mean.copy_(torch.from_numpy(np.ascontiguousarray(bn_mean[lo:hi])))
                m.running_var.copy_(torch.from_numpy(np.ascontiguousarray(bn_var[lo:hi])))
            elif kind == "linear":
                fin = plan["tensors"][op["x"]]["c"]
                fout = plan["tensors"][op["y"]]["c"]
                m = nn.Linear(fin, fout)
                m.weight.data = take(op["weight"], (fout, fin))
                m.bias.data = take(op["bias"], (fout,))
            mods.append(m)
        self.ops = nn.ModuleList(mods)
        self.train(not manifest.get("trained", False))

    def _lif(self, x: torch.Tensor) -> torch.Tensor:
        t = self.timesteps
        xs = x.reshape(t, -1)
        v = torch.zeros_like(xs[0])
        out = []
        for step in range(t):
            v = v + (xs[step] - v) * self.tau_inv
            s = self._spike(v - self.v_th)
            out.append(s)
            v = v * (1.0 - s.detach())
        return torch.stack(out).reshape(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.timesteps
        if x.dim() == 4:
            x = x.unsqueeze(0).expand(t, *x.shape)
        if x.dim() != 5 or x.shape[0] != t:
            raise ValueError(f"x: shape {tuple(x.shape)} (allowed: [{t}, B, C, H, W] or [B, C, H, W])")
        b = x.shape[1]
        tens = self.plan["tensors"]
        vals = {self.plan["input"]: x.reshape(t * b, *x.shape[2:])}
        for op, m in zip(self.plan["ops"], self.ops):
            kind = op["op"]
            if kind == "lif":
                y = self._lif(vals[op["x"]])
            elif kind == "conv":
                v = vals[op["x"]]
                p = op["k"] // 2
                sh = 1 if op["shift"] else 0
                lo, hi = p - sh, p + sh
                if lo < 0:
                    v = v[:, :, -lo:, -lo:]
                    lo = 0
                y = m(F.pad(v, (lo, hi, lo, hi)))
            elif kind == "batch_norm":
                y = m(vals[op["x"]])
                if op["gate"] == "excitatory":
                    y = torch.relu(y)
                elif op["gate"] == "inhibitory":
                    y = -torch.relu(-y)
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
                v = vals[op["x"]]
                y = v.reshape(t, b, -1).mean(dim=0)
            else:
                raise ValueError(f"plan: unknown op '{kind}'")
            vals[op["y"] if "y" in op else op["s"]] = y
        return vals[self.plan["logits"]].reshape(b, -1)


def build(genome=None, checkpoint: Optional[Union[str, "os.PathLike[str]"]] = None, dataset: str = "digits",
          width: int = 8, reduce_kernel: int = 1, timesteps: int = 4, weight_seed: int = 0) -> SpikingNetwork:
    """The module of a trained ``checkpoint`` (a checkpoint file or training folder; ``eval()``
    mode), or of ``genome`` at msenas's initial weights of ``weight_seed`` for ``dataset``'s
    input (``train()`` mode: batch statistics, as ``Engine.forward``)."""
    from . import _msenas

    manifest, plan, params, mean, var = _msenas.export_data(
        genome, None if checkpoint is None else os.fspath(checkpoint), dataset, width,
        reduce_kernel, timesteps, weight_seed)
    return SpikingNetwork(json.loads(manifest), json.loads(plan), params, mean, var)


def load(folder: Union[str, "os.PathLike[str]"]) -> SpikingNetwork:
    """The module of a folder written by ``msenas export SOURCE --to torch``."""
    folder = os.fspath(folder)
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest.get("format") != "msenas-torch-1":
        raise ValueError(f"{folder}/manifest.json: format {manifest.get('format')!r} (allowed: 'msenas-torch-1')")
    with open(os.path.join(folder, "plan.json")) as f:
        plan = json.load(f)
    shapes = {e["name"]: e["shape"] for e in manifest["files"]}

    def raw(name):
        a = np.fromfile(os.path.join(folder, name), dtype="<f4")
        if a.size != int(np.prod(shapes[name])):
            raise ValueError(f"{folder}/{name}: {a.size} values, manifest.json says {shapes[name]}")
        return a

    return SpikingNetwork(manifest, plan, raw("params.f32"), raw("bn_mean.f32"), raw("bn_var.f32"))
