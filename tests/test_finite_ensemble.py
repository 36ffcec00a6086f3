"""Finite-time predictions against an ensemble of wide finite networks trained by gradient descent.

M networks of the same description, independently initialized, are trained
full-batch on the estimators' loss ||f(X) - y||^2 / (2 n) in the
continuous-time limit of gradient descent (gradient flow, integrated by
classical Runge-Kutta steps of h = 0.2 in parameter space, float32). Their
outputs at J = 3 times x 5 test points are compared with
``predict(..., t=times, return_std=True)``.

The tolerances are statistical and fixed in advance from the ensemble size,
at level alpha = 1e-3:

- mean: Hotelling's T^2 test of the M difference vectors (member minus
  predicted mean), T^2 (M - J) / (J (M - 1)) ~ F(J, M - J). It uses the
  ensemble's own covariance across times and points, so it resolves errors
  far below the per-point standard error sigma / sqrt(M) (a 10% error in the
  time scale gives p ~ 1e-37 here);
- spread: each sample variance against the predicted sigma^2,
  (M - 1) s^2 / sigma^2 ~ chi^2(M - 1), Bonferroni over the J values.

Finite-width effects (order 1/width) and the integration error (RK4, relative
(h lambda)^5 / 120 per step and mode) are below what these tests resolve at
the chosen widths; smaller widths (erf, depth 2, width 128) make the 1/width
bias detectable (p ~ 1e-3).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import lazykit
from lazykit._dtypes import precision

ALPHA = 1e-3
STEP = 0.2
TIMES = (0.4, 2.0, 6.0)


def _train_ensemble(net, x, y, xt, *, members, readout_only, seed=0):
    """Outputs on xt, shape (len(TIMES), members, n_test), of members trained networks."""
    x, y, xt = (jnp.asarray(a, jnp.float32) for a in (x, y, xt))

    def outputs(params, inputs):
        return net.apply(params, inputs)[:, 0]

    def velocity(params):  # -grad of the loss; readout_only: the last layer alone moves
        grads = jax.grad(lambda p: 0.5 * jnp.mean((outputs(p, x) - y) ** 2))(params)
        if readout_only:
            grads = [jax.tree_util.tree_map(jnp.zeros_like, g) for g in grads[:-1]] + grads[-1:]
        return jax.tree_util.tree_map(jnp.negative, grads)

    def axpy(a, u, v):
        return jax.tree_util.tree_map(lambda ui, vi: ui + a * vi, u, v)

    def rk4_step(params, _):
        k1 = velocity(params)
        k2 = velocity(axpy(STEP / 2, params, k1))
        k3 = velocity(axpy(STEP / 2, params, k2))
        k4 = velocity(axpy(STEP, params, k3))
        increment = jax.tree_util.tree_map(lambda a, b, c, d: (a + 2 * b + 2 * c + d) / 6,
                                           k1, k2, k3, k4)
        return axpy(STEP, params, increment), None

    steps = np.round(np.diff((0.0, *TIMES)) / STEP).astype(int)

    @jax.jit
    def train(key):
        params = net.init(key, x.shape[1], dtype=jnp.float32)
        snapshots = []
        for n_steps in steps:
            params, _ = jax.lax.scan(rk4_step, params, None, length=int(n_steps))
            snapshots.append(outputs(params, xt))
        return jnp.stack(snapshots)

    with precision("float32"):
        keys = jax.random.split(jax.random.PRNGKey(seed), members)
        return np.asarray(jax.vmap(train)(keys), dtype=np.float64).transpose(1, 0, 2)


@pytest.mark.parametrize("estimator, readout_only, activation, depth, width, members", [
    (lazykit.NTKRegressor, False, "relu", 1, 1024, 256),
    (lazykit.NNGPRegressor, True, "relu", 1, 1024, 256),
    pytest.param(lazykit.NTKRegressor, False, "erf", 2, 256, 128,
                 marks=pytest.mark.slow(reason="trains 128 networks with 65k weights, ~15 s")),
])
def test_infinite_ensemble_matches_trained_finite_networks(rng, estimator, readout_only,
                                                           activation, depth, width, members):
    x = rng.normal(size=(8, 3))
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2]
    xt = rng.normal(size=(5, 3))
    net = lazykit.mlp(depth, width, activation, W_std=1.5, b_std=0.2)
    finite = _train_ensemble(net, x, y, xt, members=members, readout_only=readout_only)
    mean, std = estimator(net).fit(x, y).predict(xt, t=np.array(TIMES), return_std=True)

    differences = (finite - mean[:, None, :]).transpose(1, 0, 2).reshape(members, -1)
    n_values = differences.shape[1]
    average = differences.mean(axis=0)
    t2 = members * average @ np.linalg.solve(np.cov(differences, rowvar=False), average)
    p_value = stats.f.sf(t2 * (members - n_values) / (n_values * (members - 1)), n_values,
                         members - n_values)
    assert p_value > ALPHA, (p_value, average / (std.ravel() / np.sqrt(members)))

    low, high = stats.chi2.ppf([ALPHA / (2 * n_values), 1 - ALPHA / (2 * n_values)], members - 1)
    ratio = (members - 1) * finite.var(axis=1, ddof=1) / std**2
    assert np.all((ratio > low) & (ratio < high)), (ratio, low, high)
