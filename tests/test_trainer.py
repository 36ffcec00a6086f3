"""The pure trainer (issue 11, item 2): make_trainer's functions, batched sweeps equal to runs
done one by one, image inputs with an (apply_fn, params, init_fn) model, callable losses,
the dtype policy, sweeps that cannot vary the initialization, and diverging sweep runs."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lazykit
from lazykit import _driver
from lazykit._dtypes import precision
from lazykit.trajectory import COLUMNS
from tests.teacher import teacher_student


@pytest.fixture(scope="module")
def data():
    return teacher_student(2, n=12, d=3, n_test=5)


def assert_same_record(got, expected, rtol=1e-10):
    """Every series, the final parameters of both models and the neuron positions."""
    np.testing.assert_array_equal(got.step, expected.step)
    for name in COLUMNS[1:]:
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=rtol,
                                   atol=0, err_msg=name)
    assert got.alpha == expected.alpha and got.learning_rate == expected.learning_rate
    pairs = [(got.params, expected.params), (got.tangent_params, expected.tangent_params),
             (got.params0, expected.params0)]
    for a, b in pairs:
        for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
            assert u.dtype == v.dtype
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=1e-300)
    if expected.neurons is None:
        assert got.neurons is None
    else:
        np.testing.assert_allclose(got.neurons, expected.neurons, rtol=rtol, atol=1e-300)


# A batched sweep is the runs done one by one ----------------------------------------------

SWEEPS = {
    "gradient descent": dict(learning_rate=16.0),
    "SGD with adam": dict(optimizer=optax.adam(0.02), batch_size=5),
}


@pytest.mark.parametrize("case", list(SWEEPS))
def test_batched_sweep_gives_the_records_of_runs_done_one_by_one(data, case):
    """3 alphas x 2 seeds stacked under vmap (one compilation) against 6 calls of train, in
    float64: every record, both models' final parameters and the neuron paths to 1e-10."""
    X, y, Xt, yt = data
    model = lazykit.TwoLayer(16, activation="tanh", symmetric=False)
    common = dict(steps=24, record_every=6, center=True, X_test=Xt, y_test=yt, **SWEEPS[case])
    sweep = lazykit.lazy_sweep(model, X, y, alphas=[3.0, 30.0, 300.0], seeds=[0, 1],
                               keep_records=True, compute_laziness=False, **common)
    assert len(sweep.records) == 6 and sweep.diverged == ()
    for record, alpha, seed in zip(sweep.records, sweep.alpha, sweep.seed, strict=True):
        alone = lazykit.train(model.replace(alpha=float(alpha)), X, y, seed=int(seed), **common)
        assert_same_record(record, alone)
        assert record.sup_deviation() == pytest.approx(sweep.deviation[
            (sweep.alpha == alpha) & (sweep.seed == seed)][0], rel=0)
    # Seeds draw different initializations; the records differ with them.
    assert not np.array_equal(sweep.records[0].params0["a"], sweep.records[1].params0["a"])


def test_one_compilation_serves_every_alpha_of_every_sweep(data):
    X, y, _, _ = data
    model = lazykit.TwoLayer(12)
    kwargs = dict(seeds=[0, 1], steps=8, learning_rate=12.0, record_every=4, compute_laziness=False)
    lazykit.lazy_sweep(model, X, y, alphas=[1.0, 10.0], **kwargs)
    trainer = lazykit.make_trainer(model, "mse", None, tangent=True, center=False,
                                   ntk_points=64, record_neurons=True)
    run = _driver.compiled(trainer, True, False, False).run
    assert run._cache_size() == 1
    other = lazykit.lazy_sweep(model, X, y, alphas=[2.0, 7.0], **kwargs)
    assert run._cache_size() == 1 and len(other.alpha) == 4


# Image inputs and an (apply_fn, params, init_fn) model ------------------------------------

