"""empirical_ntk: implementations agree, modes relate as documented, dtype policy, tracing,
validation, and convergence to the analytic NTK as the width grows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lazykit
from lazykit import empirical
from lazykit._dtypes import precision
from tests.teacher import numpy_network_params

IMPLEMENTATIONS = ("structured", "jacobian", "ntvp")


def _models():
    return {
        "two_layer": lazykit.TwoLayer(24, alpha=3.0, init_scale=0.8),
        "mlp_ntk": lazykit.mlp(2, 12, "erf", W_std=1.3, b_std=0.2, out_dim=3),
        "mlp_standard_no_bias": lazykit.mlp(1, 10, "relu", parameterization="standard",
                                            b_std=None, out_dim=2),
    }


def _params(model, seed=0):
    if isinstance(model, lazykit.TwoLayer):
        return model.init(seed, 3, dtype="float64")
    return numpy_network_params(model, 3, seed)


@pytest.mark.parametrize("name", sorted(_models()))
@pytest.mark.parametrize("mode", ["full", "trace", "diagonal"])
def test_implementations_agree(rng, name, mode):
    model = _models()[name]
    params = _params(model)
    x1, x2 = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    x2 = x1[::-1] if mode == "diagonal" else x2
    reference = np.asarray(empirical_ntk_generic(model, params, x1, x2, mode))
    for implementation in IMPLEMENTATIONS:
        got = lazykit.empirical_ntk(model, params, x1, x2, **_spelled(mode),
                                    implementation=implementation)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, reference, rtol=1e-12, atol=1e-14 * abs(reference).max())
    whole_batch = lazykit.empirical_ntk(lambda p, x: model.apply(p, x), params, x1, x2,
                                        **_spelled(mode), implementation="ntvp", per_example=False)
    np.testing.assert_allclose(whole_batch, reference, rtol=1e-12,
                               atol=1e-14 * abs(reference).max())
    if mode == "trace":  # the bound method takes the structured path too; x2=None means x1
        same = lazykit.empirical_ntk(model.apply, params, x1, **_spelled(mode))
        np.testing.assert_allclose(same, empirical_ntk_generic(model, params, x1, None, mode),
                                   rtol=1e-12)


def _spelled(mode):
    """empirical_ntk's keywords for a test's mode ("diagonal": the trace kernel's pairs)."""
    return {"diagonal": True} if mode == "diagonal" else {"mode": mode}


def empirical_ntk_generic(model, params, x1, x2, mode):
    """The slowest, most literal path: one Jacobian of the whole batch (no per-example vmap)."""
    return lazykit.empirical_ntk(lambda p, x: model.apply(p, x), params, x1, x2, **_spelled(mode),
                                 implementation="jacobian", per_example=False)


def test_mode_relations(rng):
    model = _models()["mlp_ntk"]
    params = _params(model)
    x1, x2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    full = np.asarray(lazykit.empirical_ntk(model, params, x1, x2, mode="full"))
    trace = np.asarray(lazykit.empirical_ntk(model, params, x1, x2, mode="trace"))
    diagonal = np.asarray(lazykit.empirical_ntk(model, params, x1, x2, diagonal=True))
    assert full.shape == (4, 4, 3, 3) and trace.shape == (4, 4) and diagonal.shape == (4,)
    np.testing.assert_allclose(trace, np.einsum("ijaa->ij", full) / 3, rtol=1e-13)
    np.testing.assert_allclose(diagonal, np.diag(trace), rtol=1e-13)
    symmetric = np.asarray(lazykit.empirical_ntk(model, params, x1, mode="full"))
    np.testing.assert_allclose(symmetric, symmetric.transpose(1, 0, 3, 2), rtol=1e-13)


def test_pytree_function_and_one_dimensional_output(rng):
    def apply_fn(params, x):  # a dict-of-tuples pytree and an (n,) output
        w, (b, v) = params["w"], params["rest"]
        return jnp.tanh(x @ w + b) @ v

    params = {"w": rng.normal(size=(3, 6)), "rest": (rng.normal(size=6), rng.normal(size=6))}
    x = rng.normal(size=(5, 3))
    results = [lazykit.empirical_ntk(apply_fn, params, x, implementation=i)
               for i in ("auto", "jacobian", "ntvp")]
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], rtol=1e-12)
    # Explicit formula for this one-output function: sum over parameters of gradient products.
    with precision("float64"):
        grads = jax.vmap(jax.grad(lambda p, xi: apply_fn(p, xi[None])[0]), (None, 0))(params, x)
        flat = np.concatenate([np.asarray(g).reshape(5, -1)
                               for g in jax.tree_util.tree_leaves(grads)], axis=1)
    np.testing.assert_allclose(results[0], flat @ flat.T, rtol=1e-12)


