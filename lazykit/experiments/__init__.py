"""The landmark experiments of the lazy-training theory, one function (and command) each.

``lazykit.experiments.run(name, setting="quick" | "full", seed=0)`` returns an
:class:`ExperimentResult`; ``lazykit run NAME`` does the same from the shell
and writes results.json, results.csv and PNG figures.
"""

from lazykit.experiments.registry import EXPERIMENTS, SETTINGS, Experiment, get_experiment, run
from lazykit.experiments.results import ExperimentResult

__all__ = ["EXPERIMENTS", "SETTINGS", "Experiment", "ExperimentResult", "get_experiment", "run"]
