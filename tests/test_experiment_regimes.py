"""regimes (quick): RF vs NT vs NN with quadratic activation.

Margins read off seeds 0-4 of the quick setting: NN <= NT <= RF on every draw (to
3e-30); at N/d = 1/2, R_RF in [0.954, 0.986], R_NT in [0.243, 0.302], R_NN in
[0.0996, 0.106]; R_RF / R_NT >= 1.29 below N = d; gradient descent on the
population risk within [0.017, 0.058] of the NN optimum. Mixture: mean test-error
gaps below N = d, RF - NT in [0.079, 0.095] and NT - NN in [0.026, 0.060]; above
N = d, NT - NN in [0.002, 0.008]; every error at least 0.021 above the Bayes error.
"""

import jax
import numpy as np
import pytest

from lazykit import experiments
from lazykit._dtypes import precision
from lazykit.experiments import regimes


@pytest.fixture(scope="module")
def result():
    return experiments.run("regimes", "quick", seed=0)


def test_population_risk_matches_monte_carlo():
    """The closed form against 400k Gaussian samples, within 5 standard errors."""
    rng = np.random.default_rng(0)
    d = 5
    b = regimes.gaussian_symmetric_target(rng, d)
    w = rng.normal(size=(3, d))
    m = w.T @ (rng.normal(size=3)[:, None] * w)
    offset = 0.7
    x = rng.normal(size=(400_000, d))
    errors = (offset + np.einsum("nd,de,ne->n", x, m, x)
              - (np.einsum("nd,de,ne->n", x, b, x) - np.trace(b))) ** 2
    standard_error = errors.std() / np.sqrt(len(errors))
    assert abs(errors.mean() - regimes.population_risk(m, offset, b)) < 5 * standard_error


def test_neural_tangent_fit_is_least_squares_over_the_tangent_directions():
    """Least squares of B over the Jacobian of W^T diag(a) W (the linearized network's
    quadratic form) leaves exactly P_perp B P_perp."""
    rng = np.random.default_rng(1)
    d, width = 6, 3
    b = regimes.gaussian_symmetric_target(rng, d)
    w, a = rng.normal(size=(width, d)), rng.normal(size=width)
    with precision("float64"):
        jac = jax.jacobian(lambda wa: wa[0].T @ (wa[1][:, None] * wa[0]))((w, a))
    directions = np.column_stack([np.asarray(j).reshape(d * d, -1) for j in jac])
    coefficients = np.linalg.lstsq(directions, b.ravel(), rcond=None)[0]
    fitted = (directions @ coefficients).reshape(d, d)
    np.testing.assert_allclose(fitted, regimes.neural_tangent_fit(w, b), atol=1e-10)
    q = np.linalg.qr(w.T)[0]
    perp = np.eye(d) - q @ q.T
    assert regimes.normalized_risk(fitted, b) == pytest.approx(
        np.sum((perp @ b @ perp) ** 2) / np.sum(b**2), rel=1e-10)


def test_fits_are_optimal_in_their_sets():
    """No random perturbation inside each regime's set lowers its risk."""
    rng = np.random.default_rng(2)
    d, width = 7, 3
    b = regimes.gaussian_symmetric_target(rng, d)
    w = rng.normal(size=(width, d))
    rf, nt = regimes.random_features_fit(w, b), regimes.neural_tangent_fit(w, b)
    nn = regimes.best_rank_fit(b, width)
    values, vectors = np.linalg.eigh(nn)
    keep = np.argsort(-np.abs(values))[:width]
    values, vectors = values[keep], vectors[:, keep]
    for _ in range(20):
        a = rng.normal(size=width) * 0.1
        assert regimes.normalized_risk(rf + w.T @ (a[:, None] * w), b) >= \
            regimes.normalized_risk(rf, b)
        u = rng.normal(size=(d, width)) * 0.1
        assert regimes.normalized_risk(nt + u @ w + w.T @ u.T, b) >= \
            regimes.normalized_risk(nt, b)
        moved = vectors + rng.normal(size=(d, width)) * 0.1
        candidate = moved @ np.diag(values + rng.normal(size=width) * 0.1) @ moved.T
        assert regimes.normalized_risk(candidate, b) >= regimes.normalized_risk(nn, b)
    assert np.linalg.matrix_rank(nn) == width


