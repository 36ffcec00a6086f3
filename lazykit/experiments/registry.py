"""Registry of the experiments: name -> run function, plotter and description."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

SETTINGS = ("quick", "full")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One registered experiment: ``run(setting, seed, progress) -> ExperimentResult``."""

    name: str
    module: str
    description: str

    def _module(self):
        return importlib.import_module(f"lazykit.experiments.{self.module}")

    @property
    def run(self) -> Callable:
        return self._module().run

    @property
    def plot(self) -> Callable:
        return self._module().plot


EXPERIMENTS = {
    e.name: e for e in (
        Experiment("spline_1d", "spline_1d",
                   "Heiss, Teichmann, Wutte 2019: a wide ReLU net with a random fixed first layer "
                   "and ridge on the last converges to a cubic smoothing spline."),
    )
}


def get_experiment(name: str) -> Experiment:
    """The registered experiment ``name``, or a ValueError listing the names."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {', '.join(sorted(EXPERIMENTS))}; "
                         f"got {name!r}.")
    return EXPERIMENTS[name]


def run(name: str, setting: str = "quick", seed: int = 0, progress=None):
    """Run experiment ``name`` in its "quick" (CI-sized) or "full" (paper-sized) setting.

    Examples:
        >>> from lazykit import experiments
        >>> sorted(experiments.EXPERIMENTS)[:1]
        ['spline_1d']
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}; got {setting!r}.")
    return get_experiment(name).run(setting=setting, seed=seed, progress=progress)
