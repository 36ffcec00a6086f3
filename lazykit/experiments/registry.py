"""Registry of the experiments: name -> run function, plotter and description."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

from lazykit._validation import check_seed

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
        Experiment("kernel_vs_network", "kernel_vs_network",
                   "Finite networks of growing width and output scale, trained by gradient "
                   "descent, next to the analytic NTK and NNGP regressors."),
        Experiment("lazy_vs_active", "lazy_vs_active",
                   "Chizat & Bach 2019: test loss and neuron trajectories of a two-layer ReLU "
                   "student against its initialization scale tau."),
        Experiment("mean_field_convergence", "mean_field_convergence",
                   "Chizat & Bach 2018: population loss at convergence against width for "
                   "trained two-layer nets, next to random features of the same width."),
        Experiment("regimes", "regimes",
                   "Ghorbani, Mei, Misiakiewicz, Montanari 2019: random features vs neural "
                   "tangent vs trained network with quadratic activation, against N/d."),
        Experiment("spline_1d", "spline_1d",
                   "Heiss, Teichmann, Wutte 2019: a wide ReLU net with a random fixed first layer "
                   "and ridge on the last converges to a cubic smoothing spline."),
        Experiment("implicit_bias", "implicit_bias",
                   "Chizat & Bach 2020: logistic loss without regularization, both layers "
                   "(F1 max-margin) vs output layer only (RKHS max-margin)."),
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

    Args:
        name: a registered experiment (``EXPERIMENTS``, ``lazykit list``).
        setting: "quick" or "full".
        seed: an integer from 0 to 2**32 - 1 (NumPy's seed range).
        progress: optional callable receiving one-line progress messages.

    Examples:
        >>> from lazykit import experiments
        >>> "spline_1d" in experiments.EXPERIMENTS
        True
        >>> experiments.run("spline_1d", seed=-1)
        Traceback (most recent call last):
        ...
        ValueError: seed must be an integer from 0 to 4294967295 (NumPy's seed range); got -1.
    """
    experiment = get_experiment(name)
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}; got {setting!r}.")
    return experiment.run(setting=setting, seed=check_seed(seed), progress=progress)
