"""A pure trainer: a network and its tangent model as jit- and vmap-able functions.

Both models minimize F_alpha(w) = R(alpha f(w)) / alpha^2 from the same w_0, with the
same optimizer, learning rate, steps and data order, so alpha f(w_t) and the tangent
model alpha T f(wbar_t) can be compared at every step (Chizat & Bach 2019). With a
constant learning rate, alpha f moves at a speed independent of alpha (the kernel is
the NTK of the unscaled f), while the parameters move O(1/alpha).

:func:`make_trainer` returns pure functions (``init``, ``step``, ``measure``,
``measured_step``, ``run``, ``linearize``) over a :class:`TrainState` pytree: the
parameters, the optimizer states, w_0, the output scale alpha and the learning rate are
all arrays in it, so one compilation serves every alpha and learning rate, and a stack
of states trains under ``jax.vmap``. A measurement is a :class:`Measurement` of named
arrays (lazykit/_measure.py). :func:`lazykit.train` and :func:`lazykit.lazy_sweep` are
host drivers over them (lazykit/training.py, lazykit/_driver.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lazykit._measure import Measurement, blank, float_dtype, make_measurer, unmoved
from lazykit._problem import as_2d, model_spec
from lazykit._validation import DEPRECATED, deprecated_keyword, positive_int
from lazykit.empirical import empirical_ntk
from lazykit.models import TwoLayer
from lazykit.tangent import apply_function, tree_sub

__all__ = ["Measurement", "TrainState", "Trainer", "default_optimizer", "make_trainer"]


def _mse(out, y):
    return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=1))


def _logistic(out, y):
    return jnp.mean(jnp.sum(jax.nn.softplus(-y * out), axis=1))


LOSSES = {"mse": _mse, "logistic": _logistic}


def loss_function(loss) -> Callable:
    """R(outputs, targets) for "mse", "logistic" or a function; raises on anything else."""
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]
    if callable(loss) and not isinstance(loss, str):
        return loss
    raise ValueError(f"loss must be one of {tuple(LOSSES)} or a function loss(outputs, "
                     f"targets) -> scalar; got {loss!r}.")


@functools.cache
def default_optimizer():
    """Plain (S)GD with the learning rate in the optimizer state, so that one compiled step
    serves every learning rate of a sweep (optax is imported on first use)."""
    import optax

    return optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)


class TrainState(NamedTuple):
    """Everything a training run carries (a pytree; stack states to train them batched).

    ``tangent_params`` and ``tangent_opt_state`` are None without a tangent model;
    ``ntk0`` is None when ``ntk_points=0``; ``linear`` is None until
    :attr:`Trainer.linearize` stores the tangent map. With the default optimizer the
    learning rate is ``opt_state.hyperparams["learning_rate"]``.
    """

    step: Any  # steps taken (int32 scalar)
    params: Any  # w_t
    opt_state: Any
    tangent_params: Any  # wbar_t of the tangent model
    tangent_opt_state: Any
    params0: Any  # w_0, shared by both models
    out0: Any  # f(w_0, x) on the training inputs, (n, o)
    ntk0: Any  # empirical NTK at w_0 on the first ntk_points training inputs
    alpha: Any  # output scale (a scalar array)
    linear: Any = None  # the VJP of f(., x) at w_0 on the training inputs (its residuals)


class Trainer(NamedTuple):
    """The pure functions of :func:`make_trainer` (see there for their signatures)."""

    init: Callable
    step: Callable
    measure: Callable
    measured_step: Callable
    run: Callable
    linearize: Callable


def make_trainer(model, loss="mse", optimizer=None, *, tangent: bool = True, center=None,
                 ntk_points: int = 64, record_neurons: bool = True,
                 linearize: bool = False) -> Trainer:
    """Pure functions of a network and its tangent model trained side by side on
    R(alpha f) / alpha^2: ``init``, ``step``, ``measure``, ``measured_step``, ``run`` and
    ``linearize``.

    * ``init(params, x, *, alpha=None, learning_rate=None) -> TrainState``: w_0 =
      ``params``, f(w_0, x) and the empirical NTK at w_0 on the training inputs ``x``;
      ``alpha`` defaults to a TwoLayer's own alpha (else 1); ``learning_rate`` is required
      with the default optimizer (gradient descent) and refused with an optax one (its
      old name ``lr`` is deprecated: a DeprecationWarning).
    * ``step(state, x, y, batch=None) -> (state, objective)``: one step of both models
      on all rows, or on the rows ``batch`` (an integer array: SGD); ``objective`` holds
      F_alpha of the network and of the tangent model before the step (NaN without it).
    * ``measure(state, x, y, x_test=None, y_test=None, ntk=True) -> Measurement``;
      ``ntk`` (a bool, may be traced) says whether to measure the NTK change (NaN if not).
    * ``measured_step(state, x, y, batch=None, x_test=None, y_test=None, ntk=True)
      -> (state, objective, Measurement)``: the measurement of ``state`` and a step from
      it; in full batch the measurement shares the step's forward passes.
    * ``run(state, x, y, batches, x_test=None, y_test=None, lengths=None, ntk=None)
      -> (state, (objectives, measurements))``: a ``lax.scan`` over chunks. ``batches``
      is an integer array of shape (records, E, b); chunk r measures the state (record r),
      then takes E steps on the rows ``batches[r, i]`` (b = 0: all rows, gradient descent,
      linearized once). ``lengths`` (records,) shortens chunks: 0 only measures, a
      negative length skips the chunk (a NaN measurement with step -1). ``ntk``
      (records,) says which records measure the NTK change. ``objectives`` has shape
      (records, E, 2), NaN past each chunk's length; the measurements are stacked.
    * ``linearize(state, x) -> TrainState``: stores the tangent map at w_0 on the
      training inputs (the residuals of one forward pass: the memory of the
      activations of ``x``); full-batch ``step`` and ``measured_step`` then skip the
      forward pass at w_0 that a tangent step otherwise repeats (a fifth of its cost
      on a small CNN).

    Every ``x`` above is the training inputs given to ``init`` (``out0``, and with
    ``linearize`` the tangent map, belong to them).

    All are pure (no host callbacks) and can be jitted and vmapped, e.g.
    ``jax.vmap(trainer.run, in_axes=(0, None, None, None))`` over a stack of states with
    different alphas, learning rates and initializations.

    Args:
        model: a :class:`lazykit.TwoLayer`, a :class:`lazykit.Network`, a function
            ``apply_fn(params, x)``, or a pair / triple whose first item is that function.
        loss: "mse", "logistic" or a function ``loss(outputs, targets) -> scalar`` of
            the scaled outputs alpha f (n, o) and the targets (n, o), a mean over points.
        optimizer: an optax ``GradientTransformation``; None for gradient descent with
            the learning rate in the state (see :func:`default_optimizer`).
        tangent: also train the tangent model.
        center: train alpha (f(w) - f(w_0)); default False for a TwoLayer, True otherwise.
        ntk_points: training points on which the empirical NTK change is measured (0: none).
        record_neurons: measure the neuron positions of a TwoLayer.
        linearize: ``init`` stores the tangent map too (as ``linearize`` would, from the
            same forward pass).

    Returns:
        :class:`Trainer`.

    Examples:
        >>> import jax, numpy as np, lazykit
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(20, 2)), rng.normal(size=(20, 1))
        >>> model = lazykit.TwoLayer(64)
        >>> trainer = lazykit.make_trainer(model)
        >>> params = model.init(0, input_dim=2)
        >>> init = jax.vmap(lambda a: trainer.init(params, x, alpha=a, learning_rate=64.0))
        >>> states = init(np.array([10.0, 100.0]))  # one state per alpha
        >>> run = jax.jit(jax.vmap(trainer.run, in_axes=(0, None, None, None)))
        >>> states, (objectives, records) = run(states, x, y, np.zeros((4, 50, 0), int))
        >>> records.step[0].tolist(), records.deviation_train.shape
        ([0, 50, 100, 150], (2, 4))
        >>> bool(records.deviation_train[1, -1] < records.deviation_train[0, -1])
        True
    """
    spec = model_spec(model, require_params=False)
    return _build(spec.key, loss_function(loss), optimizer, bool(tangent),
                  spec.center if center is None else bool(center),
                  positive_int(ntk_points, "ntk_points", minimum=0),
                  bool(record_neurons) and isinstance(spec.key, TwoLayer),
                  spec.alpha, bool(linearize))


def _cached(build):
    """Cache trainers by their (hashable) arguments, so compiled code is shared across calls."""
    cached = functools.lru_cache(maxsize=64)(build)

    @functools.wraps(build)
    def wrapper(*args):
        try:
            hash(args)
        except TypeError:  # an unhashable model or loss: build afresh
            return build(*args)
        return cached(*args)

    return wrapper


@_cached
def _build(key, loss_fn, optimizer, tangent, center, ntk_points, neurons, default_alpha,
           store_linear):
    f = apply_function(key)
    opt = default_optimizer() if optimizer is None else optimizer

    def outputs(params, x):
        return as_2d(f(params, x))

    def objective(h, y, alpha):
        """F_alpha = R(alpha h) / alpha^2 of the (centered) unscaled outputs h."""
        return loss_fn(alpha * h, y) / alpha**2

    def descend(fn, params, opt_state):
        (value, aux), grad = jax.value_and_grad(fn, has_aux=True)(params)
        updates, opt_state = opt.update(grad, opt_state, params)
        params = jax.tree_util.tree_map(lambda p, u: (p + u).astype(p.dtype), params, updates)
        return params, opt_state, value, aux

    def init(params, x, *, alpha=None, learning_rate=None, lr=DEPRECATED):
        learning_rate = deprecated_keyword(learning_rate, lr, "learning_rate", "lr")
        params = jax.tree_util.tree_map(jnp.asarray, params)
        dtype = float_dtype(params)
        opt_state = opt.init(params)
        if optimizer is None:
            if learning_rate is None:
                raise ValueError("learning_rate is required with the default optimizer "
                                 "(gradient descent); or pass an optax optimizer to "
                                 "make_trainer.")
            opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, dtype)
        elif learning_rate is not None:
            raise ValueError("learning_rate is set by the optax optimizer given to "
                             f"make_trainer; got learning_rate={learning_rate!r} as well.")
        copy = jax.tree_util.tree_map(lambda v: v, opt_state)
        x = jnp.asarray(x, dtype)
        ntk0 = empirical_ntk(key, params, x[:ntk_points]) if ntk_points else None
        if store_linear:
            out0, linear = jax.vjp(lambda q: outputs(q, x), params)
        else:
            out0, linear = outputs(params, x), None
        return TrainState(
            step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
            tangent_params=params if tangent else None,
            tangent_opt_state=copy if tangent else None, params0=params, out0=out0,
            ntk0=ntk0, alpha=jnp.asarray(default_alpha if alpha is None else alpha, dtype),
            linear=linear)

    def one_step(state, xb, yb, o0, linear):
        """Both models' step on the rows xb; also returns f(w, xb) and J (wbar - w_0)."""
        alpha, w0 = state.alpha, state.params0

        def network(p):
            out = outputs(p, xb)
            return objective(out - o0 if center else out, yb, alpha), out

        params, opt_state, value, out = descend(network, state.params, state.opt_state)
        state = state._replace(step=state.step + 1, params=params, opt_state=opt_state)
        if not tangent:
            return state, jnp.stack([value, jnp.full_like(value, jnp.nan)]), (out, None)

        def linear_objective(p):
            lin = linear(tree_sub(p, w0))
            return objective(lin if center else o0 + lin, yb, alpha), lin

        wbar, tangent_state, tangent_value, lin = descend(
            linear_objective, state.tangent_params, state.tangent_opt_state)
        state = state._replace(tangent_params=wbar, tangent_opt_state=tangent_state)
        return state, jnp.stack([value, tangent_value]), (out, lin)

    def jvp_linear(w0, x):
        return lambda delta: jax.jvp(lambda q: outputs(q, x), (w0,), (delta,))[1]

    def full_linear(state, x):
        """J delta on all training inputs: from the stored tangent map, or a jvp."""
        if state.linear is None:
            return jvp_linear(state.params0, x)
        transposed = jax.linear_transpose(state.linear, state.out0)
        return lambda delta: transposed((delta,))[0]

    def linearize(state, x):
        return state._replace(linear=jax.vjp(lambda q: outputs(q, x), state.params0)[1])

    def step(state, x, y, batch=None):
        if batch is None:
            return one_step(state, x, y, state.out0, full_linear(state, x))[:2]
        x, y, o0 = x[batch], y[batch], state.out0[batch]
        return one_step(state, x, y, o0, jvp_linear(state.params0, x))[:2]

    measurer = make_measurer(key, loss_fn, tangent=tangent, center=center,
                             ntk_points=ntk_points, neurons=neurons)
    losses, measurement, measure_with = measurer

    def measure(state, x, y, x_test=None, y_test=None, ntk=True):
        return measure_with(state, x, y, x_test, y_test, ntk, None)

    def fused_step(state, x, y, x_test, y_test, ntk, linear):
        """Full-batch step, with the measurement of the state before it from its outputs."""
        new, value, (out, lin) = one_step(state, x, y, state.out0, linear)
        train = losses(state, out, lin, state.out0, y, unmoved(state, tangent))
        return new, value, measurement(state, train, x, x_test, y_test, ntk)

    def measured_step(state, x, y, batch=None, x_test=None, y_test=None, ntk=True):
        if batch is None:
            return fused_step(state, x, y, x_test, y_test, ntk, full_linear(state, x))
        record = measure(state, x, y, x_test, y_test, ntk)
        return (*step(state, x, y, batch), record)

    def run(state, x, y, batches, x_test=None, y_test=None, lengths=None, ntk=None):
        records, chunk, width = batches.shape
        lengths = jnp.full((records,), chunk) if lengths is None else jnp.asarray(lengths)
        ntk = jnp.ones((records,), bool) if ntk is None else jnp.asarray(ntk, bool)
        linear = jvp_linear(state.params0, x)
        if width == 0 and tangent:  # gradient descent: linearize once, reuse every step
            linear = jax.linearize(lambda q: outputs(q, x), state.params0)[1]

        empty = jnp.full((chunk, 2), jnp.nan, float_dtype(state.params))

        def full_chunk(state0, rows, length, with_ntk):
            """Gradient descent: at least one step, whose outputs measure ``state0``; a chunk
            of length 0 drops that step."""
            def body(i, carry):
                state, objectives, first = carry
                state, value, outs = one_step(state, x, y, state.out0, linear)
                first = jax.tree_util.tree_map(lambda a, b: jnp.where(i == 0, b, a), first,
                                               outs)
                return state, objectives.at[i].set(value), first

            zeros = (jnp.zeros_like(state0.out0), jnp.zeros_like(state0.out0) if tangent else None)
            state, objectives, (out, lin) = jax.lax.fori_loop(
                0, jnp.maximum(length, 1), body, (state0, empty, zeros))
            moved = length >= 1
            state = jax.tree_util.tree_map(lambda a, b: jnp.where(moved, a, b), state, state0)
            train = losses(state0, out, lin, state0.out0, y, unmoved(state0, tangent))
            return (state, jnp.where(moved, objectives, jnp.nan),
                    measurement(state0, train, x, x_test, y_test, with_ntk))

        def batch_chunk(state0, rows, length, with_ntk):
            """SGD: the measurement, then ``length`` steps on the rows of ``rows``."""
            record = measure_with(state0, x, y, x_test, y_test, with_ntk, None)

            def body(i, carry):
                state, objectives = carry
                state, value = step(state, x, y, rows[i])
                return state, objectives.at[i].set(value)

            state, objectives = jax.lax.fori_loop(0, length, body, (state0, empty))
            return state, objectives, record

        chunk_fn = full_chunk if width == 0 else batch_chunk

        def one_chunk(state, inputs):
            def skip(s):
                record = jax.eval_shape(chunk_fn, s, *inputs)[2]
                return s, empty, jax.tree_util.tree_map(blank, record)

            state, objectives, record = jax.lax.cond(
                inputs[1] >= 0, lambda s: chunk_fn(s, *inputs), skip, state)
            return state, (objectives, record)

        return jax.lax.scan(one_chunk, state, (batches, lengths, ntk))

    return Trainer(init, step, measure, measured_step, run, linearize)


