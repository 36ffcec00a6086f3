"""spline_1d (quick): the qualitative results, with margins read off seeds 0-7
(ridge slope in [-0.69, -0.42], min-norm slope in [-2.1, -0.59], gradient-descent
lambda slope in [-1.09, -1.02], its distances <= 0.033 (gradient flow, lazykit's
NTKRegressor; 10 discrete steps had given [-1.05, -0.98] and <= 0.024), final distances
<= 0.0018 and 0.0043)."""

import itertools

import numpy as np
import pytest
from scipy import interpolate

from lazykit import experiments
from lazykit.experiments import spline_1d


@pytest.fixture(scope="module")
def result():
    return experiments.run("spline_1d", "quick", seed=0)


def test_ridge_network_converges_to_the_smoothing_spline(result):
    summary = result.tables["summary"]
    assert result.findings["ridge_slope"] < -0.3
    assert summary[-1]["ridge_to_smoothing_spline"] < 0.005
    assert summary[-1]["ridge_to_smoothing_spline"] < 0.3 * summary[0]["ridge_to_smoothing_spline"]


def test_min_norm_network_converges_to_the_interpolating_spline(result):
    assert result.findings["min_norm_slope"] < -0.4
    assert result.tables["summary"][-1]["min_norm_to_interpolating_spline"] < 0.01


def test_early_stopped_gradient_descent_tracks_smoothing_splines(result):
    assert -1.25 < result.findings["gd_lambda_slope"] < -0.75
    assert result.findings["gd_max_distance"] < 0.05
    lambdas = [r["matched_lambda"] for r in result.tables["gradient_descent"]]
    assert all(a > b for a, b in itertools.pairwise(lambdas))


def test_random_feature_fit_is_kernel_ridge_with_free_affine_part():
    """Direct check of the closed form against a brute-force least-squares solve."""
    rng = np.random.default_rng(1)
    x, y = spline_1d.make_data(rng, 12, 0.1)
    signs, kinks = rng.choice([-1.0, 1.0], 50), rng.uniform(-1.5, 1.5, 50)
    fit = spline_1d.RandomFeatureFit(x, y, signs, kinks, ridge=0.3)
    design = np.column_stack([np.ones_like(x), x, spline_1d.relu_features(x, signs, kinks)])
    penalty = np.diag([0.0, 0.0] + [0.3] * 50)
    theta = np.linalg.solve(design.T @ design + penalty, design.T @ y)
    np.testing.assert_allclose(fit.c, theta[2:], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.theta, theta[:2], rtol=1e-8, atol=1e-10)


def test_smoothing_spline_reference_is_scipys_natural_spline():
    rng = np.random.default_rng(2)
    x, y = spline_1d.make_data(rng, 10, 0.0)
    tiny = interpolate.make_smoothing_spline(x, y, lam=1e-12)(x)
    np.testing.assert_allclose(tiny, y, atol=1e-6)


def test_result_round_trip_and_files(result, tmp_path):
    again = experiments.ExperimentResult.from_json(result.to_json())
    assert again.tables["summary"] == result.tables["summary"]
    written = result.save(tmp_path)
    names = {p.name for p in written}
    assert {"results.json", "results.csv", "fits.png", "convergence.png",
            "gradient_descent.png"} <= names
    assert result.to_frame().shape[0] == len(result.settings["widths"])


def test_reproducible_from_seed():
    a = experiments.run("spline_1d", "quick", seed=3)
    b = experiments.run("spline_1d", "quick", seed=3)
    assert a.tables["runs"] == b.tables["runs"]


def test_summary_columns_and_findings_are_described(result):
    """Every column of the printed summary table and every finding says what it means."""
    keys = [*result.to_frame().columns, *result.findings]
    assert [key for key in keys if not result.describe(key)] == []
