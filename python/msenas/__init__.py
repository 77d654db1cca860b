"""msenas: multi-scale evolutionary architecture search of spiking neural networks.

The Rust engine (CPU, or any GPU wgpu reaches) behind a Python API: genomes, a forward pass
with numpy arrays in and out, training-free scores of genomes, the search (as one call, or
ask/tell to evaluate candidates wherever you like), training and evaluation. Settings are the
CLI's: a preset, a JSON config file and dotted ``key=value`` overrides. The GIL is released
while the engine computes; errors are :class:`MsenasError` subclasses with the CLI's one-line
messages.

>>> import msenas, numpy as np
>>> g = msenas.sample(seed=1)
>>> out = msenas.Engine("cpu").forward(g, np.zeros((2, 1, 16, 16), np.float32), classes=10)
>>> out.logits.shape
(2, 10)
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

from . import _msenas
from ._msenas import Evaluation, Genome, __version__
from .errors import DivergedError, FileError, GpuError, InputError, MsenasError, PlotError

__all__ = [
    "Engine",
    "Evaluation",
    "Forward",
    "Genome",
    "Search",
    "DivergedError",
    "FileError",
    "GpuError",
    "InputError",
    "MsenasError",
    "PlotError",
    "config",
    "evaluate",
    "predict",
    "sample",
    "score_names",
    "search",
    "train",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]
Sets = Optional[Mapping[str, Any]]


def _sets(sets: Sets) -> List[str]:
    """``{"space.width": 16}`` as the CLI's ``--set space.width=16`` strings."""
    out = []
    for key, value in (sets or {}).items():
        text = value if isinstance(value, str) else json.dumps(value)
        out.append(f"{key}={text}")
    return out


def _config_json(preset: Optional[str], file: Optional[PathLike], sets: Sets) -> str:
    return _msenas.config_json(preset, None if file is None else os.fspath(file), _sets(sets))


def config(preset: Optional[str] = None, file: Optional[PathLike] = None, sets: Sets = None) -> Dict[str, Any]:
    """The resolved settings, as a run's ``config.json`` holds them: ``preset`` (``cpu`` by
    default, ``paper``, ``tiny``), then the JSON ``file``, then each dotted key of ``sets``."""
    return json.loads(_config_json(preset, file, sets))


def sample(seed: int = 0, preset: Optional[str] = None, file: Optional[PathLike] = None, sets: Sets = None) -> Genome:
    """A valid random genome of the configured search space (``msenas sample --seed``)."""
    return Genome.sample(seed, _config_json(preset, file, sets))


def score_names() -> List[Dict[str, str]]:
    """Every score: its name, kind (spike, cost, gradient, trained) and direction."""
    return [{"name": n, "kind": k, "direction": d} for n, k, d in _msenas.score_names()]


class Forward(NamedTuple):
    """What :meth:`Engine.forward` returns."""

    logits: np.ndarray
    """``[B, classes]``, averaged over time."""
    firing_rates: np.ndarray
    """Mean spike rate of every population, in :attr:`populations` order."""
    populations: List[str]


class Engine:
    """The engine on one device: ``"auto"`` (a hardware GPU, else the CPU engine), ``"cpu"``,
    ``"gpu"`` or part of an adapter's name (``msenas devices`` lists them)."""

    def __init__(self, device: str = "auto") -> None:
        self._device_name = device
        self._engine = _msenas.Engine(device)
        self._scorers: Dict[str, Any] = {}

    @property
    def device(self) -> str:
        """What the device resolved to."""
        return self._engine.device

    def forward(
        self,
        genome: Genome,
        x: np.ndarray,
        classes: int = 10,
        timesteps: Optional[int] = None,
        width: int = 8,
        reduce_kernel: int = 1,
        weight_seed: int = 0,
    ) -> Forward:
        """Run ``genome`` at the counter-based initial weights of ``weight_seed`` on ``x``
        (float32 ``[T, B, C, H, W]``, or ``[B, C, H, W]`` repeated over ``timesteps``, 4 by
        default) with batch statistics: the same numbers as ``msenas forward``."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        logits, rates, names = self._engine.forward(
            genome, x, classes, timesteps, width, reduce_kernel, weight_seed
        )
        return Forward(logits, rates, list(names))

    def scores(
        self,
        genomes: Sequence[Genome],
        preset: Optional[str] = None,
        file: Optional[PathLike] = None,
        sets: Sets = None,
    ) -> List[Evaluation]:
        """Score genomes as the search does (``msenas score``): the configured dataset's probe
        batches, weight seeds, fitness, objectives and cost scores, on this engine's device."""
        cfg = _config_json(preset, file, sets)
        scorer = self._scorers.get(cfg)
        if scorer is None:
            scorer = _msenas.Scorer(cfg, self._device_name)
            self._scorers[cfg] = scorer
        return scorer.evaluate(list(genomes))


