"""The search scaled out with Ray: actors each own a scorer (one engine on its own device; one
GPU per actor with ``num_gpus=1`` where GPUs exist), the driver runs the ask/tell loop and
writes the run folder.

    python -m msenas.ray search --address auto --workers 8 --preset cpu --out runs/ray
    python -m msenas.ray search --address auto --workers 8 --resume runs/ray

or ``msenas.ray.search(out, workers=8, address="auto", ...)``. The driver tells the results in
the order the genomes were asked, so the run folder (log, population files, Pareto front,
``best.json``) is the one a single-process search writes with the same settings. An actor that
dies mid-generation is replaced and its genomes run again; a driver killed at any point resumes
from the run folder (``resume=True``), as ``msenas search --resume``.

Start a cluster with ``ray start --head`` on one machine and ``ray start --address HEAD:6379``
on the others, then run the driver anywhere in it with ``--address auto`` (or ``HEAD:6379``).
Without an address a local Ray instance is started.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

from . import InputError, MsenasError, Search, _msenas
from ._msenas import Evaluation, Genome

__all__ = ["search", "main"]


class _Worker:
    """One scorer (its own engine and probe batches) in a Ray actor; genomes and evaluations
    travel as JSON text."""

    def __init__(self, config: str, device: str, fail_after: Optional[int] = None) -> None:
        self._scorer = _msenas.Scorer(config, device)
        self._calls = 0
        self._fail_after = fail_after

    def device(self) -> str:
        return self._scorer.device

    def evaluate(self, genomes: List[str]) -> List[str]:
        self._calls += 1
        if self._fail_after is not None and self._calls > self._fail_after:
            os._exit(1)  # a crash, for the fault-tolerance test
        evals = self._scorer.evaluate([Genome.from_json(g) for g in genomes])
        return [e.to_json() for e in evals]


def search(
    out: str,
    preset: Optional[str] = None,
    file: Optional[str] = None,
    sets: Optional[Dict[str, Any]] = None,
    workers: int = 2,
    address: Optional[str] = None,
    device: Optional[str] = None,
    num_gpus: float = 0,
    cpus_per_worker: int = 1,
    resume: bool = False,
    generations: Optional[int] = None,
    _fail_after: Optional[int] = None,
) -> Dict[str, Any]:
    """Run (or continue) a search into ``out`` with ``workers`` Ray actors; returns what
    :meth:`msenas.Search.finish` returns. ``address``: a running cluster (``"auto"`` or
    ``HOST:PORT``), or ``None`` for a local instance. ``device``: each actor's engine
    (default: the configuration's ``search.device``); ``num_gpus``: GPUs per actor (1 on a
    GPU cluster); ``cpus_per_worker``: CPUs each actor reserves, and the CPU engine's threads
    in it."""
    import ray
    from ray.exceptions import RayActorError

    if workers < 1:
        raise InputError(f"--workers: {workers} (allowed: >= 1)")
    if cpus_per_worker < 1:
        raise InputError(f"--cpus-per-worker: {cpus_per_worker} (allowed: >= 1)")
    s = Search(out, preset, file, sets, resume, generations)
    cfg = s.config
    config = json.dumps(cfg)
    dev = device or cfg["search"]["device"]
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    actor_cls = ray.remote(
        num_cpus=cpus_per_worker,
        num_gpus=num_gpus,
        max_restarts=0,
        runtime_env={"env_vars": {"RAYON_NUM_THREADS": str(cpus_per_worker)}},
    )(_Worker)

    def spawn(fail_after=None):
        return actor_cls.remote(config, dev, fail_after)

    # Only the first actor gets the crash hook, and only once (its replacement does not).
    actors = [spawn(_fail_after if i == 0 else None) for i in range(workers)]
    replaced = 0
    while True:
        todo = s.ask()
        if not todo:
            break
        texts = [g.to_json() for g in todo]
        results: List[Optional[str]] = [None] * len(todo)
        told = 0
        queue = list(range(len(todo)))
        running = {}  # object ref -> (actor index, genome index)
        idle = list(range(len(actors)))
        while told < len(todo):
            while idle and queue:
                a, i = idle.pop(0), queue.pop(0)
                running[actors[a].evaluate.remote([texts[i]])] = (a, i)
            done, _ = ray.wait(list(running), num_returns=1)
            ref = done[0]
            a, i = running.pop(ref)
            try:
                results[i] = ray.get(ref)[0]
                idle.append(a)
            except RayActorError:
                # The actor died with this genome: a new actor, and the genome runs again.
                actors[a] = spawn()
                replaced += 1
                queue.insert(0, i)
                idle.append(a)
            # Tell in the asked order, as soon as a prefix is complete.
            start = told
            while told < len(todo) and results[told] is not None:
                told += 1
            if told > start:
                s.tell([Evaluation.from_json(t) for t in results[start:told]])
    out_summary = s.finish()
    out_summary["workers"] = workers
    out_summary["actors_replaced"] = replaced
    return out_summary


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m msenas.ray", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("search", help="the search with Ray actors as evaluators")
    p.add_argument("--address", default=None, help="auto, HOST:PORT, or none for a local instance")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--num-gpus", type=float, default=0, help="GPUs per actor (1 on a GPU cluster)")
    p.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs (and CPU engine threads) per actor")
    p.add_argument("--device", default=None, help="each actor's engine (default: search.device)")
    p.add_argument("--preset", default=None)
    p.add_argument("--config", default=None, help="a JSON config file")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=False)
    p.add_argument("--resume", default=None, metavar="RUN")
    p.add_argument("--generations", type=int, default=None)
    a = ap.parse_args(argv)
    try:
        if a.resume and (a.out or a.preset or a.config or a.sets):
            raise InputError("--resume: the run's settings come from its folder; give no --out, --preset, --config or --set")
        if not a.resume and not a.out:
            raise InputError("--out: required for a new search (or --resume RUN)")
        sets = {}
        for kv in a.sets:
            if "=" not in kv:
                raise InputError(f"--set {kv}: expected key=value, e.g. space.width=16")
            k, v = kv.split("=", 1)
            sets[k] = v
        r = search(
            a.resume or a.out,
            preset=a.preset,
            file=a.config,
            sets=sets,
            workers=a.workers,
            address=a.address,
            device=a.device,
            num_gpus=a.num_gpus,
            cpus_per_worker=a.cpus_per_worker,
            resume=bool(a.resume),
            generations=a.generations,
        )
    except MsenasError as e:
        print(f"msenas: {e}", file=sys.stderr)
        return 2 if isinstance(e, InputError) else 1
    best = r.get("best") or {}
    print(
        f"search finished: {r['generations']} generations, {r['fresh']} new evaluations "
        f"({r['replayed']} replayed) on {r['workers']} workers; best {best.get('key')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
