"""lazykit.train: the record, both models trained alike, the kernel-regression limits,
the optimizers, and clear errors for bad input and diverging runs."""

import io
import itertools

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lazykit
from lazykit._progress import Progress
from tests.teacher import numpy_network_params, ridgeless, teacher_student


@pytest.fixture(scope="module")
def data():
    return teacher_student(0, n=12, d=3, n_test=6)


def test_record_contents(data):
    X, y, Xt, yt = data
    rec = lazykit.train(lazykit.TwoLayer(20, alpha=5.0), X, y, steps=30, learning_rate=20.0,
                        record_every=10, X_test=Xt, y_test=yt)
    np.testing.assert_array_equal(rec.step, [0, 10, 20, 30])
    np.testing.assert_allclose(rec.time, rec.step * 20.0)
    assert rec.deviation_train[0] == 0 and rec.param_movement[0] == 0 and rec.ntk_change[0] == 0
    assert rec.pattern_change[0] == 0 and np.all(rec.pattern_change[1:] >= 0)
    assert np.all(np.isfinite(rec.test_loss)) and np.all(np.isfinite(rec.deviation_test))
    assert rec.train_loss[-1] < rec.train_loss[0]
    assert rec.neurons.shape == (4, 20, 5)
    np.testing.assert_array_equal(rec.neurons[0][:, :4], np.asarray(rec.params0["a"]))
    frame = rec.to_dataframe()
    assert list(frame.columns[:3]) == ["step", "time", "train_loss"] and len(frame) == 4
    assert (frame["alpha"] == 5.0).all()
    assert rec.sup_deviation("test") == np.max(rec.deviation_test)
    assert rec.predict(Xt).shape == (6, 1) and rec.predict(Xt).dtype == np.float64
    # Steps that are not a multiple of record_every still end with a record.
    short = lazykit.train(lazykit.TwoLayer(20, alpha=5.0), X, y, steps=25, learning_rate=20.0,
                          record_every=10, tangent=False, ntk_points=0, record_neurons=False)
    np.testing.assert_array_equal(short.step, [0, 10, 20, 25])
    assert np.all(np.isnan(short.deviation_train)) and short.neurons is None
    with pytest.raises(ValueError, match="trained no tangent model"):
        short.predict(Xt, tangent=True)


@pytest.mark.parametrize("batch_size", [None, 5])
def test_network_and_tangent_see_the_same_data_steps_and_rate(data, batch_size):
    """A model linear in its parameters is its own tangent model: both trajectories must be
    identical step for step (same batches in the same order, same learning rate)."""
    X, y, _, _ = data

    def apply_fn(w, x):
        return jnp.tanh(x) @ w

    w0 = np.random.default_rng(0).normal(size=(3, 1))
    rec = lazykit.train((apply_fn, w0), X, y, steps=40, learning_rate=0.3, batch_size=batch_size,
                        record_every=8, center=False, seed=3)
    assert rec.sup_deviation() < 1e-13
    np.testing.assert_allclose(rec.train_loss, rec.tangent_train_loss, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(rec.params), np.asarray(rec.tangent_params),
                               rtol=1e-12)
    again = lazykit.train((apply_fn, w0), X, y, steps=40, learning_rate=0.3, batch_size=batch_size,
                          record_every=8, center=False, seed=3)
    np.testing.assert_array_equal(again.train_loss, rec.train_loss)
    if batch_size is not None:
        other = lazykit.train((apply_fn, w0), X, y, steps=40, learning_rate=0.3,
                              batch_size=batch_size,
                              record_every=8, center=False, seed=4)
        assert not np.array_equal(other.train_loss, rec.train_loss)


