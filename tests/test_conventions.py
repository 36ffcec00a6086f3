"""One convention per role across the public API (issue 11 item 5; docs/architecture.md,
Conventions).

The old spellings work for one release with a DeprecationWarning that points at the
caller's line and give the result of the new spelling; a walk over the signatures of
``lazykit.__all__`` fails on an old spelling outside a deprecated position.
"""

from __future__ import annotations

import inspect
import warnings

import jax
import numpy as np
import pytest

import lazykit
from lazykit._dtypes import precision
from lazykit._validation import DEPRECATED

# Keyword names with one public spelling each: the old or foreign name -> the one to use.
OLD_NAMES = {"lr": "learning_rate", "step_size": "learning_rate", "rng": "key or seed",
             "rng_key": "key", "prng_key": "key", "random_seed": "seed", "diag": "diagonal"}


def _deprecations(record, text):
    """The DeprecationWarnings of ``record`` whose message contains ``text``."""
    return [w for w in record if issubclass(w.category, DeprecationWarning)
            and text in str(w.message)]


def _assert_warns_here(record, text):
    """Exactly one DeprecationWarning about ``text``, attributed to this file (stacklevel)."""
    found = _deprecations(record, text)
    assert len(found) == 1, [str(w.message) for w in record]
    assert found[0].filename == __file__, found[0].filename


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 2)), rng.normal(size=8)


# Deprecated spellings: the warning, its line, the same result --------------------------

