"""lazy_vs_active (quick): the qualitative results, with margins read off seeds 0-5:
Spearman correlation of test loss with tau 0.9-1.0 (end and best), test loss at
the largest tau over the smallest 10.5-30.8 (end) and 9.2-26.8 (best), final
train loss <= 1.1e-4 (null loss about 6e-3), mean relative neuron travel 138-170
at tau = 0.01 and 0.024-0.028 at tau = 10; in the 2-D picture 14.8-29.7 (active)
and 0.011-0.029 (lazy)."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from lazykit import experiments
from lazykit._dtypes import precision
from lazykit.experiments import lazy_vs_active as lva


@pytest.fixture(scope="module")
def result():
    return experiments.run("lazy_vs_active", "quick", seed=0)


def test_test_loss_grows_with_the_initialization_scale(result):
    assert result.findings["spearman_end"] >= 0.8
    assert result.findings["spearman_best"] >= 0.8
    assert result.findings["ratio_end_largest_to_smallest_tau"] > 5
    assert result.findings["ratio_best_largest_to_smallest_tau"] > 4
    end = [r["test_loss_end"] for r in result.tables["summary"]]
    assert min(end[-2:]) > 2 * max(end[:2])


def test_every_scale_fits_the_training_set(result):
    """The lazy runs generalize worse although they fit the data too: not under-training."""
    null = np.mean([r["null_test_loss"] for r in result.tables["runs"]])
    assert result.findings["max_train_loss_end"] < 0.05 * null


def test_neurons_travel_far_when_active_and_barely_when_lazy(result):
    assert result.findings["travel_smallest_tau"] > 50
    assert result.findings["travel_largest_tau"] < 0.1
    assert result.findings["travel_2d_active"] > 5
    assert result.findings["travel_2d_lazy"] < 0.1
    travel = [r["neuron_travel"] for r in result.tables["summary"]]
    assert all(a > b for a, b in itertools.pairwise(travel))


def test_symmetric_initialization_gives_a_zero_function():
    rng = np.random.default_rng(0)
    a, c = lva.symmetric_init(rng, 6, 3)
    x = lva.unit_rows(rng, 5, 3)
    with precision("float64"):
        out = lva.student(jnp.asarray(a)[None], jnp.asarray(c)[None], jnp.asarray(x))
    assert out.shape == (1, 5)
    np.testing.assert_allclose(out, 0.0, atol=1e-15)
    with pytest.raises(ValueError, match="width must be even"):
        lva.symmetric_init(rng, 5, 3)


def test_batched_scales_train_independently():
    """Training several taus in one batch gives each the run it would have alone."""
    rng = np.random.default_rng(1)
    task = lva.teacher_task(rng, 5, 3, 20, 10)
    cfg = dict(width=8, eta=10.0)
    both = lva._train_task(cfg, task, np.random.default_rng(2), [0.1, 3.0], 50, 10, "float64")
    alone = lva._train_task(cfg, task, np.random.default_rng(2), [3.0], 50, 10, "float64")
    np.testing.assert_allclose(both[3][1], alone[3][0], rtol=1e-12)
    np.testing.assert_allclose(both[6][1], alone[6][0], rtol=1e-12)
    assert both[2] == [80.0, 80.0 / 9]  # lr = m eta / max(1, tau^2)


def test_result_round_trip_and_files(result, tmp_path):
    again = experiments.ExperimentResult.from_json(result.to_json())
    assert again.tables["summary"] == result.tables["summary"]
    names = {p.name for p in result.save(tmp_path)}
    assert {"results.json", "results.csv", "test_loss_vs_tau.png", "neurons.png"} <= names
    assert result.to_frame().shape[0] == len(result.settings["taus"])


def test_picture_reproducible_from_seed():
    pic = dict(lva.SETTINGS["quick"]["picture"], steps=200)
    first = lva._picture(pic, lva.SETTINGS["quick"], 4)
    assert first == lva._picture(pic, lva.SETTINGS["quick"], 4)


def test_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="setting must be one of"):
        lva.run("medium")


def test_summary_columns_and_findings_are_described(result):
    """Every column of the printed summary table and every finding says what it means."""
    keys = [*result.to_frame().columns, *result.findings]
    assert [key for key in keys if not result.describe(key)] == []