def test_tangent_model_converges_to_empirical_ntk_ridgeless_regression(data):
    """From f(w_0) = 0 (symmetric initialization), gradient descent on the MSE drives the
    tangent model to Theta(x, X) Theta^-1 y (1e-6, float64); the network approaches the same
    predictor as alpha grows at fixed width."""
    X, y, Xt, _ = data
    model = lazykit.TwoLayer(100, alpha=10.0)
    params0 = model.init(0, 3, dtype="float64")
    k_train = np.asarray(lazykit.empirical_ntk(model, params0, X))
    target = ridgeless(k_train, np.asarray(lazykit.empirical_ntk(model, params0, Xt, X)), y)
    # Function-space step lr / (n alpha^2) Theta: the same for every alpha; 1 / lambda_max.
    lr = len(y) * 10.0**2 / np.linalg.eigvalsh(k_train)[-1]
    errors = []
    for alpha in (1.0, 10.0, 100.0, 1000.0):
        rec = lazykit.train(model.replace(alpha=alpha), X, y, steps=10000, learning_rate=lr,
                            record_every=10000, params=params0, ntk_points=0,
                            record_neurons=False)
        np.testing.assert_allclose(rec.predict(Xt, tangent=True)[:, 0], target, atol=1e-6)
        errors.append(np.abs(rec.predict(Xt)[:, 0] - target).max() / np.abs(target).max())
    # Over 4 data/initialization seeds the relative errors were 0.21-1.1, 0.05-0.70,
    # 0.04-0.16 and 0.002-0.006 at alpha = 1, 10, 100, 1000.
    assert all(b < a for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 0.02, errors


def test_network_converges_to_analytic_ntk_regressor_as_width_grows():
    """NTK scaling alpha = sqrt(m), steps scaled by m; mean relative error over 2 seeds.

    Over 5 data seeds the fitted slopes were -0.37 to -0.67 and err(1024) / err(64)
    was at most 0.36."""
    X, y, Xt, _ = teacher_student(1, n=8, d=3, n_test=6)
    n, errors = len(y), []
    for m in (64, 256, 1024):
        model = lazykit.TwoLayer(m, alpha=np.sqrt(m))
        k = model.kernel(np.vstack([X, Xt])).ntk
        target = ridgeless(k[:n, :n], k[n:, :n], y)
        lr = n * m / np.linalg.eigvalsh(k[:n, :n])[-1]
        errors.append(np.mean([
            np.abs(lazykit.train(model, X, y, steps=8000, learning_rate=lr, record_every=8000,
                                 seed=s,
                                 ntk_points=0, record_neurons=False, tangent=False)
                   .predict(Xt)[:, 0] - target).max() / np.abs(target).max()
            for s in (0, 1)]))
    assert errors[-1] < 0.6 * errors[0], errors
    assert lazykit.fit_loglog_slope([64, 256, 1024], errors).slope < -0.2, errors


def test_network_models_are_centered_and_pairs_work(data):
    X, y, _, _ = data
    net = lazykit.mlp(2, 16, "tanh", out_dim=1)
    params = numpy_network_params(net, 3, 0)
    rec = lazykit.train(net, X, y, steps=20, learning_rate=0.5, alpha=4.0, params=params,
                        record_every=10)
    assert rec.deviation_train[0] == 0  # centered: alpha (f(w) - f(w_0)) starts at 0
    np.testing.assert_allclose(rec.train_loss[0], 0.5 * np.mean(y**2), rtol=1e-12)
    assert rec.train_loss[-1] < rec.train_loss[0] and rec.ntk_change[-1] > 0
    assert np.isnan(rec.pattern_change).all()  # tanh has no activation pattern
    pair = lazykit.train((net.apply, params), X, y, steps=20, learning_rate=0.5, alpha=4.0,
                         record_every=10)
    np.testing.assert_allclose(pair.train_loss, rec.train_loss, rtol=1e-10)
    relu = lazykit.mlp(1, 8, "relu", out_dim=1)
    rec = lazykit.train(relu, X, y, steps=10, learning_rate=0.5, alpha=2.0, record_every=10,
                        params=numpy_network_params(relu, 3, 1))
    assert rec.pattern_change[-1] > 0 and rec.neurons is None


def test_logistic_loss(data):
    X, y, _, _ = data
    labels = np.where(y > 0, 1.0, -1.0)
    rec = lazykit.train(lazykit.TwoLayer(20, alpha=3.0), X, labels, loss="logistic", steps=50,
                        learning_rate=50.0, record_every=25)
    np.testing.assert_allclose(rec.train_loss[0], np.log(2.0), rtol=1e-12)
    assert rec.train_loss[-1] < 0.7 * rec.train_loss[0]
    with pytest.raises(ValueError, match=r"labels -1 or \+1"):
        lazykit.train(lazykit.TwoLayer(4), X, (labels > 0).astype(float), loss="logistic",
                      steps=1, learning_rate=1.0)


def test_mean_field_multiplies_the_step_by_the_width(data):
    X, y, _, _ = data
    model = lazykit.TwoLayer(20, alpha=1.0)
    a = lazykit.train(model, X, y, steps=10, learning_rate=0.5, mean_field=True, record_every=10)
    b = lazykit.train(model, X, y, steps=10, learning_rate=10.0, record_every=10)
    np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-12)
    assert a.learning_rate == 10.0
    with pytest.raises(ValueError, match="mean_field=True is the alpha = 1 regime"):
        lazykit.train(model.replace(alpha=2.0), X, y, steps=1, learning_rate=0.5, mean_field=True)


