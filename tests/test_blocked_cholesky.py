"""The blocked in-place Cholesky factorization; exact fits past the size where dpotrf crashes."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.linalg
from scipy.linalg import lapack

from lazykit.solvers import CholeskySolver, blocked, make_solver


def _spd(rng, n, rank=None):
    g = rng.normal(size=(n, rank or n + 5))
    return g @ g.T / g.shape[1]


@pytest.mark.parametrize(("n", "block"), [(700, 128), (129, 128), (300, 1), (50, 64)])
def test_blocked_factor_is_scipys(rng, n, block):
    """Several blocks with a ragged last one (700 = 5 x 128 + 60), a last block of 1, and none."""
    a = _spd(rng, n)
    f = np.array(a, order="F")
    assert blocked.cholesky_in_place(f, block=block) == 0
    expected = scipy.linalg.cholesky(a, lower=False)
    np.testing.assert_allclose(np.triu(f), expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    np.testing.assert_array_equal(np.tril(f, -1), np.tril(a, -1))  # in place, upper only


def test_c_ordered_matrix_gets_the_lower_factor_through_its_transpose(rng):
    a = _spd(rng, 260)
    work = a.copy()  # C-ordered: work.T is the Fortran-ordered view of the same memory
    assert blocked.cholesky_in_place(work.T, block=100) == 0
    expected = scipy.linalg.cholesky(a, lower=True)
    np.testing.assert_allclose(np.tril(work), expected, rtol=0, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("position", [2, 127, 128, 600, 699])
def test_not_positive_definite_is_reported_like_potrf(rng, position):
    """info = order of the first leading minor that is not positive definite, in any block."""
    a = _spd(rng, 700)
    a[position, position] = -1.0
    _, expected = lapack.dpotrf(a, lower=0)
    assert expected == position + 1
    assert blocked.cholesky_in_place(np.array(a, order="F"), block=128) == expected


def test_rank_deficient_matrix_is_not_factorized(rng):
    a = _spd(rng, 400, rank=250)
    assert blocked.cholesky_in_place(np.array(a, order="F"), block=64) > 0
    assert lapack.dpotrf(a)[1] > 0


@pytest.mark.parametrize(("matrix", "block", "message"), [
    (np.eye(4), 2, "Fortran-ordered"),  # C-ordered: pass its .T instead
    (np.asfortranarray(np.eye(4, dtype=np.float32)), 2, "float64"),
    (np.asfortranarray(np.ones((3, 4))), 2, "square"),
    ([[1.0]], 2, "list"),
    (np.asfortranarray(np.eye(6))[:4, :4], 2, "f_contiguous=False"),  # a strided view
    (np.asfortranarray(np.eye(4)), 0, "block must be a positive integer"),
])
def test_bad_arguments_are_refused(matrix, block, message):
    with pytest.raises(ValueError, match=message):
        blocked.cholesky_in_place(matrix, block=block)


def test_read_only_matrix_is_refused():
    f = np.asfortranarray(np.eye(4))
    f.flags.writeable = False
    with pytest.raises(ValueError, match="writeable=False"):
        blocked.cholesky_in_place(f)


def test_cholesky_solver_by_blocks_matches_the_eigendecomposition(rng, monkeypatch):
    """The solver's whole path (factor, pocon, potrs, spectrum on demand) with blocks of 64."""
    monkeypatch.setattr(blocked, "BLOCK", 64)
    gram = _spd(rng, 300)
    rhs = rng.normal(size=(300, 2))
    chol = make_solver("cholesky", gram, 1e-3)
    assert isinstance(chol, CholeskySolver)
    times = [0.5, np.inf, 30.0]
    np.testing.assert_allclose(chol.apply(rhs, times), make_solver("eigh", gram, 1e-3).apply(
        rhs, times), rtol=1e-9)
    np.testing.assert_allclose(chol.apply(rhs, [np.inf])[0],
                               np.linalg.solve(gram + 1e-3 * np.eye(300), rhs), rtol=1e-10)
    expected = 1 / np.linalg.cond(gram + 1e-3 * np.eye(300), 1)
    assert expected / 10 < chol.reciprocal_condition < expected * 10  # pocon's estimate


FIT_AT_20000 = textwrap.dedent("""
    import json, sys
    import numpy as np
    import lazykit
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 8))
    y = np.sin(x[:, 0]) + 0.1 * rng.normal(size=20_000)
    model = lazykit.NTKRegressor(solver="cholesky", ridge=1e-2).fit(x, y)
    rows = rng.choice(20_000, size=200, replace=False)
    # kernel ridge regression: y - f(X) = ridge * coefficients, exactly, at every training point
    gap = y[rows] - model.predict(x[rows]) - 1e-2 * model.dual_coef_[rows]
    json.dump({"solver": model.solver_, "gap": float(np.abs(gap).max()),
               "finite": bool(np.isfinite(model.dual_coef_).all())}, sys.stdout)
""")


@pytest.mark.slow
def test_exact_fit_at_20000_points_exits_cleanly():
    """Was: a segmentation fault inside SciPy's dpotrf (n >= 16,000 with two threads).

    Takes minutes and about 13 GB (the kernel, then the Gram matrix and its factor).
    """
    result = subprocess.run([sys.executable, "-c", FIT_AT_20000], capture_output=True,
                            text=True, timeout=3600)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    out = json.loads(result.stdout)
    assert out["solver"] == "cholesky" and out["finite"]
    assert out["gap"] < 1e-6, out