def test_empirical_ntk_mode_diagonal_is_diagonal_true():
    model = lazykit.TwoLayer(16, alpha=4.0)
    params = model.init(0, input_dim=3, dtype="float64")
    x1, x2 = np.random.default_rng(1).normal(size=(2, 5, 3))
    new = lazykit.empirical_ntk(model.apply, params, x1, x2, diagonal=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        old = lazykit.empirical_ntk(model.apply, params, x1, x2, mode="diagonal")
    _assert_warns_here(record, 'mode="diagonal"')
    np.testing.assert_array_equal(np.asarray(old), np.asarray(new))
    # and the diagonal of the (n1, n2) kernel, computed independently of the diagonal path
    np.testing.assert_allclose(new, np.diag(lazykit.empirical_ntk(model.apply, params, x1, x2)),
                               rtol=1e-12)


def test_train_lr_is_learning_rate(data):
    X, y = data
    model = lazykit.TwoLayer(16, alpha=10.0)
    new = lazykit.train(model, X, y, steps=6, learning_rate=8.0, record_every=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        old = lazykit.train(model, X, y, steps=6, lr=8.0, record_every=2)
    _assert_warns_here(record, "lr=")
    assert old.learning_rate == new.learning_rate == 8.0
    for name in ("time", "train_loss", "tangent_train_loss", "deviation_train",
                 "param_movement"):
        np.testing.assert_array_equal(getattr(old, name), getattr(new, name))
    with pytest.raises(TypeError, match="give learning_rate= only"):
        lazykit.train(model, X, y, steps=1, learning_rate=1.0, lr=1.0)


def test_lazy_sweep_lr_is_learning_rate(data):
    X, y = data
    kwargs = dict(alphas=[10.0, 100.0], steps=4, record_every=2, compute_laziness=False)
    new = lazykit.lazy_sweep(lazykit.TwoLayer(16), X, y, learning_rate=8.0, **kwargs)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        old = lazykit.lazy_sweep(lazykit.TwoLayer(16), X, y, lr=8.0, **kwargs)
    _assert_warns_here(record, "lr=")
    for name in ("alpha", "deviation", "param_movement", "train_loss"):
        np.testing.assert_array_equal(getattr(old, name), getattr(new, name))


def test_trainer_init_lr_is_learning_rate(data):
    X, _ = data
    model = lazykit.TwoLayer(16, alpha=10.0)
    trainer = lazykit.make_trainer(model)
    params = model.init(0, input_dim=2)
    new = trainer.init(params, X, learning_rate=4.0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        old = trainer.init(params, X, lr=4.0)
    _assert_warns_here(record, "lr=")
    assert float(old.opt_state.hyperparams["learning_rate"]) == 4.0
    for a, b in zip(jax.tree_util.tree_leaves(old), jax.tree_util.tree_leaves(new), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_trajectory_record_lr_is_learning_rate(data):
    X, y = data
    record_ = lazykit.train(lazykit.TwoLayer(8, alpha=5.0), X, y, steps=2, learning_rate=3.0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        old = record_.lr
    _assert_warns_here(record, "TrajectoryRecord.lr")
    assert old == record_.learning_rate == 3.0


def test_monte_carlo_kernel_integer_key_is_seed():
    net = lazykit.mlp(depth=1, width=16, activation="erf")
    x = np.random.default_rng(2).normal(size=(3, 2))
    new = lazykit.monte_carlo_kernel(net, x, n_samples=4, seed=3)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        old = lazykit.monte_carlo_kernel(net, x, n_samples=4, key=3)
    _assert_warns_here(record, "key=")
    for a, b in zip(old, new, strict=True):
        np.testing.assert_array_equal(a, b)
    # a JAX key (either kind) is the key of that seed: no warning, the same samples
    for key in (jax.random.PRNGKey(3), jax.random.key(3)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            got = lazykit.monte_carlo_kernel(net, x, n_samples=4, key=key)
        np.testing.assert_array_equal(got.ntk, new.ntk)
    other = lazykit.monte_carlo_kernel(net, x, n_samples=4, seed=4)
    assert not np.array_equal(other.ntk, new.ntk)
    with pytest.raises(TypeError, match="give seed or key, not both"):
        lazykit.monte_carlo_kernel(net, x, n_samples=4, seed=1, key=jax.random.PRNGKey(1))
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        lazykit.monte_carlo_kernel(net, x, n_samples=4, key="3")


# The signatures of the public API ----------------------------------------------------------

def _public_callables():
    """(qualified name, callable) for every public function, class and public method."""
    for name in lazykit.__all__:
        obj = getattr(lazykit, name)
        if inspect.isclass(obj):
            yield name, obj
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                member = member.__func__ if isinstance(member, (classmethod, staticmethod)) \
                    else member
                if inspect.isfunction(member):
                    yield f"{name}.{attr}", member
        elif callable(obj):
            yield name, obj
    trainer = lazykit.make_trainer(lazykit.TwoLayer(4))
    for attr in lazykit.Trainer._fields:
        yield f"Trainer.{attr}", getattr(trainer, attr)


def convention_violations(qualname: str, fn, *, estimator: bool = False) -> list[str]:
    """What in ``fn``'s signature breaks a convention of docs/architecture.md."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins and exceptions without a signature
        return []
    problems = []
    for p in parameters:
        where = f"{qualname}({p.name}=...)"
        if p.name in OLD_NAMES and p.default is not DEPRECATED:
            problems.append(f"{where}: use {OLD_NAMES[p.name]}= (or default it to "
                            "DEPRECATED while it is deprecated)")
        if p.name == "mode" and p.default == "diagonal":
            problems.append(f"{where}: mode='diagonal' is diagonal=True")
        if p.name == "key" and isinstance(p.default, (int, np.integer)):
            problems.append(f"{where}: a key is a JAX PRNG key; an int default is a seed=")
        if p.name == "seed" and p.default is not inspect.Parameter.empty \
                and not isinstance(p.default, int):
            problems.append(f"{where}: a seed is an int")
        if p.name == "random_state" and not estimator:
            problems.append(f"{where}: random_state is the scikit-learn estimators' name; "
                            "use seed= or key=")
    return problems


def test_the_public_api_has_one_spelling_per_role():
    problems, seen = [], 0
    for qualname, fn in _public_callables():
        owner = getattr(lazykit, qualname.split(".")[0], None)
        estimator = getattr(owner, "__module__", "").startswith("lazykit.estimators")
        problems += convention_violations(qualname, fn, estimator=estimator)
        seen += 1
    assert seen > 100  # the walk reaches the methods, not only the top-level names
    assert not problems, "\n".join(problems)


def test_the_signature_check_finds_each_old_spelling():
    """The check above is only as good as this: each forbidden spelling is reported."""
    def bad(x, *, lr=0.1, mode="diagonal", key=0, seed="0", random_state=None, rng=None):
        return x

    def deprecated(x, *, learning_rate=None, lr=DEPRECATED, key=None, seed=0):
        return x

    found = convention_violations("bad", bad)
    assert [f.split("(")[1].split("=")[0] for f in found] == [
        "lr", "mode", "key", "seed", "random_state", "rng"]
    assert convention_violations("deprecated", deprecated) == []
    assert convention_violations("estimator", lambda random_state=0: 0, estimator=True) == []


def test_docstring_examples_use_the_new_spellings():
    """Runnable examples of the public API teach only the current spellings."""
    old = ("lr=", 'mode="diagonal"', "mode='diagonal'", ".lr ", "random_state=")
    problems = []
    for qualname, fn in _public_callables():
        owner = getattr(lazykit, qualname.split(".")[0], None)
        estimator = getattr(owner, "__module__", "").startswith("lazykit.estimators")
        for line in (inspect.getdoc(fn) or "").splitlines():
            code = line.strip()
            if not code.startswith((">>>", "...")):
                continue
            hits = [s for s in old if s in code and not (estimator and s == "random_state=")]
            problems += [f"{qualname}: {code}" for _ in hits]
    assert not problems, "\n".join(problems)


# dtype=None and the return types -------------------------------------------------------------

def test_dtype_none_is_float64_where_lazykit_computes(data):
    X, y = data
    model = lazykit.TwoLayer(16, alpha=4.0)
    single = model.init(0, input_dim=2, dtype="float32")
    assert lazykit.TwoLayer(16).kernel(X).ntk.dtype == np.float64
    mc = lazykit.monte_carlo_kernel(lazykit.mlp(1, 8), X[:3], n_samples=2)
    assert mc.ntk.dtype == mc.nngp_stderr.dtype == np.float64
    # laziness computes in float64, also from float32 parameters
    wide = {name: np.asarray(p, np.float64) for name, p in single.items()}
    kappa = lazykit.laziness(model, single, X, y).kappa
    assert kappa == lazykit.laziness(model, wide, X, y, dtype="float64").kappa
    assert kappa != lazykit.laziness(model, single, X, y, dtype="float32").kappa
    # train draws float64 parameters itself and keeps the dtype of given ones
    drawn = lazykit.train(model, X, y, steps=1, learning_rate=1.0)
    given = lazykit.train(model, X, y, steps=1, learning_rate=1.0, params=single)
    assert drawn.params["a"].dtype == np.float64 and given.params["a"].dtype == np.float32


def test_init_dtype_none_is_the_dtype_of_the_callers_jax():
    """init hands parameters to the caller's JAX code: None is JAX's default float dtype,
    float64 only where x64 is on; "float64" works without enabling x64 globally."""
    model = lazykit.TwoLayer(6)
    outside = model.init(0, input_dim=2)
    with precision(np.float64):
        inside = model.init(0, input_dim=2)
    assert outside["a"].dtype == jax.dtypes.canonicalize_dtype(np.float64)
    assert inside["a"].dtype == np.float64
    assert model.init(0, input_dim=2, dtype="float64")["a"].dtype == np.float64
    np.testing.assert_allclose(np.asarray(outside["a"]), np.asarray(inside["a"]), rtol=1e-6)
    with pytest.raises(ValueError, match=r"dtype must be .* or None \(JAX's default float"):
        model.init(0, input_dim=2, dtype="float16")


def test_numpy_in_numpy_out_and_jax_functions_return_jax_arrays(data):
    X, y = data
    model = lazykit.TwoLayer(16, alpha=4.0)
    params = model.init(0, input_dim=2, dtype="float64")
    record = lazykit.train(model, X, y, steps=2, learning_rate=1.0, record_every=1)
    sweep = lazykit.lazy_sweep(model, X, y, alphas=[1.0, 10.0], steps=2, learning_rate=1.0,
                               compute_laziness=False)
    numpy_results = {
        "TwoLayer.kernel": model.kernel(X).ntk,
        "TwoLayer.kernel(diagonal=True)": model.kernel(X, diagonal=True).nngp,
        "Network.kernel": lazykit.mlp(1, 8).kernel(X).ntk,
        "monte_carlo_kernel": lazykit.monte_carlo_kernel(lazykit.mlp(1, 8), X, n_samples=2).ntk,
        "TrajectoryRecord.train_loss": record.train_loss,
        "TrajectoryRecord.time": record.time,
        "TrajectoryRecord.predict": record.predict(X),
        "SweepResult.deviation": sweep.deviation,
        "NTKRegressor.predict": lazykit.NTKRegressor().fit(X, y).predict(X),
        "NeuralKernel": lazykit.NeuralKernel()(X),
    }
    wrong = {k: type(v).__name__ for k, v in numpy_results.items() if type(v) is not np.ndarray}
    assert not wrong
    kappa = lazykit.laziness(model, params, X, y)
    assert all(type(v) is float for v in kappa)
    params = model.init(0, input_dim=2)  # for the caller's JAX: its default float dtype
    jax_results = {
        "empirical_ntk": lazykit.empirical_ntk(model.apply, params, X),
        "TwoLayer.apply": model.apply(params, X),
        "init": params["a"],
        "linearize": lazykit.linearize(model.apply, params)(params, X),
    }
    wrong = {k: type(v).__name__ for k, v in jax_results.items() if not isinstance(v, jax.Array)}
    assert not wrong


@pytest.mark.parametrize("model", [
    lazykit.TwoLayer(6),
    lazykit.mlp(2, 6),
], ids=["TwoLayer", "Network"])
def test_init_draws_float64_without_global_x64(model):
    """dtype="float64" gives float64 parameters whatever JAX's global configuration (no
    truncation warning): the draw that dtype=None gives where x64 is enabled."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        wide = model.init(0, input_dim=3, dtype="float64")
        single = model.init(0, input_dim=3, dtype="float32")
    with precision(np.float64):
        x64 = model.init(0, input_dim=3)
    for a, b, c in zip(*map(jax.tree_util.tree_leaves, (wide, single, x64)), strict=True):
        assert a.dtype == c.dtype == np.float64 and b.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
