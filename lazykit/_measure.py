"""Measurements of a run of the pure trainer (lazykit/trainer.py): the named record
of a state, from outputs a training step already computed or from fresh forward passes."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lazykit._problem import as_2d, kink_preactivations, param_norm
from lazykit.empirical import empirical_ntk
from lazykit.tangent import apply_function, tree_sub


class Measurement(NamedTuple):
    """One measurement of a run: named arrays (NaN where not measured).

    Losses are R(alpha f) and R(alpha T f); deviations the root mean square over
    points of ||alpha f - alpha T f||; movements ||w_t - w_0|| / ||w_0||;
    ``ntk_change`` ||Theta_t - Theta_0||_F / ||Theta_0||_F; ``pattern_change`` the
    fraction of ReLU-like activation signs that differ from initialization;
    ``neurons`` the TwoLayer neuron positions (a_j, c_j) (None unless recorded).
    Stacked over records (as :meth:`Trainer.run` returns them), every field gains a
    leading axis.
    """

    step: Any
    train_loss: Any
    tangent_train_loss: Any
    deviation_train: Any
    test_loss: Any
    tangent_test_loss: Any
    deviation_test: Any
    param_movement: Any
    tangent_param_movement: Any
    ntk_change: Any
    pattern_change: Any
    neurons: Any = None


class Measurer(NamedTuple):
    """``losses(state, out, lin, o0, y, unmoved)``: [R(alpha f), R(alpha T f), deviation]
    from f(w, x), J (wbar - w_0) and f(w_0, x); ``record(state, train, x, x_test, y_test,
    ntk)``: the :class:`Measurement` of a state whose train losses are ``train``;
    ``measure(state, x, y, x_test, y_test, ntk, linear)``: the same from fresh outputs
    (``linear``: J on x, or None for a jvp)."""

    losses: Any
    record: Any
    measure: Any


def make_measurer(key, loss_fn, *, tangent, center, ntk_points, neurons) -> Measurer:
    """The measurement functions of a trainer (see :func:`lazykit.make_trainer`)."""
    f = apply_function(key)

    def outputs(params, x):
        return as_2d(f(params, x))

    def losses(state, out, lin, o0, y, at_start):
        """[R(alpha f), R(alpha T f), deviation] from f(w, x), J (wbar - w_0) and f(w_0, x)."""
        alpha = state.alpha
        g = alpha * (out - o0 if center else out)
        if not tangent:
            return [loss_fn(g, y), jnp.nan, jnp.nan]
        tg = alpha * (lin if center else o0 + lin)
        deviation = jnp.sqrt(jnp.mean(jnp.sum((g - tg) ** 2, 1)))
        # Both models at w_0 are the same function: exactly 0, whatever the rounding.
        return [loss_fn(g, y), loss_fn(tg, y), jnp.where(at_start, 0.0, deviation)]

    def fresh_losses(state, x, y, o0, linear, at_start):
        """:func:`losses` with the outputs computed here (o0 None: f(w_0, x) computed too)."""
        w, w0 = state.params, state.params0
        out, lin = outputs(w, x), None
        if tangent:
            delta = tree_sub(state.tangent_params, w0)
            if linear is None:
                base, lin = jax.jvp(lambda q: outputs(q, x), (w0,), (delta,))
                o0 = base if o0 is None else o0
            else:
                lin = linear(delta)
        if o0 is None:
            o0 = outputs(w0, x) if center else jnp.zeros_like(out)
        return losses(state, out, lin, o0, y, at_start)

    def measurement(state, train, x, x_test, y_test, ntk):
        """The Measurement of ``state`` whose train losses are ``train``."""
        w, w0 = state.params, state.params0
        at_start = unmoved(state, tangent)
        dtype = float_dtype(w)
        values = list(train)
        values += [jnp.nan] * 3 if x_test is None else fresh_losses(state, x_test, y_test,
                                                                    None, None, at_start)
        values += [movement(w, w0), movement(state.tangent_params, w0) if tangent else jnp.nan]
        values.append(_ntk_value(key, state, x[:ntk_points], ntk) if ntk_points else jnp.nan)
        values.append(pattern_change(key, w, w0, x))
        values = [jnp.asarray(v, dtype) for v in values]
        return Measurement(state.step, *values, neurons=key.neurons(w) if neurons else None)

    def measure(state, x, y, x_test, y_test, ntk, linear):
        train = fresh_losses(state, x, y, state.out0, linear, unmoved(state, tangent))
        return measurement(state, train, x, x_test, y_test, ntk)

    return Measurer(losses, measurement, measure)


def blank(shape):
    """A NaN (or -1) array of the shape and dtype of ``shape``: a skipped measurement."""
    return jnp.full(shape.shape, missing(shape), shape.dtype)


def unmoved(state, tangent):
    """Whether both models are still at w_0 (as at step 0)."""
    equal = [same(state.params, state.params0)]
    if tangent:
        equal.append(same(state.tangent_params, state.params0))
    return jnp.all(jnp.stack(equal))


def same(a, b):
    """Whether two pytrees hold equal values, leaf by leaf."""
    return jnp.all(jnp.stack([jnp.all(u == v) for u, v in zip(
        jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)]))


def _ntk_value(key, state, x, ntk):
    """The NTK change if ``ntk`` (a bool, or a traced bool), else NaN; 0 without computing
    anything while the parameters are w_0."""
    dtype = float_dtype(state.params)
    return jax.lax.cond(jnp.asarray(ntk) & ~same(state.params, state.params0),
                        lambda s: ntk_change(key, s.params, s.ntk0, x).astype(dtype),
                        lambda s: jnp.where(ntk, 0.0, jnp.nan).astype(dtype), state)


def missing(shape):
    """The fill value of a skipped measurement: -1 for integers, else NaN."""
    return -1 if jnp.issubdtype(shape.dtype, jnp.integer) else jnp.nan


def float_dtype(params):
    """The floating dtype of a pytree of parameters (JAX's default if it has none)."""
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(params)
              if jnp.issubdtype(leaf.dtype, jnp.floating)]
    return jnp.result_type(*leaves) if leaves else jnp.zeros(()).dtype


def movement(w, w0):
    """||w - w_0|| / ||w_0|| over all parameters."""
    return param_norm(tree_sub(w, w0)) / param_norm(w0)


def ntk_change(key, params, ntk0, x):
    """||Theta_t - Theta_0||_F / ||Theta_0||_F of the empirical NTK of ``key`` on ``x``."""
    return jnp.linalg.norm(empirical_ntk(key, params, x) - ntk0) / jnp.linalg.norm(ntk0)


def pattern_change(key, w, w0, x):
    """Fraction of kinked-activation signs (points x neurons) that differ from w_0 (NaN if
    the model has none)."""
    now = kink_preactivations(key, w, x)
    if not now:
        return jnp.nan
    then = kink_preactivations(key, w0, x)
    changed = sum(jnp.sum((u > 0) != (v > 0)) for u, v in zip(now, then, strict=True))
    return changed / sum(u.size for u in now)