def conv_net(channels=3):
    """A tiny CNN on (n, 8, 8, 1) images, by jax.lax.conv_general_dilated, and its init_fn."""

    def apply_fn(p, x):
        h = jax.lax.conv_general_dilated(x, p["k"], (2, 2), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = jnp.tanh(h + p["b"]).reshape(x.shape[0], -1)
        return h @ p["w"] / np.sqrt(h.shape[1])

    def init_fn(seed):
        rng = np.random.default_rng(seed)
        return {"k": rng.normal(size=(3, 3, 1, channels)) / 3.0, "b": np.zeros(channels),
                "w": rng.normal(size=(16 * channels, 1))}

    return apply_fn, init_fn


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(22, 8, 8, 1))
    y = np.tanh(2.0 * x[:, 2:6, 2:6, 0].mean(axis=(1, 2)))
    return x[:16], y[:16], x[16:], y[16:]


def test_train_on_images_with_an_init_fn(images):
    X, y, Xt, yt = images
    apply_fn, init_fn = conv_net()
    model = (apply_fn, None, init_fn)
    rec = lazykit.train(model, X, y, steps=12, learning_rate=1.0, record_every=3, X_test=Xt,
                        y_test=yt,
                        alpha=2.0, seed=1)
    np.testing.assert_array_equal(rec.step, [0, 3, 6, 9, 12])
    for name, value in init_fn(1).items():  # seed 1 starts from init_fn(1)
        np.testing.assert_array_equal(np.asarray(rec.params0[name]), value)
    assert rec.params["k"].dtype == np.float64  # the parameters' dtype is kept
    assert rec.train_loss[-1] < rec.train_loss[0] and np.all(np.isfinite(rec.deviation_test))
    assert rec.deviation_train[0] == 0 and rec.deviation_train[-1] > 0
    assert np.isnan(rec.pattern_change).all() and rec.neurons is None
    # The NTK of a function: 0 at step 0, measured at the last record, NaN in between.
    assert rec.ntk_change[0] == 0 and rec.ntk_change[-1] > 0
    assert np.isnan(rec.ntk_change[1:-1]).all()
    assert rec.predict(Xt).shape == (6, 1) and rec.predict(Xt, tangent=True).shape == (6, 1)
    # The final network's predictions are alpha (f(w_T) - f(w_0)) (centered).
    with precision("float64"):
        expected = 2.0 * (apply_fn(rec.params, Xt) - apply_fn(rec.params0, Xt))
    np.testing.assert_allclose(rec.predict(Xt), expected, rtol=1e-12)
    import matplotlib

    matplotlib.use("Agg")
    lines = {line.get_label(): line for line in rec.plot().axes[2].get_lines()}
    ntk_line = lines["NTK change (rel.)"]  # the last record only (step 0 is off the log axis)
    np.testing.assert_allclose(ntk_line.get_ydata(), rec.ntk_change[-1:])
    assert ntk_line.get_marker() == "o"
    every = lazykit.train(model, X, y, steps=12, learning_rate=1.0, record_every=3, alpha=2.0,
                          seed=1,
                          ntk_every=1)
    assert np.all(np.isfinite(every.ntk_change))
    np.testing.assert_allclose(every.ntk_change[-1], rec.ntk_change[-1], rtol=1e-10)
    with pytest.raises(ValueError, match=r"X and X_test must have the same shape per example; "
                                         r"got \(8, 8, 1\) and \(8, 8\)"):
        lazykit.train(model, X, y, steps=1, learning_rate=1.0, X_test=Xt[..., 0], y_test=yt)


