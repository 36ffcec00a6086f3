"""Side-by-side training of a network and its tangent model: the host driver.

:func:`train` validates its arguments and drives the pure functions of
:func:`lazykit.make_trainer` (lazykit/trainer.py): the steps and the measurements run
on the device in a few jitted ``lax.scan`` calls (blocks of records), or, for models with
convolutions on CPU, one jitted step per call; between blocks the driver
(lazykit/_driver.py) updates the progress bar and checks for divergence.
:func:`train_runs` does the same for several (alpha, seed) runs at once, stacked and
trained under ``jax.vmap`` with one compilation (:func:`lazykit.lazy_sweep` uses it).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lazykit import _driver
from lazykit._dtypes import precision
from lazykit._problem import (
    as_inputs,
    as_targets,
    check_same_shape,
    model_spec,
    run_dtype,
)
from lazykit._validation import DEPRECATED, deprecated_keyword, nonnegative_float, positive_int
from lazykit.models import TwoLayer
from lazykit.tangent import apply_function
from lazykit.trainer import default_optimizer, loss_function, make_trainer
from lazykit.trajectory import TrajectoryRecord

__all__ = ["TrainingDivergedError", "default_optimizer", "train"]


class TrainingDivergedError(FloatingPointError):
    """A loss became NaN or infinite, or grew 1e8-fold: the learning rate is too large."""


def train(model, X, y, *, loss="mse", steps: int, learning_rate: float | None = None,
          optimizer=None, batch_size: int | None = None, tangent: bool = True, X_test=None,
          y_test=None, record_every: int | None = None, params=None, alpha=None, center=None,
          mean_field: bool = False, seed: int = 0, ntk_points: int = 64,
          record_neurons: bool = True, verbose: bool | None = None,
          dtype=None, ntk_every: int | None = None, lr=DEPRECATED) -> TrajectoryRecord:
    """Train a network and its tangent model side by side on R(alpha f) / alpha^2.

    Args:
        model: a :class:`lazykit.TwoLayer` (carries alpha), a :class:`lazykit.Network`,
            a function ``apply_fn(params, x) -> (n, o)`` (with ``params=``), a pair
            ``(apply_fn, params)``, or a triple ``(apply_fn, params, init_fn)`` whose
            ``init_fn(seed) -> params`` draws the initial parameters when ``params`` is
            None (so that seeds mean something; given parameters always win).
        X: training inputs, shape (n, d), or any (n, ...) the function accepts (images
            (n, H, W, C), say).
        y: training targets, shape (n,) or (n, o); -1 or +1 for the logistic loss.
        loss: "mse", R(h) = mean_i |h_i - y_i|^2 / 2, "logistic",
            R(h) = mean_i log(1 + exp(-y_i h_i)), or a function ``loss(outputs, targets)
            -> scalar`` of the scaled outputs (n, o) and the targets (n, o), a mean over
            points.
        steps: number of optimizer steps.
        learning_rate: learning rate of gradient descent (``batch_size=None``) or SGD on
            F_alpha. Give either ``learning_rate`` or ``optimizer``.
        optimizer: an optax ``GradientTransformation`` used for both models instead.
        batch_size: None for full-batch gradient descent; else SGD with batches
            drawn without replacement, reshuffled every epoch (seeded by ``seed``).
        tangent: also train the tangent model (the deviation is then recorded).
        X_test: optional test inputs, measured at every record.
        y_test: test targets (with ``X_test``).
        record_every: steps between records (default: ``steps // 100``, at least 1).
        params: initial parameters (default: ``model.init(seed, d)``, or ``init_fn(seed)``).
        alpha: output scale for a Network or a function (a TwoLayer has its own).
        center: train alpha (f(w) - f(w_0)) instead of alpha f(w); default False for
            a TwoLayer (symmetric initialization already gives f(w_0) = 0), True otherwise.
        mean_field: multiply the step by the width (TwoLayer with alpha = 1 only):
            the mean-field / active regime.
        seed: seed of the initialization and of the SGD data order.
        ntk_points: training points on which the empirical NTK change is measured
            (0 disables it).
        ntk_every: measure the NTK change every ``ntk_every`` records (and at the last).
            None: at every record for a TwoLayer or a Network (their NTK is a few Gram
            matrices), at the last record only for a function (per-example Jacobians of
            ``ntk_points`` points cost several training steps); NaN where not measured,
            exactly 0 at step 0.
        record_neurons: keep the neuron positions (a_j, c_j) of a TwoLayer at every record.
        verbose: progress bar; None shows it only on a terminal.
        dtype: "float32" or "float64"; None keeps the dtype of given parameters (or of
            ``init_fn``'s) and is float64 for parameters lazykit draws (docs/architecture.md,
            Conventions).
        lr: deprecated name of ``learning_rate`` (a DeprecationWarning).

    Returns:
        :class:`lazykit.TrajectoryRecord`.

    Raises:
        ValueError: on bad arguments (alpha <= 0, mismatched X and y, NaN in X, y or
            params, ...).
        TypeError: on complex or non-numeric data, or params with non-array leaves (split
            an Equinox module first, e.g. with ``eqx.partition(module, eqx.is_array)``).
        TrainingDivergedError: when a loss R(alpha f) becomes NaN or infinite, or exceeds
            1e8 times its initial value (at any alpha); the message names the step and
            suggests a smaller learning rate.

    Examples:
        >>> import numpy as np, lazykit
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(20, 2)), rng.normal(size=20)
        >>> record = lazykit.train(lazykit.TwoLayer(64, alpha=100.0), X, y, steps=200,
        ...                        learning_rate=64.0)
        >>> int(record.step[-1]), bool(record.train_loss[-1] < record.train_loss[0])
        (200, True)
        >>> bool(record.sup_deviation() < 0.1)  # lazy: network and tangent model agree
        True
    """
    learning_rate = deprecated_keyword(learning_rate, lr, "learning_rate", "lr")
    records, diverged = train_runs(
        model, X, y, [(None, seed)], alpha=alpha, loss=loss, steps=steps,
        learning_rate=learning_rate,
        optimizer=optimizer, batch_size=batch_size, tangent=tangent, X_test=X_test, y_test=y_test,
        record_every=record_every, params=params, center=center, mean_field=mean_field,
        ntk_points=ntk_points, record_neurons=record_neurons, verbose=verbose, dtype=dtype,
        ntk_every=ntk_every, batched=False)
    if diverged:
        raise TrainingDivergedError(diverged[0][2])
    return records[0]


def train_runs(model, X, y, runs, *, alpha=None, loss, steps, learning_rate, optimizer,
               batch_size,
               tangent, X_test, y_test, record_every, params, center, mean_field, ntk_points,
               record_neurons, verbose, dtype, ntk_every=None, batched=True, label="train"):
    """Train every (alpha, seed) of ``runs`` (a run's alpha None: ``alpha``, else the model's
    own); the other arguments are :func:`train`'s. Returns the records (None for a diverged
    run) and the diverged runs as (alpha, seed, message). ``batched`` stacks the runs under
    ``jax.vmap`` (one compilation); otherwise there must be one run, trained without vmap."""
    spec, alphas, seeds = _runs(model, runs, params=params, alpha=alpha, center=center)
    given = dict(zip(dict.fromkeys(seeds), [spec.given_params(s) for s in dict.fromkeys(seeds)],
                     strict=True))
    dtype = run_dtype(dtype, next(iter(given.values())))
    loss_fn = loss_function(loss)
    steps = positive_int(steps, "steps")
    record_every = max(1, steps // 100) if record_every is None else positive_int(
        record_every, "record_every")
    record_every = min(record_every, steps)
    x, y_arr = _check_data(X, y, loss, dtype, "X", "y", spec.is_lazykit)
    data = (x, y_arr, *_test_data(X_test, y_test, x, loss, dtype, spec.is_lazykit))
    _check_loss(loss_fn, y_arr)
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
        if batch_size > x.shape[0]:
            raise ValueError(f"batch_size must be at most the number of training points "
                             f"({x.shape[0]}); got {batch_size}.")
    for a in dict.fromkeys(alphas):
        run_model = model.replace(alpha=a) if isinstance(model, TwoLayer) else model
        lr_eff, unstable = _learning_rate(run_model, learning_rate, optimizer, mean_field,
                                          batch_size is not None)
    ntk_points = positive_int(ntk_points, "ntk_points", minimum=0)
    if ntk_every is not None:
        ntk_every = positive_int(ntk_every, "ntk_every")
    elif spec.is_lazykit:
        ntk_every = 1
    with precision(dtype):
        params0 = [spec.initial_params(s, x.shape[1:], dtype, given=given[s]) for s in seeds]
        on_host = _driver.steps_on_host(apply_function(spec.key), params0[0], x)
        # On the host, the driver measures the NTK itself (outside any jitted branch), and the
        # steps reuse the tangent map that init stores.
        trainer = make_trainer(spec.key, loss_fn, optimizer, tangent=tangent,
                               center=spec.center, ntk_points=0 if on_host else ntk_points,
                               record_neurons=record_neurons,
                               linearize=on_host and tangent and batch_size is None)
        data = tuple(None if a is None else jnp.asarray(a) for a in data)
        states = _driver.initial_states(trainer, params0, data[0], alphas, lr_eff, batched,
                                         on_host)
        outputs = states.out0 if batched else states.out0[None]
        if outputs.shape[-1] != y_arr.shape[1]:
            raise ValueError(f"the model has {outputs.shape[-1]} output(s) but y has "
                             f"{y_arr.shape[1]} column(s).")
        rows = np.stack([_driver.batch_indices(x.shape[0], steps, batch_size, s) for s in seeds])
        host_ntk = None
        if on_host and ntk_points:
            host_ntk = _driver.HostNTK(_driver.ntk_function(spec.key, batched),
                                       data[0][:ntk_points])
            host_ntk = host_ntk._replace(ntk0=host_ntk.fn(states.params0, host_ntk.x))
        states, measured, diverged = _driver.drive(
            trainer, states, data, rows if batched else rows[0], steps=steps,
            record_every=record_every, ntk_every=ntk_every, alphas=alphas,
            divergence=functools.partial(_divergence, unstable=unstable, tangent=tangent),
            on_host=on_host, host_ntk=host_ntk, verbose=verbose, label=label, batched=batched)
    records = [None if i in diverged else _record(
        spec.problem(p0, a), states, measured, i, batched, learning_rate=lr_eff, loss=loss,
        tangent=tangent) for i, (p0, a) in enumerate(zip(params0, alphas, strict=True))]
    return records, [(alphas[i], seeds[i], diverged[i]) for i in sorted(diverged)]


def _runs(model, runs, *, params, alpha, center):
    """The model's spec, the alpha and the seed of every run; refuses several seeds that
    would all start from the same fixed parameters."""
    spec = model_spec(model, params=params, alpha=alpha, center=center)
    alphas = [spec.alpha if a is None else nonnegative_float(a, "alpha", strict=True)
              for a, _ in runs]
    seeds = [s for _, s in runs]
    if len(set(seeds)) > 1 and not spec.varies_with_seed:
        raise ValueError(f"cannot vary the initialization over seeds={sorted(set(seeds))}: the "
                         "model's parameters are fixed (a pair (apply_fn, params) or params=), "
                         "so every seed would repeat the same run. Give the model as (apply_fn, "
                         "None, init_fn) with init_fn(seed) -> params, or a single seed.")
    return spec, alphas, seeds


def _test_data(X_test, y_test, x, loss, dtype, matrix):
    """(X_test, y_test) checked, or (None, None)."""
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test go together; got only one of them.")
    if X_test is None:
        return None, None
    test = _check_data(X_test, y_test, loss, dtype, "X_test", "y_test", matrix)
    check_same_shape(x, test[0], "X", "X_test")
    return test


def _record(problem, states, measured, run, batched, *, learning_rate, loss, tangent):
    """The TrajectoryRecord of run ``run`` of the (stacked, if ``batched``) final states."""
    state = jax.tree_util.tree_map(lambda v: v[run], states) if batched else states
    return TrajectoryRecord.from_measurements(
        jax.tree_util.tree_map(lambda v: v[run], measured), problem=problem,
        learning_rate=learning_rate, loss=loss,
        params=state.params, tangent_params=state.tangent_params if tangent else None)


def _check_data(X, y, loss, dtype, x_name, y_name, matrix):
    X = as_inputs(X, x_name, dtype=dtype, matrix=matrix)
    y_arr = as_targets(y, y_name, X.shape[0], x_name, dtype=dtype)
    if isinstance(loss, str) and loss == "logistic" and not np.all(np.abs(y_arr) == 1):
        raise ValueError(f"the logistic loss needs labels -1 or +1 in {y_name}; got values "
                         f"{np.unique(y_arr)[:5]}. Map {{0, 1}} labels with 2 * y - 1.")
    return X, y_arr


def _check_loss(loss_fn, y):
    """A loss must map (outputs, targets) of shape (n, o) to a scalar."""
    like = jax.ShapeDtypeStruct(y.shape, y.dtype)
    with precision(y.dtype):
        shape = jax.eval_shape(loss_fn, like, like).shape
    if shape != ():
        raise ValueError(f"loss must return a scalar; loss(outputs, targets) returned shape "
                         f"{shape} for outputs and targets of shape {y.shape}.")


def _learning_rate(model, learning_rate, optimizer, mean_field, batched=False):
    """The effective learning rate (None for an optax optimizer) and what a divergence message
    says was unstable."""
    if (learning_rate is None) == (optimizer is None):
        raise ValueError("give exactly one of learning_rate (plain gradient descent / SGD) and "
                         f"optimizer (an optax GradientTransformation); got "
                         f"learning_rate={learning_rate!r}, optimizer={optimizer!r}.")
    if mean_field:
        if not isinstance(model, TwoLayer) or model.alpha != 1.0:
            raise ValueError("mean_field=True is the alpha = 1 regime of a TwoLayer (steps "
                             f"multiplied by the width); got {model!r}. Use TwoLayer(..., "
                             "alpha=1.0), or scale learning_rate yourself.")
        if optimizer is not None:
            raise ValueError("mean_field=True scales learning_rate; it cannot scale an optax "
                             "optimizer. Pass learning_rate instead.")
    if optimizer is not None:
        return None, "The optax optimizer is unstable at its learning rate"
    rate = nonnegative_float(learning_rate, "learning_rate", strict=True)
    scale = model.width if mean_field else 1
    rule = "SGD" if batched else "Gradient descent"
    width = f" (x width {scale})" if mean_field else ""
    return rate * scale, f"{rule} with learning_rate={rate:g}{width} is unstable"


def _divergence(objectives, measured, run, first, lengths, starts, alpha, unstable, tangent):
    """The divergence message of one run in one block, or None: records in order, each
    followed by the losses of the steps of its chunk."""
    columns = 2 if tangent else 1
    initial = np.array([first.train_loss[run, 0], first.tangent_train_loss[run, 0]])
    limit = DIVERGENCE_FACTOR * np.maximum(np.nan_to_num(initial), 1e-12)
    names = ("network", "tangent model")
    for j, (length, start) in enumerate(zip(lengths, starts, strict=True)):
        if length < 0:
            continue
        values = (measured.train_loss[run, j], measured.tangent_train_loss[run, j])
        for which in range(columns):
            if not np.isfinite(values[which]):
                return _message(int(start), names[which], values[which], initial[which],
                                unstable)
        losses = _objective_to_loss(objectives[j, :length, :columns], alpha)
        bad = ~np.isfinite(losses) | (losses > limit[:columns])
        if bad.any():
            k, which = np.argwhere(bad)[0]
            return _message(int(start + k), names[which], losses[k, which], initial[which],
                            unstable)
    return None


# A loss this many times its initial value (or NaN/inf) is a diverged run: gradient
# descent on a tangent model can grow the loss exponentially without ever overflowing.
DIVERGENCE_FACTOR = 1e8


def _objective_to_loss(objective, alpha):
    """R(alpha f) from the objective F_alpha = R(alpha f) / alpha^2 that the steps minimize
    (the scale of the recorded losses, so that the divergence test compares like with like)."""
    return np.asarray(objective, np.float64) * np.square(np.float64(alpha))


def _message(step, name, value, initial, unstable):
    return (f"training diverged at step {step}: the {name}'s loss is {value:.3g} (it was "
            f"{initial:.3g} at step 0). {unstable}; use a smaller learning rate (for example a "
            "tenth of it).")