def test_optax_optimizer_and_float32(data):
    X, y, _, _ = data
    model = lazykit.TwoLayer(20, alpha=5.0)
    rec = lazykit.train(model, X, y, steps=30, optimizer=optax.adam(0.05), record_every=10)
    assert rec.train_loss[-1] < rec.train_loss[0] and rec.learning_rate is None
    np.testing.assert_array_equal(rec.time, rec.step)
    with pytest.raises(ValueError, match="give exactly one of learning_rate"):
        lazykit.train(model, X, y, steps=1, learning_rate=0.1, optimizer=optax.sgd(0.1))
    rec32 = lazykit.train(model, X, y, steps=10, learning_rate=20.0, dtype="float32",
                          record_every=10)
    assert rec32.params["a"].dtype == np.float32 and rec32.predict(X).dtype == np.float32


def test_bad_input_is_refused_with_clear_errors(data):
    X, y, Xt, yt = data
    model = lazykit.TwoLayer(4, alpha=2.0)
    net = lazykit.mlp(1, 4)
    with pytest.raises(ValueError, match=r"alpha must be a finite number > 0; got -1\.0"):
        lazykit.train(net, X, y, steps=1, learning_rate=1.0, alpha=-1.0,
                      params=numpy_network_params(
            net, 3))
    with pytest.raises(ValueError, match=r"alpha must be a finite number > 0; got 0\.0"):
        lazykit.train(lazykit.TwoLayer(4, alpha=0.0), X, y, steps=1, learning_rate=1.0)
    with pytest.raises(ValueError, match="alpha is set by the TwoLayer model"):
        lazykit.train(model, X, y, steps=1, learning_rate=1.0, alpha=3.0)
    with pytest.raises(ValueError, match="width must be an integer >= 1; got 0"):
        lazykit.train(lazykit.TwoLayer(0), X, y, steps=1, learning_rate=1.0)
    with pytest.raises(ValueError, match="X and y must have the same number of rows; got X "
                                         "with 12 rows and y with 11"):
        lazykit.train(model, X, y[:11], steps=1, learning_rate=1.0)
    with pytest.raises(ValueError, match="X_test and y_test must have the same number of rows"):
        lazykit.train(model, X, y, steps=1, learning_rate=1.0, X_test=Xt, y_test=yt[:2])
    with pytest.raises(ValueError, match="X_test and y_test go together"):
        lazykit.train(model, X, y, steps=1, learning_rate=1.0, X_test=Xt)
    with pytest.raises(ValueError, match="X and X_test must have the same number of features"):
        lazykit.train(model, X, y, steps=1, learning_rate=1.0, X_test=Xt[:, :2], y_test=yt)
    with pytest.raises(ValueError, match=r"the model has 1 output\(s\) but y has 2 column"):
        lazykit.train(model, X, np.c_[y, y], steps=1, learning_rate=1.0)
    with pytest.raises(ValueError, match="batch_size must be at most the number of training"):
        lazykit.train(model, X, y, steps=1, learning_rate=1.0, batch_size=13)
    with pytest.raises(ValueError, match="steps must be an integer >= 1; got 0"):
        lazykit.train(model, X, y, steps=0, learning_rate=1.0)
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        lazykit.train(model, X, y, steps=1, learning_rate=-1.0)
    with pytest.raises(ValueError, match="X must be finite"):
        lazykit.train(model, np.where(X > 1, np.nan, X), y, steps=1, learning_rate=1.0)
    with pytest.raises(ValueError, match="params are required with a plain apply_fn"):
        lazykit.train(lambda p, x: net.apply(p, x), X, y, steps=1, learning_rate=1.0)
    with pytest.raises(TypeError, match=r"model must be a lazykit\.TwoLayer"):
        lazykit.train("mlp", X, y, steps=1, learning_rate=1.0)
    with pytest.raises(ValueError, match="made for 2 features but X has 3"):
        lazykit.train(model, X, y, steps=1, learning_rate=1.0, params=model.init(0, 2))
    with pytest.raises(ValueError, match="params were given twice"):
        lazykit.train((net.apply, numpy_network_params(net, 3)), X, y, steps=1, learning_rate=1.0,
                      params=numpy_network_params(net, 3))
    with pytest.raises(ValueError, match="loss must be one of"):
        lazykit.train(model, X, y, steps=1, learning_rate=1.0, loss="hinge")


