"""Issue 16, items 1, 7 and 11: the divergence test at any alpha, memory refusals of the
empirical and Monte Carlo kernels, clear errors for bad inputs, targets and parameters
(Equinox-like modules), the optax time axis and the laziness docstring."""

import importlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lazykit
from lazykit.empirical import memory_needed
from lazykit.kernels import compute
from tests.teacher import teacher_student


@pytest.fixture(scope="module")
def data():
    X, y, _, _ = teacher_student(0, n=8, d=3)
    return X, y


# Item 1: the divergence test compares R(alpha f) with R(alpha f) ------------------------

@pytest.mark.parametrize("alpha", [1e-5, 1e-3])
def test_small_alpha_with_a_negligible_step_is_not_a_divergence(data, alpha):
    """F_alpha = R(alpha f) / alpha^2 is 1e10 times R at alpha = 1e-5; the old test compared it
    with R and stopped at step 0. With lr = 1e-20 nothing moves: every loss is the first."""
    X, y = data
    record = lazykit.train(lazykit.TwoLayer(16, alpha=alpha), X, y, steps=5, learning_rate=1e-20,
                           record_every=5)
    initial = 0.5 * np.mean(y**2)  # symmetric initialization: alpha f(w_0) = 0
    np.testing.assert_allclose(record.train_loss, initial, rtol=1e-12)
    np.testing.assert_allclose(record.tangent_train_loss, initial, rtol=1e-12)


@pytest.mark.parametrize("alpha", [1e-3, 100.0])
def test_real_divergence_is_caught_at_the_first_bad_step_at_any_alpha(data, alpha):
    """Step 1 of lr = 1e6 multiplies R by ~1e14 at every alpha (alpha f moves at a speed
    independent of alpha). The error names step 1 and the loss R(alpha f) that a one-step
    record measures (the same scale as 'it was ... at step 0')."""
    X, y = data
    model = lazykit.TwoLayer(16, alpha=alpha)
    one_step = lazykit.train(model, X, y, steps=1, learning_rate=1e6, record_every=1, ntk_points=0)
    assert one_step.train_loss[1] > lazykit.training.DIVERGENCE_FACTOR * one_step.train_loss[0]
    with pytest.raises(lazykit.TrainingDivergedError) as info:
        lazykit.train(model, X, y, steps=20, learning_rate=1e6, record_every=20, ntk_points=0)
    message = str(info.value)
    assert message.startswith("training diverged at step 1: the network's loss is "
                              f"{one_step.train_loss[1]:.3g} (it was "
                              f"{one_step.train_loss[0]:.3g} at step 0).")


def test_objective_to_loss_undoes_the_alpha_scaling():
    losses = np.array([[2.0, 4.0]])
    np.testing.assert_allclose(lazykit.training._objective_to_loss(losses, 1e-5),
                               losses * 1e-10, rtol=1e-15)


# Item 11: divergence wording and the time axis with an optax optimizer -----------------

def test_divergence_message_with_an_optax_optimizer_reads_as_a_sentence(data):
    X, y = data
    with pytest.raises(lazykit.TrainingDivergedError) as info:
        lazykit.train(lazykit.TwoLayer(16, alpha=1.0), X, y, steps=4, optimizer=optax.sgd(1e7),
                      record_every=4, ntk_points=0)
    message = str(info.value)
    assert "optimizer's;" not in message
    assert message.endswith("The optax optimizer is unstable at its learning rate; use a "
                            "smaller learning rate (for example a tenth of it).")


def test_divergence_message_names_sgd_and_the_learning_rate(data):
    X, y = data
    with pytest.raises(lazykit.TrainingDivergedError,
                       match=r"\)\. SGD with learning_rate=1e\+06 is unstable; use a smaller"):
        lazykit.train(lazykit.TwoLayer(16, alpha=1.0), X, y, steps=4, learning_rate=1e6,
                      batch_size=4,
                      record_every=4, ntk_points=0)