def test_dtype_policy(rng):
    model = lazykit.TwoLayer(8)
    x = rng.normal(size=(3, 2))
    params32 = model.init(0, 2, dtype="float32")
    assert lazykit.empirical_ntk(model, params32, x.astype(np.float32)).dtype == np.float32
    # float64 anywhere (here the inputs) is never downcast; the global config is untouched.
    assert lazykit.empirical_ntk(model, params32, x).dtype == np.float64
    assert not jax.config.jax_enable_x64 or jax.config.jax_enable_x64


def test_inside_jit_and_vmap(rng):
    net = lazykit.mlp(1, 8, "relu")
    x = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)
    stacked = jax.tree_util.tree_map(
        lambda *leaves: jnp.asarray(np.stack(leaves), jnp.float32),
        *[numpy_network_params(net, 2, seed) for seed in (0, 1)])
    out = jax.jit(jax.vmap(lambda p: lazykit.empirical_ntk(net.apply, p, x)))(stacked)
    assert out.shape == (2, 3, 3)
    direct = lazykit.empirical_ntk(net.apply, jax.tree_util.tree_map(lambda v: v[1], stacked), x)
    np.testing.assert_allclose(out[1], direct, rtol=1e-5)


def test_auto_falls_back_to_ntk_vector_products(rng, monkeypatch):
    def apply_fn(p, x):
        return jnp.sin(x @ p)

    params = rng.normal(size=(3, 2))
    x = rng.normal(size=(4, 3))
    assert empirical._choose(None, apply_fn, params, x, None, False) == "jacobian"
    monkeypatch.setattr(empirical, "JACOBIAN_BUDGET", 8)
    assert empirical._choose(None, apply_fn, params, x, None, False) == "ntvp"
    np.testing.assert_allclose(lazykit.empirical_ntk(apply_fn, params, x, mode="full"),
                               lazykit.empirical_ntk(apply_fn, params, x, mode="full",
                                                     implementation="jacobian"), rtol=1e-12)
    assert empirical._choose(lazykit.TwoLayer(4), None, None, x, None, False) == "structured"


def test_bad_arguments(rng):
    model = lazykit.TwoLayer(4)
    params = model.init(0, 2)
    x = rng.normal(size=(3, 2))
    with pytest.raises(ValueError, match="mode must be one of"):
        lazykit.empirical_ntk(model, params, x, mode="diag")
    with pytest.raises(ValueError, match="implementation must be one of"):
        lazykit.empirical_ntk(model, params, x, implementation="fast")
    with pytest.raises(ValueError, match=r"implementation='structured' needs a lazykit\.TwoLayer"):
        lazykit.empirical_ntk(lambda p, x: model.apply(p, x), params, x,
                              implementation="structured")
    with pytest.raises(ValueError, match=r"same number of rows; got 3 and 2"):
        lazykit.empirical_ntk(model, params, x, x[:2], diagonal=True)
    with pytest.raises(TypeError, match="apply_fn must be a function"):
        lazykit.empirical_ntk("relu", params, x)


@pytest.mark.parametrize("kind", ["two_layer", "mlp"])
def test_converges_to_the_analytic_ntk_at_rate_one_over_sqrt_width(kind):
    """Mean relative Frobenius error over 8 networks per width; log-log slope near -1/2.

    Over 10 independent draws of inputs and seeds the fitted slopes were in
    [-0.58, -0.44] (two-layer) and [-0.54, -0.47] (MLP), so [-0.65, -0.35] leaves margin.
    """
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, 3)) / np.sqrt(3)
    widths = [128, 512, 2048, 8192] if kind == "two_layer" else [32, 128, 512, 2048]
    errors = []
    for m in widths:
        if kind == "two_layer":
            model = lazykit.TwoLayer(m, alpha=np.sqrt(m))
        else:
            model = lazykit.mlp(2, m, "erf", W_std=1.3, b_std=0.2)
        exact = model.kernel(x).ntk
        samples = [np.asarray(lazykit.empirical_ntk(model, _params(model, 10 + s), x))
                   for s in range(8)]
        errors.append(np.mean([np.linalg.norm(k - exact) / np.linalg.norm(exact)
                               for k in samples]))
    fit = lazykit.fit_loglog_slope(widths, errors)
    assert -0.65 < fit.slope < -0.35, (errors, fit)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_diagonal_of_the_full_kernel(rng, implementation):
    """diagonal=True with mode="full": the (o, o) blocks Theta(x1[i], x2[i]) of the full
    kernel, by every implementation, and with a whole-batch function too."""
    model = _models()["mlp_ntk"]
    params = _params(model)
    x1, x2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    full = np.asarray(empirical_ntk_generic(model, params, x1, x2, "full"))
    expected = np.einsum("iiab->iab", full)
    got = lazykit.empirical_ntk(model, params, x1, x2, mode="full", diagonal=True,
                                implementation=implementation)
    assert got.shape == (4, 3, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14 * abs(expected).max())
    whole = lazykit.empirical_ntk(lambda p, x: model.apply(p, x), params, x1, x2, mode="full",
                                  diagonal=True, implementation="ntvp", per_example=False)
    np.testing.assert_allclose(whole, expected, rtol=1e-12, atol=1e-14 * abs(expected).max())
