"""The empirical NTK, linearization and Taylor expansion against neural-tangents, live, in the
pinned oracle environment (jax 0.5.3, neural-tangents 0.6.5; float64). Skipped elsewhere.

Also a smoke test of the trainer, the sweep and the laziness criterion on jax 0.5.3: lazykit
must run on both jax versions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

nt = pytest.importorskip("neural_tangents")

import lazykit  # noqa: E402
from lazykit._dtypes import precision  # noqa: E402
from tests.teacher import numpy_network_params, teacher_student  # noqa: E402

pytestmark = [pytest.mark.oracle,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:neural_tangents.*")]

# lazykit mode -> neural-tangents (trace_axes, diagonal_axes)
MODES = {"full": ((), ()), "trace": ((-1,), ()), "diagonal": ((-1,), (0,))}
NT_IMPLEMENTATIONS = {"jacobian_contraction": 1, "ntk_vector_products": 2}


def _pytree_fn(params, x):
    return jnp.tanh(x @ params["w"] + params["b"]) @ params["v"]


def _models():
    rng = np.random.default_rng(0)
    erf = lazykit.mlp(2, 12, "erf", W_std=1.3, b_std=0.2, out_dim=3)
    relu = lazykit.mlp(2, 10, "relu", parameterization="standard", out_dim=2)
    two = lazykit.TwoLayer(16, alpha=3.0, init_scale=0.8)
    return {
        "mlp_erf": (erf, numpy_network_params(erf, 3, 0)),
        "mlp_relu_standard": (relu, numpy_network_params(relu, 3, 1)),
        "two_layer": (two, two.init(0, 3, dtype="float64")),
        "pytree_fn": (_pytree_fn, {"w": rng.normal(size=(3, 5)), "b": rng.normal(size=5),
                                   "v": rng.normal(size=(5, 2))}),
    }


def _relative(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.mark.parametrize("name", sorted(_models()))
@pytest.mark.parametrize("mode", sorted(MODES))
def test_empirical_ntk_equals_neural_tangents(name, mode):
    model, params = _models()[name]
    apply_fn = model.apply if hasattr(model, "apply") else model
    rng = np.random.default_rng(1)
    x1 = rng.normal(size=(6, 3))
    x2 = rng.normal(size=(6 if mode == "diagonal" else 4, 3))
    trace_axes, diagonal_axes = MODES[mode]
    with precision("float64"):
        p = jax.tree_util.tree_map(jnp.asarray, params)
        references = [
            np.asarray(nt.empirical_ntk_fn(apply_fn, trace_axes=trace_axes,
                                           diagonal_axes=diagonal_axes, vmap_axes=0,
                                           implementation=impl)(jnp.asarray(x1),
                                                                jnp.asarray(x2), p))
            for impl in NT_IMPLEMENTATIONS.values()]
    assert _relative(references[0], references[1]) < 1e-10
    ours = ["auto", "jacobian", "ntvp"] + (["structured"] if hasattr(model, "apply") else [])
    for implementation in ours:
        spelling = {"mode": "trace", "diagonal": True} if mode == "diagonal" else {"mode": mode}
        got = lazykit.empirical_ntk(model, params, x1, x2, implementation=implementation,
                                    **spelling)
        assert got.dtype == np.float64
        assert got.shape == references[0].shape, (implementation, got.shape)
        assert _relative(got, references[0]) < 1e-10, implementation


def test_linearize_and_taylor_expand_equal_neural_tangents():
    model = lazykit.TwoLayer(12, activation="erf", alpha=2.0, symmetric=False)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 3))
    with precision("float64"):
        params0 = model.init(0, 3, dtype="float64")
        params = jax.tree_util.tree_map(
            lambda p: p + 0.2 * jnp.asarray(rng.normal(size=p.shape)), params0)
        ours = lazykit.linearize(model.apply, params0)(params, x)
        theirs = nt.linearize(model.apply, params0)(params, x)
        assert _relative(ours, theirs) < 1e-12
        for degree in (0, 1, 2, 3):
            ours = lazykit.taylor_expand(model.apply, params0, degree)(params, x)
            theirs = nt.taylor_expand(model.apply, params0, degree)(params, x)
            assert _relative(ours, theirs) < 1e-12, degree


def test_training_sweep_and_laziness_run_on_this_jax():
    X, y, Xt, yt = teacher_student(0, n=12, d=3, n_test=4)
    model = lazykit.TwoLayer(20, alpha=5.0)
    rec = lazykit.train(model, X, y, steps=30, learning_rate=20.0, record_every=10, X_test=Xt,
                        y_test=yt, batch_size=6)
    assert rec.train_loss[-1] < rec.train_loss[0] and np.isfinite(rec.sup_deviation("test"))
    sweep = lazykit.lazy_sweep(lazykit.TwoLayer(20), X, y, alphas=[10, 100], steps=20,
                               learning_rate=20.0)
    assert sweep.movement_slope.slope == pytest.approx(-1.0, abs=0.1)
    kappa = lazykit.laziness(model, rec.params0, X, y).kappa
    assert kappa == pytest.approx(5.0 * lazykit.laziness(model.replace(alpha=25.0),
                                                         rec.params0, X, y).kappa, rel=1e-8)
