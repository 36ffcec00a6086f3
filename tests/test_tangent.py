"""linearize and taylor_expand: exact on polynomials, agree with jvp, converge with the order."""

import itertools
import math

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import lazykit
from lazykit._dtypes import precision


def _perturb(params, scale, seed=1):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda p: p + scale * jnp.asarray(rng.normal(size=p.shape), p.dtype), params)


def test_linearize_is_f_at_params0_and_affine_in_params(rng):
    model = lazykit.mlp(2, 16, "erf", out_dim=2)
    x = rng.normal(size=(5, 3))
    with precision("float64"):
        params0 = model.init(0, 3, dtype="float64")
        f_lin = lazykit.linearize(model, params0)
        f_lin = jax.jit(f_lin)
        np.testing.assert_allclose(f_lin(params0, x), model.apply(params0, x), rtol=1e-14)
        p1, p2 = _perturb(params0, 0.1, 1), _perturb(params0, 0.1, 2)
        mid = jax.tree_util.tree_map(lambda a, b: 0.3 * a + 0.7 * b, p1, p2)
        np.testing.assert_allclose(f_lin(mid, x), 0.3 * f_lin(p1, x) + 0.7 * f_lin(p2, x),
                                   rtol=1e-12, atol=1e-12)
        # Against the Jacobian: T f(w) = f(w0) + J (w - w0).
        flat0, unravel = jax.flatten_util.ravel_pytree(params0)
        flat1 = jax.flatten_util.ravel_pytree(p1)[0]

        @jax.jit
        def by_jacobian(flat0, flat1):
            jac = jax.jacobian(lambda w: model.apply(unravel(w), x))(flat0)
            return model.apply(unravel(flat0), x) + jnp.einsum("iop,p->io", jac, flat1 - flat0)

        np.testing.assert_allclose(f_lin(p1, x), by_jacobian(flat0, flat1), rtol=1e-12,
                                   atol=1e-13)


def test_taylor_expansion_is_exact_on_polynomials():
    """f(w) = w^3 x: the degree-3 expansion is exact, degree 2 misses dw^3 x."""
    def apply_fn(w, x):
        return w**3 * x

    x = jnp.array([1.0, 2.0])
    with precision("float64"):
        w0, w = 0.5, 1.7
        np.testing.assert_allclose(lazykit.taylor_expand(apply_fn, w0, 3)(w, x), w**3 * x,
                                   rtol=1e-14)
        dw = w - w0
        np.testing.assert_allclose(lazykit.taylor_expand(apply_fn, w0, 2)(w, x),
                                   (w**3 - dw**3) * x, rtol=1e-14)
        np.testing.assert_allclose(lazykit.taylor_expand(apply_fn, w0, 0)(w, x), w0**3 * x)


def test_degree_one_is_linearize_and_error_shrinks_with_degree(rng):
    model = lazykit.TwoLayer(16, activation="erf", alpha=2.0, symmetric=False)
    x = rng.normal(size=(4, 2))
    with precision("float64"):
        params0 = model.init(0, 2, dtype="float64")
        params = _perturb(params0, 0.01)
        exact = model.apply(params, x)
        np.testing.assert_allclose(lazykit.taylor_expand(model.apply, params0, 1)(params, x),
                                   lazykit.linearize(model.apply, params0)(params, x),
                                   rtol=1e-14)
        errors = [float(jnp.abs(jax.jit(lazykit.taylor_expand(model, params0, k))(params, x)
                                - exact).max()) for k in range(5)]
    assert all(b < 0.3 * a for a, b in itertools.pairwise(errors)), errors


def test_taylor_remainder_has_the_right_order(rng):
    """Error of the degree-k expansion at distance t scales like t^(k+1)."""
    model = lazykit.TwoLayer(8, activation="erf", symmetric=False)
    x = rng.normal(size=(3, 2))
    with precision("float64"):
        params0 = model.init(1, 2, dtype="float64")
        direction = _perturb(jax.tree_util.tree_map(jnp.zeros_like, params0), 1.0)
        for degree in (1, 2):
            f_k = jax.jit(lazykit.taylor_expand(model, params0, degree))
            errs = []
            for t in (1e-2, 2e-2):
                p = jax.tree_util.tree_map(lambda a, d, t=t: a + t * d, params0, direction)
                errs.append(float(jnp.abs(f_k(p, x) - model.apply(p, x)).max()))
            assert math.log2(errs[1] / errs[0]) == pytest.approx(degree + 1, abs=0.15)


def test_tangent_functions_are_jittable_and_differentiable(rng):
    model = lazykit.TwoLayer(8)
    x = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)
    params0 = model.init(0, 2)
    f_lin = jax.jit(lazykit.linearize(model.apply, params0))
    grads = jax.grad(lambda p: jnp.sum(f_lin(p, x)))(params0)
    # The gradient of a linear model is its Jacobian, the same at every point.
    grads2 = jax.grad(lambda p: jnp.sum(f_lin(p, x)))(_perturb(params0, 1.0))
    np.testing.assert_allclose(grads["a"], grads2["a"], rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(TypeError, match="expected a function apply_fn"):
        lazykit.linearize(3, {})
    with pytest.raises(ValueError, match="degree must be an integer >= 0; got -1"):
        lazykit.taylor_expand(lambda p, x: p * x, 0.0, -1)
