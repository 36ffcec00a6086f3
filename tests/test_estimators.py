"""NTKRegressor / NNGPRegressor vs scikit-learn's kernel models, the flow formula; bad input."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.linalg
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import lazykit

NET = lazykit.mlp(2, activation="relu", W_std=1.4, b_std=0.2)


@pytest.fixture
def data(rng):
    x = rng.normal(size=(30, 4))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2]
    return x, y, rng.normal(size=(7, 4))


@pytest.mark.parametrize("cls, kind", [(lazykit.NTKRegressor, "ntk"),
                                       (lazykit.NNGPRegressor, "nngp")])
@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_matches_kernel_ridge_on_the_same_gram(data, cls, kind, ridge):
    x, y, xt = data
    gram, cross = getattr(NET.kernel(x), kind), getattr(NET.kernel(xt, x), kind)
    expected = KernelRidge(alpha=ridge, kernel="precomputed").fit(gram, y).predict(cross)
    model = cls(NET, ridge=ridge).fit(x, y)
    np.testing.assert_allclose(model.predict(xt), expected, rtol=1e-7, atol=1e-9)
    pre = cls("precomputed", ridge=ridge).fit(gram, y)
    np.testing.assert_allclose(pre.predict(cross), expected, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(model.dual_coef_, pre.dual_coef_, rtol=1e-9)


@pytest.mark.parametrize("ridge", [1e-6, 0.05])
def test_nngp_posterior_matches_gaussian_process_regressor(data, ridge):
    x, y, xt = data
    kernel = lazykit.NeuralKernel(depth=2, W_std=1.4, b_std=0.2, kind="nngp",
                                  W_std_bounds="fixed", b_std_bounds="fixed")
    gp = GaussianProcessRegressor(kernel, alpha=ridge, optimizer=None).fit(x, y)
    model = lazykit.NNGPRegressor(NET, ridge=ridge).fit(x, y)
    mean, cov = model.predict(xt, return_cov=True)
    gp_mean, gp_cov = gp.predict(xt, return_cov=True)
    np.testing.assert_allclose(mean, gp_mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(cov, gp_cov, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.predict(xt, return_std=True)[1], np.sqrt(np.diag(cov)),
                               rtol=1e-9)


@pytest.mark.parametrize("cls, kind", [(lazykit.NTKRegressor, "ntk"),
                                       (lazykit.NNGPRegressor, "nngp")])
def test_finite_time_mean_is_the_gradient_flow_formula(data, cls, kind):
    x, y, xt = data
    eta, t, ridge = 0.7, 3.0, 0.01
    gram, cross = getattr(NET.kernel(x), kind), getattr(NET.kernel(xt, x), kind)
    a = gram + ridge * np.eye(30)
    s = eta * t / y.size
    expected = cross @ np.linalg.solve(a, (np.eye(30) - scipy.linalg.expm(-s * a)) @ y)
    model = cls(NET, ridge=ridge, t=t, learning_rate=eta).fit(x, y)
    assert model.solver_ == "eigh"
    np.testing.assert_allclose(model.predict(xt), expected, rtol=1e-8, atol=1e-10)


def test_times_reuse_one_fit_and_have_the_right_limits(data):
    x, y, xt = data
    model = lazykit.NTKRegressor(NET).fit(x, y)
    assert model.solver_ == "cholesky"
    times = np.array([0.0, 0.5, 5.0, 1e9, np.inf])
    curve = model.predict(xt, t=times)
    assert curve.shape == (5, 7)
    for i, t in enumerate(times):
        np.testing.assert_allclose(model.predict(xt, t=t), curve[i], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(curve[0], 0.0)  # the ensemble mean at initialization
    np.testing.assert_allclose(curve[3], model.predict(xt), rtol=1e-6)
    mean, std = model.predict(xt, return_std=True, t=times)
    assert mean.shape == std.shape == (5, 7)
    np.testing.assert_allclose(std[0], np.sqrt(NET.kernel(xt, diagonal=True).nngp), rtol=1e-10)


def test_ridgeless_interpolates_and_training_points_have_no_spread(data):
    x, y, _ = data
    for cls in (lazykit.NTKRegressor, lazykit.NNGPRegressor):
        mean, std = cls(NET).fit(x, y).predict(x, return_std=True)
        np.testing.assert_allclose(mean, y, atol=1e-8)
        np.testing.assert_allclose(std, 0.0, atol=1e-5)


def test_duplicates_and_degenerate_kernels_warn_and_stay_finite(data):
    x, y, xt = data
    xd = np.concatenate([x, x[:5]])
    yd = np.concatenate([y, y[:5]])
    with pytest.warns(lazykit.IllConditionedKernelWarning, match="NTKRegressor: the NTK"):
        model = lazykit.NTKRegressor(NET).fit(xd, yd)
    assert model.solver_ == "eigh"
    reference = lazykit.NTKRegressor(NET).fit(x, y)
    np.testing.assert_allclose(model.predict(xt), reference.predict(xt), rtol=1e-6, atol=1e-8)
    # A deep erf network in its ordered phase: the NTK is nearly a constant matrix.
    ordered = lazykit.mlp(30, activation="erf", W_std=0.5, b_std=0.5)
    with pytest.warns(lazykit.IllConditionedKernelWarning, match="ill-conditioned"):
        deep = lazykit.NNGPRegressor(ordered).fit(x, y)
    mean, cov = deep.predict(xt, return_cov=True)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))


def test_multi_output_equals_separate_fits_up_to_the_time_scale(data):
    x, y, xt = data
    y2 = np.stack([y, np.cos(x[:, 3])], axis=1)
    joint = lazykit.NTKRegressor(NET, ridge=1e-3).fit(x, y2)
    pred, std = joint.predict(xt, return_std=True)
    assert pred.shape == std.shape == (7, 2) and joint.dual_coef_.shape == (30, 2)
    for j in range(2):
        single = lazykit.NTKRegressor(NET, ridge=1e-3).fit(x, y2[:, j])
        np.testing.assert_allclose(pred[:, j], single.predict(xt), rtol=1e-9)
        # MSE over n k entries: k outputs train k times slower than one.
        np.testing.assert_allclose(joint.predict(xt, t=4.0)[:, j], single.predict(xt, t=2.0),
                                   rtol=1e-9)
    _, cov = joint.predict(xt, return_cov=True)
    assert cov.shape == (7, 7, 2)
    column = lazykit.NTKRegressor(NET, ridge=1e-3).fit(x, y2[:, :1]).predict(xt)
    assert column.shape == (7, 1)


def test_sources_network_kernel_source_and_callable_agree(data):
    x, y, xt = data
    expected = lazykit.NTKRegressor(NET).fit(x, y).predict(xt)

    class ThinSource:  # any object with a kernel(...) method
        def kernel(self, x1, x2=None, *, diagonal=False, dtype=None):
            return NET.kernel(x1, x2, diagonal=diagonal, dtype=dtype)

    np.testing.assert_allclose(lazykit.NTKRegressor(ThinSource()).fit(x, y).predict(xt),
                               expected, rtol=1e-12)
    shorthand = lazykit.NTKRegressor(depth=2, W_std=1.4, b_std=0.2).fit(x, y)
    np.testing.assert_allclose(shorthand.predict(xt), expected, rtol=1e-12)


def test_solver_choice(data):
    x, y, xt = data
    by_cholesky = lazykit.NTKRegressor(NET, solver="cholesky", t=2.0).fit(x, y)
    by_eigh = lazykit.NTKRegressor(NET, solver="eigh").fit(x, y)
    assert (by_cholesky.solver_, by_eigh.solver_) == ("cholesky", "eigh")
    np.testing.assert_allclose(by_cholesky.predict(xt, t=np.inf), by_eigh.predict(xt),
                               rtol=1e-6)
    np.testing.assert_allclose(by_cholesky.predict(xt), by_eigh.predict(xt, t=2.0), rtol=1e-9)


def test_standard_parameterization_and_float32_input(data):
    x, y, xt = data
    model = lazykit.NTKRegressor(parameterization="standard", ridge=1e-3)
    pred = model.fit(x.astype(np.float32), y).predict(xt)
    assert pred.dtype == np.float64 and np.all(np.isfinite(pred))


def test_clone_pickle_pipeline_grid_search_and_cross_validation(data):
    x, y, xt = data
    model = lazykit.NTKRegressor(depth=2, ridge=1e-2).fit(x, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(xt), model.predict(xt))
    np.testing.assert_array_equal(restored.predict(xt, t=[1.0, 2.0]),
                                  model.predict(xt, t=[1.0, 2.0]))
    pre = lazykit.NNGPRegressor("precomputed", ridge=1e-2).fit(NET.kernel(x).nngp, y)
    cross = NET.kernel(xt, x).nngp
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(pre)).predict(cross),
                                  pre.predict(cross))
    fresh = clone(model)
    assert fresh.get_params() == model.get_params() and not hasattr(fresh, "dual_coef_")
    pipe = make_pipeline(StandardScaler(), lazykit.NNGPRegressor(ridge=1e-3)).fit(x, y)
    assert pipe.predict(xt).shape == (7,)
    search = GridSearchCV(lazykit.NTKRegressor(), {"depth": [1, 3], "ridge": [1e-3, 1.0]},
                          cv=3).fit(x, y)
    assert search.best_params_["depth"] in (1, 3) and search.best_params_["ridge"] in (1e-3, 1.0)
    scores = cross_val_score(lazykit.NTKRegressor(ridge=1e-2), x, y,
                             cv=KFold(3, shuffle=True, random_state=0))
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_bad_input_raises_scikit_learn_errors(data):
    x, y, xt = data
    model = lazykit.NTKRegressor()
    with pytest.raises(NotFittedError):
        model.predict(xt)
    bad_x = x.copy()
    bad_x[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.fit(bad_x, y)
    bad_y = y.copy()
    bad_y[0] = np.inf
    with pytest.raises(ValueError, match="Input y contains infinity"):
        model.fit(x, bad_y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        model.fit(x, y[:-1])
    model.fit(x, y)
    with pytest.raises(ValueError, match="X has 3 features, but NTKRegressor is expecting 4"):
        model.predict(xt[:, :3])
    with pytest.raises(ValueError, match="'ridge' parameter of NTKRegressor must be"):
        lazykit.NTKRegressor(ridge=-1.0).fit(x, y)
    with pytest.raises(ValueError, match="'t' parameter of NTKRegressor must be"):
        lazykit.NTKRegressor(t=-1.0).fit(x, y)
    with pytest.raises(ValueError, match=r"t must be None .* >= 0"):
        model.predict(xt, t=-2.0)
    with pytest.raises(ValueError, match="At most one of return_std or return_cov"):
        model.predict(xt, return_std=True, return_cov=True)
    with pytest.raises(TypeError, match="network must be None"):
        lazykit.NTKRegressor(network=3).fit(x, y)
    with pytest.raises(ValueError, match="depth describe the network only when network=None"):
        lazykit.NTKRegressor(NET, depth=3).fit(x, y)
    with pytest.raises(ValueError, match="square Gram matrix"):
        lazykit.NTKRegressor("precomputed").fit(x, y)
    pre = lazykit.NTKRegressor("precomputed").fit(NET.kernel(x).ntk, y)
    with pytest.raises(ValueError, match="cannot return a standard deviation"):
        pre.predict(NET.kernel(xt, x).ntk, return_std=True)


def test_warning_free_on_well_posed_problems(data):
    x, y, xt = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lazykit.NTKRegressor(NET, ridge=1e-3, t=5.0).fit(x, y).predict(xt, return_cov=True)
