"""One description of a fully-connected network: its finite version and its kernels.

``serial(Dense(512, W_std=1.4, b_std=0.1), Relu(), Dense(1))`` describes a
network; the resulting :class:`Network` initializes and applies finite
networks (``init``, ``apply``) and computes the exact infinite-width NNGP and
NTK (``kernel``, or the jit-compatible ``kernel_fn``), in the spirit of the
stax triple (init, apply, kernel).

Descriptions are pytrees (:mod:`lazykit._pytree`): ``W_std``, ``b_std`` and the
activations' parameters are leaves, the layer types, widths and
parameterization are static. ``jax.grad`` of a kernel entry with respect to
them works through :meth:`Network.kernel_fn`, and :meth:`Network.kernel`
compiles once per structure: a new ``W_std`` reuses the compiled kernel.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._dtypes import precision
from lazykit._pytree import Description
from lazykit._validation import as_matrix, init_dtype, nonnegative_float, positive_int
from lazykit.activations import Activation, get_activation
from lazykit.kernels.recursion import (
    Kernel,
    KernelState,
    input_moments,
    input_state,
    propagate,
    through_dense,
)

PARAMETERIZATIONS = ("ntk", "standard")


def _as_key(key):
    """Accept an integer seed or a JAX PRNG key."""
    if isinstance(key, int) and not isinstance(key, bool):
        return jax.random.PRNGKey(key)
    return key


@dataclasses.dataclass(frozen=True)
class Dense(Description):
    """Fully-connected layer z = W y + b with ``out_dim`` outputs.

    NTK parameterization (default): z = W_std / sqrt(n_in) W y + b_std b with
    W, b ~ N(0, 1). Standard parameterization: z = W y + b with
    W ~ N(0, W_std^2 / n_in), b ~ N(0, b_std^2); same NNGP, a width-dependent
    NTK (Sohl-Dickstein et al. 2020). ``b_std=None`` means no bias.

    Examples:
        >>> import lazykit
        >>> lazykit.Dense(512, W_std=1.5, b_std=0.1)
        Dense(out_dim=512, W_std=1.5, b_std=0.1, parameterization='ntk')
    """

    out_dim: int
    W_std: float = 1.0
    b_std: float | None = None
    parameterization: str = "ntk"

    leaf_fields = ("W_std", "b_std")  # None (no bias) is part of the structure

    def __post_init__(self):
        positive_int(self.out_dim, "out_dim")
        object.__setattr__(self, "W_std", nonnegative_float(self.W_std, "W_std"))
        if self.b_std is not None:
            object.__setattr__(self, "b_std", nonnegative_float(self.b_std, "b_std"))
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}; "
                             f"got {self.parameterization!r}.")

    def init(self, key, in_dim: int, dtype=None):
        """Return (out_dim, params) with params {"W": (in_dim, out_dim), "b": (out_dim,)}.

        ``dtype``: "float32" or "float64"; None means JAX's default float dtype
        (docs/architecture.md, Conventions).
        """
        dtype = init_dtype(dtype)
        key_w, key_b = jax.random.split(key)
        with precision(dtype):  # float64 is drawn in lazykit's local x64 context
            w = jax.random.normal(key_w, (in_dim, self.out_dim), dtype)
            b = None if self.b_std is None else jax.random.normal(key_b, (self.out_dim,), dtype)
            if self.parameterization == "standard":
                w = w * (self.W_std / math.sqrt(in_dim))
                b = None if b is None else b * self.b_std
        params = {"W": w} if b is None else {"W": w, "b": b}
        return self.out_dim, params

    def apply(self, params, x):
        w = params["W"]
        if self.parameterization == "ntk":
            out = (self.W_std / math.sqrt(w.shape[0])) * (x @ w)
            return out if self.b_std is None else out + self.b_std * params["b"]
        out = x @ w
        return out if self.b_std is None else out + params["b"]

    def gradient_variances(self, in_dim: int) -> tuple[float, float]:
        """(s_w^2, s_b^2): the NTK weights of this layer's weight and bias gradients."""
        has_bias = self.b_std is not None
        if self.parameterization == "ntk":
            return self.W_std**2 / in_dim, (self.b_std**2 if has_bias else 0.0)
        return 1.0, (1.0 if has_bias else 0.0)

    def to_neural_tangents(self, stax):
        """This layer as neural-tangents' ``stax.Dense``."""
        return stax.Dense(self.out_dim, W_std=self.W_std, b_std=self.b_std,
                          parameterization=self.parameterization)

    def propagate(self, state: KernelState) -> KernelState:
        return through_dense(state, out_dim=self.out_dim, W_std=self.W_std, b_std=self.b_std,
                             parameterization=self.parameterization)


