"""Matrix-free kernel products, CG and the Nystrom (Falkon) solver against the dense ones."""

import warnings

import numpy as np
import pytest

import lazykit
from lazykit.estimators._sources import PaddedNetworkKernel
from lazykit.kernels.operator import KernelOperator
from lazykit.solvers.cg import ConjugateGradientSolver, NotConvergedWarning, conjugate_gradient
from lazykit.solvers.nystrom import NystromSolver, nystrom_preconditioner

F64 = np.dtype(np.float64)


def _manifold_data(seed, n, n_test=500, d=20, latent=2, noise=0.1):
    """Inputs near a 2-dimensional manifold in R^20 and a smooth noisy target."""
    rng = np.random.default_rng(seed)
    x = np.tanh(rng.normal(size=(n + n_test, latent)) @ rng.normal(size=(latent, d)))
    u = x @ (rng.normal(size=d) / np.sqrt(d))
    y = np.sin(2 * u) + 0.5 * u**2 + noise * rng.normal(size=n + n_test)
    return x[:n], y[:n], x[n:], y[n:]


@pytest.mark.parametrize("source", ["network", "host"])
def test_operator_products_match_dense_kernels(rng, source):
    net = lazykit.mlp(2, activation="erf", W_std=1.3)
    x, x_new = rng.normal(size=(45, 4)), rng.normal(size=(19, 4))
    v = rng.normal(size=(45, 3))
    src = net if source == "network" else PaddedNetworkKernel(net)
    for kind in ("ntk", "nngp"):
        op = KernelOperator(src, x, kind, F64, tile_size=16)  # 3 tiles, the last one padded
        np.testing.assert_allclose(op.matvec(v), getattr(net.kernel(x), kind) @ v,
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(op.cross_matvec(x_new, v),
                                   getattr(net.kernel(x_new, x), kind) @ v, rtol=1e-12, atol=1e-12)


def test_conjugate_gradient_solves_and_warns_when_stopped_early(rng):
    a = rng.normal(size=(30, 30))
    s = a @ a.T + 1e-2 * np.eye(30)
    b = rng.normal(size=(30, 2))
    result = conjugate_gradient(lambda x: s @ x, b, tol=1e-10, max_iter=500)
    np.testing.assert_allclose(result.solution, np.linalg.solve(s, b), rtol=1e-6, atol=1e-8)
    assert result.relative_residual <= 1e-10
    with pytest.warns(NotConvergedWarning, match="stopped after 3 iterations"):
        early = conjugate_gradient(lambda x: s @ x, b, tol=1e-10, max_iter=3)
    assert early.iterations == 3 and early.relative_residual > 1e-10


def test_conjugate_gradient_stops_on_a_singular_direction():
    s = np.diag([1.0, 0.0])  # b has a component in the null space: no exact solution
    with pytest.warns(NotConvergedWarning):
        result = conjugate_gradient(lambda x: s @ x, np.ones((2, 1)), tol=1e-8, max_iter=50)
    assert np.all(np.isfinite(result.solution)) and result.iterations < 50


def test_cg_solver_is_exact_kernel_ridge_regression(rng):
    net = lazykit.mlp(2)
    x, y = rng.normal(size=(80, 5)), rng.normal(size=(80, 2))
    op = KernelOperator(net, x, "ntk", F64, tile_size=32)
    solver = ConjugateGradientSolver.fit(op, y, 0.05, tol=1e-12, max_iter=500)
    exact = np.linalg.solve(net.kernel(x).ntk + 0.05 * np.eye(80), y)
    np.testing.assert_allclose(solver.coef, exact, rtol=1e-7, atol=1e-9)
    x_new = rng.normal(size=(7, 5))
    np.testing.assert_allclose(solver.predict(x_new), net.kernel(x_new, x).ntk @ exact,
                               rtol=1e-7, atol=1e-9)


def test_nystrom_preconditioner_cuts_cg_iterations():
    """Same solution, several times fewer iterations (seeds 0-2: 128-149 -> 18-23 iterations)."""
    x, y, _, _ = _manifold_data(0, 1000)
    net = lazykit.mlp(2)
    op = KernelOperator(net, x, "ntk", F64)
    plain = ConjugateGradientSolver.fit(op, y[:, None], 0.1, tol=1e-8, max_iter=1000)
    precondition = nystrom_preconditioner(net, x, 0.1, kind="ntk", n_centers=200, seed=0)
    fast = ConjugateGradientSolver.fit(op, y[:, None], 0.1, tol=1e-8, max_iter=1000,
                                       precondition=precondition)
    assert fast.iterations * 3 < plain.iterations
    np.testing.assert_allclose(fast.coef, plain.coef, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("store", [True, False])
def test_nystrom_with_every_point_as_centre_is_exact(rng, store):
    """M = n: the Nystrom estimator is kernel ridge regression itself (stored or streamed)."""
    net = lazykit.mlp(2, activation="erf")
    x, y = rng.normal(size=(150, 4)), rng.normal(size=(150, 1))
    solver = NystromSolver.fit(PaddedNetworkKernel(net), x, y, 0.1, kind="nngp", n_centers=500,
                               seed=1, tol=1e-12, max_iter=300, store=store)
    assert solver.centers.shape == (150, 4) and solver.stored == store
    x_new = rng.normal(size=(9, 4))
    exact = net.kernel(x_new, x).nngp @ np.linalg.solve(net.kernel(x).nngp + 0.1 * np.eye(150), y)
    np.testing.assert_allclose(solver.predict(x_new), exact, rtol=1e-6, atol=1e-7)


def test_nystrom_preconditioner_needs_few_iterations():
    """Falkon's preconditioner: the iteration count barely depends on the ridge.

    Seeds 0-2: 7-12 iterations for ridge 1e-2 and 1 (n=1500, M=300, tol 1e-6).
    """
    x, y, _, _ = _manifold_data(0, 1500)
    for ridge in (1e-2, 1.0):
        solver = NystromSolver.fit(PaddedNetworkKernel(lazykit.mlp(2)), x, y[:, None], ridge,
                                   kind="ntk", n_centers=300, seed=0, tol=1e-6, max_iter=100)
        assert solver.iterations <= 25


@pytest.mark.parametrize("seed", [0, 1])
def test_iterative_solvers_match_cholesky_test_error(seed):
    """Test MSE of CG and Nystrom within 1% of Cholesky's, n = 2000.

    Seeds 0-4 (ridge 1, tol 1e-3): preconditioned CG within -0.01% to +0.08% (2-3 iterations),
    Nystrom with M = n/2 uniform centres within -0.22% to +0.29% (5 iterations), with
    M = n/4 RPCholesky centres within -0.18% to +0.37% (uniform ones: up to +0.82%; with
    M = n/8: RPCholesky up to +1.3%, uniform up to +6.4%).
    """
    x, y, x_test, y_test = _manifold_data(seed, 2000)
    configs = {"cholesky": {"solver": "cholesky"}, "cg": {"solver": "cg", "n_centers": 1000},
               "nystrom": {"solver": "nystrom", "n_centers": 1000},
               "rpcholesky": {"solver": "nystrom", "n_centers": 500, "centers": "rpcholesky"}}
    errors = {}
    for name, config in configs.items():
        model = lazykit.NTKRegressor(depth=2, ridge=1.0, tol=1e-3, **config).fit(x, y)
        assert model.solver_ == config["solver"]
        errors[name] = np.mean((model.predict(x_test) - y_test) ** 2)
    for name in ("cg", "nystrom", "rpcholesky"):
        assert abs(errors[name] / errors["cholesky"] - 1) < 0.01, errors


def test_classifier_with_nystrom(rng):
    x = rng.normal(size=(300, 4))
    labels = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    exact = lazykit.NTKClassifier(ridge=0.1).fit(x, labels)
    approx = lazykit.NTKClassifier(ridge=0.1, solver="nystrom", n_centers=300, tol=1e-10).fit(
        x, labels)
    np.testing.assert_allclose(approx.decision_function(x[:20]), exact.decision_function(x[:20]),
                               rtol=1e-5, atol=1e-6)


def test_progress_is_shown_when_asked_and_silent_otherwise(rng, capsys):
    x, y = rng.normal(size=(60, 3)), rng.normal(size=60)
    lazykit.NTKRegressor(ridge=0.1, solver="cg", verbose=True).fit(x, y)
    assert "cg (n=60)" in capsys.readouterr().err
    lazykit.NTKRegressor(ridge=0.1, solver="cg").fit(x, y)  # stderr is not a terminal here
    lazykit.NTKRegressor(ridge=0.1, solver="nystrom", n_centers=20, verbose=False).fit(x, y)
    assert capsys.readouterr().err == ""


def test_matrix_free_solvers_refuse_what_they_cannot_do(rng):
    x, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    with pytest.raises(ValueError, match="network='precomputed'"):
        gram = lazykit.mlp(1).kernel(x).ntk
        lazykit.NTKRegressor(network="precomputed", solver="cg").fit(gram, y)
    model = lazykit.NTKRegressor(solver="cg", ridge=0.1).fit(x, y)
    with pytest.raises(ValueError, match="mean only"):
        model.predict(x, return_std=True)
    assert model.predict(x, t=[np.inf, np.inf]).shape == (2, 30)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("tol", 0.0, "'tol' parameter"), ("tol", 2.0, "'tol' parameter"),
    ("max_iter", 0, "'max_iter' parameter"), ("n_centers", 0, "'n_centers' parameter"),
    ("tile_size", -4, "'tile_size' parameter"), ("solver", "lu", "'solver' parameter"),
    ("verbose", "yes", "'verbose' parameter")])
