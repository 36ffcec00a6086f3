"""Properties of the scikit-learn estimators and of NeuralKernel.

References: scikit-learn's KernelRidge(kernel="precomputed") on the same Gram
matrix, the gradient-flow formula through a NumPy eigendecomposition, the GP
posterior in NumPy, and central finite differences for NeuralKernel's gradient.
Tolerances scale with the conditioning of the system that is solved.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.kernel_ridge import KernelRidge

import lazykit
from tests.property._support import (
    DOCUMENTED,
    MALFORMED,
    assert_close_scaled,
    corrupted,
    examples,
    matrices,
    mentions,
    raises_naming,
)

N_TRAIN, N_TEST, D = 5, 3, 3
SHORTHANDS = [dict(depth=1), dict(depth=2, activation="erf", W_std=1.5, b_std=None)]
TRAIN = matrices(rows=(N_TRAIN,), features=(D,), scales=(0.1, 1.0, 3.0))
TEST = matrices(rows=(N_TEST,), features=(D,), scales=(0.1, 1.0, 3.0))
# Targets of any magnitude: the solution is linear in y.
TARGET_SCALES = (1e-100, 1.0, 1e100)


@st.composite
def targets(draw, n=N_TRAIN, outputs=(None, 2)):
    k = draw(st.sampled_from(outputs))
    shape = (n,) if k is None else (n, k)
    y = draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3)))
    return y * draw(st.sampled_from(TARGET_SCALES))


def _network(shorthand):
    return lazykit.mlp(shorthand.get("depth", 1), 512, shorthand.get("activation", "relu"),
                       W_std=shorthand.get("W_std", 2.0**0.5), b_std=shorthand.get("b_std", 0.1))


def _solution_tolerance(gram, ridge, k_test, y):
    """Forward error bound of a backward-stable solve: eps-ish * cond(A) * |K*| |y| / lambda_min."""
    eigenvalues = np.linalg.eigvalsh(gram + ridge * np.eye(gram.shape[0]))
    smallest = max(eigenvalues[0], 1e-300)
    return 1e-12 * (eigenvalues[-1] / smallest) * np.linalg.norm(k_test, 2) * \
        np.max(np.abs(y)) / smallest * np.sqrt(gram.shape[0]) + 1e-300


@settings(max_examples=examples(1.0))
@given(TRAIN, TEST, targets(), st.sampled_from((1e-3, 0.1, 10.0)),
       st.sampled_from(SHORTHANDS), st.sampled_from(("NTKRegressor", "NNGPRegressor")))
def test_ridge_regression_equals_kernel_ridge_on_the_same_gram(X, Xt, y, ridge, shorthand,
                                                               name):
    kind = "ntk" if name == "NTKRegressor" else "nngp"
    net = _network(shorthand)
    gram, cross = getattr(net.kernel(X), kind), getattr(net.kernel(Xt, X), kind)
    expected = KernelRidge(alpha=ridge, kernel="precomputed").fit(gram, y).predict(cross)
    tol = _solution_tolerance(gram, ridge, cross, y)
    model = getattr(lazykit, name)(ridge=ridge, **shorthand).fit(X, y)
    assert_close_scaled(model.predict(Xt), expected, np.ones_like(expected), tol, name)
    precomputed = getattr(lazykit, name)("precomputed", ridge=ridge).fit(gram, y)
    assert_close_scaled(precomputed.predict(cross), expected, np.ones_like(expected), tol,
                        f"{name} precomputed")


def _flow_reference(gram, cross, y, ridge, s):
    """Theta(x, X) A^{-1} (I - exp(-s A)) y through A's eigendecomposition (expm1, no inverse)."""
    lam, vectors = np.linalg.eigh(gram + ridge * np.eye(gram.shape[0]))
    lam = np.maximum(lam, 0.0)
    if np.isinf(s):
        factor = np.where(lam > 0, 1.0 / np.where(lam > 0, lam, 1.0), 0.0)
    else:
        factor = np.where(lam > 0, -np.expm1(-s * lam) / np.where(lam > 0, lam, 1.0), s)
    return cross @ (vectors * factor) @ vectors.T @ y, factor


@settings(max_examples=examples(1.0))
@given(TRAIN, TEST, targets(), st.sampled_from((0.0, 0.1)),
       st.sampled_from((0.0, 0.5, 10.0, 1e6, np.inf)), st.sampled_from((0.5, 2.0)))