def test_optax_runs_are_plotted_against_steps_not_gradient_flow_time(data):
    import matplotlib

    matplotlib.use("Agg")
    X, y = data
    model = lazykit.TwoLayer(16, alpha=4.0)
    adam = lazykit.train(model, X, y, steps=4, optimizer=optax.adam(1e-2), record_every=2,
                         ntk_points=0)
    gd = lazykit.train(model, X, y, steps=4, learning_rate=0.5, record_every=2, ntk_points=0)
    np.testing.assert_array_equal(adam.time, adam.step)
    np.testing.assert_array_equal(gd.time, gd.step * 0.5)
    assert [ax.get_xlabel() for ax in adam.plot().axes] == ["steps"] * 3
    assert [ax.get_xlabel() for ax in gd.plot().axes] == ["time (steps x lr)"] * 3


# Item 7: targets of train and laziness ---------------------------------------------------

BAD_TARGETS = [
    (lambda y: y + 1j, TypeError, r"y must hold real numbers; got complex dtype complex128"),
    (lambda y: "abc", ValueError, r"y must have shape \(n,\) or \(n, outputs\); got the scalar "
                                  r"'abc'"),
    (lambda y: ["a"] * y.size, TypeError, r"y must hold real numbers; got dtype <U1"),
    (lambda y: np.where(y > 0, np.nan, y), ValueError, r"y must be finite; found nan"),
    (lambda y: [[1.0, 2.0], [3.0]], TypeError, r"y must be an array of shape \(n,\)"),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD_TARGETS)
def test_train_and_laziness_name_bad_targets(data, make, error, message):
    X, y = data
    model = lazykit.TwoLayer(16, alpha=1.0)
    with pytest.raises(error, match=message):
        lazykit.train(model, X, make(y), steps=1, learning_rate=1.0)
    with pytest.raises(error, match=message):
        lazykit.laziness(model, model.init(0, 3), X, make(y))


def test_train_names_bad_test_targets(data):
    X, y = data
    with pytest.raises(TypeError, match="y_test must hold real numbers; got complex"):
        lazykit.train(lazykit.TwoLayer(16), X, y, steps=1, learning_rate=1.0, X_test=X,
                      y_test=y + 1j)


# Item 11: Equinox-like modules as params -------------------------------------------------

@jax.tree_util.register_pytree_with_keys_class
class _Module:
    """A stand-in for an Equinox module: its activation function is a pytree leaf."""

    def __init__(self, weight, activation):
        self.weight, self.activation = weight, activation

    def tree_flatten_with_keys(self):
        keys = (jax.tree_util.GetAttrKey("weight"), jax.tree_util.GetAttrKey("activation"))
        return tuple(zip(keys, (self.weight, self.activation), strict=True)), None

    @classmethod
    def tree_unflatten(cls, _, children):
        return cls(*children)

    def __call__(self, x):
        return self.activation(x @ self.weight)


def _module_entry_points(X, y, module):
    def apply_fn(p, x):
        return p(x)

    return {
        "train": lambda: lazykit.train(apply_fn, X, y, steps=1, learning_rate=1.0, params=module),
        "laziness": lambda: lazykit.laziness(apply_fn, module, X, y),
        "empirical_ntk": lambda: lazykit.empirical_ntk(apply_fn, module, X),
        "linearize": lambda: lazykit.linearize(apply_fn, module),
    }


@pytest.mark.parametrize("entry", ["train", "laziness", "empirical_ntk", "linearize"])
def test_a_module_with_function_leaves_gets_a_clear_type_error(data, entry):
    X, y = data
    module = _Module(jnp.ones((3, 1)), jax.nn.relu)  # jax.nn.relu is a custom_jvp object
    name = "params0" if entry == "linearize" else "params"
    with pytest.raises(TypeError, match=rf"{name} must be a pytree of arrays; the leaf "
                                        rf"{name}\.activation is a custom_jvp .*eqx\.partition"):
        _module_entry_points(X, y, module)[entry]()