@dataclasses.dataclass(frozen=True)
class Network(Description):
    """A serial fully-connected network: finite ``init``/``apply`` and infinite-width kernels.

    Build one with :func:`serial` or :func:`mlp`.

    Examples:
        >>> import numpy as np, lazykit
        >>> net = lazykit.serial(lazykit.Dense(512, b_std=0.1), lazykit.Relu(), lazykit.Dense(1))
        >>> x = np.random.default_rng(0).normal(size=(4, 3))
        >>> k = net.kernel(x)
        >>> k.nngp.shape, k.ntk.dtype
        ((4, 4), dtype('float64'))
        >>> params = net.init(0, input_dim=3)
        >>> net.apply(params, x).shape
        (4, 1)
    """

    layers: tuple

    leaf_fields = ("layers",)

    def __post_init__(self):
        _check_layer_order(self.layers)

    @property
    def output_dim(self) -> int:
        """Number of outputs of the finite network (out_dim of the last Dense layer)."""
        return [layer for layer in self.layers if isinstance(layer, Dense)][-1].out_dim

    @property
    def depth(self) -> int:
        """Number of hidden layers (Dense layers before the readout)."""
        return sum(isinstance(layer, Dense) for layer in self.layers) - 1

    def init(self, key, input_dim: int, dtype=None) -> list:
        """Sample parameters of the finite network for inputs of dimension ``input_dim``.

        Args:
            key: a JAX PRNG key, or an integer seed.
            input_dim: the number of input features.
            dtype: "float32" or "float64"; None means JAX's default float dtype
                (float32 unless x64 is enabled; docs/architecture.md, Conventions).
                "float64" is drawn in a local x64 context.
        """
        key = _as_key(key)
        positive_int(input_dim, "input_dim")
        dtype = init_dtype(dtype)
        params, width = [], input_dim
        with precision(dtype):
            for layer, layer_key in zip(self.layers, jax.random.split(key, len(self.layers)),
                                        strict=True):
                if isinstance(layer, Dense):
                    width, layer_params = layer.init(layer_key, width, dtype)
                else:
                    width, layer_params = layer.init(layer_key, width)
                params.append(layer_params)
        return params

    def apply(self, params, x):
        """Outputs of the finite network with parameters ``params`` on inputs ``x`` (n, d)."""
        for layer, layer_params in zip(self.layers, params, strict=True):
            x = layer.apply(layer_params, x)
        return x

    def layer_features(self, params, x):
        """Per Dense layer: inputs y (n, N_in), output gradients g (o, n, N_out), s_w^2, s_b^2.

        The gradients come from one backward pass per output through zero perturbations
        added to each Dense layer's output; the structured path of
        :func:`lazykit.empirical_ntk` contracts them.

        Examples:
            >>> import numpy as np, lazykit
            >>> net = lazykit.mlp(depth=1, width=16)
            >>> features = net.layer_features(net.init(0, input_dim=3), np.ones((2, 3)))
            >>> [(y.shape, g.shape) for y, g, _, _ in features]
            [((2, 3), (1, 2, 16)), ((2, 16), (1, 2, 1))]
        """
        dense = [layer for layer in self.layers if isinstance(layer, Dense)]

        def forward(perturbations):
            h, inputs, k = x, [], 0
            for layer, layer_params in zip(self.layers, params, strict=True):
                if isinstance(layer, Dense):
                    inputs.append(h)
                    h = layer.apply(layer_params, h) + perturbations[k]
                    k += 1
                else:
                    h = layer.apply(layer_params, h)
            return h, inputs

        zeros = [jnp.zeros((x.shape[0], layer.out_dim), x.dtype) for layer in dense]
        out, vjp_fn, inputs = jax.vjp(forward, zeros, has_aux=True)
        outputs = out.shape[1]
        basis = jnp.broadcast_to(jnp.eye(outputs, dtype=out.dtype)[:, None, :],
                                 (outputs, *out.shape))
        (grads,) = jax.vmap(vjp_fn)(basis)  # per layer (o, n, N_out)
        return [(y, g, *layer.gradient_variances(y.shape[1]))
                for layer, y, g in zip(dense, inputs, grads, strict=True)]

    def kernel_fn(self, x1, x2=None, *, diagonal: bool = False) -> Kernel:
        """NNGP and NTK as JAX arrays, jit-compatible, in the precision of the inputs.

        No validation, tiling or dtype policy: use :meth:`kernel` unless you need
        the kernel inside your own jitted or differentiated code.

        Examples:
            >>> import jax.numpy as jnp, lazykit
            >>> net = lazykit.mlp(depth=1, activation="erf")
            >>> net.kernel_fn(jnp.ones((2, 3))).ntk.shape
            (2, 2)
        """
        moments = input_moments(x1, x2, diagonal=diagonal)
        return self.kernel_from_moments(*moments, x1.shape[1], diagonal=diagonal)

    def kernel_from_moments(self, cross, sq1, sq2, input_dim: int, *,
                            diagonal: bool = False, separation=None) -> Kernel:
        """Kernels from raw input moments <x1_i, x2_j>, |x1_i|^2, |x2_j|^2 (jit-compatible).

        ``separation``, if given, is the inputs' exact separation
        (:func:`lazykit.kernels.recursion.input_separation`), which resolves
        near-duplicate and near-antipodal inputs through erf, sin, rbf and identity layers.
        """
        state = propagate(self.layers, input_state(cross, sq1, sq2, input_dim,
                                                   diagonal=diagonal, separation=separation))
        return Kernel(state.nngp, state.ntk)

    def kernel(self, x1, x2=None, *, diagonal: bool = False, dtype=None,
               tile_size: int | None = None, get=None) -> Kernel:
        """Exact infinite-width NNGP and NTK between the rows of ``x1`` and ``x2``.

        Args:
            x1: inputs, shape (n1, d).
            x2: inputs, shape (n2, d); None means ``x1`` (the symmetric case, which
                computes only half of the tiles).
            diagonal: return only K(x1[i], x1[i]) (or K(x1[i], x2[i])), shape (n1,).
            dtype: "float32" or "float64"; None means float64 (docs/architecture.md,
                Conventions).
            tile_size: rows and columns per tile; tiles bound the memory in use
                and are spread over all JAX devices.
            get: None (both kernels), "nngp", "ntk" or a tuple of them: only those
                are computed and stored (half the memory for one).

        Returns:
            :class:`Kernel` with NumPy arrays ``nngp`` and ``ntk`` (None for a kernel
            not in ``get``), freshly allocated and writable.

        Raises:
            ValueError: on NaN/inf, wrong shapes, mismatched features, a kernel
                that overflows ``dtype``, or inputs whose pre-activation variance
                reaches an activation's ``max_variance`` (see :class:`lazykit.Gaussian`).
            InsufficientMemoryError: when the result cannot fit in memory (raised
                before anything is allocated).
            TypeError: when traced by ``jax.jit``, ``jax.vmap`` or ``jax.grad``
                (use :meth:`kernel_fn` there).

        Examples:
            >>> import numpy as np, lazykit
            >>> net = lazykit.mlp(depth=2, width=512, activation="erf", W_std=1.5, b_std=0.05)
            >>> x = np.random.default_rng(0).normal(size=(5, 3))
            >>> k = net.kernel(x, x[:2])
            >>> k.ntk.shape
            (5, 2)
            >>> bool(np.allclose(net.kernel(x, diagonal=True).nngp, np.diag(net.kernel(x).nngp)))
            True
            >>> net.kernel(x, get="ntk").nngp is None
            True

        A network with another ``W_std`` (same layers and widths) reuses the
        compiled kernel: descriptions are pytrees whose hyperparameters are leaves.
        """
        from lazykit.kernels.compute import compute_kernel

        refuse_tracers(x1, x2)
        check_variance_limits(self.layers, x1, x2)
        return compute_kernel(self, x1, x2, diagonal=diagonal, dtype=dtype, tile_size=tile_size,
                              get=get)