def test_diverging_run_stops_with_an_error_naming_the_step(data, monkeypatch):
    X, y, _, _ = data
    model = lazykit.TwoLayer(20, alpha=5.0)
    # Both losses are R(alpha f), the recorded scale (issue 16: it was R / alpha^2 before).
    with pytest.raises(lazykit.TrainingDivergedError,
                       match=r"training diverged at step 1: the network's loss is \d\.\d+e\+\d+ "
                             r"\(it was 0\.5 at step 0\).*use a smaller learning rate") as info:
        lazykit.train(model, X, y, steps=200, learning_rate=1e6, record_every=50)
    assert isinstance(info.value, FloatingPointError)
    # Without the growth test, the run goes on until the loss is infinite or NaN.
    monkeypatch.setattr(lazykit.training, "DIVERGENCE_FACTOR", np.inf)
    with pytest.raises(lazykit.TrainingDivergedError,
                       match=r"training diverged at step \d+: the (network|tangent model)'s "
                             r"loss is (inf|nan)"):
        lazykit.train(model, X, y, steps=200, learning_rate=1e6, record_every=50)
    # A tangent model that blows up while the network stays bounded is caught too, although
    # its loss never overflows (growth by 1e8): the network tanh(w) x is bounded, its
    # tangent model is not.
    monkeypatch.undo()

    def bounded(w, x):
        return jnp.tanh(w) * x[:, :1]

    with pytest.raises(lazykit.TrainingDivergedError,
                       match=r"at step \d+: the tangent model's loss is \d\.\d+e\+\d+"):
        lazykit.train((bounded, np.zeros(1)), X, y, steps=400, learning_rate=100.0, center=False,
                      record_every=100)


def test_progress_bar_is_silent_unless_asked(data, capsys):
    X, y, _, _ = data
    model = lazykit.TwoLayer(20, alpha=5.0)
    lazykit.train(model, X, y, steps=30, learning_rate=20.0, record_every=10)
    assert capsys.readouterr().err == ""  # not a terminal under pytest
    lazykit.train(model, X, y, steps=30, learning_rate=20.0, record_every=10, verbose=True)
    assert "train: [" in capsys.readouterr().err
    stream = io.StringIO()
    with Progress(4, "demo", verbose=False, stream=stream) as bar:
        bar.update(4)
    assert stream.getvalue() == ""


def test_plots(data):
    import matplotlib

    matplotlib.use("Agg")
    X, y, Xt, yt = data
    rec = lazykit.train(lazykit.TwoLayer(20, alpha=5.0), X, y, steps=30, learning_rate=20.0,
                        record_every=10, X_test=Xt, y_test=yt)
    assert len(rec.plot().axes) == 3
    assert len(rec.plot_neurons(dims=(0, -1)).axes) == 1
    net = lazykit.mlp(1, 4)
    no_neurons = lazykit.train(net, X, y, steps=2, learning_rate=0.1,
                               params=numpy_network_params(net, 3))
    with pytest.raises(ValueError, match="no neuron positions"):
        no_neurons.plot_neurons()