def test_lazy_sweep_on_images_equals_train_and_varies_the_seeds(images):
    X, y, _, _ = images
    apply_fn, init_fn = conv_net()
    model = (apply_fn, None, init_fn)
    common = dict(steps=6, learning_rate=1.0, record_every=2)
    sweep = lazykit.lazy_sweep(model, X, y, alphas=[1.0, 10.0], seeds=[0, 3], keep_records=True,
                               **common)
    assert sweep.movement_slope.slope == pytest.approx(-1.0, abs=0.1)
    assert np.all(np.isfinite(sweep.kappa)) and np.all(sweep.kappa > 0)
    for record, alpha, seed in zip(sweep.records, sweep.alpha, sweep.seed, strict=True):
        assert_same_record(record, lazykit.train(model, X, y, alpha=float(alpha),
                                                 seed=int(seed), **common))
    assert not np.array_equal(sweep.records[0].params0["w"], sweep.records[1].params0["w"])
    kappa = lazykit.laziness(apply_fn, init_fn(0), X, y, alpha=1.0).kappa
    assert sweep.kappa[0] == pytest.approx(kappa, rel=1e-10)
    # SGD: every run draws its own batches (seeded by its seed), still stacked.
    sgd = dict(common, batch_size=4, ntk_points=8)
    sweep = lazykit.lazy_sweep(model, X, y, alphas=[1.0, 10.0], seeds=[0, 3], keep_records=True,
                               compute_laziness=False, **sgd)
    for record, alpha, seed in zip(sweep.records, sweep.alpha, sweep.seed, strict=True):
        assert_same_record(record, lazykit.train(model, X, y, alpha=float(alpha),
                                                 seed=int(seed), **sgd))


def test_steps_from_the_host_give_the_records_of_the_scan(data, monkeypatch):
    """The host path (one jitted step per call, used for convolutions on CPU) and the
    lax.scan path compute the same records, with gradient descent and with SGD."""
    X, y, Xt, yt = data
    model = lazykit.TwoLayer(10, activation="tanh", alpha=4.0, symmetric=False)
    for extra in (dict(learning_rate=8.0), dict(learning_rate=8.0, batch_size=4)):
        kwargs = dict(steps=10, record_every=4, X_test=Xt, y_test=yt, center=True, **extra)
        scanned = lazykit.train(model, X, y, **kwargs)
        with monkeypatch.context() as patch:
            patch.setattr(_driver, "steps_on_host", lambda *args: True)
            hosted = lazykit.train(model, X, y, **kwargs)
        assert_same_record(hosted, scanned)


# Callable losses ---------------------------------------------------------------------------

def squared_error(outputs, targets):
    return 0.5 * jnp.mean(jnp.sum((outputs - targets) ** 2, axis=1))


def test_a_callable_equal_to_mse_gives_the_same_record(data):
    X, y, Xt, yt = data
    model = lazykit.TwoLayer(16, alpha=4.0)
    kwargs = dict(steps=12, learning_rate=16.0, record_every=4, X_test=Xt, y_test=yt)
    named = lazykit.train(model, X, y, loss="mse", **kwargs)
    custom = lazykit.train(model, X, y, loss=squared_error, **kwargs)
    assert_same_record(custom, named, rtol=1e-13)
    assert custom.loss is squared_error and custom.loss_name == "squared_error"
    with pytest.raises(ValueError, match=r"loss must return a scalar; loss\(outputs, targets\) "
                                         r"returned shape \(12,\)"):
        lazykit.train(model, X, y, loss=lambda out, t: out[:, 0] - t[:, 0], steps=1,
                      learning_rate=1.0)
    with pytest.raises(ValueError, match=r"loss must be one of .* or a function"):
        lazykit.train(model, X, y, loss=3, steps=1, learning_rate=1.0)


# Seeds that cannot vary the initialization ------------------------------------------------