def refuse_tracers(*arrays) -> None:
    """Raise a TypeError pointing to ``Network.kernel_fn`` if any input is a JAX tracer.

    Examples:
        >>> import jax, jax.numpy as jnp, lazykit
        >>> net = lazykit.mlp(depth=1)
        >>> jax.jit(net.kernel)(jnp.ones((2, 3)))
        Traceback (most recent call last):
        ...
        TypeError: Network.kernel returns NumPy arrays and cannot be traced by jax.jit, ...
    """
    if any(isinstance(x, jax.core.Tracer) for x in arrays):
        raise TypeError(
            "Network.kernel returns NumPy arrays and cannot be traced by jax.jit, jax.vmap or "
            "jax.grad (it got a traced array); use net.kernel_fn(x1, x2) inside JAX "
            "transformations: the same kernels as JAX arrays, jit-compatible and "
            "differentiable, without validation or tiling.")


def check_variance_limits(layers, x1, x2=None, *, names=("x1", "x2")) -> None:
    """Refuse inputs whose pre-activation variance reaches an activation's ``max_variance``.

    An activation such as ``Gaussian(b > 0)`` has Gaussian expectations that are
    finite only below a pre-activation variance; the variances of the inputs'
    own rows (the kernel's diagonal, O(n)) decide whether any entry diverges.
    Inputs are checked as in :meth:`Network.kernel` only when some layer has a limit;
    ``names`` are the inputs' names in the messages.

    Raises:
        ValueError: naming the layer, the limit, the variance reached and the input row.

    Examples:
        >>> import numpy as np, lazykit
        >>> layers = (lazykit.Dense(8), lazykit.Gaussian(b=0.1), lazykit.Dense(1))
        >>> check_variance_limits(layers, np.ones((2, 3)))  # variance 1 < 1 / (4 b) = 2.5
        >>> check_variance_limits(layers, np.full((2, 3), 2.0))
        Traceback (most recent call last):
        ...
        ValueError: layer 1, Gaussian(a=1.0, b=0.1), needs pre-activation variances below ...
    """
    limited = [i for i, layer in enumerate(layers)
               if isinstance(layer, Activation) and layer.max_variance < math.inf]
    if not limited:
        return
    for name, x in zip(names, (x1, x2), strict=True):
        if x is None:
            continue
        x = as_matrix(x, name, dtype=np.float64)
        squares = np.einsum("ij,ij->i", x, x)
        with precision("float64"):
            state, done = input_state(squares, squares, squares, x.shape[1], diagonal=True), 0
            for i in limited:
                state, done = propagate(layers[done:i], state), i
                variance = np.asarray(state.var1, dtype=np.float64)
                row = int(np.argmax(np.nan_to_num(variance, nan=np.inf)))
                if not variance[row] < layers[i].max_variance:
                    raise ValueError(
                        f"layer {i}, {layers[i]!r}, needs pre-activation variances below "
                        f"{layers[i].max_variance:.6g} (its Gaussian expectations diverge "
                        f"beyond); row {row} of {name} reaches {variance[row]:.6g}. Scale the "
                        "inputs down or use smaller W_std, b_std or b.")


