"""NTKClassifier / NNGPClassifier: centered one-hot regression, decisions and probabilities."""

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_classification
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import cross_val_score

import lazykit
from lazykit.estimators.classification import project_to_simplex


@pytest.fixture(scope="module")
def iris():
    x, y = load_iris(return_X_y=True)
    return (x - x.mean(0)) / x.std(0), y


@pytest.mark.parametrize("cls, kind", [(lazykit.NTKClassifier, "ntk"),
                                       (lazykit.NNGPClassifier, "nngp")])
def test_decision_function_is_centered_one_hot_regression(iris, cls, kind):
    x, y = iris
    net = lazykit.mlp(2, W_std=1.5, b_std=0.1)
    targets = np.eye(3)[y] - 1.0 / 3.0
    gram = getattr(net.kernel(x), kind)
    expected = KernelRidge(alpha=1e-2, kernel="precomputed").fit(gram, targets).predict(gram)
    clf = cls(net, ridge=1e-2).fit(x, y)
    decision = clf.decision_function(x)
    np.testing.assert_allclose(decision, expected, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(clf.predict(x), np.argmax(expected, axis=1))
    assert clf.score(x, y) > 0.95


def test_probabilities_are_projected_least_squares_estimates(iris):
    x, y = iris
    clf = lazykit.NTKClassifier(ridge=1e-1).fit(x, y)
    proba = clf.predict_proba(x)
    decision = clf.decision_function(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba.min() >= 0.0 and proba.max() <= 1.0
    np.testing.assert_array_equal(np.argmax(proba, axis=1), clf.predict(x))
    inside = np.all((decision + 1 / 3 > 0) & (decision + 1 / 3 < 1), axis=1)
    assert inside.any()  # where the estimate is a probability vector it is returned as is
    np.testing.assert_allclose(proba[inside], decision[inside] + 1 / 3, atol=1e-12)
    # Ridgeless training points are interpolated: their probabilities are one-hot.
    interpolating = lazykit.NTKClassifier().fit(x[::3], y[::3])
    np.testing.assert_allclose(interpolating.predict_proba(x[::3]), np.eye(3)[y[::3]],
                               atol=1e-8)


def test_binary_decision_is_p1_minus_p0_and_labels_keep_their_type():
    x, y = make_classification(60, 5, random_state=0)
    labels = np.array(["no", "yes"])[y]
    clf = lazykit.NNGPClassifier(ridge=1e-2, t=20.0).fit(x, labels)
    assert list(clf.classes_) == ["no", "yes"]
    decision, proba = clf.decision_function(x), clf.predict_proba(x)
    assert decision.shape == (60,) and proba.shape == (60, 2)
    np.testing.assert_allclose(proba[:, 1] - proba[:, 0], np.clip(decision, -1, 1), atol=1e-12)
    assert set(clf.predict(x)) <= {"no", "yes"}
    curve = clf.predict_proba(x[:4], t=[1.0, 10.0, np.inf])
    assert curve.shape == (3, 4, 2)
    np.testing.assert_array_equal(clf.predict(x[:4], t=10.0),
                                  clf.classes_[np.argmax(curve[1], axis=1)])


def test_one_class_and_regression_targets_are_rejected(iris):
    x, _ = iris
    with pytest.raises(ValueError, match="at least 2 classes; got 1 class"):
        lazykit.NTKClassifier().fit(x, np.zeros(len(x)))
    with pytest.raises(ValueError, match="Unknown label type"):
        lazykit.NTKClassifier().fit(x, np.linspace(0, 1, len(x)))


def test_cross_validation_accuracy(iris):
    x, y = iris
    scores = cross_val_score(lazykit.NTKClassifier(depth=3, ridge=1e-2), x, y, cv=3)
    assert scores.mean() > 0.9


def test_project_to_simplex_properties(rng):
    v = rng.normal(size=(50, 4)) * 2
    p = project_to_simplex(v)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p.min() >= 0
    np.testing.assert_array_equal(np.argmax(p, axis=1), np.argmax(v, axis=1))
    q = rng.dirichlet(np.ones(4), size=10)
    np.testing.assert_allclose(project_to_simplex(q), q, atol=1e-15)
