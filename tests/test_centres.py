"""Nystrom centres by randomly pivoted Cholesky, against uniform sampling and the best rank."""

import numpy as np
import pytest

import lazykit
from lazykit.solvers.centres import pool_size, rpcholesky_centres, uniform_centres


def _clustered(seed):
    """A crowd near the origin and a sparse far cluster (40 of 600 points) in 6 dimensions."""
    rng = np.random.default_rng(seed)
    return np.r_[0.3 * rng.normal(size=(560, 6)), 3 + rng.normal(size=(40, 6))]


def _trace_error(gram, picked):
    """tr(K - K_nM K_MM^{-1} K_Mn): the Nystrom approximation's error in trace norm."""
    q = gram[:, picked] @ np.linalg.solve(gram[np.ix_(picked, picked)], gram[picked])
    return float(np.trace(gram - q))


def _picked(gram, m, rng, block=100):
    return rpcholesky_centres(lambda s: gram[:, s], np.diag(gram).copy(), m, rng, block=block)


def test_rpcholesky_beats_uniform_and_nears_the_best_rank():
    """Seeds 0-4, M = 40: RPCholesky 112-125, uniform 175-221, best rank-20 tail 101-106,
    sequential (block 1) RPCholesky 116-129."""
    blocked, sequential = [], []
    for seed in range(5):
        gram = lazykit.mlp(2, activation="erf").kernel(_clustered(seed)).ntk
        rng = np.random.default_rng(seed)
        uniform = _trace_error(gram, uniform_centres(600, 40, rng))
        picked = _picked(gram, 40, rng)
        assert picked.shape == (40,) and np.unique(picked).shape == (40,)
        blocked.append(_trace_error(gram, picked))
        sequential.append(_trace_error(gram, _picked(gram, 40, rng, block=1)))
        best_half_rank = np.linalg.eigvalsh(gram)[::-1][20:].sum()
        assert blocked[-1] < 0.8 * uniform
        assert blocked[-1] < 1.4 * best_half_rank
    # the blocked form with rejection keeps the sequential method's quality
    assert abs(np.mean(blocked) / np.mean(sequential) - 1) < 0.1


def test_rpcholesky_stops_at_the_numerical_rank():
    x = np.repeat(np.random.default_rng(0).normal(size=(5, 3)), 20, axis=0)  # 5 distinct points
    gram = lazykit.mlp(1).kernel(x).ntk
    picked = _picked(gram, 30, np.random.default_rng(0))
    assert picked.shape == (5,) and np.unique(x[picked], axis=0).shape == (5, 3)


def test_pool_is_bounded():
    assert pool_size(10_000, 2000) == 10_000
    assert pool_size(10**6, 2000) == 67_108  # 2^27 / M
    assert pool_size(10**6, 100_000) == 10**6  # 16 M, capped at n


@pytest.mark.parametrize("centers", ["rpcholesky", "uniform"])
def test_estimators_take_either_sampling(rng, centers):
    x, y = rng.normal(size=(200, 3)), rng.normal(size=200)
    model = lazykit.NTKRegressor(ridge=0.5, solver="nystrom", n_centers=50, centers=centers)
    again = lazykit.NTKRegressor(ridge=0.5, solver="nystrom", n_centers=50, centers=centers)
    np.testing.assert_array_equal(model.fit(x, y).predict(x), again.fit(x, y).predict(x))
    with pytest.raises(ValueError, match="'centers' parameter"):
        lazykit.NTKRegressor(solver="nystrom", centers="kmeans").fit(x, y)
