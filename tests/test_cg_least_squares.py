"""Ridgeless CG on singular, inconsistent kernel systems: the minimum-norm least-squares answer."""

import warnings

import numpy as np
import pytest

import lazykit
from lazykit.kernels.operator import KernelOperator
from lazykit.solvers import IllConditionedKernelWarning, NotConvergedWarning
from lazykit.solvers.cg import ConjugateGradientSolver, minimum_norm_least_squares


def _repeated(rng, distinct=15, copies=3, d=3):
    """Each input repeated ``copies`` times, with independent targets: K x = y has no solution."""
    x = np.tile(rng.normal(size=(distinct, d)), (copies, 1))
    return x, rng.normal(size=(distinct * copies, 2)), rng.normal(size=(7, d))


def test_ridgeless_cg_on_repeated_inputs_matches_eigh(rng):
    """Was: predictions of order 1e9 and advice to raise max_iter; now eigh's answer to 1e-8."""
    x, y, x_test = _repeated(rng)
    exact = lazykit.NTKRegressor(solver="eigh", ridge=0.0).fit(x, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = lazykit.NTKRegressor(solver="cg", ridge=0.0, tol=1e-12).fit(x, y)
    scale = np.abs(exact.predict(x_test)).max()
    np.testing.assert_allclose(model.predict(x_test), exact.predict(x_test), rtol=0,
                               atol=1e-8 * scale)
    # the same coefficients: the minimum-norm solution, not just any least-squares one
    np.testing.assert_allclose(model.dual_coef_, exact.dual_coef_, rtol=0,
                               atol=1e-8 * np.abs(exact.dual_coef_).max())
    # the fit averages the repeated targets, as least squares must
    fitted = model.predict(x[:15])
    np.testing.assert_allclose(fitted, y.reshape(3, 15, 2).mean(axis=0), atol=1e-7)
    messages = [str(w.message) for w in caught]
    assert not any(issubclass(w.category, NotConvergedWarning) for w in caught), messages
    assert not any("max_iter" in m for m in messages), messages
    assert any(issubclass(w.category, IllConditionedKernelWarning)
               and "minimum-norm least-squares" in str(w.message) for w in caught), messages


def test_minimum_norm_least_squares_is_the_pseudo_inverse(rng):
    basis = np.linalg.qr(rng.normal(size=(40, 40)))[0]
    values = np.concatenate([np.geomspace(0.05, 5.0, 25), np.zeros(15)])
    s = (basis * values) @ basis.T  # rank 25
    null_part = basis[:, 30:31]
    rhs = np.concatenate([rng.normal(size=(40, 2)), np.zeros((40, 1)), null_part], axis=1)
    with pytest.warns(IllConditionedKernelWarning, match="not in the range"):
        result = minimum_norm_least_squares(lambda v: s @ v, rhs, tol=1e-13, max_iter=200)
    expected = np.linalg.pinv(s, hermitian=True, rcond=1e-10) @ rhs
    np.testing.assert_allclose(result.solution, expected, rtol=0, atol=1e-10)
    assert result.iterations < 200


def test_minimum_norm_least_squares_solves_consistent_systems_silently(rng):
    a = rng.normal(size=(30, 30))
    s = a @ a.T + 0.1 * np.eye(30)
    rhs = rng.normal(size=(30, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = minimum_norm_least_squares(lambda v: s @ v, rhs, tol=1e-12, max_iter=500)
    assert result.relative_residual <= 1e-12
    np.testing.assert_allclose(result.solution, np.linalg.solve(s, rhs), rtol=1e-8)


def test_minimum_norm_least_squares_stopped_early_says_so(rng):
    a = rng.normal(size=(30, 30))
    s = a @ a.T
    s[:, 0] = s[0, :] = 0.0  # singular, and b is not in its range
    rhs = rng.normal(size=(30, 1))
    with pytest.warns(NotConvergedWarning, match="stopped after 7 products") as record:
        early = minimum_norm_least_squares(lambda v: s @ v, rhs, tol=1e-12, max_iter=3)
    assert "consistent system" in str(record[0].message)
    assert early.iterations == 7  # S b, then at most 3 iterations of each stage
    assert early.solution[0, 0] == 0.0  # never a component in the null space
    exact = np.linalg.pinv(s, hermitian=True) @ rhs
    assert np.linalg.norm(early.solution) < 10 * np.linalg.norm(exact)  # no blow-up


def test_ridgeless_cg_refuses_a_preconditioner(rng):
    x = rng.normal(size=(10, 2))
    op = KernelOperator(lazykit.mlp(1), x, "ntk", np.dtype(np.float64))
    with pytest.raises(ValueError, match="ridge > 0"):
        ConjugateGradientSolver.fit(op, np.ones((10, 1)), 0.0, tol=1e-6, max_iter=10,
                                    precondition=lambda r: r)
