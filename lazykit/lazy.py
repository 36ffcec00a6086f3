"""How lazy is a run? Deviation-against-alpha sweeps with fitted slopes, and the criterion kappa.

Chizat & Bach (2019): trained on R(alpha f) / alpha^2, a network stays within
O(1/alpha) of its tangent model over any fixed time horizon, so on a log-log
plot of sup_t ||alpha f - alpha T f|| against alpha the slope is -1; the
parameters move O(1/alpha) too. :func:`lazy_sweep` measures both slopes with
confidence intervals. :func:`laziness` predicts the regime before training:
kappa = ||f(w_0) - y*|| ||D^2 f(w_0)|| / ||Df(w_0)||^2 is small for lazy
training and of order one or more for active training.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import NamedTuple

import jax
import numpy as np

from lazykit._validation import DEPRECATED, deprecated_keyword
from lazykit.laziness import laziness
from lazykit.training import TrainingDivergedError, train_runs


class SlopeFit(NamedTuple):
    """Least-squares line log(y) = intercept + slope log(x), with a confidence interval."""

    slope: float
    intercept: float
    stderr: float
    ci_low: float
    ci_high: float
    confidence: float
    n_points: int


def fit_loglog_slope(x, y, confidence: float = 0.95) -> SlopeFit:
    """Fit log(y) = intercept + slope log(x) by least squares.

    The interval is the Student-t interval of the slope (n - 2 degrees of
    freedom); it is NaN with fewer than three points.

    Examples:
        >>> import numpy as np, lazykit
        >>> x = np.array([1.0, 10.0, 100.0, 1000.0])
        >>> fit = lazykit.fit_loglog_slope(x, 3.0 / x)
        >>> round(fit.slope, 6), fit.ci_low <= fit.slope <= fit.ci_high
        (-1.0, True)
    """
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same number of points; got {x.size} and "
                         f"{y.size}.")
    if x.size < 2 or np.any(x <= 0) or np.any(y <= 0) or not np.all(np.isfinite(x * y)):
        raise ValueError("a log-log fit needs at least two points with finite, positive x and "
                         f"y; got x={x}, y={y}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}.")
    from scipy import stats  # imported here: scipy.stats takes a second to import

    lx, ly = np.log(x), np.log(y)
    fit = stats.linregress(lx, ly)
    slope, intercept = float(fit.slope), float(fit.intercept)
    if x.size < 3:
        return SlopeFit(slope, intercept, np.nan, np.nan, np.nan, confidence, x.size)
    residual = ly - (intercept + slope * lx)
    stderr = float(np.sqrt(residual @ residual / (x.size - 2) / np.sum((lx - lx.mean()) ** 2)))
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 2)) * stderr
    return SlopeFit(slope, intercept, stderr, slope - half, slope + half, confidence, x.size)


@dataclasses.dataclass(frozen=True, eq=False)
class SweepResult:
    """Per-run measurements of a sweep over alpha (and seeds), with fitted log-log slopes.

    Arrays have one entry per finished run: ``alpha``, ``seed``, ``deviation`` (sup_t of
    the train deviation ||alpha f - alpha T f||), ``deviation_test``, ``param_movement``
    (sup_t ||w_t - w_0|| / ||w_0||), ``ntk_change``, ``pattern_change`` (at the last
    record), ``train_loss`` and ``tangent_train_loss`` (last record) and
    ``kappa`` (:func:`laziness` at initialization; NaN if not computed).
    ``deviation_slope`` and ``movement_slope`` are :class:`SlopeFit` over all finished
    runs (NaN when fewer than two distinct alphas finished). ``records`` holds the
    :class:`lazykit.TrajectoryRecord` of every finished run with ``keep_records=True``.
    ``diverged`` lists the runs that diverged, as tuples (alpha, seed, message); they
    are left out of every array.
    """

    alpha: np.ndarray
    seed: np.ndarray
    deviation: np.ndarray
    deviation_test: np.ndarray
    param_movement: np.ndarray
    ntk_change: np.ndarray
    pattern_change: np.ndarray
    train_loss: np.ndarray
    tangent_train_loss: np.ndarray
    kappa: np.ndarray
    deviation_slope: SlopeFit
    movement_slope: SlopeFit
    records: tuple = dataclasses.field(repr=False, default=())
    diverged: tuple = ()

    def to_dataframe(self):
        """One row per finished run (pandas DataFrame)."""
        import pandas as pd

        names = ("alpha", "seed", "deviation", "deviation_test", "param_movement", "ntk_change",
                 "pattern_change", "train_loss", "tangent_train_loss", "kappa")
        return pd.DataFrame({name: getattr(self, name) for name in names})

    def plot(self, axes=None):
        """Deviation and parameter movement against alpha (log-log), with the fits."""
        from lazykit.plotting import plot_sweep

        return plot_sweep(self, axes=axes)


# Arguments of lazykit.train that lazy_sweep passes on, with their defaults.
_TRAIN_DEFAULTS = dict(optimizer=None, tangent=True, params=None, center=None, mean_field=False,
                       ntk_points=64, record_neurons=True)


def lazy_sweep(model, X, y, *, alphas, seeds=(0,), steps: int,
               learning_rate: float | None = None, loss="mse", batch_size: int | None = None,
               X_test=None, y_test=None, record_every: int | None = None,
               compute_laziness: bool = True, keep_records: bool = False,
               confidence: float = 0.95, verbose: bool | None = None, dtype=None,
               lr=DEPRECATED, **train_kwargs) -> SweepResult:
    """Train network and tangent model for every alpha and seed; fit deviation against alpha.

    Every run uses the same steps and learning rate: with R(alpha f) / alpha^2, the
    function alpha f then moves over the same time horizon whatever alpha. The runs are
    trained together, stacked under ``jax.vmap`` with one compilation for the whole sweep
    (their records are those of :func:`lazykit.train` run by run).

    What to expect (docs/lazy_training.md): the parameter movement falls like 1/alpha
    for every model; the deviation falls like 1/alpha for smooth activations with an
    independent initialization and centering (``TwoLayer(..., symmetric=False)``,
    ``center=True``), like 1/alpha^2 for smooth activations with the symmetric
    initialization (the second-order term cancels pair by pair), and only like about
    alpha^(-1/2) for ReLU at practical widths (flipped activation patterns dominate).

    Args:
        model: a :class:`lazykit.TwoLayer` (its alpha is replaced by each value), a
            :class:`lazykit.Network`, an ``(apply_fn, params)`` pair or an
            ``(apply_fn, params, init_fn)`` triple (alpha passed to :func:`lazykit.train`,
            with centering). Several seeds need an initialization that varies with the
            seed: a lazykit model, or a triple with ``params`` None.
        X: training inputs (n, d), or any (n, ...) that the function accepts.
        y: training targets (n,) or (n, o).
        alphas: output scales (> 0), at least two distinct values.
        seeds: initialization (and SGD order) seeds; every alpha runs every seed.
        steps: optimizer steps of every run.
        learning_rate: learning rate of every run (as in :func:`lazykit.train`); or pass
            ``optimizer=`` (an optax optimizer) instead.
        loss: "mse", "logistic" or a function ``loss(outputs, targets)``.
        batch_size: None for gradient descent, else the SGD batch size.
        X_test: optional test inputs.
        y_test: test targets (with ``X_test``).
        record_every: steps between records.
        compute_laziness: compute kappa at initialization for every run.
        keep_records: keep every :class:`lazykit.TrajectoryRecord` in ``records``.
        confidence: level of the slope intervals.
        verbose: progress bar; None shows it only on a terminal.
        dtype: as in :func:`lazykit.train`.
        lr: deprecated name of ``learning_rate`` (a DeprecationWarning).
        **train_kwargs: ``optimizer``, ``params``, ``center``, ``mean_field``,
            ``ntk_points``, ``record_neurons`` of :func:`lazykit.train`.

    Returns:
        :class:`SweepResult`. Runs that diverge are left out of it (listed in
        ``diverged``, with a ``RuntimeWarning`` naming their alpha and seed).

    Raises:
        ValueError: on bad arguments; several seeds with fixed parameters (a pair
            ``(apply_fn, params)`` or ``params=``), which cannot vary the initialization.
        lazykit.TrainingDivergedError: when every run diverged (naming each).

    Examples:
        >>> import numpy as np, lazykit
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(10, 2)), rng.normal(size=10)
        >>> sweep = lazykit.lazy_sweep(lazykit.TwoLayer(32), X, y, alphas=[10, 100, 1000],
        ...                            steps=100, learning_rate=32.0)
        >>> round(sweep.movement_slope.slope, 1), bool(sweep.deviation_slope.slope < 0)
        (-1.0, True)
    """
    learning_rate = deprecated_keyword(learning_rate, lr, "learning_rate", "lr")
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    if alphas.size < 2 or np.unique(alphas).size < 2 or np.any(~(alphas > 0)):
        raise ValueError(f"alphas must hold at least two distinct positive values; got {alphas}.")
    seeds = tuple(int(s) for s in np.atleast_1d(seeds))
    if not seeds:
        raise ValueError("seeds must hold at least one seed; got none.")
    if not train_kwargs.get("tangent", True):
        raise ValueError("lazy_sweep measures the deviation from the tangent model; "
                         "tangent=False is not allowed.")
    if "alpha" in train_kwargs:
        raise ValueError("lazy_sweep sets alpha itself from alphas; remove alpha= from the "
                         "arguments.")
    unknown = sorted(set(train_kwargs) - set(_TRAIN_DEFAULTS))
    if unknown:
        raise TypeError(f"lazy_sweep got unexpected keyword arguments {unknown}; it passes on "
                        f"{sorted(_TRAIN_DEFAULTS)} to lazykit.train.")
    runs = [(float(a), s) for a in alphas for s in seeds]
    records, diverged = train_runs(
        model, X, y, runs, loss=loss, steps=steps, learning_rate=learning_rate,
        batch_size=batch_size,
        X_test=X_test, y_test=y_test, record_every=record_every, verbose=verbose, dtype=dtype,
        label="lazy_sweep", **{**_TRAIN_DEFAULTS, **train_kwargs})
    _report_divergence(diverged, len(runs))
    finished = [(run, record) for run, record in zip(runs, records, strict=True)
                if record is not None]
    columns = {name: [] for name in ("deviation", "deviation_test", "param_movement",
                                     "ntk_change", "pattern_change", "train_loss",
                                     "tangent_train_loss", "kappa")}
    for _, record in finished:
        columns["deviation"].append(record.sup_deviation("train"))
        columns["deviation_test"].append(record.sup_deviation("test"))
        columns["param_movement"].append(float(np.nanmax(record.param_movement)))
        columns["ntk_change"].append(float(record.ntk_change[-1]))
        columns["pattern_change"].append(float(record.pattern_change[-1]))
        columns["train_loss"].append(float(record.train_loss[-1]))
        columns["tangent_train_loss"].append(float(record.tangent_train_loss[-1]))
        columns["kappa"].append(_kappa(record, X, y) if compute_laziness else np.nan)
    arrays = {name: np.asarray(values, np.float64) for name, values in columns.items()}
    run_alpha = np.asarray([a for (a, _), _ in finished])
    return SweepResult(
        alpha=run_alpha, seed=np.asarray([s for (_, s), _ in finished], np.int64), **arrays,
        deviation_slope=_fit(run_alpha, arrays["deviation"], confidence),
        movement_slope=_fit(run_alpha, arrays["param_movement"], confidence),
        records=tuple(r for _, r in finished) if keep_records else (),
        diverged=tuple(diverged))


def _report_divergence(diverged, total):
    if not diverged:
        return
    lines = "; ".join(f"alpha={a:g}, seed={s}: {message}" for a, s, message in diverged)
    if len(diverged) == total:
        raise TrainingDivergedError(f"every run of the sweep diverged: {lines}")
    warnings.warn(f"{len(diverged)} of {total} runs diverged and are left out of the sweep "
                  f"(SweepResult.diverged lists them): {lines}", RuntimeWarning, stacklevel=3)


def _fit(alpha, values, confidence) -> SlopeFit:
    """The log-log fit, or NaN when fewer than two distinct alphas finished."""
    if np.unique(alpha).size < 2:
        return SlopeFit(np.nan, np.nan, np.nan, np.nan, np.nan, confidence, alpha.size)
    return fit_loglog_slope(alpha, values, confidence)


def _kappa(record, X, y) -> float:
    """kappa at the run's initialization, for its alpha and centering."""
    problem = record.problem
    dtype = jax.tree_util.tree_leaves(problem.params0)[0].dtype
    if problem.two_layer is not None:
        model, alpha = problem.key.replace(alpha=problem.alpha), None
    else:
        model, alpha = problem.key, problem.alpha
    return float(laziness(model, problem.params0, X, y, alpha=alpha, center=problem.center,
                          dtype=dtype).kappa)