def test_risks_are_ordered_and_separated_below_d(result):
    assert result.findings["max_order_violation"] < 1e-9
    assert result.findings["rf_risk_at_half"] > 0.9
    assert 0.15 < result.findings["nt_risk_at_half"] < 0.4
    assert result.findings["nn_risk_at_half"] < 0.15
    assert result.findings["min_rf_over_nt_below_d"] > 1.15


def test_nt_and_nn_reach_zero_risk_beyond_d(result):
    assert result.findings["max_nt_risk_above_d"] < 1e-12
    above = [r for r in result.tables["summary"] if r["ratio"] > 1]
    assert all(r["NN"] < 1e-12 and r["NN_trained"] < 1e-3 for r in above)
    assert all(r["RF"] > 0.5 for r in above)


def test_gradient_descent_nearly_reaches_the_nn_optimum(result):
    assert 0 <= result.findings["max_nn_trained_excess"] < 0.1


def test_mixture_errors_follow_the_same_order(result):
    findings = result.findings
    assert findings["mixture_rf_minus_nt_below_d"] > 0.04
    assert findings["mixture_nt_minus_nn_below_d"] > 0.01
    assert abs(findings["mixture_nt_minus_nn_above_d"]) < 0.02
    assert findings["mixture_min_error"] > findings["mixture_bayes_error"]


def test_result_round_trip_and_files(result, tmp_path):
    again = experiments.ExperimentResult.from_json(result.to_json())
    assert again.tables["summary"] == result.tables["summary"]
    names = {p.name for p in result.save(tmp_path)}
    assert {"results.json", "results.csv", "quadratic_risk.png", "mixture_error.png"} <= names


@pytest.mark.parametrize("width", [2, 5, 9])
def test_tangent_space_basis_gives_the_tangent_model_fit(width):
    """Least squares on the raw tangent features and on the smaller basis agree."""
    rng = np.random.default_rng(width)
    x, y = regimes.sample_mixture(rng, 400, 6, 2, 0.5)
    w, a = rng.normal(size=(width, 6)), rng.normal(size=width)
    raw, basis = regimes.tangent_features(x, w, a), regimes.tangent_space_features(x, w)
    assert basis.shape[1] <= 1 + 6 * 7 // 2
    np.testing.assert_allclose(raw @ regimes.least_squares(raw, y),
                               basis @ regimes.least_squares(basis, y), atol=1e-8)


def test_summary_columns_and_findings_are_described(result):
    """Every column of the printed summary table and every finding says what it means."""
    keys = [*result.to_frame().columns, *result.findings]
    assert [key for key in keys if not result.describe(key)] == []


def test_quadratic_student_is_the_quadratic_form():
    """The lazykit student (Dense, Monomial(2), Dense) computes c + x^T M x, and the trainer's
    apply function half_gradient is grad f / 2 = M x (autodiff through the network)."""
    import jax
    import jax.numpy as jnp

    from lazykit._dtypes import precision

    rng = np.random.default_rng(5)
    w, a, c = rng.normal(size=(4, 3)), rng.normal(size=4), 0.7
    x = rng.normal(size=(6, 3))
    with precision("float64"):
        params = regimes.to_params(jnp.asarray(w), jnp.asarray(a), jnp.asarray(c))
        out = np.asarray(regimes.quadratic_student(4, 3).apply(params, jnp.asarray(x)))[:, 0]
        m = w.T @ (a[:, None] * w)
        np.testing.assert_allclose(out, c + np.einsum("nd,de,ne->n", x, m, x), rtol=1e-12)
        bare = regimes.to_params(jnp.asarray(w), jnp.asarray(a))
        net = regimes.quadratic_student(4, 3, offset=False)
        grads = jax.vmap(jax.grad(lambda p: net.apply(bare, p[None])[0, 0]))(jnp.asarray(x))
        np.testing.assert_allclose(regimes.half_gradient(bare, jnp.asarray(x)), grads / 2,
                                   rtol=1e-12)