def _check_layer_order(layers) -> None:
    if not layers:
        raise ValueError("serial() needs at least one layer; got none.")
    for i, layer in enumerate(layers):
        if not isinstance(layer, (Dense, Activation)):
            raise TypeError(f"layer {i} must be a Dense or an Activation layer; got {layer!r}.")
    if not isinstance(layers[0], Dense):
        raise ValueError(f"the first layer must be Dense (activations need Gaussian inputs); "
                         f"got {layers[0]!r}.")
    for i in range(1, len(layers)):
        if isinstance(layers[i], Activation) and isinstance(layers[i - 1], Activation):
            raise ValueError(f"layers {i - 1} and {i} are both activations; the exact kernel "
                             "needs a Dense layer between two activations.")


def serial(*layers) -> Network:
    """Compose Dense and activation layers (nested :class:`Network` objects are flattened).

    Examples:
        >>> import lazykit
        >>> net = lazykit.serial(lazykit.Dense(256, W_std=2**0.5), lazykit.Relu(), lazykit.Dense(1))
        >>> net.depth, net.output_dim
        (1, 1)
    """
    flat = []
    for layer in layers:
        flat.extend(layer.layers if isinstance(layer, Network) else [layer])
    return Network(tuple(flat))


def mlp(depth: int, width: int = 512, activation="relu", *, W_std: float = 2.0**0.5,
        b_std: float | None = 0.1, parameterization: str = "ntk", out_dim: int = 1,
        n_nodes: int = 32) -> Network:
    """A fully-connected network with ``depth`` hidden layers of ``width`` units.

    ``activation`` is a name (see :func:`get_activation`), an Activation or an
    elementwise callable (kernels by quadrature with ``n_nodes`` nodes). The
    readout is Dense(out_dim) with the same W_std and b_std.

    Examples:
        >>> import lazykit
        >>> net = lazykit.mlp(depth=3, width=1024, activation="relu")
        >>> net.depth, len(net.layers)
        (3, 7)
    """
    positive_int(depth, "depth")
    positive_int(width, "width")
    act = get_activation(activation, n_nodes=n_nodes)
    layers = []
    for _ in range(depth):
        layers += [Dense(width, W_std, b_std, parameterization), act]
    layers.append(Dense(out_dim, W_std, b_std, parameterization))
    return Network(tuple(layers))
