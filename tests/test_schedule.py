"""train_to_checkpoints: gradient descent to chosen steps, one run or a batch of runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lazykit
from lazykit._dtypes import precision
from lazykit.schedule import checkpoint_lengths, train_to_checkpoints

MODEL = lazykit.TwoLayer(16, alpha=3.0, symmetric=False)


def _data(seed, n=12, d=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, 1))


def _hand_descent(params, x, y, steps, lr):
    """Plain gradient descent on mean |alpha f - y|^2 / 2 / alpha^2, written out here."""
    def loss(p):
        return 0.5 * jnp.mean((MODEL.apply(p, x) - y) ** 2) / MODEL.alpha**2

    grad = jax.jit(jax.grad(loss))
    for _ in range(steps):
        params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grad(params))
    return params


def test_checkpoints_match_gradient_descent_written_out():
    x, y = _data(0)
    trainer = lazykit.make_trainer(MODEL, tangent=False, ntk_points=0)
    with precision("float64"):
        params = MODEL.init(1, input_dim=3, dtype="float64")
        state = trainer.init(params, jnp.asarray(x), learning_rate=0.5)
        state, record = train_to_checkpoints(trainer, state, jnp.asarray(x), jnp.asarray(y),
                                             [1, 5, 30])
        expected = _hand_descent(params, jnp.asarray(x), jnp.asarray(y), 30, 0.5)
        at_five = _hand_descent(params, jnp.asarray(x), jnp.asarray(y), 5, 0.5)
        loss_at_five = 0.5 * float(jnp.mean((MODEL.apply(at_five, x) - y) ** 2))
    assert record.step.tolist() == [0, 1, 5, 30]
    for key in ("a", "c"):
        np.testing.assert_allclose(state.params[key], expected[key], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(record.train_loss[2], loss_at_five, rtol=1e-12)
    np.testing.assert_allclose(record.neurons[-1], MODEL.neurons(expected), rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("data_batched", [False, True])
def test_batched_runs_equal_the_runs_one_by_one(data_batched):
    """Runs at different scales and learning rates (and data) stacked under vmap."""
    trainer = lazykit.make_trainer(MODEL, tangent=False, ntk_points=0)
    scales, lrs = [0.5, 2.0], [0.3, 0.1]
    data = [_data(seed) for seed in (3, 4)] if data_batched else [_data(3)] * 2
    with precision("float64"):
        base = MODEL.init(2, input_dim=3, dtype="float64")
        states, single = [], []
        for (x, y), scale, lr in zip(data, scales, lrs, strict=True):
            params = jax.tree_util.tree_map(lambda p, s=scale: s * p, base)
            state = trainer.init(params, jnp.asarray(x), learning_rate=lr)
            states.append(state)
            single.append(train_to_checkpoints(trainer, state, jnp.asarray(x), jnp.asarray(y),
                                               [2, 7], x_test=jnp.asarray(x[:4]),
                                               y_test=jnp.asarray(y[:4])))
        stack = jax.tree_util.tree_map(lambda *v: jnp.stack(v), *states)
        xs = np.stack([x for x, _ in data]) if data_batched else data[0][0]
        ys = np.stack([y for _, y in data]) if data_batched else data[0][1]
        end, record = train_to_checkpoints(
            trainer, stack, jnp.asarray(xs), jnp.asarray(ys), [2, 7],
            x_test=jnp.asarray(xs[..., :4, :]), y_test=jnp.asarray(ys[..., :4, :]),
            batched=True, data_batched=data_batched)
    for i, (state, measured) in enumerate(single):
        np.testing.assert_allclose(end.params["a"][i], state.params["a"], rtol=1e-10)
        np.testing.assert_allclose(record.test_loss[i], measured.test_loss, rtol=1e-10)
        np.testing.assert_allclose(record.train_loss[i], measured.train_loss, rtol=1e-10)


def test_checkpoint_lengths_and_bad_checkpoints():
    assert checkpoint_lengths([3, 4, 10]).tolist() == [3, 1, 6, 0]
    for bad in ([], [0, 5], [5, 5], [2.5], [[1, 2]]):
        with pytest.raises(ValueError, match="checkpoints must"):
            checkpoint_lengths(bad)
    trainer = lazykit.make_trainer(MODEL, tangent=False, ntk_points=0)
    x, y = _data(0)
    state = trainer.init(MODEL.init(0, input_dim=3), x, learning_rate=0.1)
    with pytest.raises(ValueError, match="data_batched=True needs batched=True"):
        train_to_checkpoints(trainer, state, x, y, [1], data_batched=True)


def test_kept_parameters_are_those_of_runs_stopped_at_each_checkpoint():
    x, y = _data(5)
    trainer = lazykit.make_trainer(MODEL, tangent=False, ntk_points=0)
    with precision("float64"):
        state = trainer.init(MODEL.init(3, input_dim=3, dtype="float64"), jnp.asarray(x),
                             learning_rate=0.2)
        end, record, kept = train_to_checkpoints(trainer, state, jnp.asarray(x),
                                                 jnp.asarray(y), [3, 8], keep_params=True)
        stopped = [train_to_checkpoints(trainer, state, jnp.asarray(x), jnp.asarray(y),
                                        [k])[0].params for k in (3, 8)]
    assert kept["a"].shape == (2, *state.params["a"].shape)
    for i, params in enumerate(stopped):
        np.testing.assert_allclose(kept["a"][i], params["a"], rtol=1e-12)
        np.testing.assert_allclose(kept["c"][i], params["c"], rtol=1e-12)
    np.testing.assert_allclose(end.params["c"], stopped[-1]["c"], rtol=1e-12)
    assert record.step.tolist() == [0, 3, 8]
