"""The two-layer model of the lazy-training papers, and its infinite-width kernels.

``TwoLayer`` is f(w, x) = (1/m) sum_j c_j sigma(a_j . (x, 1)), scaled to
alpha f (docs/architecture.md, "Two-layer networks"). Its parameters are the neurons
(a_j, c_j) in R^(d+2) themselves (no hidden 1/sqrt(d) factor), drawn as
a_j ~ N(0, tau^2 I_(d+1)) and c_j ~ N(0, tau^2) with tau = ``init_scale``; with
``symmetric=True`` they come in pairs (a, c), (a, -c), so alpha f(w_0) = 0.
The model is 2-homogeneous for ReLU: scaling every parameter by tau scales
the output by tau^2, so alpha and tau^2 are the same knob.

Infinite-width kernels, from the same Dense/activation machinery as the MLP.
With u = a . x~ and x~ = (x, 1), Cov(u(x), u(x')) = `tau^2 (<x, x'> + 1)`, which is
the pre-activation covariance of ``Dense(m, W_std=tau sqrt(d), b_std=tau)``
(NTK parameterization: `W_std^2 <x, x'> / d + b_std^2`). The tangent kernel of
alpha f has two parts, from the gradients in c_j and in a_j:

    Theta = (alpha^2 / m) (E[sigma(u) sigma(u')] + tau^2 <x~, x~'> E[sigma'(u) sigma'(u')])

(E c_j^2 = tau^2 weighs the a-gradient). The Dense recursion for
``serial(Dense(m, tau sqrt(d), tau), activation, Dense(1, W_std=alpha / sqrt(m)))``
gives Theta^2 = W2^2 (E[sigma sigma] + E[sigma' sigma'] Theta^1) with
`Theta^1 = tau^2 <x~, x~'>`: the same expression. Its NNGP,
W2^2 E[sigma sigma] = (alpha^2 / m) E[sigma sigma], lacks the factor E c_j^2 = tau^2
of Cov(alpha f(x), alpha f(x')) = (alpha^2 tau^2 / m) E[sigma sigma], so the NNGP is
tau^2 times the Dense network's. (With ``symmetric=True`` the prior is
degenerate, f(w_0) = 0; the NNGP is that of the independent initialization.)
At alpha = sqrt(m) (NTK scaling) both kernels are O(1) in the width.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._dtypes import precision
from lazykit._validation import (
    as_matrix,
    check_seed,
    init_dtype,
    nonnegative_float,
    positive_int,
)
from lazykit.activations import ABRelu, Activation, Sign, Step, get_activation
from lazykit.kernels.recursion import Kernel
from lazykit.network import Dense, Network, serial


@dataclasses.dataclass(frozen=True)
class TwoLayer:
    """Two-layer network alpha f(w, x) = (alpha / m) sum_j c_j sigma(a_j . (x, 1)).

    Args:
        width: number of neurons m (even when ``symmetric``).
        activation: name, :class:`lazykit.Activation` or elementwise callable.
        alpha: output scale (> 0). alpha = sqrt(width) is the NTK scaling;
            alpha = 1 with steps multiplied by the width is the mean-field regime.
        init_scale: tau (> 0), the standard deviation of every initial parameter.
        symmetric: draw neurons in pairs (a, c), (a, -c) so that f(w_0) = 0.

    Parameters are ``{"a": (m, d + 1), "c": (m,)}``; the last column of ``a`` is
    the input bias.

    Examples:
        >>> import numpy as np, lazykit
        >>> model = lazykit.TwoLayer(64, alpha=8.0)
        >>> params = model.init(0, input_dim=3)
        >>> x = np.random.default_rng(0).normal(size=(5, 3))
        >>> out = model.apply(params, x)
        >>> out.shape, float(abs(out).max())  # symmetric initialization: alpha f(w_0) = 0
        ((5, 1), 0.0)
        >>> model.kernel(x).ntk.shape
        (5, 5)
    """

    width: int
    activation: Any = "relu"
    alpha: float = 1.0
    init_scale: float = 1.0
    symmetric: bool = True

    def __post_init__(self):
        positive_int(self.width, "width")
        if self.symmetric and self.width % 2:
            raise ValueError(f"width must be even when symmetric=True (neurons come in pairs "
                             f"(a, c), (a, -c)); got {self.width}. Use an even width or "
                             "symmetric=False.")
        object.__setattr__(self, "activation", get_activation(self.activation))
        object.__setattr__(self, "alpha", nonnegative_float(self.alpha, "alpha", strict=True))
        object.__setattr__(self, "init_scale",
                           nonnegative_float(self.init_scale, "init_scale", strict=True))
        if not isinstance(self.symmetric, (bool, np.bool_)):
            raise TypeError(f"symmetric must be True or False; got {self.symmetric!r}.")

    def replace(self, **changes) -> TwoLayer:
        """A copy with some fields changed, e.g. ``model.replace(alpha=10.0)``."""
        return dataclasses.replace(self, **changes)

    def init(self, key, input_dim: int, dtype=None) -> dict:
        """Sample ``{"a": (m, d + 1), "c": (m,)}`` from a JAX PRNG key or an integer seed.

        The draws come from NumPy's generator seeded by the key's data (no XLA
        compilation per shape, which matters in sweeps over many seeds).

        Args:
            key: a JAX PRNG key (``jax.random.key`` or ``jax.random.PRNGKey``), or an
                integer seed.
            input_dim: d, the number of input features.
            dtype: "float32" or "float64"; None means JAX's default float dtype (float32
                unless x64 is enabled), the dtype your own JAX code computes in, as in
                :meth:`lazykit.Network.init` (docs/architecture.md, Conventions).
                "float64" is drawn in a local x64 context, without enabling x64 globally;
                compute with such parameters under ``jax.enable_x64``.

        Examples:
            >>> import lazykit
            >>> params = lazykit.TwoLayer(4).init(0, input_dim=3, dtype="float64")
            >>> params["a"].shape, str(params["c"].dtype)
            ((4, 4), 'float64')
        """
        positive_int(input_dim, "input_dim")
        dtype = init_dtype(dtype)
        rng = _numpy_generator(key)
        half = self.width // 2 if self.symmetric else self.width
        a = self.init_scale * rng.standard_normal((half, input_dim + 1))
        c = self.init_scale * rng.standard_normal(half)
        if self.symmetric:
            a, c = np.concatenate([a, a]), np.concatenate([c, -c])
        with precision(dtype):
            return {"a": jnp.asarray(a, dtype), "c": jnp.asarray(c, dtype)}

    def preactivations(self, params, x):
        """u_j(x_i) = a_j . (x_i, 1), shape (n, m)."""
        # One product with (x, 1) rather than x a^T + bias: the bias gradient is then part
        # of a matmul, not a column reduction (which XLA on CPU runs ~20x slower).
        x = jnp.asarray(x)
        return jnp.concatenate([x, jnp.ones_like(x[:, :1])], axis=1) @ params["a"].T

    def apply(self, params, x):
        """alpha f(w, x), shape (n, 1)."""
        hidden = self.activation(self.preactivations(params, x))
        c, half = params["c"], self.width // 2
        if self.width % 2 == 0:
            # Two identical half-size products: the mirrored pairs of a symmetric
            # initialization then cancel exactly (alpha f(w_0) = 0, not just 1e-16).
            out = hidden[:, :half] @ c[:half] + hidden[:, half:] @ c[half:]
        else:
            out = hidden @ c
        return ((self.alpha / self.width) * out)[:, None]

    def layer_features(self, params, x):
        """Per trainable layer (a, then c): inputs y, output gradients g (1, n, N_out) and the
        variances s_w^2, s_b^2; the structured path of :func:`lazykit.empirical_ntk`.

        Examples:
            >>> import numpy as np, lazykit
            >>> model = lazykit.TwoLayer(8)
            >>> features = model.layer_features(model.init(0, 3), np.ones((2, 3)))
            >>> [g.shape for _, g, _, _ in features]
            [(1, 2, 8), (1, 2, 1)]
        """
        u = self.preactivations(params, x)
        hidden, slope = self.activation.value_and_slope(u)
        scale = self.alpha / self.width
        g_a = (scale * params["c"] * slope)[None]
        g_c = jnp.full((1, x.shape[0], 1), scale, u.dtype)
        return [(x, g_a, 1.0, 1.0), (hidden, g_c, 1.0, 0.0)]

    def neurons(self, params):
        """Neuron positions (a_j, c_j) in R^(d+2), shape (m, d + 2)."""
        return jnp.concatenate([params["a"], params["c"][:, None]], axis=1)

    def network(self, input_dim: int) -> Network:
        """The Dense/activation description with the same infinite-width NTK (module docstring).

        Examples:
            >>> import lazykit
            >>> net = lazykit.TwoLayer(100, alpha=10.0).network(input_dim=4)
            >>> [type(layer).__name__ for layer in net.layers]
            ['Dense', 'ABRelu', 'Dense']
        """
        positive_int(input_dim, "input_dim")
        tau = self.init_scale
        return serial(Dense(self.width, W_std=tau * math.sqrt(input_dim), b_std=tau),
                      self.activation, Dense(1, W_std=self.alpha / math.sqrt(self.width)))

    def kernel(self, x1, x2=None, *, diagonal: bool = False, dtype=None) -> Kernel:
        """Infinite-width NNGP and NTK of alpha f (NumPy arrays, float64 by default).

        Both scale as alpha^2 / m; at alpha = sqrt(m) they are width-independent.

        Args:
            x1: inputs, shape (n1, d).
            x2: inputs, shape (n2, d); None means ``x1``.
            diagonal: only the pairs (x1[i], x2[i]), shape (n1,), as in
                :meth:`lazykit.Network.kernel`.
            dtype: "float32" or "float64"; None means float64 (docs/architecture.md,
                Conventions).

        Examples:
            >>> import numpy as np, lazykit
            >>> x = np.random.default_rng(0).normal(size=(3, 2))
            >>> k = lazykit.TwoLayer(400, alpha=20.0).kernel(x)
            >>> bool(np.all(np.linalg.eigvalsh(k.ntk) > 0))
            True
        """
        x1 = as_matrix(x1, "x1")
        k = self.network(x1.shape[1]).kernel(x1, x2, diagonal=diagonal, dtype=dtype)
        return Kernel(self.init_scale**2 * k.nngp, k.ntk)


def _numpy_generator(key) -> np.random.Generator:
    """A NumPy generator seeded by an integer or by the data of a JAX PRNG key."""
    if isinstance(key, (int, np.integer, bool)) or not hasattr(key, "dtype"):
        return np.random.default_rng(check_seed(key, "seed"))
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key).astype(np.uint64).ravel().tolist())


def has_kinks(activation: Activation) -> bool:
    """True for activations whose sign pattern is meaningful (ReLU-like, step, sign)."""
    return isinstance(activation, (ABRelu, Step, Sign))
