"""Two-layer networks on Gaussian inputs: the population loss in closed form, for the trainer.

Student f(w, x) = (1/m) sum_j c_j sigma(a_j . x) (no bias: lazykit's two-layer model of the
mean-field papers at alpha = 1), teacher y(x) = sum_k v_k sigma(a*_k . x), inputs
x ~ N(0, I_d). Every product of two neurons has a closed-form mean,

    E sigma(a . x) sigma(b . x) = the NNGP of ``serial(Dense(1, W_std=sqrt(d)), sigma,
    Dense(1))`` between the "inputs" a and b

(the first layer's covariance W_std^2 (a . b) / d is a . b: the activation's Gaussian dual at
(a . b, |a|^2, |b|^2)), so the population loss

    L(w) = E (f(x) - y(x))^2 / 2 = (c^T K_ss c / m^2 - 2 c^T K_st v / m + v^T K_tt v) / 2

is exact, and differentiable in the neurons through :meth:`lazykit.Network.kernel_fn`.
Gradient descent on it is the particle discretization of the Wasserstein gradient flow
of the mean-field papers (Chizat and Bach 2018).

:func:`population_model` turns L into something :func:`lazykit.make_trainer` trains: an
``apply_fn(params, teacher)`` whose single "output" is L and the loss :func:`take_loss`
that reads it, so the trainer's optimizer, batching over runs (``jax.vmap`` of stacked
states) and records (``train_loss`` is L) serve population training as they serve
training on samples.
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp

from lazykit.activations import get_activation
from lazykit.network import Dense, Network, serial

__all__ = ["gaussian_feature_kernel", "pack_teacher", "population_loss", "population_model",
           "random_features_loss", "take_loss"]


def feature_network(activation, dim: int) -> Network:
    """``serial(Dense(1, W_std=sqrt(dim)), activation, Dense(1))``: its NNGP between neurons
    a and b is E sigma(a . x) sigma(b . x) for x ~ N(0, I_dim)."""
    return serial(Dense(1, W_std=math.sqrt(dim)), get_activation(activation), Dense(1))


def gaussian_feature_kernel(activation, a1, a2=None):
    """E sigma(a1_i . x) sigma(a2_j . x) for x ~ N(0, I_d), shape (n1, n2) (JAX, jit- and
    grad-compatible in the neurons, in the precision of ``a1``).

    Args:
        activation: a name or :class:`lazykit.Activation` (any with a Gaussian dual).
        a1: neurons as rows, shape (n1, d).
        a2: neurons (n2, d); None means ``a1``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from lazykit.population import gaussian_feature_kernel
        >>> a = jnp.array([[1.0, 0.0], [0.0, 2.0]])
        >>> k = gaussian_feature_kernel("relu", a)  # E relu(u)^2 = |a|^2 / 2; 1 / (2 pi) at 90 deg
        >>> [round(float(v), 6) for v in k.ravel()]
        [0.5, 0.31831, 0.31831, 2.0]
    """
    return feature_network(activation, a1.shape[1]).kernel_fn(a1, a2).nngp


def population_loss(kernel, a, c, teacher, teacher_weights, live=None):
    """E (f(x) - y(x))^2 / 2 in closed form (module docstring), x ~ N(0, I_d).

    Args:
        kernel: ``kernel(a1, a2) -> (n1, n2)``, e.g.
            ``functools.partial(gaussian_feature_kernel, "relu")``.
        a: student neurons (m, d); c: their output weights (m,).
        teacher: teacher neurons (m0, d); teacher_weights: their output weights (m0,).
        live: 0/1 per student neuron (default all 1): pads a student to a common size;
            dead neurons are left out of f and of the 1/m, and receive zero gradients.

    Examples:
        >>> import functools, jax.numpy as jnp
        >>> from lazykit.population import gaussian_feature_kernel, population_loss
        >>> relu = functools.partial(gaussian_feature_kernel, "relu")
        >>> teacher = jnp.eye(2)  # a student of the same two neurons, c = m v: loss 0
        >>> float(population_loss(relu, teacher, 2 * jnp.ones(2), teacher, jnp.ones(2)))
        0.0
    """
    live = jnp.ones_like(c) if live is None else live
    weights = c * live / jnp.sum(live)
    fit = weights @ kernel(a, a) @ weights
    cross = weights @ kernel(a, teacher) @ teacher_weights
    target = teacher_weights @ kernel(teacher, teacher) @ teacher_weights
    return 0.5 * (fit - 2.0 * cross + target)


def random_features_loss(kernel, a, teacher, teacher_weights, live=None):
    """Population loss of the best output layer on the frozen neurons ``a`` (random features),
    (v^T K_tt v - v^T K_ts K_ss^+ K_st v) / 2, with the pseudo-inverse of K_ss (eigenvalues
    below 1e-12 times the largest dropped).

    Examples:
        >>> import functools, jax.numpy as jnp
        >>> from lazykit.population import gaussian_feature_kernel, random_features_loss
        >>> relu = functools.partial(gaussian_feature_kernel, "relu")
        >>> teacher = jnp.eye(2)  # the teacher's own neurons as features: loss 0
        >>> abs(float(random_features_loss(relu, teacher, teacher, jnp.ones(2)))) < 1e-7
        True
    """
    live = jnp.ones(a.shape[0], a.dtype) if live is None else live
    gram = kernel(a, a) * jnp.outer(live, live) + jnp.diag(1.0 - live)  # dead: decoupled
    k_st = live * (kernel(a, teacher) @ teacher_weights)
    target = teacher_weights @ kernel(teacher, teacher) @ teacher_weights
    eigenvalues, vectors = jnp.linalg.eigh(gram)
    keep = eigenvalues > 1e-12 * eigenvalues[-1]
    projected = vectors.T @ k_st
    explained = jnp.sum(jnp.where(keep, projected**2 / jnp.where(keep, eigenvalues, 1.0), 0.0))
    return jnp.maximum(0.5 * (target - explained), 0.0)


def pack_teacher(teacher, teacher_weights, live=None):
    """The teacher (and the student's live neurons) as the "inputs" of :func:`population_model`.

    Args:
        teacher: teacher neurons (m0, d); teacher_weights: their output weights (m0,).
        live: optional 0/1 per student neuron (m,), to pad students of different widths
            to one size (see :func:`population_loss`).

    Returns:
        Rows (a*_k, v_k), shape (m0, d + 1); with ``live``, shape (m0 + m, d + 2): the rows
        (a*_k, v_k, 0), then one row (0, ..., 0, live_j, 1) per student neuron.

    Examples:
        >>> import jax.numpy as jnp
        >>> from lazykit.population import pack_teacher
        >>> pack_teacher(jnp.eye(2), jnp.ones(2)).shape
        (2, 3)
        >>> pack_teacher(jnp.eye(2), jnp.ones(2), live=jnp.array([1.0, 1.0, 0.0])).shape
        (5, 4)
    """
    rows = jnp.concatenate([teacher, teacher_weights[:, None]], axis=1)
    if live is None:
        return rows
    marks = jnp.zeros((live.shape[0], rows.shape[1] + 1), rows.dtype)
    marks = marks.at[:, -2].set(live).at[:, -1].set(1.0)
    return jnp.concatenate([jnp.pad(rows, ((0, 0), (0, 1))), marks])


def take_loss(outputs, targets):
    """The loss for :func:`population_model`: its output is already the loss (targets unused)."""
    del targets
    return outputs[0, 0]


@functools.lru_cache(maxsize=32)
def population_model(kernel):
    """``apply_fn(params, teacher) -> (1, 1)``: the population loss of the student
    ``params = {"a": (m, d), "c": (m,)}`` against the packed teacher (:func:`pack_teacher`,
    with the live neurons if it has them).

    Train it with ``lazykit.make_trainer(apply_fn, take_loss, tangent=False, center=False,
    ntk_points=0)``: gradient descent on the population loss, batched over runs like any
    trainer (each run its own teacher with ``data_batched``). The same ``kernel`` gives the
    same function (cached), so trainers and their compiled runs are shared.

    Examples:
        >>> import functools, jax.numpy as jnp, lazykit
        >>> from lazykit.population import (gaussian_feature_kernel, pack_teacher,
        ...                                 population_model, take_loss)
        >>> apply = population_model(functools.partial(gaussian_feature_kernel, "relu"))
        >>> trainer = lazykit.make_trainer(apply, take_loss, tangent=False, center=False,
        ...                                ntk_points=0)
        >>> teacher = pack_teacher(jnp.eye(2), jnp.ones(2))
        >>> start = {"a": jnp.array([[1.0, 0.2], [0.1, 1.0]]), "c": jnp.array([1.0, 1.0])}
        >>> state = trainer.init(start, teacher, learning_rate=2.0)
        >>> state, record = lazykit.train_to_checkpoints(trainer, state, teacher,
        ...                                              jnp.zeros((1, 1)), [100])
        >>> bool(record.train_loss[-1] < 0.01 * record.train_loss[0])
        True
    """
    return functools.partial(_population_apply, kernel)


def _population_apply(kernel, params, packed):
    a, c = params["a"], params["c"]
    dim, live = a.shape[1], None
    if packed.shape[1] == dim + 2:  # with the live rows of pack_teacher(..., live)
        live, packed = packed[-c.shape[0]:, dim], packed[:-c.shape[0]]
    loss = population_loss(kernel, a, c, packed[:, :dim], packed[:, dim], live)
    return jnp.reshape(loss, (1, 1))