def test_sweeps_over_seeds_need_an_initialization_that_varies(data):
    X, y, _, _ = data
    net = lazykit.mlp(1, 4, "tanh")
    params = net.init(0, 3)
    apply_fn, init_fn = net.apply, lambda seed: net.init(seed, 3)
    kwargs = dict(alphas=[1.0, 10.0], seeds=[0, 1], steps=2, learning_rate=0.1)
    message = r"cannot vary the initialization over seeds=\[0, 1\]: the model's parameters are " \
              r"fixed .*\(apply_fn, None, init_fn\)"
    for model, extra in (((apply_fn, params), {}), ((apply_fn, params, init_fn), {}),
                         (lazykit.TwoLayer(4), {"params": lazykit.TwoLayer(4).init(0, 3)})):
        with pytest.raises(ValueError, match=message):
            lazykit.lazy_sweep(model, X, y, **kwargs, **extra)
    # One seed is fine, and an init_fn varies the seeds.
    lazykit.lazy_sweep((apply_fn, params), X, y, **{**kwargs, "seeds": [0]},
                       compute_laziness=False)
    sweep = lazykit.lazy_sweep((apply_fn, None, init_fn), X, y, **kwargs, keep_records=True,
                               compute_laziness=False)
    assert not np.array_equal(sweep.records[0].params0[0]["W"], sweep.records[1].params0[0]["W"])
    with pytest.raises(TypeError, match=r"init_fn, the third item .* must be a function"):
        lazykit.train((apply_fn, None, "init"), X, y, steps=1, learning_rate=0.1)
    with pytest.raises(ValueError, match="params are required with a plain apply_fn"):
        lazykit.train((lambda p, v: net.apply(p, v), None), X, y, steps=1, learning_rate=0.1)


# Dtypes ------------------------------------------------------------------------------------

def test_the_model_dtype_is_kept_unless_dtype_asks_otherwise(data):
    X, y, _, _ = data
    net = lazykit.mlp(1, 4, "tanh")
    params32 = net.init(0, 3, dtype="float32")
    kwargs = dict(steps=2, learning_rate=0.1, record_every=1)
    rec = lazykit.train((net.apply, params32), X, y, **kwargs)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(rec.params)} == {np.dtype("float32")}
    assert rec.predict(X).dtype == np.float32
    wide = lazykit.train((net.apply, params32), X, y, dtype="float64", **kwargs)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(wide.params)} == {np.dtype("float64")}
    drawn = lazykit.train(net, X, y, **kwargs)  # parameters lazykit draws: float64
    assert drawn.params[0]["W"].dtype == np.float64


# Diverging runs of a sweep -----------------------------------------------------------------

def test_a_sweep_keeps_its_finished_runs_and_names_the_diverged_ones(data):
    """lr = 50 diverges at alpha = 0.1 and not at 10 or 100 (tanh student, this task)."""
    X, y, _, _ = data
    model = lazykit.TwoLayer(16, activation="tanh")
    kwargs = dict(steps=50, learning_rate=50.0, record_every=25, ntk_points=0, keep_records=True,
                  compute_laziness=False)
    with pytest.warns(RuntimeWarning, match=r"1 of 3 runs diverged .*alpha=0\.1, seed=0: "
                                            r"training diverged at step \d+: the network's"):
        sweep = lazykit.lazy_sweep(model, X, y, alphas=[0.1, 10.0, 100.0], **kwargs)
    assert list(sweep.alpha) == [10.0, 100.0] and len(sweep.records) == 2
    assert [run[:2] for run in sweep.diverged] == [(0.1, 0)]
    assert sweep.diverged[0][2].startswith("training diverged at step")
    assert np.isfinite(sweep.movement_slope.slope)
    alone = lazykit.train(model.replace(alpha=10.0), X, y, steps=50, learning_rate=50.0,
                          record_every=25,
                          ntk_points=0)
    assert_same_record(sweep.records[0], alone)
    with pytest.raises(lazykit.TrainingDivergedError,
                       match=r"every run of the sweep diverged: alpha=10, seed=0: training "
                             r"diverged .*; alpha=100, seed=0"):
        lazykit.lazy_sweep(model, X, y, alphas=[10.0, 100.0], **{**kwargs, "learning_rate": 1e4})


# make_trainer's pure functions ------------------------------------------------------------

