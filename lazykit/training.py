"""Side-by-side training of a network and its tangent model (design.md, "Lazy training").

Both minimize F_alpha(w) = R(alpha f(w)) / alpha^2 from the same w_0, with the
same optimizer, learning rate, steps and data order, so alpha f(w_t) and the
tangent model alpha T f(wbar_t) can be compared at every step. With a constant
learning rate, alpha f moves at a speed independent of alpha (the kernel is the
NTK of the unscaled f), while the parameters move O(1/alpha).

The steps run in jitted ``lax.scan`` chunks of ``record_every`` steps; between
chunks the trajectory is measured and checked for divergence.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._dtypes import precision, resolve_dtype
from lazykit._problem import (
    Problem,
    as_2d,
    as_targets,
    kink_preactivations,
    make_problem,
    param_norm,
)
from lazykit._progress import Progress
from lazykit._validation import as_matrix, check_same_features, nonnegative_float, positive_int
from lazykit.empirical import empirical_ntk
from lazykit.models import TwoLayer
from lazykit.tangent import apply_function, tree_sub
from lazykit.trajectory import TrajectoryRecord


class TrainingDivergedError(FloatingPointError):
    """A loss became NaN or infinite, or grew 1e8-fold: the learning rate is too large."""


def _mse(out, y):
    return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=1))


def _logistic(out, y):
    return jnp.mean(jnp.sum(jax.nn.softplus(-y * out), axis=1))


LOSSES = {"mse": _mse, "logistic": _logistic}


@functools.cache
def default_optimizer():
    """Plain (S)GD with the learning rate in the optimizer state, so that one compiled step
    serves every learning rate of a sweep (optax is imported on first use)."""
    import optax

    return optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)


def train(model, X, y, *, loss: str = "mse", steps: int, lr: float | None = None,
          optimizer=None, batch_size: int | None = None, tangent: bool = True, X_test=None,
          y_test=None, record_every: int | None = None, params=None, alpha=None, center=None,
          mean_field: bool = False, seed: int = 0, ntk_points: int = 64,
          record_neurons: bool = True, verbose: bool | None = None,
          dtype=None) -> TrajectoryRecord:
    """Train a network and its tangent model side by side on R(alpha f) / alpha^2.

    Args:
        model: a :class:`lazykit.TwoLayer` (carries alpha), a :class:`lazykit.Network`,
            a function ``apply_fn(params, x) -> (n, o)`` (with ``params=``), or a pair
            ``(apply_fn, params)``.
        X: training inputs, shape (n, d).
        y: training targets, shape (n,) or (n, o); -1 or +1 for the logistic loss.
        loss: "mse", R(h) = mean_i |h_i - y_i|^2 / 2, or "logistic",
            R(h) = mean_i log(1 + exp(-y_i h_i)).
        steps: number of optimizer steps.
        lr: learning rate of gradient descent (``batch_size=None``) or SGD on
            F_alpha. Give either ``lr`` or ``optimizer``.
        optimizer: an optax ``GradientTransformation`` used for both models instead.
        batch_size: None for full-batch gradient descent; else SGD with batches
            drawn without replacement, reshuffled every epoch (seeded by ``seed``).
        tangent: also train the tangent model (the deviation is then recorded).
        X_test: optional test inputs, measured at every record.
        y_test: test targets (with ``X_test``).
        record_every: steps between records (default: ``steps // 100``, at least 1).
        params: initial parameters (default: ``model.init(seed, d)``).
        alpha: output scale for a Network or a function (a TwoLayer has its own).
        center: train alpha (f(w) - f(w_0)) instead of alpha f(w); default False for
            a TwoLayer (symmetric initialization already gives f(w_0) = 0), True otherwise.
        mean_field: multiply the step by the width (TwoLayer with alpha = 1 only):
            the mean-field / active regime.
        seed: seed of the initialization and of the SGD data order.
        ntk_points: training points on which the empirical NTK change is measured
            (0 disables it).
        record_neurons: keep the neuron positions (a_j, c_j) of a TwoLayer at every record.
        verbose: progress bar; None shows it only on a terminal.
        dtype: "float64" (default) or "float32".

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
        >>> record = lazykit.train(lazykit.TwoLayer(64, alpha=100.0), X, y, steps=200, lr=64.0)
        >>> int(record.step[-1]), bool(record.train_loss[-1] < record.train_loss[0])
        (200, True)
        >>> bool(record.sup_deviation() < 0.1)  # lazy: network and tangent model agree
        True
    """
    dtype = resolve_dtype(dtype)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}; got {loss!r}.")
    steps = positive_int(steps, "steps")
    record_every = max(1, steps // 100) if record_every is None else positive_int(
        record_every, "record_every")
    record_every = min(record_every, steps)
    X, Y = _check_data(X, y, loss, dtype, "X", "y")
    test = None
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test go together; got only one of them.")
    if X_test is not None:
        test = _check_data(X_test, y_test, loss, dtype, "X_test", "y_test")
        check_same_features(X, test[0], "X", "X_test")
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
        if batch_size > X.shape[0]:
            raise ValueError(f"batch_size must be at most the number of training points "
                             f"({X.shape[0]}); got {batch_size}.")
    lr_eff, unstable = _learning_rate(model, lr, optimizer, mean_field, batch_size is not None)
    with precision(dtype):
        problem = make_problem(model, X.shape[1], params=params, alpha=alpha, center=center,
                               seed=seed, dtype=dtype)
        return _run(problem, X, Y, test, loss=loss, steps=steps, lr_eff=lr_eff,
                    unstable=unstable, optimizer=optimizer, batch_size=batch_size,
                    tangent=bool(tangent), record_every=record_every, seed=seed,
                    ntk_points=positive_int(ntk_points, "ntk_points", minimum=0),
                    record_neurons=record_neurons, verbose=verbose, dtype=dtype)


def _check_data(X, y, loss, dtype, x_name, y_name):
    X = as_matrix(X, x_name, dtype=dtype)
    y_arr = as_targets(y, y_name, X.shape[0], x_name, dtype=dtype)
    if loss == "logistic" and not np.all(np.abs(y_arr) == 1):
        raise ValueError(f"the logistic loss needs labels -1 or +1 in {y_name}; got values "
                         f"{np.unique(y_arr)[:5]}. Map {{0, 1}} labels with 2 * y - 1.")
    return X, y_arr


def _learning_rate(model, lr, optimizer, mean_field, batched=False):
    """The effective learning rate (None for an optax optimizer) and what a divergence message
    says was unstable."""
    if (lr is None) == (optimizer is None):
        raise ValueError("give exactly one of lr (plain gradient descent / SGD) and optimizer "
                         f"(an optax GradientTransformation); got lr={lr!r}, "
                         f"optimizer={optimizer!r}.")
    if mean_field:
        if not isinstance(model, TwoLayer) or model.alpha != 1.0:
            raise ValueError("mean_field=True is the alpha = 1 regime of a TwoLayer (steps "
                             f"multiplied by the width); got {model!r}. Use TwoLayer(..., "
                             "alpha=1.0), or scale lr yourself.")
        if optimizer is not None:
            raise ValueError("mean_field=True scales the learning rate lr; it cannot scale "
                             "an optax optimizer. Pass lr instead.")
    if optimizer is not None:
        return None, "The optax optimizer is unstable at its learning rate"
    lr = nonnegative_float(lr, "lr", strict=True)
    scale = model.width if mean_field else 1
    rule = "SGD" if batched else "Gradient descent"
    width = f" (x width {scale})" if mean_field else ""
    return lr * scale, f"{rule} with lr={lr:g}{width} is unstable"


@functools.lru_cache(maxsize=64)
def _chunk_runner(key, loss, optimizer, center, tangent, batched):
    """Jitted scan over a chunk of steps of both models (cached: shared across alphas, lrs)."""
    f, loss_fn = apply_function(key), LOSSES[loss]

    def run(carry, w0, out0, x, y, alpha, batches):
        if not batched:
            _, f_lin = jax.linearize(lambda p: as_2d(f(p, x)), w0)

        def objective(out, yb):
            return loss_fn(out, yb) / alpha**2

        def body(state, idx):
            w, wbar, s, sbar = state
            xb, yb, o0 = (x[idx], y[idx], out0[idx]) if batched else (x, y, out0)

            def network(p):
                out = as_2d(f(p, xb))
                return objective(alpha * (out - o0 if center else out), yb)

            loss_w, grad = jax.value_and_grad(network)(w)
            updates, s = optimizer.update(grad, s, w)
            w = _apply_updates(w, updates)
            loss_t = jnp.zeros_like(loss_w)
            if tangent:
                def linear(p):
                    delta = tree_sub(p, w0)
                    if batched:
                        lin = jax.jvp(lambda q: as_2d(f(q, xb)), (w0,), (delta,))[1]
                    else:
                        lin = f_lin(delta)
                    return objective(alpha * (lin if center else o0 + lin), yb)

                loss_t, grad = jax.value_and_grad(linear)(wbar)
                updates, sbar = optimizer.update(grad, sbar, wbar)
                wbar = _apply_updates(wbar, updates)
            return (w, wbar, s, sbar), jnp.stack([loss_w, loss_t])

        return jax.lax.scan(body, carry, batches)

    return jax.jit(run)


def _apply_updates(params, updates):
    """optax.apply_updates: params + updates, in the parameters' dtype."""
    return jax.tree_util.tree_map(lambda p, u: (p + u).astype(p.dtype), params, updates)


@functools.lru_cache(maxsize=64)
def _outputs(key):
    """Jitted f(w, x) as (n, o)."""
    f = apply_function(key)
    return jax.jit(lambda w, x: as_2d(f(w, x)))


@functools.lru_cache(maxsize=64)
def _measurer(key, loss, center, tangent, ntk_points, patterns, neurons):
    """One jitted function for every measurement of a record (few compilations per run)."""
    f, loss_fn = apply_function(key), LOSSES[loss]

    def split(w, wbar, w0, alpha, data):
        if data is None:
            return [jnp.nan] * 3
        x, y, out0 = data
        out = as_2d(f(w, x))
        g = alpha * (out - out0 if center else out)
        if not tangent:
            return [loss_fn(g, y), jnp.nan, jnp.nan]
        lin = jax.jvp(lambda q: as_2d(f(q, x)), (w0,), (tree_sub(wbar, w0),))[1]
        tg = alpha * (lin if center else out0 + lin)
        return [loss_fn(g, y), loss_fn(tg, y), jnp.sqrt(jnp.mean(jnp.sum((g - tg) ** 2, 1)))]

    def measure(w, wbar, w0, alpha, train, test):
        values = split(w, wbar, w0, alpha, train) + split(w, wbar, w0, alpha, test)
        values.append(_movement(w, w0))
        values.append(_movement(wbar, w0) if tangent else jnp.nan)
        ntk = empirical_ntk(key, w, train[0][:ntk_points]) if ntk_points else None
        if patterns:
            problem = Problem(key, w0, 1.0, False)
            now = kink_preactivations(problem, w, train[0])
            then = kink_preactivations(problem, w0, train[0])
            changed = sum(jnp.sum((u > 0) != (v > 0)) for u, v in zip(now, then, strict=True))
            values.append(changed / sum(u.size for u in now))
        else:
            values.append(jnp.nan)
        dtype = jax.tree_util.tree_leaves(w)[0].dtype
        positions = key.neurons(w) if neurons else None
        return jnp.stack([jnp.asarray(v, dtype) for v in values]), ntk, positions

    return jax.jit(measure)


def _movement(w, w0):
    return param_norm(tree_sub(w, w0)) / param_norm(w0)


def _run(problem, X, Y, test, *, loss, steps, lr_eff, unstable, optimizer, batch_size, tangent,
         record_every, seed, ntk_points, record_neurons, verbose, dtype):
    w0, key = problem.params0, problem.key
    x, y = jnp.asarray(X), jnp.asarray(Y)
    xt = None if test is None else jnp.asarray(test[0])
    # One call for train and test rows: fewer compilations.
    outs = _outputs(key)(w0, x if xt is None else jnp.concatenate([x, xt]))
    out0 = outs[:x.shape[0]]
    if out0.shape[1] != y.shape[1]:
        raise ValueError(f"the model has {out0.shape[1]} output(s) but y has {y.shape[1]} "
                         "column(s).")
    alpha = jnp.asarray(problem.alpha, dtype)
    opt = default_optimizer() if optimizer is None else optimizer
    state = opt.init(w0)
    if optimizer is None:
        state.hyperparams["learning_rate"] = jnp.asarray(lr_eff, dtype)
    carry = (w0, w0, state, jax.tree_util.tree_map(lambda v: v, state))
    runner = _chunk_runner(key, loss, opt, problem.center, tangent, batch_size is not None)
    train_data = (x, y, out0)
    test_data = None
    if test is not None:
        test_data = (xt, jnp.asarray(test[1]), outs[x.shape[0]:])
    ntk_points = min(ntk_points, X.shape[0])
    patterns = bool(jax.eval_shape(lambda p: kink_preactivations(problem, p, x[:1]), w0))
    keep_neurons = bool(record_neurons) and problem.two_layer is not None
    ntk0 = []  # the empirical NTK at step 0, set by the first measurement
    measurer = _measurer(key, loss, problem.center, tangent, ntk_points, patterns, keep_neurons)
    batches = _batch_indices(X.shape[0], steps, batch_size, seed)
    rows, positions = [], []

    def measure(step, carry):
        values, ntk, neurons = measurer(carry[0], carry[1], w0, alpha, train_data, test_data)
        ntk_change = np.nan
        if ntk is not None:
            ntk = np.asarray(ntk, np.float64)
            if not ntk0:
                ntk0.append(ntk)
            ntk_change = np.linalg.norm(ntk - ntk0[0]) / np.linalg.norm(ntk0[0])
        values = np.asarray(values, np.float64)
        rows.append([step, *values[:-1], ntk_change, values[-1]])
        if keep_neurons:
            positions.append(np.asarray(neurons))
        _check_finite(rows[-1], step, unstable, rows[0])

    measure(0, carry)
    done = 0
    with Progress(steps, "train", verbose) as bar:
        while done < steps:
            length = min(record_every, steps - done)
            chunk = batches[done:done + length]
            carry, losses = runner(carry, w0, out0, x, y, alpha, chunk)
            _check_losses(_objective_to_loss(losses, problem.alpha), done, unstable, rows[0])
            done += length
            measure(done, carry)
            bar.update(length, postfix=f"loss {rows[-1][1]:.3g}")
    return TrajectoryRecord.from_table(
        np.asarray(rows, dtype=np.float64), problem=problem, lr=lr_eff, loss=loss,
        params=carry[0], tangent_params=carry[1] if tangent else None,
        neurons=np.stack(positions) if keep_neurons else None)


def _batch_indices(n, steps, batch_size, seed):
    """(steps, batch) row indices; an empty second axis for full-batch gradient descent."""
    if batch_size is None:
        return jnp.zeros((steps, 0), jnp.int32)
    rng = np.random.default_rng(seed)
    epochs = -(-steps * batch_size // n)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    return jnp.asarray(order[:steps * batch_size].reshape(steps, batch_size), jnp.int32)


# A loss this many times its initial value (or NaN/inf) is a diverged run: gradient
# descent on a tangent model can grow the loss exponentially without ever overflowing.
DIVERGENCE_FACTOR = 1e8


def _objective_to_loss(objective, alpha):
    """R(alpha f) from the objective F_alpha = R(alpha f) / alpha^2 that the steps minimize
    (the scale of the recorded losses, so that the divergence test compares like with like)."""
    return np.asarray(objective, np.float64) * np.square(np.float64(alpha))


def _check_losses(losses, start, unstable, first_row):
    """Raise if a loss R(alpha f) of a chunk is not finite or grew DIVERGENCE_FACTOR-fold."""
    initial = np.array([first_row[1], first_row[2]])
    limit = DIVERGENCE_FACTOR * np.maximum(np.nan_to_num(initial), 1e-12)
    bad = ~np.isfinite(losses) | (losses > limit)
    if not bad.any():
        return
    step, which = np.argwhere(bad)[0]
    name = "network" if which == 0 else "tangent model"
    _diverged(int(start + step), name, losses[step, which], initial[which], unstable)


def _check_finite(row, step, unstable, first_row):
    if not np.isfinite(row[1]):
        _diverged(step, "network", row[1], first_row[1], unstable)
    if not np.isnan(row[3]) and not np.isfinite(row[2]):
        _diverged(step, "tangent model", row[2], first_row[2], unstable)


def _diverged(step, name, value, initial, unstable):
    raise TrainingDivergedError(
        f"training diverged at step {step}: the {name}'s loss is {value:.3g} (it was "
        f"{initial:.3g} at step 0). {unstable}; use a smaller learning rate (for example a "
        "tenth of it).")
