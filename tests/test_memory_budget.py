"""The memory budget: a context manager, a setter and an estimator argument, used by every check."""

import pytest

import lazykit
from lazykit.kernels import compute
from lazykit.kernels.compute import InsufficientMemoryError, available_memory
from lazykit.kernels.resources import current_budget, memory_budget, set_memory_budget
from lazykit.solvers import planning


def test_context_manager_and_setter_nest_and_restore():
    outside = available_memory()
    assert current_budget() is None
    with memory_budget(5 * 2**30):
        assert available_memory() == planning.available_memory() == 5 * 2**30
        with memory_budget(2**20):
            assert available_memory() == 2**20
        assert available_memory() == 5 * 2**30
    assert current_budget() is None
    previous = set_memory_budget(3 * 2**30)
    try:
        assert previous is None and available_memory() == 3 * 2**30
    finally:
        set_memory_budget(previous)
    assert abs(available_memory() - outside) < 2**30  # the system's figure again


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "8GB", True])
def test_bad_budgets_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"nbytes must be None .* or a positive number of bytes"):
        memory_budget(bad)


def test_every_check_uses_the_budget(rng):
    x, y = rng.normal(size=(500, 3)), rng.normal(size=500)
    with memory_budget(10**6):  # 1 MB
        with pytest.raises(InsufficientMemoryError, match="the memory budget in force"):
            lazykit.mlp(1).kernel(x)
        for solver in ("auto", "cholesky", "eigh", "cg", "nystrom"):
            with pytest.raises(InsufficientMemoryError):
                lazykit.NTKRegressor(solver=solver, ridge=0.1, n_centers=100).fit(x, y)
    # more than the machine reports is taken at its word (the user knows better)
    huge = 10 * compute.available_memory()
    with memory_budget(huge):
        assert planning.available_memory() == huge


def test_estimator_argument_overrides_for_its_own_fit_and_predict(rng, monkeypatch):
    # a BLAS of 1 GFLOP/s: CG (an exact answer in little memory) would take minutes
    monkeypatch.setattr(planning, "blas_rate", lambda: 1e9)
    x, y = rng.normal(size=(3000, 3)), rng.normal(size=3000)
    with pytest.raises(InsufficientMemoryError, match="solver='cholesky' on n=3000"):
        lazykit.NTKRegressor(solver="cholesky", memory_budget=10**6).fit(x, y)
    # auto fits within a budget where the exact solve does not: Nystrom, and says so
    budget = 130 * 10**6  # the exact solve: 168 MB with its tiles, Nystrom (M = 50): 101 MB
    model = lazykit.NTKRegressor(ridge=0.1, n_centers=50, memory_budget=budget).fit(x, y)
    assert model.solver_ == "nystrom"
    assert f"{planning.size(budget)} available" in model.solver_choice_.reason
    assert "the exact cholesky solve needs 164.76 MiB" in model.solver_choice_.reason
    assert current_budget() is None  # the estimator's budget does not leak
    assert model.predict(x[:5]).shape == (5,)
    assert lazykit.NTKRegressor().get_params()["memory_budget"] is None
