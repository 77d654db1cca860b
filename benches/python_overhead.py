#!/usr/bin/env python3
"""The Python call's overhead over the Rust call: `msenas.Engine.forward` from Python against
the same plan compile and forward pass timed inside Rust (`_msenas._bench_forward`, no Python
in the loop), on the same engine, genomes and inputs, alternating rounds. The CPU default:
width 8, T 4, digits-sized inputs (1x16x16), batch 48 (the `cpu` preset's probe), 10 classes.

Usage: python benches/python_overhead.py [--genomes N] [--repeats R] [--device cpu]
(needs the package: `pip install ./python`). Prints one JSON object.
"""

import argparse
import json
import statistics
import time

import numpy as np

import msenas
from msenas import _msenas


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--genomes", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    engine = msenas.Engine(a.device)
    t, b = 4, a.batch
    x = np.random.default_rng(0).random((t, b, 1, 16, 16), dtype=np.float32)
    rows = []
    for seed in range(1, a.genomes + 1):
        g = msenas.sample(seed=seed)
        engine.forward(g, x, classes=10)  # warm up
        py, rs = [], []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            engine.forward(g, x, classes=10)
            py.append(time.perf_counter() - t0)
            rs.extend(_msenas._bench_forward(engine._engine, g, x, 10, t, repeats=1))
        rows.append(
            {
                "seed": seed,
                "params": g.num_params(),
                "python_s": statistics.median(py),
                "rust_s": statistics.median(rs),
            }
        )
    py_total = sum(r["python_s"] for r in rows)
    rs_total = sum(r["rust_s"] for r in rows)
    print(
        json.dumps(
            {
                "bench": "python_overhead",
                "device": engine.device,
                "batch": b,
                "timesteps": t,
                "width": 8,
                "repeats": a.repeats,
                "genomes": rows,
                "python_s_sum": py_total,
                "rust_s_sum": rs_total,
                "overhead_pct": 100.0 * (py_total / rs_total - 1.0),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
