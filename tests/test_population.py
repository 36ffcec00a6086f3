"""lazykit.population: closed-form population losses of two-layer nets on Gaussian inputs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lazykit
from lazykit._dtypes import precision
from lazykit.population import (
    gaussian_feature_kernel,
    pack_teacher,
    population_loss,
    population_model,
    random_features_loss,
    take_loss,
)

RELU = functools.partial(gaussian_feature_kernel, "relu")


def _arc_cosine(a1, a2):
    """Cho and Saul's degree-1 arc-cosine kernel, written out here (with arccos)."""
    n1, n2 = np.linalg.norm(a1, axis=1), np.linalg.norm(a2, axis=1)
    cos = np.clip(a1 @ a2.T / np.outer(n1, n2), -1, 1)
    theta = np.arccos(cos)
    return np.outer(n1, n2) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)


def test_relu_kernel_is_the_arc_cosine_kernel():
    rng = np.random.default_rng(0)
    a1, a2 = rng.normal(size=(5, 4)), rng.normal(size=(3, 4))
    with precision("float64"):
        k = np.asarray(gaussian_feature_kernel("relu", jnp.asarray(a1), jnp.asarray(a2)))
        k11 = np.asarray(gaussian_feature_kernel("relu", jnp.asarray(a1)))
    np.testing.assert_allclose(k, _arc_cosine(a1, a2), rtol=1e-13)
    np.testing.assert_allclose(k11, _arc_cosine(a1, a1), rtol=1e-13)


def test_sigmoid_kernel_matches_monte_carlo():
    """E sigma(a_i . x) sigma(a_j . x) against 400k Gaussian samples, within 5 standard errors."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 2)) * 2
    x = rng.normal(size=(400_000, 2))
    sigma = lazykit.get_activation("sigmoid_like")
    h = np.asarray(jax.jit(sigma)(x @ a.T))
    products = h[:, :, None] * h[:, None, :]
    with precision("float64"):
        k = np.asarray(gaussian_feature_kernel(sigma, jnp.asarray(a)))
    assert np.all(np.abs(products.mean(0) - k) < 5 * products.std(0) / np.sqrt(len(x)))


def test_gradient_matches_central_differences_at_duplicate_neurons():
    """Differentiable through kernel_fn, duplicated rows (angle 0) included."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(4, 3))
    a[1] = a[0]
    w = rng.normal(size=4)
    with precision("float64"):
        def energy(p):
            return w @ RELU(p) @ w

        grad = np.asarray(jax.grad(energy)(jnp.asarray(a)))
        step, numeric = 1e-6, np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            e = np.zeros_like(a)
            e[idx] = step
            numeric[idx] = (float(energy(jnp.asarray(a + e)))
                            - float(energy(jnp.asarray(a - e)))) / (2 * step)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_population_loss_matches_monte_carlo():
    rng = np.random.default_rng(3)
    teacher, v = rng.normal(size=(2, 3)), np.array([1.0, -1.0])
    a, c = rng.normal(size=(4, 3)), rng.normal(size=4)
    x = rng.normal(size=(400_000, 3))
    f = np.maximum(x @ a.T, 0) @ c / 4
    y = np.maximum(x @ teacher.T, 0) @ v
    with precision("float64"):
        exact = float(population_loss(RELU, *map(jnp.asarray, (a, c, teacher, v))))
    assert exact == pytest.approx(0.5 * np.mean((f - y) ** 2), rel=0.02)


def test_random_features_loss_is_the_best_output_layer():
    rng = np.random.default_rng(4)
    teacher, v = rng.normal(size=(2, 3)), np.array([1.0, 1.0])
    a = rng.normal(size=(5, 3))
    with precision("float64"):
        args = [jnp.asarray(t) for t in (teacher, v)]
        best = float(random_features_loss(RELU, jnp.asarray(a), *args))
        # c / m = K_ss^{-1} K_st v (least squares in L2), so c = m K_ss^{-1} K_st v
        k_ss, k_st = RELU(jnp.asarray(a)), RELU(jnp.asarray(a), args[0])
        c = 5 * jnp.linalg.solve(k_ss, k_st @ args[1])
        at_best = float(population_loss(RELU, jnp.asarray(a), c, *args))
        others = [float(population_loss(RELU, jnp.asarray(a), c + jnp.asarray(
            rng.normal(size=5)), *args)) for _ in range(3)]
    assert best == pytest.approx(at_best, rel=1e-8)
    assert all(best < other for other in others)


def test_trainer_on_the_population_model_is_gradient_descent_written_out():
    rng = np.random.default_rng(5)
    teacher, v = rng.normal(size=(2, 3)), np.array([1.0, -1.0])
    start = {"a": rng.normal(size=(6, 3)), "c": rng.normal(size=6)}
    trainer = lazykit.make_trainer(population_model(RELU), take_loss, tangent=False,
                                   center=False, ntk_points=0)
    with precision("float64"):
        params = jax.tree_util.tree_map(jnp.asarray, start)
        packed = pack_teacher(jnp.asarray(teacher), jnp.asarray(v))
        state = trainer.init(params, packed, learning_rate=0.5)
        state, record = lazykit.train_to_checkpoints(trainer, state, packed, jnp.zeros((1, 1)),
                                                     [10, 40])
        grad = jax.jit(jax.grad(lambda p: population_loss(RELU, p["a"], p["c"],
                                                          jnp.asarray(teacher), jnp.asarray(v))))
        losses = []
        for step in range(40):
            if step == 10:
                losses.append(float(population_loss(RELU, params["a"], params["c"],
                                                     jnp.asarray(teacher), jnp.asarray(v))))
            params = jax.tree_util.tree_map(lambda p, g: p - 0.5 * g, params, grad(params))
    np.testing.assert_allclose(state.params["a"], params["a"], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(state.params["c"], params["c"], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(record.train_loss[1], losses[0], rtol=1e-11)
    assert population_model(RELU) is population_model(RELU)  # cached: one trainer per kernel


def test_padded_students_in_the_population_model_change_nothing():
    """Live rows in the packed teacher: dead neurons neither count nor move."""
    rng = np.random.default_rng(6)
    teacher, v = rng.normal(size=(2, 3)), np.array([1.0, -1.0])
    a, c = rng.normal(size=(5, 3)), rng.normal(size=5)
    apply = population_model(RELU)
    with precision("float64"):
        t, w = jnp.asarray(teacher), jnp.asarray(v)
        plain = {"a": jnp.asarray(a[:3]), "c": jnp.asarray(c[:3])}
        padded = {"a": jnp.asarray(a), "c": jnp.asarray(c)}
        live = jnp.asarray([1.0, 1.0, 1.0, 0.0, 0.0])
        value, grad = jax.value_and_grad(lambda p: apply(p, pack_teacher(t, w))[0, 0])(plain)
        p_value, p_grad = jax.value_and_grad(
            lambda p: apply(p, pack_teacher(t, w, live))[0, 0])(padded)
    assert float(p_value) == pytest.approx(float(value), rel=1e-12)
    np.testing.assert_allclose(p_grad["a"][:3], grad["a"], rtol=1e-10)
    np.testing.assert_allclose(p_grad["c"][3:], 0.0)
    np.testing.assert_allclose(p_grad["a"][3:], 0.0)
