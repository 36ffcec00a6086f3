"""Solver choice by memory: auto takes the exact solve where it fits, else Nystrom, or refuses."""

import jax
import numpy as np
import pytest

import lazykit
from lazykit.kernels.compute import InsufficientMemoryError
from lazykit.solvers import planning
from lazykit.solvers.planning import Plan, choose_solver, exact_bytes, nystrom_bytes

GIB = 2**30


def _with_memory(monkeypatch, nbytes):
    """Pretend that ``nbytes`` are available to the solver choice (the kernels see the truth)."""
    monkeypatch.setattr(planning, "available_memory", lambda: int(nbytes))


def _choose(n, k=1, *, finite_time=False, ridge=0.1, n_centers=2000, requested="auto", d=100,
            rate=1e11):
    return choose_solver(requested, n=n, k=k, finite_time=finite_time, ridge=ridge,
                         n_centers=n_centers, tile=1024, d=d, rate=rate)


def test_choices_on_a_24_gib_machine(monkeypatch):
    """By memory and expected time, at 100 GFLOP/s (the development machine's BLAS)."""
    _with_memory(monkeypatch, 20 * GIB)
    assert _choose(10_000) == Plan("cholesky")  # 0.8 GB; n^3/3 + the kernel: about 5 s
    assert _choose(5_000, finite_time=True) == Plan("eigh")
    # n = 20,000: the Cholesky fits (3.2 GB) but is expected to take 33 s, Nystrom 2 s
    plan = _choose(20_000)
    assert plan == Plan("nystrom", store=True)
    assert "expected to take 32.9 s" in plan.reason and "more than the 20 s limit" in plan.reason
    assert _choose(20_000, rate=1e13) == Plan("cholesky")  # an accelerator's rate: 0.3 s
    assert _choose(100_000) == Plan("nystrom", store=True)  # K_nM: 1.6 GB
    assert _choose(1_000_000) == Plan("nystrom", store=False)  # K_nM would take 16 GB
    # finite times and ridgeless fits: the Nystrom spectrum (gradient flow with its kernel)
    assert _choose(30_000, finite_time=True, ridge=0.0) == Plan("nystrom", store=True)
    # the exact solve does not fit at all (fast BLAS or not): 60,000^2 floats are 28.8 GB
    assert "needs 26.9" in _choose(60_000, rate=1e15).reason


def test_memory_formulas():
    tiles = 12 * 8 * 1024**2 * len(jax.devices())  # the kernel's tile work
    n = 20_000
    assert exact_bytes(n, False) == 8 * n * n + tiles  # the kernel, factorized in place
    assert exact_bytes(n, True) == 3 * 8 * n * n  # ... and dsyevd's 2 n^2 workspace
    assert exact_bytes(100, False) == 8 * 100**2 + 12 * 8 * 100**2 * len(jax.devices())
    n, k, m, rows = 10**5, 2, 1000, 4194  # rows of K_nM per block: 2^22 // M
    vectors = 6 * n * k * 8
    assert nystrom_bytes(n, k, m, True) == 8 * (n * m + 4 * m * m + 4 * rows * m) + vectors
    assert nystrom_bytes(n, k, m, False) == 8 * (4 * m * m + 4 * rows * m) + vectors
    # picked by RPCholesky: its pool (all n here) x (M + 2 blocks of 100 columns) dominates
    assert nystrom_bytes(n, k, m, False, "rpcholesky") == 8 * n * (m + 200) + vectors
    # CG: two recursions side by side at ridge 0 (measured: 15.4 n k), one otherwise (8 n k)
    assert planning.cg_bytes(n, k, 1024, m, False, ridge=0.0) == 16 * n * k * 8 + tiles
    assert planning.cg_bytes(n, k, 1024, m, False, ridge=0.1) == 9 * n * k * 8 + tiles


@pytest.mark.parametrize(("options", "times", "bound"), [
    ({"ridge": 1.0}, [None], 0.08),  # centre seeds 0-4: 3.9-4.8% (relative norm)
    ({"t": 5.0}, [5.0, 50.0], 0.03),  # ridgeless flow: 0.17% at t = 5, 0.6% at t = 50
])
def test_auto_switches_to_nystrom_when_the_exact_solve_is_too_slow(monkeypatch, rng, options,
                                                                   times, bound):
    """Nystrom (M = 200 of 1000) predictions near the exact ones, at infinite or finite time.

    At n = 1000 the in-place exact solve takes no more memory than Nystrom with
    M = 200 (both about 100 MB with the kernel's tiles in flight), so the switch
    is made by time: on a machine 10^5 times slower than the development one
    the exact solve would take half an hour, Nystrom ten minutes. (By memory:
    tests/test_memory_budget.py, at n = 3000.)
    """
    x, x_test = rng.normal(size=(1000, 2)), rng.normal(size=(200, 2))
    y = np.sin(2 * x[:, 0]) * x[:, 1]
    finite = "t" in options
    exact = lazykit.NTKRegressor(**options).fit(x, y)
    assert exact.solver_ == ("eigh" if finite else "cholesky")
    monkeypatch.setattr(planning, "blas_rate", lambda: 1e6)
    model = lazykit.NTKRegressor(n_centers=200, **options).fit(x, y)
    assert model.solver_ == "nystrom" and model.n_iter_ >= 1
    for t in times:
        expected = exact.predict(x_test, t=t)
        difference = model.predict(x_test, t=t) - expected
        assert np.linalg.norm(difference) < bound * np.linalg.norm(expected)


def test_impossible_problems_are_refused_with_their_sizes(monkeypatch, rng):
    x, y = rng.normal(size=(300, 4)), rng.normal(size=300)
    _with_memory(monkeypatch, 1000)
    with pytest.raises(InsufficientMemoryError,
                       match=r"n=300 training points and k=1 targets need 8\.94 MiB .* only "
                             r"0\.00 MiB .* Nystrom solver with M=300 centres needs"):
        lazykit.NTKRegressor(ridge=0.1, n_centers=500).fit(x, y)
    with pytest.raises(InsufficientMemoryError, match=r"for the exact eigendecomposition solve"):
        lazykit.NTKRegressor(t=3.0, n_centers=500).fit(x, y)


def test_explicit_matrix_free_solvers_check_their_own_memory(monkeypatch):
    from lazykit.kernels import compute

    monkeypatch.setattr(compute, "available_memory", lambda: 10**6)
    with pytest.raises(InsufficientMemoryError, match=r"the CG solver \(n=100000, k=1"):
        _choose(100_000, requested="cg")
    with pytest.raises(InsufficientMemoryError, match=r"Nystrom solver \(n=100000, k=1, M=2000"):
        _choose(100_000, requested="nystrom")
    with pytest.raises(InsufficientMemoryError, match=r"Lanczos basis of up to 1000 .* max_iter"):
        _choose(100_000, requested="cg", finite_time=True)
