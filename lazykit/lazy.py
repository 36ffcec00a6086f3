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
from typing import NamedTuple

import numpy as np

from lazykit._progress import Progress
from lazykit.laziness import laziness
from lazykit.models import TwoLayer
from lazykit.training import train


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

    Arrays have one entry per run: ``alpha``, ``seed``, ``deviation`` (sup_t of the
    train deviation ||alpha f - alpha T f||), ``deviation_test``, ``param_movement``
    (sup_t ||w_t - w_0|| / ||w_0||), ``ntk_change``, ``pattern_change`` (at the last
    record), ``train_loss`` and ``tangent_train_loss`` (last record) and
    ``kappa`` (:func:`laziness` at initialization; NaN if not computed).
    ``deviation_slope`` and ``movement_slope`` are :class:`SlopeFit` over all runs.
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

    def to_dataframe(self):
        """One row per run (pandas DataFrame)."""
        import pandas as pd

        names = ("alpha", "seed", "deviation", "deviation_test", "param_movement", "ntk_change",
                 "pattern_change", "train_loss", "tangent_train_loss", "kappa")
        return pd.DataFrame({name: getattr(self, name) for name in names})

    def plot(self, axes=None):
        """Deviation and parameter movement against alpha (log-log), with the fits."""
        from lazykit.plotting import plot_sweep

        return plot_sweep(self, axes=axes)


def lazy_sweep(model, X, y, *, alphas, seeds=(0,), steps: int, lr: float, loss: str = "mse",
               batch_size: int | None = None, X_test=None, y_test=None,
               record_every: int | None = None, compute_laziness: bool = True,
               keep_records: bool = False, confidence: float = 0.95,
               verbose: bool | None = None, dtype=None, **train_kwargs) -> SweepResult:
    """Train network and tangent model for every alpha and seed; fit deviation against alpha.

    Every run uses the same steps and learning rate: with R(alpha f) / alpha^2, the
    function alpha f then moves over the same time horizon whatever alpha.

    What to expect (docs/lazy_training.md): the parameter movement falls like 1/alpha
    for every model; the deviation falls like 1/alpha for smooth activations with an
    independent initialization and centering (``TwoLayer(..., symmetric=False)``,
    ``center=True``), like 1/alpha^2 for smooth activations with the symmetric
    initialization (the second-order term cancels pair by pair), and only like about
    alpha^(-1/2) for ReLU at practical widths (flipped activation patterns dominate).

    Args:
        model: a :class:`lazykit.TwoLayer` (its alpha is replaced by each value), a
            :class:`lazykit.Network` or an ``(apply_fn, params)`` pair (alpha passed to
            :func:`lazykit.train`, with centering).
        X: training inputs (n, d).
        y: training targets (n,) or (n, o).
        alphas: output scales (> 0), at least two distinct values.
        seeds: initialization (and SGD order) seeds; every alpha runs every seed.
        steps: optimizer steps of every run.
        lr: learning rate of every run (as in :func:`lazykit.train`).
        loss: "mse" or "logistic".
        batch_size: None for gradient descent, else the SGD batch size.
        X_test: optional test inputs.
        y_test: test targets (with ``X_test``).
        record_every: steps between records.
        compute_laziness: compute kappa at initialization for every run.
        keep_records: keep every :class:`lazykit.TrajectoryRecord` in ``records``.
        confidence: level of the slope intervals.
        verbose: progress bar over runs; None shows it only on a terminal.
        dtype: "float64" (default) or "float32".
        **train_kwargs: passed on to :func:`lazykit.train`.

    Returns:
        :class:`SweepResult`.

    Examples:
        >>> import numpy as np, lazykit
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(10, 2)), rng.normal(size=10)
        >>> sweep = lazykit.lazy_sweep(lazykit.TwoLayer(32), X, y, alphas=[10, 100, 1000],
        ...                            steps=100, lr=32.0)
        >>> round(sweep.movement_slope.slope, 1), bool(sweep.deviation_slope.slope < 0)
        (-1.0, True)
    """
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    if alphas.size < 2 or np.unique(alphas).size < 2 or np.any(~(alphas > 0)):
        raise ValueError(f"alphas must hold at least two distinct positive values; got {alphas}.")
    seeds = tuple(int(s) for s in np.atleast_1d(seeds))
    if not seeds:
        raise ValueError("seeds must hold at least one seed; got none.")
    runs = [(a, s) for a in alphas for s in seeds]
    columns = {name: [] for name in ("deviation", "deviation_test", "param_movement",
                                     "ntk_change", "pattern_change", "train_loss",
                                     "tangent_train_loss", "kappa")}
    records = []
    with Progress(len(runs), "lazy_sweep", verbose) as bar:
        for a, s in runs:
            run_model, run_kwargs = _with_alpha(model, a, train_kwargs)
            record = train(run_model, X, y, loss=loss, steps=steps, lr=lr,
                           batch_size=batch_size, X_test=X_test, y_test=y_test,
                           record_every=record_every, seed=s, verbose=False, dtype=dtype,
                           **run_kwargs)
            kappa = np.nan
            if compute_laziness:
                target = run_model[0] if isinstance(run_model, tuple) else run_model
                kappa = laziness(target, record.params0, X, y, dtype=dtype,
                                 **_laziness_kwargs(run_kwargs)).kappa
            columns["deviation"].append(record.sup_deviation("train"))
            columns["deviation_test"].append(record.sup_deviation("test"))
            columns["param_movement"].append(float(np.nanmax(record.param_movement)))
            columns["ntk_change"].append(float(record.ntk_change[-1]))
            columns["pattern_change"].append(float(record.pattern_change[-1]))
            columns["train_loss"].append(float(record.train_loss[-1]))
            columns["tangent_train_loss"].append(float(record.tangent_train_loss[-1]))
            columns["kappa"].append(float(kappa))
            if keep_records:
                records.append(record)
            bar.update(1, postfix=f"alpha={a:g} seed={s}")
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    run_alpha = np.asarray([a for a, _ in runs])
    return SweepResult(
        alpha=run_alpha, seed=np.asarray([s for _, s in runs]), **arrays,
        deviation_slope=fit_loglog_slope(run_alpha, arrays["deviation"], confidence),
        movement_slope=fit_loglog_slope(run_alpha, arrays["param_movement"], confidence),
        records=tuple(records))


def _with_alpha(model, alpha, train_kwargs):
    if not train_kwargs.get("tangent", True):
        raise ValueError("lazy_sweep measures the deviation from the tangent model; "
                         "tangent=False is not allowed.")
    if "alpha" in train_kwargs:
        raise ValueError("lazy_sweep sets alpha itself from alphas; remove alpha= from the "
                         "arguments.")
    if isinstance(model, TwoLayer):
        return model.replace(alpha=float(alpha)), dict(train_kwargs)
    return model, {**train_kwargs, "alpha": float(alpha)}


def _laziness_kwargs(run_kwargs):
    return {k: run_kwargs[k] for k in ("alpha", "center") if k in run_kwargs}

