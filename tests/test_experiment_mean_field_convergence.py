"""mean_field_convergence (quick): the qualitative results, with margins read off
seeds 0-4 (losses relative to that of f = 0, geometric means over the 2 teachers
of a run unless "worst"):

* ReLU, width 64: trained 1.2e-5 to 5.2e-5 (worst teacher 1.2e-4), random
  features 0.049 to 0.13, their ratio 1970 to 5060. Width 4 < m0 = 5: trained
  0.011 to 0.060, stalled (loss ratio over the last 10% of the steps 1.000);
  width 64 still falling (ratio >= 1.17).
* sigmoid, width 64: trained 3.6e-5 to 2.9e-4 (worst teacher 6.5e-4), random
  features 0.015 to 0.080, ratio 250 to 920. Width 4: trained 0.0054 to 0.031,
  stalled (ratio <= 1.002); width 64 still falling (ratio >= 1.17).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lazykit import experiments
from lazykit._dtypes import precision
from lazykit.activations import get_activation
from lazykit.experiments import mean_field_convergence as mf


@pytest.fixture(scope="module")
def result():
    return experiments.run("mean_field_convergence", "quick", seed=0)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_trained_nets_reach_the_floor_and_random_features_do_not(result, activation):
    findings = result.findings
    assert findings[f"{activation}_trained_worst_wide"] < 3e-3
    assert findings[f"{activation}_random_features_widest"] > 5e-3
    assert findings[f"{activation}_gap_widest"] > 20
    rows = [r for r in result.tables["summary"] if r["activation"] == activation]
    assert all(r["random_features_relative"] > 10 * rows[-1]["trained_relative"] for r in rows)
    assert rows[-1]["random_features_relative"] < rows[0]["random_features_relative"]


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_narrower_than_the_teacher_stalls_above_the_floor(result, activation):
    findings = result.findings
    assert findings[f"{activation}_trained_narrowest"] > 2e-3
    assert findings[f"{activation}_trained_narrowest"] > 10 * findings[
        f"{activation}_trained_widest"]
    assert findings[f"{activation}_late_decrease_narrowest"] < 1.02
    assert findings[f"{activation}_late_decrease_wide_min"] > 1.05


def test_population_loss_matches_monte_carlo():
    rng = np.random.default_rng(0)
    teacher, signs = mf.teacher_network(rng, 4, 3, 2.0)
    a, c = rng.normal(size=(5, 4)), rng.normal(size=5)
    x = rng.normal(size=(400_000, 4))
    for name, spec in mf.ACTIVATIONS.items():
        sigma = get_activation("relu" if name == "relu" else "sigmoid_like")
        y = np.asarray(jax.jit(sigma)(x @ teacher.T)) @ signs
        f = np.asarray(jax.jit(sigma)(x @ a.T)) @ c / 5
        sampled = 0.5 * np.mean((f - y) ** 2)
        with precision("float64"):
            exact = float(mf.population_loss(spec["kernel"], jnp.asarray(a), jnp.asarray(c),
                                             jnp.asarray(teacher), jnp.asarray(signs)))
        assert exact == pytest.approx(sampled, rel=0.02)


def test_relu_kernel_gradient_matches_the_general_dual():
    """The written-out derivative (custom JVP) equals autodiff through lazykit's dual,
    duplicated rows (theta = 0) included."""
    rng = np.random.default_rng(1)
    with precision("float64"):
        a = jnp.asarray(rng.normal(size=(6, 3))).at[1].set(0.0).at[1, 0].set(1.0)
        a = a.at[2].set(2 * a[0])
        w = jnp.asarray(rng.normal(size=6))
        dual = functools.partial(mf.dual_kernel, get_activation("relu"))
        mine = jax.jit(jax.grad(lambda p: w @ mf.relu_kernel(p, p) @ w))(a)
        general = jax.jit(jax.grad(lambda p: w @ dual(p, p) @ w))(a)
        np.testing.assert_allclose(jax.jit(mf.relu_kernel)(a, a), jax.jit(dual)(a, a),
                                   atol=1e-14)
        np.testing.assert_allclose(mine, general, rtol=1e-10, atol=1e-12)


def test_padded_neurons_change_nothing():
    """Dead (padding) neurons change neither the loss, nor the live neurons' gradients,
    nor the random-feature optimum, and receive zero gradients themselves."""
    rng = np.random.default_rng(2)
    teacher, signs = mf.teacher_network(rng, 3, 2, 1.0)
    a, c = mf.sphere_init(rng, 6, 3)
    live = np.array([1, 1, 1, 1, 0, 0.0])
    with precision("float64"):
        args = [jnp.asarray(v) for v in (teacher, signs)]
        grad = jax.jit(jax.value_and_grad(mf.population_loss, argnums=(1, 2)),
                       static_argnums=0)
        plain, (g_a, g_c) = grad(mf.relu_kernel, jnp.asarray(a[:4]), jnp.asarray(c[:4]), *args,
                                 jnp.ones(4))
        padded, (p_a, p_c) = grad(mf.relu_kernel, jnp.asarray(a), jnp.asarray(c), *args,
                                  jnp.asarray(live))
        rf_plain = mf.random_feature_loss(mf.relu_kernel, jnp.asarray(a[:4]), *args,
                                          jnp.ones(4))
        rf_padded = mf.random_feature_loss(mf.relu_kernel, jnp.asarray(a), *args,
                                           jnp.asarray(live))
    assert float(padded) == pytest.approx(float(plain), rel=1e-12)
    np.testing.assert_allclose(p_a[:4], g_a, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(p_c[:4], g_c, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(p_a[4:], 0.0)
    np.testing.assert_allclose(p_c[4:], 0.0)
    assert float(rf_padded) == pytest.approx(float(rf_plain), rel=1e-9)


def test_random_features_optimum_beats_any_output_layer():
    rng = np.random.default_rng(3)
    teacher, signs = mf.teacher_network(rng, 3, 2, 1.0)
    a, _ = mf.sphere_init(rng, 8, 3)
    with precision("float64"):
        args = [jnp.asarray(v) for v in (teacher, signs)]
        best = float(mf.random_feature_loss(mf.relu_kernel, jnp.asarray(a), *args))
        for _ in range(3):
            c = jnp.asarray(rng.normal(size=8))
            assert best <= float(mf.population_loss(mf.relu_kernel, jnp.asarray(a), c, *args))


def test_result_round_trip_and_files(result, tmp_path):
    again = experiments.ExperimentResult.from_json(result.to_json())
    assert again.tables["summary"] == result.tables["summary"]
    names = {p.name for p in result.save(tmp_path)}
    assert {"results.json", "results.csv", "loss_vs_width.png", "learning_curves.png"} <= names


def test_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="setting must be one of"):
        mf.run("medium")


def test_summary_columns_and_findings_are_described(result):
    """Every column of the printed summary table and every finding says what it means."""
    keys = [*result.to_frame().columns, *result.findings]
    assert [key for key in keys if not result.describe(key)] == []


def test_unconverged_quick_setting_is_detected_and_said(result):
    """Quick (3000 steps): the wide nets' loss still falls at the end and the ReLU loss rises
    with the width; the notes, the panel titles and a footnote of the figure say so."""
    import matplotlib.pyplot as plt

    falling = {a: mf.still_falling(result.tables["summary"], a) for a in mf.ACTIVATIONS}
    assert falling == {"relu": [8, 16, 64], "sigmoid": [8, 16, 64]}
    relu, sigmoid = result.notes
    assert relu.startswith("relu: not converged at m = 8, 16, 64") and "rise" in relu
    assert sigmoid.startswith("sigmoid: not converged") and "rise" not in sigmoid
    assert "Notes:" in result.summary_text()
    figure = mf.plot(result)["loss_vs_width"]
    titles = [ax.get_title() for ax in figure.axes]
    assert all("not converged at m = 8, 16, 64" in title for title in titles)
    assert any("step budget" in text.get_text() for text in figure.texts)
    plt.close("all")


def test_converged_runs_get_no_warning():
    rows = [dict(activation=a, width=w, trained_relative=1e-3 / w, late_decrease_min=1.001)
            for a in mf.ACTIVATIONS for w in (4, 8)]
    assert mf.convergence_notes(rows, steps=100) == []
    rows[1]["late_decrease_min"] = 1.2  # relu, m = 8: still falling, loss below m = 4's
    (note,) = mf.convergence_notes(rows, steps=100)
    assert note.startswith("relu: not converged at m = 8:") and "rise" not in note