def test_make_trainer_functions_compose_under_jit_and_vmap(data):
    X, y, Xt, yt = data
    model = lazykit.TwoLayer(10, activation="tanh", symmetric=False)
    trainer = lazykit.make_trainer(model, center=True)
    with precision("float64"):
        params = model.init(0, 3, dtype="float64")
        x, t, xt, tt = (jnp.asarray(a) for a in (X, y[:, None], Xt, yt[:, None]))
        state = jax.jit(trainer.init)(params, x, alpha=5.0, learning_rate=10.0)
        assert isinstance(state, lazykit.TrainState) and state.alpha == 5.0
        # run: chunks of 4 steps, measured before their steps; a final 0-length chunk.
        final, (objectives, records) = jax.jit(trainer.run)(
            state, x, t, np.zeros((3, 4, 0), np.int32), xt, tt, np.array([4, 4, 0]))
        assert isinstance(records, lazykit.Measurement) and int(final.step) == 8
        np.testing.assert_array_equal(records.step, [0, 4, 8])
        assert objectives.shape == (3, 4, 2) and np.isnan(objectives[2]).all()
        # The same eight steps one by one, then measured.
        step, measure = jax.jit(trainer.step), jax.jit(trainer.measure)
        manual = state
        for _ in range(8):
            manual, _ = step(manual, x, t)
        again = measure(manual, x, t, xt, tt)
        for name in lazykit.Measurement._fields:
            np.testing.assert_allclose(getattr(again, name), getattr(records, name)[2],
                                       rtol=1e-10, err_msg=name)
        # measured_step measures the state it steps from (sharing the step's outputs).
        new, objective, fused = jax.jit(trainer.measured_step)(manual, x, t, None, xt, tt)
        for name in lazykit.Measurement._fields:
            np.testing.assert_allclose(getattr(fused, name), getattr(again, name), rtol=1e-12,
                                       err_msg=name)
        assert int(new.step) == 9 and objective.shape == (2,)
        # A stored tangent map (linearize) changes nothing but the cost of a tangent step.
        assert state.linear is None
        stored = jax.jit(trainer.linearize)(state, x)
        from_init = jax.jit(lazykit.make_trainer(model, center=True, linearize=True).init)(
            params, x, alpha=5.0, learning_rate=10.0)
        for start in (stored, from_init):
            moved, value = step(start, x, t)
            moved, value = step(moved, x, t)  # the second tangent step uses J (wbar - w_0)
            reference, reference_value = step(step(state, x, t)[0], x, t)
            np.testing.assert_allclose(value, reference_value, rtol=1e-12)
            for u, v in zip(jax.tree_util.tree_leaves(moved.tangent_params),
                            jax.tree_util.tree_leaves(reference.tangent_params), strict=True):
                np.testing.assert_allclose(u, v, rtol=1e-12)
        # vmap over alphas: one stacked state per alpha.
        states = jax.vmap(lambda a: trainer.init(params, x, alpha=a, learning_rate=10.0))(
            jnp.array([5.0, 50.0]))
        _, (_, stacked) = jax.vmap(trainer.run, in_axes=(0, None, None, None))(
            states, x, t, np.zeros((3, 4, 0), np.int32))
        np.testing.assert_allclose(stacked.train_loss[0], records.train_loss, rtol=1e-10)
        assert stacked.deviation_train[1, -1] < stacked.deviation_train[0, -1]
        with pytest.raises(ValueError,
                           match="learning_rate is required with the default optimizer"):
            trainer.init(params, x)
        with pytest.raises(ValueError, match="learning_rate is set by the optax optimizer"):
            lazykit.make_trainer(model, optimizer=optax.sgd(0.1)).init(params, x, learning_rate=0.1)


def test_laziness_accepts_images(images):
    X, y, _, _ = images
    apply_fn, init_fn = conv_net()
    result = lazykit.laziness(apply_fn, init_fn(0), X, y, alpha=10.0)
    smaller = lazykit.laziness(apply_fn, init_fn(0), X, y, alpha=100.0)
    assert result.kappa > 0
    # Centered: the residual is ||y|| whatever alpha, the Jacobian scales with alpha and the
    # Hessian too, so kappa falls like 1 / alpha.
    assert smaller.kappa == pytest.approx(result.kappa / 10.0, rel=1e-6)


def test_no_warning_from_a_sweep_without_divergence(data):
    X, y, _, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lazykit.lazy_sweep(lazykit.TwoLayer(8), X, y, alphas=[1.0, 2.0], steps=2, learning_rate=8.0,
                           compute_laziness=False)
