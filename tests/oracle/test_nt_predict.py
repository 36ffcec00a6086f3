"""The estimators against neural-tangents' predict.gradient_descent_mse_ensemble, live, in the
pinned oracle environment (jax 0.5.3, neural-tangents 0.6.5). Skipped elsewhere.

neural-tangents runs in float64 here (inside lazykit's local x64 context); its
``diag_reg`` is given in absolute units (``diag_reg_absolute_scale=True``),
which is lazykit's ``ridge``; both use the MSE over all n k entries of y.
"""

import numpy as np
import pytest

nt = pytest.importorskip("neural_tangents")

import lazykit  # noqa: E402
from lazykit._dtypes import precision  # noqa: E402
from lazykit.interop.neural_tangents import NeuralTangentsKernel, to_neural_tangents  # noqa: E402

pytestmark = pytest.mark.oracle

NET = lazykit.mlp(2, 64, "erf", W_std=1.6, b_std=0.3)
CLASSES = {"ntk": lazykit.NTKRegressor, "nngp": lazykit.NNGPRegressor}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(20, 4))
    y = np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1)
    return x, y, rng.normal(size=(6, 4))


def _nt_predict(kernel_fn, x, y, xt, *, get, t, ridge, learning_rate):
    with precision("float64"):
        predict_fn = nt.predict.gradient_descent_mse_ensemble(
            kernel_fn, x, y, learning_rate=learning_rate, diag_reg=ridge,
            diag_reg_absolute_scale=True)
        mean, cov = predict_fn(t=t, x_test=xt, get=get, compute_cov=True)
    return np.asarray(mean), np.asarray(cov)


def _relative(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max()


@pytest.mark.parametrize("get", ["ntk", "nngp"])
@pytest.mark.parametrize("ridge", [0.0, 1e-2])
def test_mean_and_covariance_match_neural_tangents(data, get, ridge):
    x, y, xt = data
    _, _, kernel_fn = to_neural_tangents(NET)
    times = np.array([0.3, 3.0, 40.0])
    model = CLASSES[get](NET, ridge=ridge, learning_rate=0.5).fit(x, y)
    for t in [*times, None]:
        expected_mean, expected_cov = _nt_predict(kernel_fn, x, y, xt, get=get, t=t,
                                                  ridge=ridge, learning_rate=0.5)
        mean, cov = model.predict(xt, return_cov=True, t=np.inf if t is None else t)
        assert _relative(mean, expected_mean) < 1e-8, (get, ridge, t)
        assert _relative(cov[..., 0], expected_cov) < 1e-8, (get, ridge, t)
    curve = model.predict(xt, t=times)
    expected_curve, _ = _nt_predict(kernel_fn, x, y, xt, get=get, t=times, ridge=ridge,
                                    learning_rate=0.5)
    assert _relative(curve, expected_curve) < 1e-8


@pytest.mark.parametrize("get", ["ntk", "nngp"])
def test_an_nt_kernel_fn_is_accepted_directly_and_wrapped(data, get):
    """A neural-tangents kernel_fn (here a CNN-free stax net) as the estimator's network."""
    x, y, xt = data
    _, _, kernel_fn = nt.stax.serial(nt.stax.Dense(32, 1.4, 0.2), nt.stax.Relu(),
                                     nt.stax.Dense(32, 1.4, 0.2), nt.stax.Relu(),
                                     nt.stax.Dense(1, 1.4, 0.2))
    expected_mean, expected_cov = _nt_predict(kernel_fn, x, y, xt, get=get, t=2.0,
                                              ridge=1e-3, learning_rate=1.0)
    for network in (kernel_fn, NeuralTangentsKernel(kernel_fn)):
        model = CLASSES[get](network, ridge=1e-3, t=2.0).fit(x, y)
        mean, cov = model.predict(xt, return_cov=True)
        assert _relative(mean, expected_mean) < 1e-8
        assert _relative(cov[..., 0], expected_cov) < 1e-8
        _, std = model.predict(xt, return_std=True)
        np.testing.assert_allclose(std[:, 0], np.sqrt(np.diag(expected_cov)), rtol=1e-8)


def test_ridgeless_duplicates_give_no_nan_where_neural_tangents_does(data):
    """Duplicate training points make the NTK singular: neural-tangents' infinite-time
    prediction (a Cholesky solve) is NaN; lazykit warns and gives the minimum-norm solution."""
    x, y, xt = data
    xd, yd = np.concatenate([x, x[:3]]), np.concatenate([y, y[:3]])
    _, _, kernel_fn = to_neural_tangents(NET)
    nt_mean, _ = _nt_predict(kernel_fn, xd, yd, xt, get="ntk", t=None, ridge=0.0,
                             learning_rate=1.0)
    assert np.isnan(nt_mean).any()
    with pytest.warns(lazykit.IllConditionedKernelWarning):
        model = lazykit.NTKRegressor(NET).fit(xd, yd)
    mean, cov = model.predict(xt, return_cov=True)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))
    np.testing.assert_allclose(mean, lazykit.NTKRegressor(NET).fit(x, y).predict(xt),
                               rtol=1e-6, atol=1e-8)