def test_bad_solver_knobs_are_rejected(rng, name, value, message):
    x, y = rng.normal(size=(10, 2)), rng.normal(size=10)
    with pytest.raises(ValueError, match=message):
        lazykit.NTKRegressor(**{name: value}).fit(x, y)


def test_ridgeless_cg_interpolates_or_warns(rng):
    x, y = rng.normal(size=(50, 6)), rng.normal(size=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotConvergedWarning)
        model = lazykit.NTKRegressor(solver="cg", tol=1e-8).fit(x, y)
    np.testing.assert_allclose(model.predict(x), y, atol=1e-5)


def _dense_flow(gram, ridge, y, s):
    """A^{-1} (I - expm(-s A)) y with A = gram + ridge I, by SciPy's matrix exponential."""
    import scipy.linalg

    a = gram + ridge * np.eye(gram.shape[0])
    return np.linalg.lstsq(a, y - scipy.linalg.expm(-s * a) @ y, rcond=1e-13)[0]


@pytest.mark.parametrize("ridge", [0.0, 0.2])
def test_lanczos_flow_matches_the_matrix_exponential(rng, ridge):
    from lazykit.solvers.lanczos import lanczos_flow

    gram = lazykit.mlp(2).kernel(rng.normal(size=(120, 4))).ntk
    y = rng.normal(size=(120, 2))
    a = gram + ridge * np.eye(120)
    out, steps = lanczos_flow(lambda v: a @ v, y, [0.01, 1.0, 30.0], tol=1e-11, max_iter=120)
    assert steps < 120
    for i, s in enumerate([0.01, 1.0, 30.0]):
        exact = _dense_flow(gram, ridge, y, s)
        np.testing.assert_allclose(out[i], exact, atol=1e-8 * np.abs(exact).max())
    with pytest.warns(NotConvergedWarning, match="stopped after 3 products"):
        lanczos_flow(lambda v: a @ v, y, [30.0], tol=1e-11, max_iter=3)