class Search:
    """The search as ask/tell over a run folder: :meth:`ask` returns the genomes to evaluate,
    :meth:`tell` records their evaluations (any order, in any number of calls; each is
    appended to the run's log as it arrives), :meth:`finish` writes the Pareto front,
    ``best.json`` and the plots. The same settings and scores give the same run folder
    whoever evaluates, and a run reopened with ``resume=True`` continues exactly."""

    def __init__(
        self,
        out: PathLike,
        preset: Optional[str] = None,
        file: Optional[PathLike] = None,
        sets: Sets = None,
        resume: bool = False,
        generations: Optional[int] = None,
    ) -> None:
        cfg = None if resume else _config_json(preset, file, sets)
        if resume and (preset is not None or file is not None or sets):
            raise InputError(
                f"resume: {os.fspath(out)} holds its settings; give no preset, file or sets"
            )
        self._search = _msenas.Search.open(os.fspath(out), cfg, resume, generations)

    @property
    def config(self) -> Dict[str, Any]:
        return json.loads(self._search.config)

    @property
    def path(self) -> str:
        return os.fspath(self._search.path)

    @property
    def logged(self) -> int:
        """Evaluations the run's log held when it was opened."""
        return self._search.logged

    @property
    def generation(self) -> int:
        return self._search.generation

    def ask(self) -> List[Genome]:
        """The genomes to evaluate next; empty when the search is complete."""
        return self._search.ask()

    def tell(self, evaluations: Iterable[Evaluation]) -> None:
        self._search.tell(list(evaluations))

    def finish(self) -> Dict[str, Any]:
        """End the search: generations, fresh and replayed counts, whether it was interrupted,
        the best genome and its scores, the front's keys."""
        return json.loads(self._search.finish())


def search(
    out: PathLike,
    preset: Optional[str] = None,
    file: Optional[PathLike] = None,
    sets: Sets = None,
    device: Optional[str] = None,
    resume: bool = False,
    generations: Optional[int] = None,
) -> Dict[str, Any]:
    """Run (or, with ``resume``, continue) a search into ``out``, as ``msenas search`` does:
    the same log, population files, Pareto front and ``best.json`` for the same settings.
    ``device`` overrides ``search.device``. Interrupted (e.g. by Ctrl-C), the run folder stays
    resumable."""
    s = Search(out, preset, file, sets, resume, generations)
    cfg = s.config
    scorer = _msenas.Scorer(json.dumps(cfg), device or cfg["search"]["device"])
    chunk = max(1, scorer.batch_hint)
    while True:
        todo = s.ask()
        if not todo:
            break
        for i in range(0, len(todo), chunk):
            s.tell(scorer.evaluate(todo[i : i + chunk]))
    return s.finish()


def train(
    genome: Optional[Genome],
    out: PathLike,
    preset: Optional[str] = None,
    file: Optional[PathLike] = None,
    sets: Sets = None,
    dataset: str = "digits",
    data_dir: Optional[PathLike] = None,
    seed: int = 0,
    device: str = "auto",
    resume: bool = False,
    size: Optional[int] = None,
) -> Dict[str, Any]:
    """Train ``genome`` into ``out`` (``msenas train``): width, time steps and training
    settings from the configuration, inputs resized to ``size`` x ``size`` when given (the
    dataset's default otherwise); with ``resume=True`` (and no genome) continue the stopped
    run in ``out``. Returns the result: accuracies, epochs, files."""
    cfg = None
    if not resume:
        cfg = _config_json(preset, file, sets)
    elif preset is not None or file is not None or sets:
        raise InputError(f"resume: {os.fspath(out)} holds its settings; give no preset, file or sets")
    return json.loads(
        _msenas.train(
            os.fspath(out),
            genome,
            cfg,
            dataset,
            None if data_dir is None else os.fspath(data_dir),
            seed,
            device,
            resume,
            size,
        )
    )


def evaluate(
    checkpoint: PathLike,
    dataset: Optional[str] = None,
    data_dir: Optional[PathLike] = None,
    split: str = "test",
    noise: Optional[str] = None,
    seed: int = 0,
    batch_size: int = 256,
    device: str = "cpu",
) -> Dict[str, Any]:
    """Accuracy, firing rates, operation counts, energy and accuracy under ``noise``
    (``"gaussian:0.1,saltpepper:0.05"``) of a trained network (``msenas evaluate --json``),
    run on ``device`` (``cpu``, ``gpu``, ``auto`` or part of an adapter's name)."""
    return json.loads(
        _msenas.evaluate(
            os.fspath(checkpoint),
            dataset,
            None if data_dir is None else os.fspath(data_dir),
            split,
            noise,
            seed,
            batch_size,
            device,
        )
    )


def predict(checkpoint: PathLike, x: np.ndarray, device: str = "auto") -> np.ndarray:
    """Logits ``[B, classes]`` of a trained network (checkpoint file or training folder) on
    ``x`` (float32 ``[T, B, C, H, W]`` or ``[B, C, H, W]``) with its running batch-norm
    statistics, on ``device`` (``auto``, ``cpu``, ``gpu`` or part of an adapter's name; the
    weights are put on the device once and ``x`` is run in batches it takes)."""
    return _msenas.predict(
        os.fspath(checkpoint), np.ascontiguousarray(x, dtype=np.float32), device
    )
