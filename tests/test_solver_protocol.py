"""One protocol for every solver, "auto"'s choice and reason, the in-place exact path."""

import warnings

import numpy as np
import pytest
import scipy.linalg

import lazykit
from lazykit.kernels import compute
from lazykit.kernels.compute import InsufficientMemoryError
from lazykit.kernels.operator import KernelOperator, PrecomputedOperator
from lazykit.solvers import blocked, planning
from lazykit.solvers.auto import AutoSolver, make_kernel_solver
from lazykit.solvers.base import Diagnostics, SolverOptions
from lazykit.solvers.direct import make_solver

F64 = np.dtype(np.float64)
NET = lazykit.mlp(2, activation="erf", W_std=1.3, b_std=0.2)


class CountingSource:
    """A kernel source that records every call and keeps the arrays it returned."""

    def __init__(self, network):
        self.network = network
        self.calls = []
        self.returned = []

    def kernel(self, x1, x2=None, *, diagonal=False, dtype=None):
        self.calls.append((x1.shape[0], None if x2 is None else x2.shape[0], diagonal))
        k = self.network.kernel(x1, x2, diagonal=diagonal, dtype=dtype)
        out = lazykit.Kernel(np.array(k.nngp), np.array(k.ntk))  # owned, writeable copies
        self.returned.append(out)
        return out


def _dense_flow(gram, ridge, y, s):
    """A^{-1} (I - exp(-s A)) y with A = gram + ridge I, by SciPy (s = inf: lstsq)."""
    a = gram + ridge * np.eye(gram.shape[0])
    if np.isinf(s):
        return np.linalg.lstsq(a, y, rcond=None)[0]
    return np.linalg.solve(a, y - scipy.linalg.expm(-s * a) @ y)


