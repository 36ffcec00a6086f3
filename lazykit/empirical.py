"""Empirical (finite-width) neural tangent kernel of any ``apply_fn(params, x)``.

Theta(x1, x2) = sum over parameters p of  d f(x1) / dp  (d f(x2) / dp)^T,
with f the network's outputs. ``mode="trace"`` averages the output-output
block over the outputs (the scalar kernel that converges to the analytic NTK),
``mode="full"`` keeps it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MODES = ("trace", "full")


def _jacobian_contraction(apply_fn, params, x1, x2, mode: str):
    def jac(x):
        return jax.jacrev(lambda p: apply_fn(p, x))(params)

    j1 = jac(x1)
    j2 = j1 if x2 is None else jac(x2)

    def contract(a, b):
        a = a.reshape(a.shape[0], a.shape[1], -1)  # (n1, outputs, parameters)
        b = b.reshape(b.shape[0], b.shape[1], -1)
        if mode == "trace":
            return jnp.einsum("iop,jop->ij", a, b) / a.shape[1]
        return jnp.einsum("iop,jqp->ijoq", a, b)

    return sum(jax.tree_util.tree_leaves(jax.tree_util.tree_map(contract, j1, j2)))


def empirical_ntk(apply_fn, params, x1, x2=None, *, mode: str = "trace"):
    """Finite-width NTK of ``apply_fn`` at ``params`` by Jacobian contraction.

    Args:
        apply_fn: ``apply_fn(params, x) -> (n, n_outputs)``.
        params: a pytree of arrays.
        x1: inputs, shape (n1, d).
        x2: inputs, shape (n2, d); None means ``x1``.
        mode: "trace" (n1, n2), the mean over outputs; "full" (n1, n2, o, o).

    Examples:
        >>> import jax.numpy as jnp, lazykit
        >>> from lazykit.empirical import empirical_ntk
        >>> net = lazykit.mlp(depth=1, width=64)
        >>> params = net.init(0, input_dim=3)
        >>> empirical_ntk(net.apply, params, jnp.ones((4, 3))).shape
        (4, 4)
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    return _jacobian_contraction(apply_fn, params, x1, x2, mode)
