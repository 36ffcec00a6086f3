"""implicit_bias (quick): both layers (F1) vs output layer only (F2) on the cluster grid.

Margins read off seeds 0-4: error gaps (F2 - F1) against d = 2, 4, 6, 8, 10 of 0,
0.022-0.032, 0.21-0.25, 0.23-0.33, 0.029-0.17 (largest gap 0.23-0.33, mean over the spurious
dimensions 0.14-0.18); gap at the largest n 0.0067-0.018; final training loss <= 0.0046;
F1 margin >= 1.86 times the F2 max-margin. The full setting (two draws) gave the same picture
(gaps up to 0.33, ratio >= 2.09).
"""

import numpy as np
import pytest

from lazykit import experiments
from lazykit.experiments import implicit_bias


@pytest.fixture(scope="module")
def result():
    return experiments.run("implicit_bias", "quick", seed=0)


def test_cluster_grid_is_a_checkerboard_with_spurious_noise():
    x, y = implicit_bias.cluster_grid(np.random.default_rng(0), 2000, dim=5, grid=3)
    cells = np.floor((x[:, :2] + 1) * 3 / 2).astype(int)
    np.testing.assert_array_equal(y, np.where(cells.sum(axis=1) % 2 == 0, 1.0, -1.0))
    assert np.all(np.abs(x) <= 1)
    assert abs(np.corrcoef(x[:, 2], y)[0, 1]) < 0.1
    with pytest.raises(ValueError, match="dim must be at least 2"):
        implicit_bias.cluster_grid(np.random.default_rng(0), 5, dim=1)
    with pytest.raises(ValueError, match="cluster_width"):
        implicit_bias.cluster_grid(np.random.default_rng(0), 5, dim=3, cluster_width=1.5)


def test_relu_feature_kernel_matches_random_features():
    """Against 200k random unit neurons, within 5 standard errors per entry."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(4, 3))
    a = rng.normal(size=(200_000, 4))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    features = np.maximum(np.column_stack([x, np.ones(4)]) @ a.T, 0.0)
    products = features[:, None, :] * features[None, :, :]
    error = np.abs(products.mean(-1) - implicit_bias.relu_feature_kernel(x, x))
    assert np.all(error < 5 * products.std(-1) / np.sqrt(a.shape[0]))


def test_rkhs_max_margin_on_a_linear_example():
    """Linear kernel on four points: the max-margin direction is (1, 0), margin 1."""
    x = np.array([[1.0, 0.5], [1.0, -0.5], [-1.0, 0.3], [-2.0, 0.0]])
    y = np.array([1.0, 1.0, -1.0, -1.0])
    coefficients, margin = implicit_bias.rkhs_max_margin(x @ x.T, y)
    np.testing.assert_allclose(coefficients @ x, [1.0, 0.0], atol=1e-8)
    assert margin == pytest.approx(1.0, rel=1e-8)


def test_both_layers_generalize_better_with_spurious_dimensions(result):
    findings = result.findings
    assert abs(findings["error_gap_at_smallest_dim"]) < 0.05
    assert findings["max_error_gap_by_dim"] > 0.15
    assert findings["mean_error_gap_spurious_dims"] > 0.05


def test_both_layers_learn_with_fewer_samples(result):
    largest = result.tables["by_n"][-1]
    assert largest["both layers"] < 0.05
    assert result.findings["error_gap_at_largest_n"] > 0.0


def test_training_separates_and_f1_margin_beats_the_f2_max_margin(result):
    """max F1 margin >= max F2 margin (||f||_F1 <= ||f||_F2); gradient descent gets there."""
    assert result.findings["max_final_train_loss"] < 0.05
    assert result.findings["min_margin_ratio_F1_over_F2"] > 1.0
    margins = [r["margin"] for r in result.tables["margins"]]
    assert margins[-1] > 0 and margins[-1] >= max(margins[:-1]) - 1e-12


def test_result_round_trip_and_files(result, tmp_path):
    again = experiments.ExperimentResult.from_json(result.to_json())
    assert again.tables["by_dim"] == result.tables["by_dim"]
    names = {p.name for p in result.save(tmp_path)}
    assert {"results.json", "results.csv", "test_error.png", "margins.png"} <= names


def test_summary_columns_and_findings_are_described(result):
    """Every column of the printed summary table and every finding says what it means."""
    keys = [*result.to_frame().columns, *result.findings]
    assert [key for key in keys if not result.describe(key)] == []


def test_margin_figure_shows_every_point(result):
    """The margin starts negative (down to about -1) and ends positive near 1e-2: every
    plotted point lies inside its axes' limits (the old axis cut off the negative part)."""
    import matplotlib.pyplot as plt

    figure = implicit_bias.plot(result)["margins"]
    margins = [r["margin"] for r in result.tables["margins"]]
    assert min(margins) < -0.1 and max(margins) > 0
    plotted = []
    for ax in figure.axes:
        (x_low, x_high), (y_low, y_high) = ax.get_xlim(), ax.get_ylim()
        for line in ax.get_lines():
            for x, y in line.get_xydata():
                assert y_low <= y <= y_high
                if len(line.get_xdata()) and line.get_xdata()[0] > 0:  # not an axhline
                    assert x_low <= x <= x_high
                    plotted.append(y)
    assert set(margins) <= set(plotted)
    plt.close("all")
