"""Types of the compiled extension (the `msenas` package wraps it)."""

from os import PathLike
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, PathLike[str]]

def config_json(preset: Optional[str] = None, file: Optional[_Path] = None, sets: Sequence[str] = ...) -> str: ...
def score_names() -> List[Tuple[str, str, str]]: ...
def train(
    out: _Path,
    genome: Optional[Genome] = None,
    config: Optional[str] = None,
    dataset: str = "digits",
    data_dir: Optional[_Path] = None,
    seed: int = 0,
    device: str = "auto",
    resume: bool = False,
    size: Optional[int] = None,
) -> str: ...
def evaluate(
    checkpoint: _Path,
    dataset: Optional[str] = None,
    data_dir: Optional[_Path] = None,
    split: str = "test",
    noise: Optional[str] = None,
    seed: int = 0,
    batch_size: int = 256,
    device: str = "cpu",
) -> str: ...

def predict(
    checkpoint: _Path, x: npt.NDArray[np.float32], device: str = "auto"
) -> npt.NDArray[np.float32]: ...
def export_data(
    genome: Optional[Genome] = None,
    checkpoint: Optional[_Path] = None,
    dataset: str = "digits",
    width: int = 8,
    reduce_kernel: int = 1,
    timesteps: int = 4,
    weight_seed: int = 0,
) -> Tuple[str, str, npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
def _bench_forward(
    engine: Engine,
    genome: Genome,
    x: npt.NDArray[np.float32],
    classes: int,
    timesteps: int,
    width: int = 8,
    reduce_kernel: int = 1,
    weight_seed: int = 0,
    repeats: int = 10,
) -> List[float]: ...

class Genome:
    @staticmethod
    def sample(seed: int, config: str) -> Genome: ...
    @staticmethod
    def from_json(text: str) -> Genome: ...
    def to_json(self) -> str: ...
    @property
    def key(self) -> str: ...
    def num_params(self, dataset: str = "digits", width: int = 8, reduce_kernel: int = 1) -> int: ...
    def describe(self, dataset: str = "digits", width: int = 8, reduce_kernel: int = 1) -> str: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class Engine:
    def __init__(self, device: str = "auto") -> None: ...
    @property
    def device(self) -> str: ...
    def forward(
        self,
        genome: Genome,
        x: npt.NDArray[np.float32],
        classes: int,
        timesteps: Optional[int] = None,
        width: int = 8,
        reduce_kernel: int = 1,
        weight_seed: int = 0,
    ) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], List[str]]: ...

class Evaluation:
    @property
    def key(self) -> str: ...
    @property
    def genome(self) -> Genome: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> Optional[str]: ...
    @property
    def scores(self) -> Dict[str, float]: ...
    @property
    def timings(self) -> Dict[str, float]: ...
    def to_json(self) -> str: ...
    @staticmethod
    def from_json(text: str) -> Evaluation: ...

class Scorer:
    def __init__(self, config: str, device: str) -> None: ...
    @property
    def device(self) -> str: ...
    @property
    def batch_hint(self) -> int: ...
    def evaluate(self, genomes: List[Genome]) -> List[Evaluation]: ...

class Search:
    @staticmethod
    def open(out: _Path, config: Optional[str] = None, resume: bool = False, generations: Optional[int] = None) -> Search: ...
    @property
    def config(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def logged(self) -> int: ...
    @property
    def generation(self) -> int: ...
    def ask(self) -> List[Genome]: ...
    def tell(self, evaluations: List[Evaluation]) -> None: ...
    def finish(self) -> str: ...