def test_finite_time_predictions_follow_the_gradient_flow_formula(X, Xt, y, ridge, t,
                                                                  learning_rate):
    net = _network(SHORTHANDS[0])
    gram, cross = net.kernel(X).ntk, net.kernel(Xt, X).ntk
    entries = y.size
    s = learning_rate * t / entries
    if np.isinf(t) and ridge == 0 and np.linalg.eigvalsh(gram)[0] < 1e-8 * np.trace(gram):
        return  # ridgeless infinite time needs a well-conditioned kernel (tested elsewhere)
    expected, factor = _flow_reference(gram, cross, y, ridge, s)
    model = lazykit.NTKRegressor(ridge=ridge, t=t, learning_rate=learning_rate).fit(X, y)
    tol = 1e-10 * np.linalg.norm(cross, 2) * np.max(factor) * np.max(np.abs(y)) * \
        max(1.0, np.max(factor) * np.max(np.linalg.eigvalsh(gram))) + 1e-300
    assert_close_scaled(model.predict(Xt), expected, np.ones_like(expected), tol, "fit time")
    later = lazykit.NTKRegressor(ridge=ridge, learning_rate=learning_rate, t=1.0).fit(X, y)
    assert_close_scaled(later.predict(Xt, t=t), expected, np.ones_like(expected), tol,
                        "predict(t=...)")
    if t == 0:
        assert np.all(model.predict(Xt) == 0)


@settings(max_examples=examples(0.5))
@given(TRAIN, TEST, targets(outputs=(None,)), st.sampled_from((None, np.inf)))
def test_infinite_time_is_the_same_as_no_time(X, Xt, y, t):
    ridge = 0.1
    base = lazykit.NTKRegressor(ridge=ridge).fit(X, y).predict(Xt)
    model = lazykit.NTKRegressor(ridge=ridge, t=t).fit(X, y)
    np.testing.assert_allclose(model.predict(Xt), base, rtol=1e-12, atol=0)
    np.testing.assert_allclose(model.predict(Xt, t=np.inf), base, rtol=1e-12, atol=0)
    curve = model.predict(Xt, t=np.array([0.0, 1.0, np.inf]))
    assert curve.shape == (3, N_TEST)
    np.testing.assert_allclose(curve[2], base, rtol=1e-12, atol=0)


@settings(max_examples=examples(0.75))
@given(TRAIN, TEST, targets(outputs=(None,)), st.sampled_from((1e-3, 1.0)))
def test_nngp_posterior_is_the_gaussian_process_posterior(X, Xt, y, noise):
    net = _network(SHORTHANDS[0])
    gram, cross, prior = (net.kernel(X).nngp, net.kernel(Xt, X).nngp, net.kernel(Xt).nngp)
    system = gram + noise * np.eye(N_TRAIN)
    mean = cross @ np.linalg.solve(system, y)
    cov = prior - cross @ np.linalg.solve(system, cross.T)
    model = lazykit.NNGPRegressor(ridge=noise).fit(X, y)
    got_mean, got_cov = model.predict(Xt, return_cov=True)
    _, got_std = model.predict(Xt, return_std=True)
    tol = _solution_tolerance(gram, noise, cross, np.concatenate([y, cross.ravel()])) + \
        1e-12 * np.max(np.abs(prior))
    assert_close_scaled(got_mean, mean, np.ones_like(mean), tol, "mean")
    assert_close_scaled(got_cov, cov, np.ones_like(cov), tol, "covariance")
    assert np.all(got_std >= 0)
    assert np.all(got_std**2 <= np.diag(prior) * (1 + 1e-12) + tol)
    assert_close_scaled(got_std**2, np.diag(got_cov).clip(0), np.ones(N_TEST), tol, "std")


LABELS = st.sampled_from([(0, 1), ("cat", "dog", "eel"), (-1, 2)])


