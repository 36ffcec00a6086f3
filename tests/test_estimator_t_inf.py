"""t=np.inf is infinite training time, the same as t=None, for every estimator and in grid searches.

NTKRegressor(t=np.inf) was rejected by the parameter validation although
predict(t=np.inf) is documented, so a GridSearchCV over t = [1, 100, inf]
scored the inf candidate NaN (its default error_score) without a word.
"""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils._param_validation import InvalidParameterError

import lazykit


@pytest.fixture
def data(rng):
    X = rng.normal(size=(60, 3))
    return X, np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]


def test_grid_search_over_times_scores_the_infinite_time_like_the_ridgeless_fit(data):
    X, y = data
    cv = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(lazykit.NTKRegressor(depth=2), {"t": [1, 100, np.inf]}, cv=cv,
                          error_score="raise").fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    ridgeless = cross_val_score(lazykit.NTKRegressor(depth=2, t=None), X, y, cv=cv)
    assert scores[2] == pytest.approx(ridgeless.mean(), rel=1e-10)
    assert scores[0] != pytest.approx(scores[2], rel=1e-3)  # t = 1 is a different model


@pytest.mark.parametrize("make", [lazykit.NTKRegressor, lazykit.NNGPRegressor])
@pytest.mark.parametrize("ridge", [0.0, 1e-2])
def test_infinite_time_equals_none(data, make, ridge):
    X, y = data
    at_inf = make(t=np.inf, ridge=ridge).fit(X, y)
    at_none = make(t=None, ridge=ridge).fit(X, y)
    np.testing.assert_allclose(at_inf.dual_coef_, at_none.dual_coef_, rtol=1e-12)
    np.testing.assert_allclose(at_inf.predict(X[:7]), at_none.predict(X[:7]), rtol=1e-12)
    assert at_inf.solver_ == at_none.solver_ == "cholesky"  # the infinite-time solver
    if ridge == 0 and make is lazykit.NTKRegressor:
        np.testing.assert_allclose(at_inf.predict(X), y, atol=1e-8)  # interpolates


@pytest.mark.parametrize("solver", ["eigh", "cg", "nystrom"])
def test_infinite_time_with_other_solvers(data, solver):
    X, y = data
    options = {"n_centers": 60} if solver == "nystrom" else {}
    at_inf = lazykit.NTKRegressor(t=np.inf, ridge=1e-2, solver=solver, **options).fit(X, y)
    at_none = lazykit.NTKRegressor(ridge=1e-2, solver=solver, **options).fit(X, y)
    np.testing.assert_allclose(at_inf.predict(X[:7]), at_none.predict(X[:7]), rtol=1e-10)


def test_classifier_accepts_infinite_time(rng):
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    at_inf = lazykit.NTKClassifier(t=np.inf).fit(X, y)
    np.testing.assert_allclose(at_inf.decision_function(X[:5]),
                               lazykit.NTKClassifier().fit(X, y).decision_function(X[:5]),
                               rtol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, -1.0, -np.inf])
def test_other_non_finite_times_are_still_refused(data, bad):
    X, y = data
    with pytest.raises(InvalidParameterError, match=r"The 't' parameter of NTKRegressor must be "
                                                    r"None or a float in the range \[0\.0, inf\]"):
        lazykit.NTKRegressor(t=bad).fit(X, y)
