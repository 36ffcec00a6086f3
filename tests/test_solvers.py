"""lazykit.solvers: the gradient-flow filter, Cholesky/eigh factorizations and their fallback."""

import warnings

import numpy as np
import pytest
import scipy.linalg

import lazykit
from lazykit.solvers import (
    CholeskySolver,
    EigenSolver,
    IllConditionedKernelWarning,
    flow_covariance,
    flow_filter,
    flow_mean,
    make_solver,
    scaled_times,
)


def _spd(rng, n=12, rank=None):
    a = rng.normal(size=(n, rank or n + 3))
    return a @ a.T / a.shape[1]


def _filter_by_expm(gram, ridge, s):
    """A^{-1} (I - expm(-s A)) by dense matrix functions (the definition)."""
    a = gram + ridge * np.eye(gram.shape[0])
    return np.linalg.solve(a, np.eye(a.shape[0]) - scipy.linalg.expm(-s * a))


def test_flow_filter_limits():
    values = np.array([-1e-20, 0.0, 1e-3, 1.0, 50.0])
    g = flow_filter(values, [0.0, 1e-8, 3.0, np.inf], cutoff=1e-12)
    assert np.all(g[0] == 0.0)
    np.testing.assert_allclose(g[1, 2:], 1e-8, rtol=1e-6)  # small times: g ~ s
    np.testing.assert_allclose(g[2, 2:], -np.expm1(-3.0 * values[2:]) / values[2:], rtol=1e-14)
    np.testing.assert_allclose(g[3, 2:], 1.0 / values[2:], rtol=1e-15)
    assert np.all(g[:, :2] == 0.0)  # numerically zero directions are dropped, never NaN
    assert np.all(np.diff(g[1:, 3], axis=0) >= 0)  # grows with time


@pytest.mark.parametrize("ridge", [0.0, 0.3])
@pytest.mark.parametrize("s", [0.01, 0.7, 20.0])
def test_eigen_solver_matches_matrix_exponential(rng, ridge, s):
    gram = _spd(rng)
    rhs = rng.normal(size=(12, 2))
    solver = EigenSolver.factorize(gram, ridge)
    expected = _filter_by_expm(gram, ridge, s) @ rhs
    np.testing.assert_allclose(solver.apply(rhs, [s])[0], expected, rtol=1e-9, atol=1e-12)


def test_cholesky_and_eigen_agree_and_share_times(rng):
    gram = _spd(rng)
    rhs = rng.normal(size=(12, 3))
    chol = make_solver("cholesky", gram, 1e-3)
    eig = make_solver("eigh", gram, 1e-3)
    assert (chol.name, eig.name) == ("cholesky", "eigh")
    times = [0.5, np.inf, 2.0]
    np.testing.assert_allclose(chol.apply(rhs, times), eig.apply(rhs, times), rtol=1e-9)
    np.testing.assert_allclose(chol.apply(rhs, [np.inf])[0],
                               np.linalg.solve(gram + 1e-3 * np.eye(12), rhs), rtol=1e-10)
    assert chol.reciprocal_condition > 0


def test_singular_gram_falls_back_to_minimum_norm_with_warning(rng):
    x = rng.normal(size=(8, 3))
    x = np.concatenate([x, x[:3]])  # duplicate training points
    gram = lazykit.mlp(2).kernel(x).ntk
    y = rng.normal(size=(11, 1))
    with pytest.warns(IllConditionedKernelWarning, match="pseudo-inverse") as record:
        solver = make_solver("cholesky", gram)
    message = str(record[0].message)
    assert "duplicate" in message and "ridge > 0" in message and "3 of 11" in message
    assert solver.name == "eigh" and solver.n_dropped == 3
    coef = solver.apply(y, [np.inf])[0]
    assert np.all(np.isfinite(coef))
    np.testing.assert_allclose(coef, np.linalg.pinv(gram, hermitian=True) @ y, rtol=1e-6,
                               atol=1e-8)


def test_exactly_singular_and_indefinite_matrices_never_give_nan():
    ones = np.ones((5, 5))  # rank one
    indefinite = np.diag([1.0, -1e-3, 2.0])
    with pytest.warns(IllConditionedKernelWarning):
        s1 = make_solver("cholesky", ones)
    with pytest.warns(IllConditionedKernelWarning, match="not positive semi-definite"):
        s2 = make_solver("cholesky", indefinite)
    for solver, n in [(s1, 5), (s2, 3)]:
        out = solver.apply(np.ones((n, 1)), [0.0, 1.0, 1e12, np.inf])
        assert np.all(np.isfinite(out))
    np.testing.assert_allclose(s1.apply(np.ones((5, 1)), [np.inf])[0], 0.2)


def test_well_conditioned_cholesky_emits_no_warning(rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make_solver("cholesky", _spd(rng)).name == "cholesky"


def test_cholesky_finite_times_use_its_cached_spectrum(rng):
    gram = _spd(rng)
    solver = CholeskySolver.factorize(gram, 0.1)
    rhs = rng.normal(size=(12, 1))
    first = solver.apply(rhs, [1.5])
    eigen = solver.eigen()
    assert solver.eigen() is eigen
    np.testing.assert_allclose(first[0], _filter_by_expm(gram, 0.1, 1.5) @ rhs, rtol=1e-9)


def test_make_solver_rejects_unknown_names_and_bad_shapes():
    with pytest.raises(ValueError, match="solver must be one of"):
        make_solver("lu", np.eye(2))
    with pytest.raises(ValueError, match="square"):
        make_solver("eigh", np.ones((2, 3)))


def test_scaled_times_divide_by_entries():
    np.testing.assert_allclose(scaled_times([0.0, 4.0, np.inf], 0.5, 8), [0.0, 0.25, np.inf])


@pytest.mark.parametrize("readout_only", [False, True])
def test_flow_mean_and_covariance_match_dense_formulas(rng, readout_only):
    x = rng.normal(size=(10, 3))
    xt = rng.normal(size=(4, 3))
    k_all = lazykit.mlp(2, activation="erf").kernel(np.concatenate([x, xt]))
    nngp, ntk = k_all.nngp, k_all.ntk
    tr, te = slice(0, 10), slice(10, 14)
    trained = nngp if readout_only else ntk
    y = rng.normal(size=(10, 2))
    s, ridge = 0.8, 0.05
    solver = make_solver("eigh", trained[tr, tr], ridge)
    g = _filter_by_expm(trained[tr, tr], ridge, s)
    mean = flow_mean(solver, y, trained[te, tr], [s])[0]
    np.testing.assert_allclose(mean, trained[te, tr] @ g @ y, rtol=1e-9)
    if readout_only:
        g2 = _filter_by_expm(trained[tr, tr], ridge, 2 * s)
        expected = nngp[te, te] - nngp[te, tr] @ g2 @ nngp[tr, te]
    else:
        a = ntk[te, tr] @ g
        expected = (nngp[te, te] - a @ nngp[tr, te] - nngp[te, tr] @ a.T
                    + a @ nngp[tr, tr] @ a.T)
    kwargs = dict(readout_only=readout_only, k_test_train=trained[te, tr],
                  nngp_test_train=nngp[te, tr], nngp_train=nngp[tr, tr])
    cov = flow_covariance(solver, [s], nngp_test=nngp[te, te], **kwargs)[0]
    var = flow_covariance(solver, [s], nngp_test=np.diag(nngp[te, te]), full=False, **kwargs)[0]
    np.testing.assert_allclose(cov, expected, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(var, np.diag(expected), rtol=1e-8, atol=1e-12)