def test_parameters_must_be_real_and_finite(data):
    X, y = data
    model = lazykit.TwoLayer(4)
    params = model.init(0, 3, dtype="float64")
    a = np.array(params["a"])
    a[0, 0] = np.nan
    nan_params = {"a": a, "c": params["c"]}
    with pytest.raises(ValueError, match=r"params must be finite; the leaf params\['a'\] holds "
                                         "NaN or inf"):
        lazykit.empirical_ntk(model, nan_params, X)
    with pytest.raises(ValueError, match=r"params must be finite; the leaf params\['a'\]"):
        lazykit.train(model, X, y, steps=1, learning_rate=1.0, params=nan_params)
    with pytest.raises(TypeError, match=r"params must hold real numbers; the leaf params\['c'\] "
                                        "has dtype complex128"):
        lazykit.empirical_ntk(model, {"a": params["a"], "c": np.asarray(params["c"]) + 1j}, X)
    # Large float64 values are finite: the check must not round them to float32.
    lazykit.tangent.check_params({"w": np.array([1e300])})


# Item 7: inputs of empirical_ntk ---------------------------------------------------------

def test_empirical_ntk_refuses_non_finite_inputs_naming_them(rng):
    model = lazykit.TwoLayer(8)
    params = model.init(0, 2, dtype="float64")
    x = rng.normal(size=(4, 2))
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"x1 must be finite; found nan at index \(2, 1\)"):
        lazykit.empirical_ntk(model, params, bad)
    infinite = x.copy()
    infinite[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"x2 must be finite; found inf at index \(0, 0\)"):
        lazykit.empirical_ntk(model, params, x, infinite)
    with pytest.raises(ValueError, match="x1 must be finite"):
        lazykit.empirical_ntk(lambda p, v: jnp.tanh(v @ p), rng.normal(size=(2, 1)), bad)


def test_empirical_ntk_treats_one_dimensional_inputs_like_network_kernel(rng):
    """A lazykit model refuses (n,) inputs with Network.kernel's error (not an IndexError),
    also under jit; a plain function with scalar examples keeps working."""
    net = lazykit.mlp(1, 8)
    x = rng.normal(size=5)
    with pytest.raises(ValueError) as expected:
        net.kernel(x)
    with pytest.raises(ValueError) as got:
        lazykit.empirical_ntk(net, net.init(0, 1), x)
    assert str(got.value) == str(expected.value)
    assert "Reshape with x.reshape(-1, 1)" in str(got.value)
    model = lazykit.TwoLayer(8)
    params = model.init(0, 1, dtype="float64")
    with pytest.raises(ValueError, match=r"x1 must have shape \(n_samples, n_features\); got a "
                                         r"traced array of shape \(5,\)"):
        jax.jit(lambda v: lazykit.empirical_ntk(model, params, v))(x)
    # f(p, x_i) = p x_i: d f / d p = x_i, so the NTK is the outer product of x with itself.
    k = lazykit.empirical_ntk(lambda p, v: p * v, 1.5, x)
    np.testing.assert_allclose(np.asarray(k), np.outer(x, x), rtol=1e-14)


def test_empirical_ntk_refuses_empty_and_scalar_inputs(rng):
    model = lazykit.TwoLayer(8)
    params = model.init(0, 2)
    with pytest.raises(ValueError, match=r"x1 must have at least one sample and one feature; "
                                         r"got shape \(0, 2\)"):
        lazykit.empirical_ntk(model, params, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="x1 must be 2-D"):
        lazykit.empirical_ntk(lambda p, v: p * v, 1.0, 3.0)
    with pytest.raises(TypeError, match="x2 must hold real numbers; got complex"):
        lazykit.empirical_ntk(model, params, np.ones((2, 2)), np.ones((2, 2)) * 1j)


# Item 7: memory refusals ------------------------------------------------------------------

