#!/usr/bin/env python3
"""Speed-up of the Ray search with 1 and 2 workers (one CPU and one CPU-engine thread each) on
a local Ray instance, against the single-process search (the CPU engine on every core) in the
same run: the same settings (`--preset cpu`, digits, `grad_rms`), wall time of the search alone
(Ray started before the clock). Checks that every run folder holds the same records.

Usage: python benches/ray_scaling.py [--preset cpu] [--generations N] (needs `pip install
./python ray`). Prints one JSON object.
"""

import argparse
import json
import os
import tempfile
import time

import ray

import msenas
import msenas.ray as mray


def records(run):
    out = []
    with open(os.path.join(run, "evaluations.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            r.pop("timings", None)
            r.pop("crc", None)
            out.append(r)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--generations", type=int, default=None)
    a = ap.parse_args()
    sets = {"search.device": "cpu", "seed": 1}
    if a.generations:
        sets["search.generations"] = a.generations
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        local = msenas.search(os.path.join(tmp, "local"), preset=a.preset, sets=sets)
        rows["single_process"] = {"seconds": time.perf_counter() - t0, "evaluations": local["fresh"]}
        for w in (1, 2):
            out = os.path.join(tmp, f"ray{w}")
            t0 = time.perf_counter()
            r = mray.search(out, preset=a.preset, sets=sets, workers=w)
            rows[f"ray_{w}_workers"] = {"seconds": time.perf_counter() - t0, "evaluations": r["fresh"]}
        same = all(records(os.path.join(tmp, n)) == records(os.path.join(tmp, "local")) for n in ("ray1", "ray2"))
    for r in rows.values():
        r["candidates_per_s"] = r["evaluations"] / r["seconds"]
    print(json.dumps({
        "bench": "ray_scaling",
        "preset": a.preset,
        "cpus": os.cpu_count(),
        "runs": rows,
        "speedup_2_vs_1_workers": rows["ray_1_workers"]["seconds"] / rows["ray_2_workers"]["seconds"],
        "ray_2_workers_vs_single_process": rows["single_process"]["seconds"] / rows["ray_2_workers"]["seconds"],
        "same_records": same,
    }, indent=1))


if __name__ == "__main__":
    main()