@pytest.mark.parametrize("ridge", [0.0, 0.3])
@pytest.mark.parametrize("solver", ["cg", "nystrom"])
def test_matrix_free_solvers_give_the_exact_flow_at_finite_times(rng, solver, ridge):
    """cg (Lanczos) and nystrom with every point a centre: the eigh flow at any time."""
    x, x_test = rng.normal(size=(150, 4)), rng.normal(size=(30, 4))
    y = np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1)
    exact = lazykit.NTKRegressor(ridge=ridge, solver="eigh").fit(x, y)
    model = lazykit.NTKRegressor(ridge=ridge, solver=solver, t=5.0, n_centers=150,
                                 tol=1e-10).fit(x, y)
    times = [5.0, 0.5, 60.0] + ([np.inf] if ridge > 0 else [])
    np.testing.assert_allclose(model.predict(x_test, t=times), exact.predict(x_test, t=times),
                               atol=1e-7)
    gram = lazykit.mlp(lazykit.NTKRegressor().depth).kernel(x).ntk
    coefficients = _dense_flow(gram, ridge, y, 5.0 / y.size)  # s = eta t / (n k)
    np.testing.assert_allclose(model.dual_coef_, coefficients,
                               atol=1e-6 * np.abs(coefficients).max())
    np.testing.assert_allclose(model.predict(x_test), exact.predict(x_test, t=5.0), atol=1e-9)


def test_nystrom_flow_is_gradient_flow_with_the_nystrom_kernel(rng):
    """M < n centres: Q = K_nM K_MM^{-1} K_Mn, flow by SciPy's expm; ridgeless and ridged."""
    x, x_test = rng.normal(size=(150, 4)), rng.normal(size=(30, 4))
    y = np.sin(x[:, :1])
    net = lazykit.mlp(lazykit.NTKRegressor().depth)
    for ridge in (0.0, 0.1):
        model = lazykit.NTKRegressor(ridge=ridge, solver="nystrom", n_centers=40, t=3.0).fit(x, y)
        centers = model._solver.centers
        k_mm, k_nm = net.kernel(centers).ntk, net.kernel(x, centers).ntk
        q = k_nm @ np.linalg.solve(k_mm, k_nm.T)
        q_test = net.kernel(x_test, centers).ntk @ np.linalg.solve(k_mm, k_nm.T)
        for t in (3.0, 40.0):
            expected = q_test @ _dense_flow(q, ridge, y, t / 150)
            np.testing.assert_allclose(model.predict(x_test, t=t), expected, atol=1e-7)


def test_progress_bar_is_full_once_cg_converges(capsys):
    """The bar was scaled to max_iter and looked stalled after convergence."""
    from lazykit.solvers.cg import conjugate_gradient

    s = np.diag(np.arange(1.0, 6.0))
    result = conjugate_gradient(lambda x: s @ x, np.ones((5, 1)), tol=1e-12, max_iter=500,
                                verbose=True)
    last = capsys.readouterr().err.strip().split("\r")[-1]
    assert result.iterations == 5
    assert "[" + "#" * 24 + "]" in last and "5/5" in last and "converged" in last