def test_empirical_ntk_refuses_a_kernel_that_cannot_fit_before_allocating(rng):
    """n = 300,000: the (n, n) float64 kernel alone is 670 GiB."""
    x = rng.normal(size=(300_000, 2))
    model = lazykit.TwoLayer(8)
    with pytest.raises(lazykit.InsufficientMemoryError,
                       match=r"the empirical NTK of shape \(300000, 300000\) in float64 "
                             r"\(mode='trace', implementation='structured': 670\.55 GiB for the "
                             r"result.*Use fewer points"):
        lazykit.empirical_ntk(model, model.init(0, 2, dtype="float64"), x)
    with pytest.raises(lazykit.InsufficientMemoryError, match=r"shape \(300000, 300000, 2, 2\).*"
                                                              r"mode='trace' \(o\^2 times"):
        lazykit.empirical_ntk(lambda p, v: v @ p, np.ones((2, 2)), x, mode="full")


def test_monte_carlo_kernel_refuses_a_kernel_that_cannot_fit(rng):
    x = rng.normal(size=(300_000, 2))
    with pytest.raises(lazykit.InsufficientMemoryError,
                       match=r"the Monte Carlo NNGP and NTK of shape \(300000, 300000\) in "
                             r"float64 with batches of 2 networks.*smaller batch_size"):
        lazykit.monte_carlo_kernel(lazykit.mlp(1, 8), x, n_samples=2, batch_size=8)


def test_memory_refusals_use_the_shared_check(rng, monkeypatch):
    """With 1 MB free, a 1000-point kernel (8 MB) is refused by both; the check is the one of
    the exact kernels (patching its available_memory is seen)."""
    monkeypatch.setattr(compute, "available_memory", lambda: 10**6)
    x = rng.normal(size=(1000, 2))
    model = lazykit.TwoLayer(8)
    for run in (lambda: lazykit.empirical_ntk(model, model.init(0, 2), x),
                lambda: lazykit.empirical_ntk(lambda p, v: v @ p, np.ones((2, 1)), x),
                lambda: lazykit.monte_carlo_kernel(lazykit.mlp(1, 8), x, n_samples=2)):
        with pytest.raises(lazykit.InsufficientMemoryError,
                           match=r"only 0\.00 GiB of memory is available"):
            run()


@pytest.mark.parametrize(("implementation", "mode", "expected"), [
    # result n1 n2 (o^2 for full); structured: 3 more (n1, n2) arrays.
    ("structured", "trace", (10 * 20 * 8, 3 * 10 * 20 * 8)),
    ("structured", "full", (10 * 20 * 4 * 8, 3 * 10 * 20 * 4 * 8)),
    ("structured", "diagonal", (10 * 8, 3 * 10 * 8)),
    # Jacobians of all n1 + n2 rows (o x P each), plus two results.
    ("jacobian", "trace", (10 * 20 * 8, 30 * 2 * 7 * 8 + 2 * 10 * 20 * 8)),
    # The (n1, n2, o, o) kernel twice, plus a chunk of n2 rows of o (P + n1 o) numbers.
    ("ntvp", "trace", (10 * 20 * 8, 2 * 10 * 20 * 4 * 8 + 20 * 2 * (7 + 10 * 2) * 8)),
])
def test_memory_estimate_by_hand(implementation, mode, expected):
    diagonal = mode == "diagonal"  # the trace kernel of the pairs (x1[i], x2[i])
    mode = "trace" if diagonal else mode
    assert memory_needed(implementation, mode, 10, 20, 2, 7, 8, diagonal=diagonal) == expected


# Item 11: the laziness module docstring renders in Markdown -----------------------------

def test_laziness_docstring_has_no_raw_html():
    """Outside code spans, '<v, g>' is read by Markdown as an HTML tag and vanishes."""
    doc = importlib.import_module("lazykit.laziness").__doc__
    prose = re.sub(r"`[^`]*`", "", doc)
    assert not re.search(r"<[A-Za-z]", prose)
    assert "`<v, g>`" in doc
