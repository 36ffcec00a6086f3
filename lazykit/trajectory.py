"""The record of a side-by-side training run: what the network and its tangent model did."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._dtypes import precision
from lazykit._problem import Problem, as_2d, as_inputs, output_of
from lazykit._validation import deprecation
from lazykit.tangent import tree_sub

# Columns of the table assembled by lazykit.train, in order.
COLUMNS = ("step", "train_loss", "tangent_train_loss", "deviation_train", "test_loss",
           "tangent_test_loss", "deviation_test", "param_movement", "tangent_param_movement",
           "ntk_change", "pattern_change")


@dataclasses.dataclass(frozen=True, eq=False)
class TrajectoryRecord:
    """Measurements of a network and its tangent model, every ``record_every`` steps.

    All series are NumPy arrays over records (NaN where not measured):

    * ``step``, ``time`` (= step x learning rate, the gradient-flow time; with an optax
      optimizer, whose step size lazykit does not know, ``learning_rate`` is None and
      ``time`` is the step count, see :attr:`time_label`);
    * ``train_loss``, ``tangent_train_loss``, ``test_loss``, ``tangent_test_loss``:
      R(alpha f) and R(alpha T f);
    * ``deviation_train``, ``deviation_test``: ||alpha f - alpha T f||, the root mean
      square over the points of the output difference;
    * ``param_movement``, ``tangent_param_movement``: ||w_t - w_0|| / ||w_0||;
    * ``ntk_change``: ||Theta_t - Theta_0||_F / ||Theta_0||_F of the empirical NTK
      on the first ``ntk_points`` training points (at every record for a lazykit model,
      at the first and last for a function unless ``ntk_every`` asks for more; NaN where
      not measured);
    * ``pattern_change``: fraction of ReLU-like activation signs (points x neurons)
      that differ from initialization;
    * ``neurons``: TwoLayer neuron positions (a_j, c_j), shape (records, m, d + 2).

    ``loss`` is the loss as given ("mse", "logistic" or the function); ``loss_name`` its
    name. ``lr``, the old name of ``learning_rate``, is deprecated (a DeprecationWarning).

    Examples:
        >>> import numpy as np, lazykit
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(10, 2)), rng.normal(size=10)
        >>> rec = lazykit.train(lazykit.TwoLayer(32, alpha=5.0), X, y, steps=50,
        ...                     learning_rate=10.0, record_every=25)
        >>> rec.to_dataframe()[["step", "train_loss"]].shape
        (3, 2)
        >>> rec.predict(X).shape, rec.neurons.shape
        ((10, 1), (3, 32, 4))
    """

    step: np.ndarray
    time: np.ndarray
    train_loss: np.ndarray
    tangent_train_loss: np.ndarray
    deviation_train: np.ndarray
    test_loss: np.ndarray
    tangent_test_loss: np.ndarray
    deviation_test: np.ndarray
    param_movement: np.ndarray
    tangent_param_movement: np.ndarray
    ntk_change: np.ndarray
    pattern_change: np.ndarray
    neurons: np.ndarray | None
    alpha: float
    learning_rate: float | None
    loss: Any
    params: Any = dataclasses.field(repr=False)
    tangent_params: Any = dataclasses.field(repr=False)
    problem: Problem = dataclasses.field(repr=False)

    @classmethod
    def from_table(cls, table: np.ndarray, *, problem: Problem, learning_rate, loss, params,
                   tangent_params, neurons) -> TrajectoryRecord:
        columns = dict(zip(COLUMNS, table.T, strict=True))
        step = columns.pop("step").astype(np.int64)
        time = step * (1.0 if learning_rate is None else learning_rate)
        return cls(step=step, time=time, **columns, neurons=neurons, alpha=problem.alpha,
                   learning_rate=learning_rate, loss=loss, params=params,
                   tangent_params=tangent_params, problem=problem)

    @classmethod
    def from_measurements(cls, measured, *, problem: Problem, learning_rate, loss, params,
                          tangent_params) -> TrajectoryRecord:
        """The record of a run from its stacked :class:`lazykit.trainer.Measurement`."""
        table = np.stack([np.asarray(getattr(measured, name), np.float64) for name in COLUMNS],
                         axis=1)
        neurons = None if measured.neurons is None else np.asarray(measured.neurons)
        return cls.from_table(table, problem=problem, learning_rate=learning_rate, loss=loss,
                              params=params,
                              tangent_params=tangent_params, neurons=neurons)

    @property
    def loss_name(self) -> str:
        """The loss's name: "mse", "logistic", or the name of a loss function."""
        return self.loss if isinstance(self.loss, str) else getattr(
            self.loss, "__name__", type(self.loss).__name__)

    @property
    def lr(self) -> float | None:
        """Deprecated name of :attr:`learning_rate` (a DeprecationWarning)."""
        deprecation("TrajectoryRecord.lr is TrajectoryRecord.learning_rate")
        return self.learning_rate

    @property
    def time_label(self) -> str:
        """What ``time`` measures: "time (steps x lr)", the gradient-flow time, or "steps"
        with an optax optimizer."""
        return "steps" if self.learning_rate is None else "time (steps x lr)"

    @property
    def params0(self):
        """Initial parameters w_0 (shared by both models)."""
        return self.problem.params0

    def sup_deviation(self, split: str = "train") -> float:
        """sup_t ||alpha f(w_t) - alpha T f(wbar_t)|| over the records ("train" or "test")."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
        values = self.deviation_train if split == "train" else self.deviation_test
        return float(np.nan if np.all(np.isnan(values)) else np.nanmax(values))

    def predict(self, X, *, tangent: bool = False) -> np.ndarray:
        """Final predictions alpha f(w_T, X), or of the tangent model, shape (n, o)."""
        if tangent and self.tangent_params is None:
            raise ValueError("this run trained no tangent model (tangent=False).")
        leaves = jax.tree_util.tree_leaves(self.params0)
        dtype = np.dtype(leaves[0].dtype)
        problem = self.problem
        X = as_inputs(X, "X", dtype=dtype, matrix=problem.is_lazykit)
        with precision(dtype):
            x = jnp.asarray(X)
            out0 = as_2d(problem.f(self.params0, x))
            if not tangent:
                return np.asarray(output_of(problem, self.params, x, out0))
            lin = jax.jvp(lambda p: as_2d(problem.f(p, x)), (self.params0,),
                          (tree_sub(self.tangent_params, self.params0),))[1]
            return np.asarray(problem.alpha * (lin if problem.center else out0 + lin))

    def to_dataframe(self):
        """The series as a pandas DataFrame, one row per record (plus the constant alpha)."""
        import pandas as pd

        data = {"step": self.step, "time": self.time}
        data.update({name: getattr(self, name) for name in COLUMNS[1:]})
        frame = pd.DataFrame(data)
        frame["alpha"] = self.alpha
        return frame

    def plot(self, axes=None):
        """Losses, deviation and movement against time (matplotlib figure)."""
        from lazykit.plotting import plot_trajectory

        return plot_trajectory(self, axes=axes)

    def plot_neurons(self, ax=None, dims=(0, 1), max_neurons: int = 200):
        """Trajectories of the TwoLayer neurons |c_j| (a_j[dims]) (matplotlib figure)."""
        from lazykit.plotting import plot_neurons

        return plot_neurons(self, ax=ax, dims=dims, max_neurons=max_neurons)
