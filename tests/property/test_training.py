"""Properties of train: monotone descent at a provably small learning rate, and bad input.

Both models minimize F(w) = R(alpha f(w)) / alpha^2 with R(h) = mean_i |h_i - y_i|^2 / 2.
The tangent model's F is quadratic with Hessian J^T J / n (J the Jacobian of the
unscaled f), so gradient descent cannot increase it when lr <= n / lambda_max(J J^T).
The network's Hessian adds (1 / (alpha n)) sum_i r_i D^2 f_i; for the smooth erf
model it is bounded from the parameters, so lr = 1 / (that bound) is a descent step
(the descent lemma; ReLU's kinks void it, so only its tangent model is checked). Each
run uses the smaller of the two rates. J is written out in NumPy, independently of lazykit.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lazykit
from tests.property import _reference as ref
from tests.property._support import (
    MALFORMED,
    corrupted,
    examples,
    matrices,
    raises_naming,
)

N, D, WIDTH = 8, 2, 16
DATA = matrices(rows=(N,), features=(D,), scales=(0.1, 1.0, 3.0))
QUIET = dict(ntk_points=0, record_neurons=False, verbose=False)
# sup |sigma'|, sup |sigma''| of each activation (erf: 2/sqrt(pi), 4 / sqrt(2 pi e)).
SLOPES = {"relu": (1.0, 0.0), "erf": (2 / math.sqrt(math.pi), 4 / math.sqrt(2 * math.pi * math.e))}


@st.composite
def targets(draw, n=N):
    y = draw(hnp.arrays(np.float64, (n,), elements=st.floats(-2, 2)))
    return y * draw(st.sampled_from((1e-3, 1.0, 1e3)))


def _descent_rates(activation, alpha, params, X, y):
    """(lr of the tangent model, lr of the network) that cannot increase their losses."""
    jac = ref.two_layer_jacobian(activation, params, X)
    top = np.linalg.eigvalsh(jac @ jac.T)[-1]
    tangent_lr = X.shape[0] / top
    s1, s2 = SLOPES[activation]
    c = np.max(np.abs(np.asarray(params["c"])))
    xt = np.sqrt(np.sum(X * X, axis=1) + 1)
    # Each neuron's block of D^2 f_i: [[c_j sigma'' x x^T, sigma' x], [sigma' x^T, 0]] / m;
    # doubled for the drift of the parameters during the few steps.
    hessian = 2 * (2 * c * s2 * xt**2 + s1 * xt) / WIDTH
    residual = np.abs(y) + 1e-300  # symmetric initialization: r = -y at the start
    network_top = top / X.shape[0] + np.sum(residual * hessian) / (alpha * X.shape[0])
    return tangent_lr, 1.0 / network_top


def _non_increasing(losses, what):
    rises = np.diff(losses) > 1e-12 * np.abs(losses[:-1]) + 1e-300
    assert not rises.any(), f"{what} rises at step {np.argmax(rises) + 1}: {losses}"


@settings(max_examples=examples(1.0))
@given(DATA, targets(), st.sampled_from(("relu", "erf")),
       st.sampled_from((1e-6, 1e-3, 1.0, 1e3)), st.sampled_from((0.1, 1.0)))
def test_gradient_descent_at_a_small_learning_rate_never_increases_the_loss(X, y, activation,
                                                                          alpha, fraction):
    model = lazykit.TwoLayer(WIDTH, activation=activation, alpha=alpha)
    params = model.init(0, D, dtype="float64")
    tangent_lr, network_lr = _descent_rates(activation, alpha, params, X, y)
    lr = fraction * min(tangent_lr, network_lr)
    smooth = activation == "erf"  # the descent lemma holds for the network too (not at kinks)
    record = lazykit.train(model, X, y, steps=6, learning_rate=lr, params=params, record_every=1,
                           **QUIET)
    _non_increasing(record.tangent_train_loss, "tangent model loss")
    if smooth:
        _non_increasing(record.train_loss, "network loss")
    assert np.all(np.isfinite(record.train_loss))


@settings(max_examples=examples(0.3))
@given(DATA, targets(), st.sampled_from((1.0, 1e3)))
def test_sgd_with_the_whole_batch_is_gradient_descent(X, y, alpha):
    model = lazykit.TwoLayer(WIDTH, activation="erf", alpha=alpha)
    params = model.init(0, D, dtype="float64")
    lr = 0.5 * _descent_rates("erf", alpha, params, X, y)[0]
    full = lazykit.train(model, X, y, steps=4, learning_rate=lr, params=params, record_every=1,
                         **QUIET)
    batch = lazykit.train(model, X, y, steps=4, learning_rate=lr, params=params, record_every=1,
                          batch_size=N, **QUIET)
    for name in ("train_loss", "tangent_train_loss"):
        np.testing.assert_allclose(getattr(batch, name), getattr(full, name), rtol=1e-10,
                                   atol=1e-300, err_msg=name)


def _train(X, y, **kwargs):
    options = dict(steps=2, learning_rate=0.01, **QUIET)
    options.update(kwargs)
    return lazykit.train(lazykit.TwoLayer(WIDTH, activation="erf"), X, y, **options)


@given(DATA, targets(), st.sampled_from(("X", "y")), st.data())
def test_nan_and_inf_data_are_refused_naming_them(X, y, which, data):
    if which == "X":
        X = data.draw(corrupted(X))
    else:
        y = data.draw(corrupted(y[:, None]))[:, 0]
    with raises_naming(which):
        _train(X, y)


@pytest.mark.parametrize("kind", ["empty rows", "empty features", "1-D", "3-D", "scalar",
                                  "complex", "strings", "objects"])
def test_malformed_inputs_are_refused_naming_x(kind):
    with raises_naming("X"):
        _train(MALFORMED[kind], np.zeros(3))


MALFORMED_TARGETS = {
    "complex": np.ones(N, dtype=complex) * (1 + 1j),
    "strings": np.array(list("abcdefgh")),
    "objects": np.array([1.0] * (N - 1) + [None], dtype=object),
    "3-D": np.ones((N, 1, 1)),
    "too few": np.ones(N - 1),
    "too many": np.ones(N + 1),
    "empty": np.ones(0),
}


@pytest.mark.parametrize("kind", MALFORMED_TARGETS)
def test_malformed_targets_are_refused_naming_y(kind):
    with raises_naming("y"):
        _train(np.ones((N, D)), MALFORMED_TARGETS[kind])


@pytest.mark.parametrize(("name", "value"), [
    ("learning_rate", 0.0), ("learning_rate", -1.0), ("learning_rate", np.nan),
    ("learning_rate", np.inf), ("learning_rate", "0.1"),
    ("steps", 0), ("steps", -3), ("steps", 2.5), ("steps", True),
    ("record_every", 0), ("batch_size", 0), ("batch_size", N + 1), ("batch_size", 1.5),
    ("ntk_points", -1), ("loss", "hinge"), ("dtype", "float16"), ("seed", -1),
    ("seed", "zero"),
])
def test_bad_arguments_are_refused_naming_them(name, value):
    with raises_naming(name):
        _train(np.random.default_rng(0).normal(size=(N, D)), np.ones(N), **{name: value})


@given(DATA, st.lists(st.sampled_from((0.0, 0.5, 2.0, -1.0, 1.0)), min_size=N, max_size=N))
def test_logistic_loss_needs_labels_of_plus_or_minus_one(X, labels):
    y = np.array(labels)
    if np.all(np.abs(y) == 1):
        return
    with raises_naming("y"):
        _train(X, y, loss="logistic")


@given(DATA, targets(), st.sampled_from(("X_test", "y_test")))
def test_test_data_come_in_pairs(X, y, given_one):
    with raises_naming(("X_test", "y_test")):
        _train(X, y, **{given_one: X if given_one == "X_test" else y})


@given(DATA, targets(), st.sampled_from((0.0, -1.0, np.nan, np.inf)))
def test_network_output_scales_must_be_positive_and_finite(X, y, alpha):
    net = lazykit.mlp(1, width=8)
    with raises_naming("alpha"):
        lazykit.train(net, X, y, steps=2, learning_rate=0.01, alpha=alpha, **QUIET)
    with raises_naming("alpha"):
        lazykit.TwoLayer(WIDTH, alpha=alpha)

