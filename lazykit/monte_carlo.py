"""Monte Carlo estimates of the NNGP and NTK from sampled finite networks.

The universal oracle for a lazykit description: sample ``n_samples`` finite
networks of the widths written in the description, and average
f(x1) f(x2)^T (NNGP) and the empirical NTK (mean over output channels). For one
hidden layer both estimators are unbiased at any width; deeper networks carry
an O(1/width) bias on top of the sampling error, which is reported as a
standard error from the spread of the samples.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._dtypes import precision, resolve_dtype
from lazykit._validation import (
    as_matrix,
    check_same_features,
    check_seed,
    deprecation,
    positive_int,
)
from lazykit.empirical import empirical_ntk, memory_needed
from lazykit.kernels.compute import check_memory


class MonteCarloKernel(NamedTuple):
    """Monte Carlo kernel estimates with their standard errors (NumPy arrays)."""

    nngp: np.ndarray
    ntk: np.ndarray
    nngp_stderr: np.ndarray
    ntk_stderr: np.ndarray
    n_samples: int


def monte_carlo_kernel(network, x1, x2=None, *, n_samples: int = 64, seed: int = 0,
                       key=None, batch_size: int = 8, dtype=None) -> MonteCarloKernel:
    """Estimate ``network``'s NNGP and NTK by averaging over sampled finite networks.

    Args:
        network: a :class:`lazykit.Network` (its Dense widths are the finite widths).
        x1: inputs, shape (n1, d).
        x2: inputs, shape (n2, d); None means ``x1``.
        n_samples: number of independent networks.
        seed: integer seed of the sampled networks (their keys come from
            ``jax.random.PRNGKey(seed)``).
        key: a JAX PRNG key to sample from instead of ``seed``. An integer ``key`` is
            deprecated (a DeprecationWarning; it means ``seed``).
        batch_size: networks evaluated together (memory/speed trade-off).
        dtype: "float32" or "float64"; None means float64 (docs/architecture.md,
            Conventions).

    Returns:
        :class:`MonteCarloKernel` with the means and standard errors (std / sqrt(n_samples)).

    Raises:
        lazykit.InsufficientMemoryError: before anything is allocated, when the sums,
            the results and a batch of sampled kernels cannot fit in memory.

    Examples:
        >>> import numpy as np, lazykit
        >>> net = lazykit.mlp(depth=1, width=256, activation="erf")
        >>> x = np.random.default_rng(0).normal(size=(3, 2))
        >>> mc = lazykit.monte_carlo_kernel(net, x, n_samples=16)
        >>> mc.nngp.shape, bool(np.all(mc.nngp_stderr > 0))
        ((3, 3), True)
    """
    dtype = resolve_dtype(dtype)
    n_samples = positive_int(n_samples, "n_samples", minimum=2)
    batch_size = positive_int(batch_size, "batch_size")
    x1 = as_matrix(x1, "x1", dtype=dtype)
    if x2 is not None:
        x2 = as_matrix(x2, "x2", dtype=dtype)
        check_same_features(x1, x2)
    key = _sampling_key(seed, key)
    d = x1.shape[1]
    with precision(dtype):
        _check_memory(network, x1, x2, min(batch_size, n_samples), dtype)
        a = jnp.asarray(x1)
        b = a if x2 is None else jnp.asarray(x2)

        def one(sample_key):
            params = network.init(sample_key, d, dtype=a.dtype)
            f1, f2 = network.apply(params, a), network.apply(params, b)
            nngp = f1 @ f2.T / f1.shape[1]
            ntk = empirical_ntk(network.apply, params, a, b, mode="trace")
            return nngp, ntk

        batched = jax.jit(jax.vmap(one))
        keys = jax.random.split(key, n_samples)
        total = [np.zeros((a.shape[0], b.shape[0])) for _ in range(4)]  # float64 sums
        for start in range(0, n_samples, batch_size):
            nngp, ntk = (np.asarray(v, dtype=np.float64) for v in batched(
                keys[start:start + batch_size]))
            total[0] += nngp.sum(0)
            total[1] += ntk.sum(0)
            total[2] += (nngp**2).sum(0)
            total[3] += (ntk**2).sum(0)
    mean_nngp, mean_ntk = total[0] / n_samples, total[1] / n_samples
    var_nngp = np.maximum(total[2] / n_samples - mean_nngp**2, 0.0) * n_samples / (n_samples - 1)
    var_ntk = np.maximum(total[3] / n_samples - mean_ntk**2, 0.0) * n_samples / (n_samples - 1)
    return MonteCarloKernel(mean_nngp.astype(dtype), mean_ntk.astype(dtype),
                            np.sqrt(var_nngp / n_samples).astype(dtype),
                            np.sqrt(var_ntk / n_samples).astype(dtype), n_samples)


def _sampling_key(seed, key):
    """The JAX key of the samples: from ``seed``, or ``key`` (an integer key: deprecated)."""
    if key is None:
        return jax.random.PRNGKey(check_seed(seed))
    if seed != 0:
        raise TypeError(f"give seed or key, not both; got seed={seed!r} and key={key!r}.")
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        deprecation("monte_carlo_kernel(key=<an integer>) is seed=<that integer>", stacklevel=4)
        return jax.random.PRNGKey(key)
    if not isinstance(key, jax.Array) or not (
            jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.shape == (2,)):
        raise TypeError(f"key must be a JAX PRNG key (jax.random.key or jax.random.PRNGKey); "
                        f"got {key!r}. Pass an integer as seed=.")
    return key


def _check_memory(network, x1, x2, batch, dtype) -> None:
    """Refuse, before anything is allocated, estimates that cannot fit in memory: four float64
    sums and four results of shape (n1, n2), and per sampled network of a batch its NNGP and
    NTK (on the device and as float64 copies) and the empirical NTK's working arrays."""
    n1, d = x1.shape
    n2 = n1 if x2 is None else x2.shape[0]
    params = jax.eval_shape(lambda: network.init(0, d, dtype=dtype))
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
    outputs = jax.eval_shape(network.apply, params, jax.ShapeDtypeStruct((1, d), dtype)).shape[1]
    ntk = sum(memory_needed("structured", "trace", n1, None if x2 is None else n2, outputs,
                            n_params, dtype.itemsize))
    pair = n1 * n2
    total = pair * 4 * (8 + dtype.itemsize) + batch * (pair * 2 * (dtype.itemsize + 8) + ntk)
    check_memory(
        total,
        f"the Monte Carlo NNGP and NTK of shape ({n1}, {n2}) in {dtype.name} with batches of "
        f"{batch} networks",
        "Use fewer points, a smaller batch_size, or dtype='float32'.")
