"""Gauss-Hermite quadrature of Gaussian expectations, for activations without a closed form.

For a centred Gaussian pair with variances k11, k22 and correlation rho,
write, along the principal axes of the correlation,
u = sqrt(k11) (a z1 + b z2) and v = sqrt(k22) (a z1 - b z2) with
a = sqrt((1 + rho) / 2), b = sqrt((1 - rho) / 2) and z1, z2 independent
standard normals, and integrate over a tensor grid of ``n_nodes`` x ``n_nodes``
probabilists' Gauss-Hermite nodes. The grid is symmetric under z2 -> -z2, so
the quadrature kernel is symmetric in its two arguments (to rounding). The rule is exact
when phi(u) phi(v) is a polynomial of degree < 2 n_nodes in each of z1, z2;
for smooth activations (tanh, softplus, sigmoid, erf) the error falls
geometrically with ``n_nodes``, for kinks (relu, abs) only algebraically.
Measured relative errors against the closed forms are in docs/kernels.md.

Cost: 2 n_nodes^2 evaluations of phi and phi' per kernel entry, looped over the
grid so memory stays that of one kernel tile.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lazykit.kernels.fast_math import sqrt_flat_at_zero


@functools.cache
def hermite_rule(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point rule for E[f(Z)], Z ~ N(0, 1) (weights sum to 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    return nodes, weights / np.sqrt(2.0 * np.pi)


def derivative(fn):
    """Elementwise derivative of an elementwise function, by one forward-mode pass."""
    def fn_and_derivative(x):
        return jax.jvp(fn, (x,), (jnp.ones_like(x),))

    return fn_and_derivative


def gauss_hermite_dual(fn, k12, k11, k22, *, n_nodes: int):
    """(E[fn(u) fn(v)], E[fn'(u) fn'(v)]) by a 2-D Gauss-Hermite rule.

    Args:
        fn: elementwise, JAX-differentiable activation.
        k12, k11, k22: covariance and variances; arrays that broadcast together.
        n_nodes: nodes per dimension (n_nodes**2 evaluations per entry).

    Examples:
        >>> import jax.numpy as jnp
        >>> from lazykit.kernels.quadrature import gauss_hermite_dual
        >>> e, de = gauss_hermite_dual(lambda x: x**2, jnp.asarray(0.5), 1.0, 1.0, n_nodes=4)
        >>> round(float(e), 6)  # E[u^2 v^2] = 1 + 2 * 0.5^2
        1.5
    """
    nodes, weights = hermite_rule(n_nodes)
    dtype = jnp.result_type(k12, k11, k22, float)
    nodes = jnp.asarray(nodes, dtype)
    weights = jnp.asarray(weights, dtype)
    s1 = jnp.sqrt(jnp.maximum(k11, 0.0))
    s2 = jnp.sqrt(jnp.maximum(k22, 0.0))
    norm = s1 * s2
    rho = jnp.clip(jnp.where(norm > 0, k12 / jnp.where(norm > 0, norm, 1.0), 0.0), -1.0, 1.0)
    along = sqrt_flat_at_zero((1.0 + rho) / 2.0)
    across = sqrt_flat_at_zero((1.0 - rho) / 2.0)
    f_and_df = derivative(fn)
    shape = jnp.broadcast_shapes(jnp.shape(k12), jnp.shape(k11), jnp.shape(k22))

    def over_nodes(carry, node_weight):
        z1, z2, w = node_weight
        f_u, df_u = f_and_df(s1 * (along * z1 + across * z2))
        f_v, df_v = f_and_df(s2 * (along * z1 - across * z2))
        return (carry[0] + w * f_u * f_v, carry[1] + w * df_u * df_v), None

    grid1, grid2 = jnp.meshgrid(nodes, nodes, indexing="ij")
    grid_w = jnp.outer(weights, weights)
    zero = jnp.zeros(shape, dtype)
    (nngp, dot), _ = jax.lax.scan(
        over_nodes, (zero, zero), (grid1.ravel(), grid2.ravel(), grid_w.ravel()))
    return nngp, dot