@settings(max_examples=examples(0.75))
@given(TRAIN, TEST, LABELS, st.data(), st.sampled_from(("NTKClassifier", "NNGPClassifier")))
def test_classifiers_are_regressions_of_centred_one_hot_labels(X, Xt, classes, data, name):
    y = np.array(data.draw(st.lists(st.sampled_from(classes), min_size=N_TRAIN,
                                    max_size=N_TRAIN).filter(lambda v: len(set(v)) >= 2)),
                 dtype=object if isinstance(classes[0], str) else None)
    if y.dtype == object:
        y = y.astype(str)
    ridge = 0.1
    kind = "ntk" if name == "NTKClassifier" else "nngp"
    net = _network(SHORTHANDS[0])
    gram, cross = getattr(net.kernel(X), kind), getattr(net.kernel(Xt, X), kind)
    found = np.unique(y)
    one_hot = (y[:, None] == found[None, :]) - 1.0 / len(found)
    outputs = KernelRidge(alpha=ridge, kernel="precomputed").fit(gram, one_hot).predict(cross)
    model = getattr(lazykit, name)(ridge=ridge).fit(X, y)
    assert list(model.classes_) == list(found)
    tol = _solution_tolerance(gram, ridge, cross, one_hot)
    decision = model.decision_function(Xt)
    expected = outputs[:, 1] - outputs[:, 0] if len(found) == 2 else outputs
    assert_close_scaled(decision, expected, np.ones_like(expected), tol, "decision_function")
    proba = model.predict_proba(Xt)
    assert proba.shape == (N_TEST, len(found))
    assert np.all(proba >= 0) and np.all(proba <= 1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    top = np.sort(outputs, axis=1)
    clear = top[:, -1] - top[:, -2] > 10 * tol
    assert np.all(model.predict(Xt)[clear] == found[np.argmax(outputs, axis=1)][clear])


@given(TRAIN, st.sampled_from(("NTKClassifier", "NNGPClassifier")), st.sampled_from((0, "a")))
def test_classifiers_refuse_a_single_class(X, name, label):
    y = np.full(N_TRAIN, label)
    with raises_naming(("y", "class", "classes")):
        getattr(lazykit, name)().fit(X, y)


ESTIMATORS = ("NTKRegressor", "NNGPRegressor", "NTKClassifier", "NNGPClassifier")
BAD_HYPERPARAMETERS = st.sampled_from([
    ("ridge", -1.0), ("ridge", np.nan), ("ridge", np.inf), ("ridge", "0.1"),
    ("t", -1.0), ("t", np.nan), ("t", "long"), ("depth", 0), ("depth", 1.5),
    ("W_std", -0.5), ("W_std", np.nan), ("b_std", -1.0), ("learning_rate", 0.0),
    ("learning_rate", -1.0), ("solver", "nope"), ("tol", 0.0), ("tol", 2.0),
    ("max_iter", 0), ("n_centers", 0), ("centers", "nope"), ("parameterization", "nope"),
    ("activation", "nope"), ("activation", 3), ("tile_size", 0),
])


@given(st.sampled_from(ESTIMATORS), BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_are_refused_in_fit_naming_them(name, case):
    parameter, value = case
    model = getattr(lazykit, name)(**{parameter: value})  # __init__ only stores them
    y = np.array([0, 1, 0, 1, 1])
    with raises_naming(parameter):
        model.fit(np.eye(N_TRAIN, D), y)


@given(st.sampled_from(ESTIMATORS), TRAIN, st.data())
def test_nan_and_inf_inputs_are_refused_naming_x(name, X, data):
    bad = data.draw(corrupted(X))
    with raises_naming("X"):
        getattr(lazykit, name)().fit(bad, np.array([0, 1, 0, 1, 1]))
    model = getattr(lazykit, name)(ridge=0.1).fit(X, np.array([0, 1, 0, 1, 1]))
    with raises_naming("X"):
        model.predict(bad)


@given(st.sampled_from(("NTKRegressor", "NNGPRegressor")), TRAIN, targets(), st.data())
def test_nan_and_inf_targets_are_refused_naming_y(name, X, y, data):
    bad = data.draw(corrupted(y.reshape(N_TRAIN, -1))).reshape(y.shape)
    with raises_naming("y"):
        getattr(lazykit, name)().fit(X, bad)


def _unnamed_refusals(fit, inputs, name):
    """The kinds of malformed input that ``fit`` accepts, or refuses without naming ``name``."""
    failures = {}
    for kind, bad in inputs.items():
        try:
            fit(bad)
        except DOCUMENTED as err:
            if not mentions(str(err), name):
                failures[kind] = f"{type(err).__name__}: {str(err)[:90]!r}"
        else:
            failures[kind] = "accepted"
    return failures


@pytest.mark.parametrize("name", ["NTKRegressor", "NTKClassifier"])
def test_malformed_inputs_are_refused_naming_x(name):
    def fit(x):
        n = x.shape[0] if x.ndim >= 1 else 1
        getattr(lazykit, name)().fit(x, np.arange(n) % 2)

    failures = _unnamed_refusals(fit, MALFORMED, "X")
    assert not failures, failures


MALFORMED_TARGETS = {
    "3-D": np.ones((N_TRAIN, 2, 2)),
    "complex": np.ones(N_TRAIN, dtype=complex),
    "strings": np.array(["a", "b", "c", "d", "e"]),
    "too few": np.ones(N_TRAIN - 1),
    "too many": np.ones(N_TRAIN + 1),
    "empty": np.ones(0),
}


def test_malformed_targets_are_refused_naming_y():
    def fit(y):
        lazykit.NTKRegressor().fit(np.eye(N_TRAIN, D), y)

    failures = _unnamed_refusals(fit, MALFORMED_TARGETS, "y")
    assert not failures, failures


@given(st.sampled_from(ESTIMATORS), TRAIN, matrices(rows=(2,), features=(1, 4)))
def test_predicting_with_other_features_is_refused_naming_x(name, X, Xt):
    model = getattr(lazykit, name)(ridge=0.1).fit(X, np.array([0, 1, 0, 1, 1]))
    with raises_naming("X"):
        model.predict(Xt)


# NeuralKernel ---------------------------------------------------------------------------------

KERNEL_SETTINGS = [(dict(depth=1), "ntk"),
                   (dict(depth=2, activation="erf", W_std=1.5, b_std=0.2), "nngp")]


@settings(max_examples=examples(0.5))
@given(matrices(rows=(4,), features=(D,), scales=(0.1, 1.0, 3.0)),
       st.sampled_from(KERNEL_SETTINGS))
def test_neural_kernel_equals_the_network_kernel_and_its_gradient_differences(X, setting):
    params, kind = setting
    kernel = lazykit.NeuralKernel(kind=kind, **params)
    net = _network(params)
    expected = getattr(net.kernel(X), kind)
    scale = np.sqrt(np.abs(np.diag(expected)))
    scale = np.outer(scale, scale)
    value, gradient = kernel(X, eval_gradient=True)
    assert_close_scaled(value, expected, scale, 1e-12, "K")
    assert_close_scaled(kernel(X), expected, scale, 1e-12, "K without gradient")
    assert_close_scaled(kernel.diag(X), np.diag(expected), np.diag(scale), 1e-12, "diag")
    assert gradient.shape == (4, 4, 2)
    step = 1e-5
    for index, theta in enumerate(kernel.theta):
        moved = [kernel.clone_with_theta(np.where(np.arange(2) == index, kernel.theta + h,
                                                  kernel.theta))(X) for h in (step, -step)]
        difference = (moved[0] - moved[1]) / (2 * step)
        assert_close_scaled(gradient[:, :, index], difference, scale, 1e-7,
                            f"dK/dtheta[{index}] (theta={theta})")


@given(st.sampled_from([("depth", 0), ("depth", -2), ("depth", 1.5), ("parameterization", "nope"),
                        ("W_std", -1.0), ("W_std", np.nan), ("W_std", 0.0), ("b_std", -0.5),
                        ("b_std", np.inf), ("kind", "nope"), ("activation", "nope")]),
       st.sampled_from(("call", "diag", "gradient")))
def test_neural_kernel_refuses_bad_parameters_naming_them(case, use):
    parameter, value = case
    X = np.eye(3)
    with raises_naming(parameter):
        kernel = lazykit.NeuralKernel(**{parameter: value})
        if use == "call":
            kernel(X)
        elif use == "diag":
            kernel.diag(X)
        else:
            kernel(X, eval_gradient=True)


@given(st.sampled_from(("X", "Y")), matrices(rows=(3,), features=(D,)), st.data())
def test_neural_kernel_refuses_nan_inputs_naming_them(which, X, data):
    bad = data.draw(corrupted(X))
    kernel = lazykit.NeuralKernel()
    with raises_naming(which):
        kernel(bad) if which == "X" else kernel(X, bad)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimators_store_their_arguments_untouched(name):
    """scikit-learn's contract, which the checks above rely on: __init__ validates nothing."""
    model = getattr(lazykit, name)(ridge=-1.0, depth=0)
    assert model.get_params()["ridge"] == -1.0 and model.get_params()["depth"] == 0