@pytest.mark.parametrize("name", ["cholesky", "eigh", "cg", "nystrom", "auto"])
@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_every_solver_gives_the_flow_through_one_interface(rng, name, ridge):
    x, x_new = rng.normal(size=(70, 3)), rng.normal(size=(9, 3))
    y = np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1)
    gram, cross = NET.kernel(x).ntk, NET.kernel(x_new, x).ntk
    solver = make_kernel_solver(name, SolverOptions(tol=1e-12, max_iter=2000, n_centers=70))
    state = solver.init(KernelOperator(NET, x, "ntk", F64), ridge, k=2)
    times = np.array([0.5, 4.0, np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ridge 0: ill-conditioned kernel warnings
        result = state.solver.flow(state, y, times)
        mean, spread = state.solver.predict(state, x_new, result.coefficients)
    assert spread is None and isinstance(result.diagnostics, Diagnostics)
    assert result.diagnostics.solver in ("cholesky", "eigh", "cg", "nystrom")
    assert result.diagnostics.iterations >= 1 and result.diagnostics.memory > 0
    for i, s in enumerate(times):
        expected = cross @ _dense_flow(gram, ridge, y, s)
        scale = np.abs(expected).max()
        tolerance = 1e-6 if ridge or np.isfinite(s) else 1e-4  # K^+ of an erf NTK at ridge 0
        np.testing.assert_allclose(mean[i], expected, atol=tolerance * scale)


def test_exact_solvers_report_their_condition_and_fallback(rng):
    x = rng.normal(size=(40, 3))
    gram = NET.kernel(x).ntk + 0.1 * np.eye(40)
    state = make_kernel_solver("cholesky").init(PrecomputedOperator(NET.kernel(x).ntk), 0.1)
    result = state.solver.flow(state, np.ones((40, 1)), [np.inf])
    assert result.diagnostics.solver == "cholesky"
    np.testing.assert_allclose(result.diagnostics.condition, np.linalg.cond(gram, 1), rtol=0.5)
    duplicated = np.concatenate([x, x[:5]])
    with pytest.warns(lazykit.IllConditionedKernelWarning, match="singular"):
        state = make_kernel_solver("cholesky").init(
            PrecomputedOperator(NET.kernel(duplicated).ntk), 0.0)
    result = state.solver.flow(state, np.ones((45, 1)), [np.inf])
    assert result.diagnostics.solver == "eigh" and "Cholesky found" in result.diagnostics.path
    assert "5 eigenvalues treated as zero" in result.diagnostics.path


@pytest.mark.parametrize("position", [5, 130, 290])
def test_failed_in_place_cholesky_is_restored_for_the_eigendecomposition(rng, monkeypatch,
                                                                         position):
    """The in-place Cholesky fails at a late minor; the pseudo-inverse answer is eigh's."""
    monkeypatch.setattr(blocked, "BLOCK", 64)  # several blocks are factorized before it fails
    a = rng.normal(size=(300, 250))
    gram = a @ a.T / 250
    gram[position] = gram[:, position] = 0.0
    gram[position, position] = -1.0  # an indefinite minor of order position + 1
    rhs = rng.normal(size=(300, 2))
    expected = make_solver("eigh", gram).apply(rhs, [np.inf, 2.0])
    work = gram.copy()
    with pytest.warns(lazykit.IllConditionedKernelWarning, match="not positive semi-definite"):
        solver = make_solver("cholesky", work, overwrite=True)
    assert solver.name == "eigh"
    np.testing.assert_allclose(solver.apply(rhs, [np.inf, 2.0]), expected, rtol=1e-9, atol=1e-9)


def test_exact_fit_factorizes_the_kernels_own_buffer(rng):
    x, y = rng.normal(size=(60, 3)), rng.normal(size=60)
    source = CountingSource(NET)
    model = lazykit.NTKRegressor(source, ridge=1e-2, solver="cholesky").fit(x, y)
    assert source.calls == [(60, None, False)]
    assert np.shares_memory(model._solver.factor, source.returned[0].ntk)
    np.testing.assert_allclose(
        model.predict(x[:5]),
        NET.kernel(x[:5], x).ntk @ np.linalg.solve(NET.kernel(x).ntk + 1e-2 * np.eye(60), y),
        rtol=1e-9, atol=1e-12)


def test_return_std_computes_the_training_nngp_once(rng):
    x, y, x_test = rng.normal(size=(50, 3)), rng.normal(size=50), rng.normal(size=(6, 3))
    source = CountingSource(NET)
    model = lazykit.NTKRegressor(source, ridge=1e-2, t=3.0).fit(x, y)
    first = model.predict(x_test, return_std=True)
    second = model.predict(x_test, return_std=True)
    training = [call for call in source.calls if call == (50, None, False)]
    assert len(training) == 2  # the fit's NTK, then the NNGP for the spread, once
    np.testing.assert_array_equal(first[1], second[1])
    reference = lazykit.NTKRegressor(NET, ridge=1e-2, t=3.0).fit(x, y)
    np.testing.assert_allclose(first[1], reference.predict(x_test, return_std=True)[1],
                               rtol=1e-9)


@pytest.mark.parametrize("name", ["cholesky", "eigh", "cg", "nystrom", "auto"])
def test_every_solver_checks_memory_before_computing_any_kernel(rng, monkeypatch, name):
    x, y = rng.normal(size=(400, 3)), rng.normal(size=400)
    monkeypatch.setattr(compute, "available_memory", lambda: 10**5)
    monkeypatch.setattr(planning, "available_memory", lambda: 10**5)
    source = CountingSource(NET)
    with pytest.raises(InsufficientMemoryError, match=r"needs? .* available"):
        lazykit.NTKRegressor(source, ridge=0.1, solver=name, n_centers=100).fit(x, y)
    assert source.calls == []
    operator = KernelOperator(source, x, "ntk", F64)
    with pytest.raises(InsufficientMemoryError):
        make_kernel_solver(name, SolverOptions(n_centers=100)).init(operator, 0.1, k=1)
    assert source.calls == []


def test_precomputed_gram_is_copied_once_and_checked(rng, monkeypatch):
    x, y = rng.normal(size=(300, 3)), rng.normal(size=300)
    gram = NET.kernel(x).ntk
    original = gram.copy()
    lazykit.NTKRegressor("precomputed", solver="cholesky").fit(gram, y)
    np.testing.assert_array_equal(gram, original)  # the user's matrix is not touched
    monkeypatch.setattr(compute, "available_memory", lambda: 10**5)
    with pytest.raises(InsufficientMemoryError, match="solver='eigh' on n=300 points"):
        lazykit.NTKRegressor("precomputed", solver="eigh").fit(gram, y)


def test_auto_chooses_by_expected_time_and_says_why(rng, monkeypatch, capsys):
    x, y = rng.normal(size=(300, 3)), rng.normal(size=300)
    model = lazykit.NTKRegressor(ridge=0.1, n_centers=50).fit(x, y)
    assert model.solver_choice_.name == model.solver_ == "cholesky"
    assert "fits in memory" in model.solver_choice_.reason
    assert capsys.readouterr().err == ""
    # a machine 10^5 times slower: the exact solve would take minutes, Nystrom less
    monkeypatch.setattr(planning, "blas_rate", lambda: 1e6)
    slow = lazykit.NTKRegressor(ridge=0.1, n_centers=50, verbose=True).fit(x, y)
    assert slow.solver_choice_.name == slow.solver_ == "nystrom"
    assert "more than the 20 s limit" in slow.solver_choice_.reason
    assert "chose nystrom" in capsys.readouterr().err
    forced = lazykit.NTKRegressor(ridge=0.1, solver="cholesky").fit(x, y)
    assert (forced.solver_choice_.name, forced.solver_choice_.reason) == ("cholesky", "requested")


def test_auto_solver_time_limit_is_an_option(rng, monkeypatch):
    x = rng.normal(size=(100, 3))
    operator = KernelOperator(NET, x, "ntk", F64)
    monkeypatch.setattr(planning, "blas_rate", lambda: 1e11)
    assert AutoSolver().init(operator, 0.1).choice.name == "cholesky"
    patient = AutoSolver(SolverOptions(n_centers=10), time_limit=0.0)
    assert patient.init(operator, 0.1).choice.name == "nystrom"


def test_operator_pieces_match_the_network(rng):
    x, x_new = rng.normal(size=(33, 4)), rng.normal(size=(7, 4))
    op = KernelOperator(NET, x, "nngp", F64)
    k, cross = NET.kernel(x), NET.kernel(x_new, x)
    np.testing.assert_allclose(op.gram(), k.nngp, rtol=1e-14)
    assert op.gram().flags.c_contiguous and op.gram().flags.writeable
    np.testing.assert_allclose(op.cross(x_new), cross.nngp, rtol=1e-14)
    np.testing.assert_allclose(op.with_kind("ntk").diagonal(x), np.diag(k.ntk), rtol=1e-13)
    with pytest.raises(ValueError, match="kind must be one of"):
        KernelOperator(NET, x, "both", F64)
    pre = PrecomputedOperator(k.ntk)
    with pytest.raises(ValueError, match=r"shape \(n_test, 33\); got shape \(7, 4\)"):
        pre.cross(x_new)
    with pytest.raises(ValueError, match="cannot return a standard deviation"):
        pre.kernels(x_new)


def test_exact_fit_allocates_one_kernel(rng):
    """NumPy-side peak of fit + predict at n = 4096 (4 x 4 tiles of 1024), by tracemalloc.

    The NTK alone (get="ntk") in one n x n buffer, factorized in place: 1 n^2 and a
    few tiles of n^2 / 16 in flight (it was 4.9 n^2 with both kernels, padded copies
    and a copy to factorize), predictions in blocks of 2^20 entries.
    """
    import tracemalloc

    n = 4096
    x, y, x_test = rng.normal(size=(n, 3)), rng.normal(size=n), rng.normal(size=(3000, 3))
    lazykit.NTKRegressor(ridge=0.1).fit(x[:2000], y[:2000]).predict(x_test)  # compiled
    tracemalloc.start()
    try:
        model = lazykit.NTKRegressor(ridge=0.1, solver="cholesky").fit(x, y)
        model.predict(x_test)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert model.solver_ == "cholesky"
    assert peak < 1.3 * 8 * n * n, peak / (8 * n * n)


@pytest.mark.parametrize("n", [40, 1100])  # padded to a bucket / more than one tile: unpadded
def test_padded_source_computes_only_the_kernel_asked_for(rng, n):
    from lazykit.estimators._sources import PaddedNetworkKernel

    x, x_new = rng.normal(size=(n, 3)), rng.normal(size=(5, 3))
    source = PaddedNetworkKernel(NET)
    k = source.kernel(x, get="ntk")
    assert k.nngp is None and k.ntk.shape == (n, n)
    assert k.ntk.flags.c_contiguous and k.ntk.flags.writeable
    np.testing.assert_allclose(k.ntk, NET.kernel(x).ntk, rtol=1e-13, atol=1e-15)
    cross = source.kernel(x_new, x, get="nngp")
    assert cross.ntk is None
    np.testing.assert_allclose(cross.nngp, NET.kernel(x_new, x).nngp, rtol=1e-13, atol=1e-15)
    diagonal = source.kernel(x_new, diagonal=True, get="ntk")
    np.testing.assert_allclose(diagonal.ntk, np.diag(NET.kernel(x_new).ntk), rtol=1e-13)
