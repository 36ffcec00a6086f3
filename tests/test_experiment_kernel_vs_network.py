"""kernel_vs_network (quick): networks approach the analytic NTK regressor as the width grows
and their tangent model as alpha grows.

Margins read off seeds 0-4 of the quick setting: slope of the distance to the NTK regressor
against width (alpha = 10) in [-0.46, -0.38]; slope of the deviation from the tangent model
against alpha (width 1024) in [-0.52, -0.43] (ReLU: about -1/2, see docs/lazy_training.md);
parameter-movement slope -0.96 on every seed; distance of the widest lazy network to the NTK
regressor 0.075-0.080; its test MSE within 2.5% of the NTK regressor's; every distance and
deviation decreasing in width and in alpha.
"""

import itertools

import numpy as np
import pytest

from lazykit import experiments
from lazykit.experiments import kernel_vs_network


@pytest.fixture(scope="module")
def result():
    return experiments.run("kernel_vs_network", "quick", seed=0)


def _networks(result):
    return [r for r in result.tables["summary"] if r["model"] == "network"]


def test_networks_approach_the_ntk_regressor_as_width_grows(result):
    assert -0.7 < result.findings["ntk_distance_slope"] < -0.2
    assert result.findings["widest_lazy_distance_to_ntk"] < 0.12
    nets = _networks(result)
    for alpha in result.settings["alphas"]:
        distances = [r["distance_to_ntk"] for r in nets if r["alpha"] == alpha]
        assert all(a > b for a, b in itertools.pairwise(distances)), (alpha, distances)
        assert distances[-1] < 0.6 * distances[0]


def test_networks_approach_their_tangent_model_as_alpha_grows(result):
    assert -0.8 < result.findings["tangent_deviation_slope"] < -0.3
    assert -1.05 < result.findings["movement_slope"] < -0.9
    nets = _networks(result)
    for width in result.settings["widths"]:
        deviations = [r["deviation_from_tangent"] for r in nets if r["width"] == width]
        assert all(a > b for a, b in itertools.pairwise(deviations)), (width, deviations)


def test_tangent_model_trains_the_same_whatever_alpha(result):
    """alpha T f follows the same linear dynamics for every alpha (docs/architecture.md,
    "Lazy training"): identical test loss up to float32 rounding."""
    nets = _networks(result)
    for width in result.settings["widths"]:
        losses = [r["tangent_test_mse"] for r in nets if r["width"] == width]
        np.testing.assert_allclose(losses, losses[0], rtol=1e-4)


def test_widest_lazy_network_predicts_like_the_ntk_regressor(result):
    findings = result.findings
    assert abs(findings["widest_lazy_test_mse"] / findings["ntk_test_mse"] - 1) < 0.06
    kernels = {r["model"]: r for r in result.tables["summary"] if r["model"] != "network"}
    assert set(kernels) == set(kernel_vs_network.KERNEL_MODELS)
    assert all(r["test_error"] < 0.15 for r in kernels.values())


def test_task_is_balanced_normalized_and_split_by_seed():
    x, y, x_test, y_test = kernel_vs_network.load_task(0, 100, 50)
    assert y_test.shape == (50,)
    assert x.shape == (100, 64) and x_test.shape == (50, 64)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 8.0)
    assert set(np.unique(y)) == {-1.0, 1.0} and 0.3 < np.mean(y > 0) < 0.7
    other = kernel_vs_network.load_task(1, 100, 50)[0]
    assert not np.allclose(x, other)
    with pytest.raises(ValueError, match="n_train \\+ n_test"):
        kernel_vs_network.load_task(0, 1500, 500)


def test_result_files(result, tmp_path):
    names = {p.name for p in result.save(tmp_path)}
    assert {"results.json", "results.csv", "runs.csv", "kernel_vs_network.png"} <= names
    again = experiments.ExperimentResult.from_json(result.to_json())
    assert again.findings == pytest.approx(result.findings)


def test_summary_columns_and_findings_are_described(result):
    """Every column of the printed summary table and every finding says what it means."""
    keys = [*result.to_frame().columns, *result.findings]
    assert [key for key in keys if not result.describe(key)] == []
