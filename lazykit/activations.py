"""Activation layers: each is an elementwise function together with its Gaussian dual.

The dual maps the covariance of the pre-activations to
``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` and drives the NNGP and NTK
recursions; the function itself drives the finite network. Activations with a
closed-form dual use it; any other elementwise function goes through
:class:`Elementwise`, a 2-D Gauss-Hermite quadrature.

Activations are frozen dataclasses and pytrees (:mod:`lazykit._pytree`): their
real parameters (``a``, ``b``, ``c``, ``gamma``, ``coef``) are leaves, so a new
value does not recompile a kernel and ``jax.grad`` differentiates with respect
to it; everything else (a quadrature's function and node count) is static.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp

from lazykit._pytree import Description
from lazykit._validation import finite_float
from lazykit.kernels import duals
from lazykit.kernels.quadrature import gauss_hermite_dual
from lazykit.kernels.recursion import KernelState, through_activation


class Activation(Description):
    """Base class of activation layers (no parameters; shapes are preserved).

    Subclasses define ``__call__`` (the elementwise function) and ``dual``.
    ``snaps_correlation`` is True for duals that clip the correlation to
    [-1, 1] themselves; for the others the recursion does it (see
    :func:`lazykit.kernels.fast_math.snap_covariance`).
    """

    snaps_correlation = False
    # Subclasses whose dual can also carry a pair's exact separation (near-duplicate
    # and near-antipodal inputs) define dual_with_gap(k12, k11, k22, separation);
    # see lazykit.kernels.recursion.
    # Pre-activation variance at and beyond which the Gaussian expectations of the
    # dual diverge (inf: never); Network.kernel refuses inputs that reach it.
    max_variance = math.inf

    def __call__(self, x):
        raise NotImplementedError

    def dual(self, k12, k11, k22):
        """(E[phi(u) phi(v)], E[phi'(u) phi'(v)]) for (u, v) ~ N(0, [[k11, k12], [k12, k22]])."""
        raise NotImplementedError

    def value_and_slope(self, u):
        """(phi(u), phi'(u)) elementwise; by forward-mode autodiff unless a subclass knows better.

        Examples:
            >>> import jax.numpy as jnp, lazykit
            >>> value, slope = lazykit.Erf().value_and_slope(jnp.zeros(2))
            >>> round(float(slope[0]), 6)  # erf'(0) = 2 / sqrt(pi)
            1.128379
        """
        return jax.jvp(self, (u,), (jnp.ones_like(u),))

    # neural-tangents' stax layer of the same function (None: it has none); its arguments
    # are the dataclass fields in order.
    nt_layer: ClassVar[str | None] = None

    def to_neural_tangents(self, stax):
        """This activation as a layer of neural-tangents' ``stax`` module.

        Raises:
            NotImplementedError: neural-tangents has no equivalent layer.
        """
        if self.nt_layer is None:
            raise NotImplementedError(f"neural-tangents has no layer equivalent to {self!r}.")
        return getattr(stax, self.nt_layer)(
            *(getattr(self, field.name) for field in dataclasses.fields(self)))

    # Layer protocol -------------------------------------------------------
    def init(self, key, in_dim: int):
        del key
        return in_dim, ()

    def apply(self, params, x):
        del params
        return self(x)

    def propagate(self, state: KernelState) -> KernelState:
        return through_activation(self, state)


class _RealParameters(Activation):
    """An activation whose dataclass fields are real parameters: finite, stored as floats.

    ``_minimums`` maps a field to its smallest allowed value, where the math needs one.
    All fields are pytree leaves.
    """

    _minimums: ClassVar[dict[str, float]] = {}
    leaf_fields = None

    def __post_init__(self):
        owner = type(self).__name__
        for field in dataclasses.fields(self):
            value = finite_float(getattr(self, field.name), f"{field.name} of {owner}",
                                 minimum=self._minimums.get(field.name))
            object.__setattr__(self, field.name, value)


@dataclasses.dataclass(frozen=True)
class ABRelu(_RealParameters):
    """phi(x) = a min(x, 0) + b max(x, 0), with the arc-cosine closed form.

    Examples:
        >>> import lazykit
        >>> lazykit.ABRelu(a=-1.0, b=1.0)(-2.0)  # abs
        Array(2., dtype=float32, weak_type=True)
    """

    a: float = 0.0
    b: float = 1.0

    snaps_correlation = True
    nt_layer = "ABRelu"

    def value_and_slope(self, u):
        """(phi(u), phi'(u)), the slope without autodiff (a for u <= 0, b for u > 0)."""
        return self(u), jnp.where(u > 0, self.b, self.a).astype(u.dtype)

    def __call__(self, x):
        return self.a * jnp.minimum(x, 0) + self.b * jnp.maximum(x, 0)

    def dual(self, k12, k11, k22):
        return duals.abrelu(k12, k11, k22, a=self.a, b=self.b)


def Relu() -> ABRelu:
    """ReLU, max(x, 0) (arc-cosine kernel of degree 1).

    Examples:
        >>> import lazykit
        >>> lazykit.Relu()
        ABRelu(a=0.0, b=1.0)
    """
    return ABRelu(0.0, 1.0)


def LeakyRelu(alpha: float = 0.01) -> ABRelu:
    """Leaky ReLU, max(x, 0) + alpha min(x, 0).

    Examples:
        >>> import lazykit
        >>> lazykit.LeakyRelu(0.1)
        ABRelu(a=0.1, b=1.0)
    """
    return ABRelu(finite_float(alpha, "alpha of LeakyRelu"), 1.0)


def Abs() -> ABRelu:
    """Absolute value |x|.

    Examples:
        >>> import lazykit
        >>> lazykit.Abs()
        ABRelu(a=-1.0, b=1.0)
    """
    return ABRelu(-1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Step(Activation):
    """Heaviside step 1[x > 0]. Its derivative is 0 almost everywhere, so the NTK gets no
    contribution through it (as for a finite network trained by backpropagation).

    Examples:
        >>> import lazykit
        >>> float(lazykit.Step()(0.5))
        1.0
    """

    snaps_correlation = True

    def __call__(self, x):
        return jnp.where(x > 0, 1.0, 0.0).astype(jnp.result_type(x, float))

    def dual(self, k12, k11, k22):
        return duals.step(k12, k11, k22)


@dataclasses.dataclass(frozen=True)
class Sign(Activation):
    """sign(x); derivative 0 almost everywhere, like :class:`Step`.

    Examples:
        >>> import lazykit
        >>> float(lazykit.Sign()(-3.0))
        -1.0
    """

    nt_layer = "Sign"

    snaps_correlation = True

    def __call__(self, x):
        return jnp.sign(x)

    def dual(self, k12, k11, k22):
        return duals.sign(k12, k11, k22)


@dataclasses.dataclass(frozen=True)
class Erf(_RealParameters):
    """phi(x) = a erf(b x) + c.

    Examples:
        >>> import lazykit
        >>> round(float(lazykit.Erf()(10.0)), 6)
        1.0
    """

    nt_layer = "Erf"

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def __call__(self, x):
        return self.a * jax.scipy.special.erf(self.b * x) + self.c

    def dual(self, k12, k11, k22):
        return duals.erf(k12, k11, k22, a=self.a, b=self.b, c=self.c)

    def dual_with_gap(self, k12, k11, k22, separation):
        return duals.erf_with_gap(k12, k11, k22, separation, a=self.a, b=self.b, c=self.c)


def SigmoidLike() -> Erf:
    """0.5 erf(x / 2.4020563531719796) + 0.5, an erf fit of the logistic sigmoid on [-5, 5].

    Examples:
        >>> import lazykit
        >>> float(lazykit.SigmoidLike()(0.0))
        0.5
    """
    return Erf(a=0.5, b=1.0 / 2.4020563531719796, c=0.5)


@dataclasses.dataclass(frozen=True)
class Gelu(Activation):
    """GELU, x Phi(x) with Phi the standard normal CDF (exact, not the tanh approximation).

    Examples:
        >>> import lazykit
        >>> float(lazykit.Gelu()(0.0))
        0.0
    """

    nt_layer = "Gelu"

    def __call__(self, x):
        return jax.nn.gelu(x, approximate=False)

    def dual(self, k12, k11, k22):
        return duals.gelu(k12, k11, k22)


@dataclasses.dataclass(frozen=True)
class Sin(_RealParameters):
    """phi(x) = a sin(b x + c).

    Examples:
        >>> import lazykit
        >>> float(lazykit.Sin()(0.0))
        0.0
    """

    nt_layer = "Sin"

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def __call__(self, x):
        return self.a * jnp.sin(self.b * x + self.c)

    def dual(self, k12, k11, k22):
        return duals.sin(k12, k11, k22, a=self.a, b=self.b, c=self.c)

    def dual_with_gap(self, k12, k11, k22, separation):
        return duals.sin_with_gap(k12, k11, k22, separation, a=self.a, b=self.b, c=self.c)


def Cos(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Sin:
    """phi(x) = a cos(b x + c), i.e. :class:`Sin` with phase c + pi/2.

    Examples:
        >>> import lazykit
        >>> round(float(lazykit.Cos()(0.0)), 6)
        1.0
    """
    a, b, c = (finite_float(value, f"{name} of Cos")
               for name, value in zip("abc", (a, b, c), strict=True))
    return Sin(a=a, b=b, c=c + math.pi / 2)


@dataclasses.dataclass(frozen=True)
class Rbf(_RealParameters):
    """sqrt(2) sin(sqrt(2 gamma) x + pi/4), whose NNGP after a bias-free Dense layer is the
    RBF kernel exp(-gamma ||x - x'||^2 / d). ``gamma`` must be >= 0: a negative one
    gives no real activation and an indefinite "kernel".

    Examples:
        >>> import lazykit
        >>> lazykit.Rbf(gamma=0.5)
        Rbf(gamma=0.5)
    """

    nt_layer = "Rbf"

    gamma: float = 1.0

    _minimums: ClassVar[dict[str, float]] = {"gamma": 0.0}

    def __call__(self, x):
        return math.sqrt(2.0) * jnp.sin(jnp.sqrt(2.0 * self.gamma) * x + math.pi / 4)

    def dual(self, k12, k11, k22):
        return duals.rbf(k12, k11, k22, gamma=self.gamma)

    def dual_with_gap(self, k12, k11, k22, separation):
        return duals.rbf_with_gap(k12, k11, k22, separation, gamma=self.gamma)


@dataclasses.dataclass(frozen=True)
class Gaussian(_RealParameters):
    """Gaussian bump phi(x) = a exp(b x^2) (b < 0; b = 0 is the constant a).

    For b > 0 the expectations of the dual, E[exp(b (u^2 + v^2))] and its
    derivative term, are finite only where I - 2 b Sigma is positive definite
    (Sigma the covariance of (u, v)), that is for 1 - 2 b k11 > 0 and
    (1 - 2 b k11)(1 - 2 b k22) - 4 b^2 k12^2 > 0; the dual returns +inf (NTK
    term: +-inf, NaN for k12 = 0) where they diverge. On a pair of equal inputs
    the condition reads k < 1 / (4 b), and when both inputs' own variances meet
    it every pair does, so :meth:`Network.kernel` refuses inputs whose
    pre-activation variance reaches ``max_variance`` = 1 / (4 b).

    Examples:
        >>> import lazykit
        >>> float(lazykit.Gaussian()(0.0))
        1.0
        >>> lazykit.Gaussian(b=0.1).max_variance
        2.5
    """

    nt_layer = "Gaussian"

    a: float = 1.0
    b: float = -1.0

    @property
    def max_variance(self) -> float:
        """1 / (4 b) for b > 0 (E[phi(u)^2] is infinite for Var u >= 1 / (4 b)), else inf."""
        return 1.0 / (4.0 * self.b) if self.b > 0 else math.inf

    def __call__(self, x):
        return self.a * jnp.exp(self.b * x * x)

    def dual(self, k12, k11, k22):
        nngp, dot = duals.gaussian(k12, k11, k22, a=self.a, b=self.b)
        # For b <= 0, I - 2 b Sigma is positive definite for every covariance (its
        # determinant, which can overflow, need not be formed); b may be traced.
        m11, m22 = 1.0 - 2.0 * self.b * k11, 1.0 - 2.0 * self.b * k22
        finite = (self.b <= 0) | ((m11 > 0) & (m11 * m22 - 4.0 * self.b * self.b * k12 * k12 > 0))
        return jnp.where(finite, nngp, jnp.inf), jnp.where(finite, dot, jnp.sign(k12) * jnp.inf)


@dataclasses.dataclass(frozen=True)
class Exp(_RealParameters):
    """phi(x) = a exp(b x).

    Examples:
        >>> import lazykit
        >>> float(lazykit.Exp()(0.0))
        1.0
    """

    nt_layer = "Exp"

    a: float = 1.0
    b: float = 1.0

    def __call__(self, x):
        return self.a * jnp.exp(self.b * x)

    def dual(self, k12, k11, k22):
        return duals.exp(k12, k11, k22, a=self.a, b=self.b)


@dataclasses.dataclass(frozen=True)
class Identity(Activation):
    """phi(x) = x (a linear layer; a network of Dense and Identity layers is linear).

    Examples:
        >>> import lazykit
        >>> float(lazykit.Identity()(2.0))
        2.0
    """

    nt_layer = "Identity"

    def __call__(self, x):
        return x

    def dual(self, k12, k11, k22):
        return duals.identity(k12, k11, k22)

    def dual_with_gap(self, k12, k11, k22, separation):
        return duals.identity_with_gap(k12, k11, k22, separation)


@dataclasses.dataclass(frozen=True)
class Polynomial(Activation):
    """phi(x) = coef[0] + coef[1] x + ... + coef[p] x^p, with exact Gaussian moments.

    Degrees up to :data:`MAX_POLYNOMIAL_DEGREE` (20); for a higher degree p,
    ``Elementwise(lambda x: x**p, n_nodes=p + 1)`` is exact too (Gauss-Hermite
    quadrature integrates polynomials of degree < 2 n_nodes exactly).

    Examples:
        >>> import lazykit
        >>> float(lazykit.Polynomial((1.0, 0.0, 2.0))(3.0))  # 1 + 2 * 3^2
        19.0
    """

    nt_layer = "Polynomial"
    leaf_fields = ("coef",)

    coef: tuple[float, ...] = (0.0, 1.0)

    def __post_init__(self):
        try:
            coef = tuple(self.coef)
        except TypeError as err:
            raise TypeError(f"coef of Polynomial must be a sequence of real numbers; "
                            f"got {self.coef!r}.") from err
        if not coef:
            raise ValueError("coef must hold at least one coefficient; got an empty sequence.")
        coef = tuple(finite_float(c, f"coef[{i}] of Polynomial") for i, c in enumerate(coef))
        # A traced coefficient counts as nonzero.
        degree = max((i for i, c in enumerate(coef) if not (isinstance(c, float) and c == 0)),
                     default=0)
        if degree > MAX_POLYNOMIAL_DEGREE:
            raise ValueError(f"coef of Polynomial must have degree <= {MAX_POLYNOMIAL_DEGREE} "
                             f"(its highest nonzero coefficient); got degree {degree}. "
                             + _HIGH_DEGREE_HINT)
        object.__setattr__(self, "coef", coef)

    def __call__(self, x):
        result = jnp.zeros_like(x) + self.coef[-1]
        for c in self.coef[-2::-1]:
            result = result * x + c
        return result

    def dual(self, k12, k11, k22):
        return duals.polynomial(k12, k11, k22, coef=self.coef)


# The closed-form moments multiply k! for k up to the degree into JAX arrays, and
# 21! no longer fits the 64-bit integers JAX parses Python ints as.
MAX_POLYNOMIAL_DEGREE = 20


_HIGH_DEGREE_HINT = (f"The closed-form Gaussian moments go up to degree {MAX_POLYNOMIAL_DEGREE}; "
                     "for a higher degree p, lazykit.Elementwise(lambda x: x**p, n_nodes=p + 1) "
                     "is exact by quadrature.")


def Monomial(degree: int) -> Polynomial:
    """phi(x) = x^degree for degree in [0, 20]; ``Monomial(2)`` is the quadratic activation.

    Examples:
        >>> import lazykit
        >>> lazykit.Monomial(2)
        Polynomial(coef=(0.0, 0.0, 1.0))
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree must be an integer >= 0; got {degree!r}.")
    if degree > MAX_POLYNOMIAL_DEGREE:
        raise ValueError(f"degree must be an integer in [0, {MAX_POLYNOMIAL_DEGREE}]; got "
                         f"{degree}. " + _HIGH_DEGREE_HINT)
    return Polynomial(tuple([0.0] * degree + [1.0]))


@dataclasses.dataclass(frozen=True)
class Elementwise(Activation):
    """Any elementwise, JAX-differentiable function; kernels by 2-D Gauss-Hermite quadrature.

    ``n_nodes`` nodes per dimension: exact for polynomials of degree < 2 n_nodes;
    for smooth functions the error falls geometrically, for kinks slowly, and
    saturating functions need more nodes as the pre-activation variance grows.
    Measured relative errors of NNGP / NTK, two hidden layers, W_std = 1.4,
    b_std = 0.2, inputs with |x|^2 = d (pre-activation variance 2):

    ==========  ===================  ===================
    function    32 nodes (default)   64 nodes
    ==========  ===================  ===================
    sigmoid     6e-10 / 9e-9         3e-14 / 1e-12
    softplus    3e-9 / 5e-8          4e-13 / 1e-11
    gelu        6e-7 / 4e-6          1e-12 / 1e-11
    erf         3e-5 / 6e-4          1e-8 / 5e-7
    tanh        1e-4 / 2e-3          1e-6 / 3e-5
    relu        7e-3 / 3e-2          3e-3 / 2e-2
    ==========  ===================  ===================

    Use the closed forms where they exist. Cost is 2 n_nodes^2 function
    evaluations per kernel entry and layer. See docs/kernels.md.

    Examples:
        >>> import jax.numpy as jnp, lazykit
        >>> act = lazykit.Elementwise(jnp.tanh, n_nodes=24, name="tanh")
        >>> act
        Elementwise(name='tanh', n_nodes=24)
    """

    fn: Callable = dataclasses.field(repr=False)
    n_nodes: int = 32
    name: str | None = None

    def __post_init__(self):
        if not callable(self.fn):
            raise TypeError(f"fn must be a callable elementwise function; got {self.fn!r}.")
        if isinstance(self.n_nodes, bool) or not isinstance(self.n_nodes, int) or self.n_nodes < 1:
            raise ValueError(f"n_nodes must be an integer >= 1; got {self.n_nodes!r}.")
        if self.name is None:
            object.__setattr__(self, "name", getattr(self.fn, "__name__", "elementwise"))

    def __repr__(self):
        return f"Elementwise(name={self.name!r}, n_nodes={self.n_nodes})"

    def __call__(self, x):
        return self.fn(x)

    def to_neural_tangents(self, stax):
        """neural-tangents' quadrature layer of the same function and node count."""
        return stax.ElementwiseNumerical(self.fn, deg=self.n_nodes)

    def dual(self, k12, k11, k22):
        return gauss_hermite_dual(self.fn, k12, k11, k22, n_nodes=self.n_nodes)


def _softplus(x):
    return jax.nn.softplus(x)


def _sigmoid(x):
    return jax.nn.sigmoid(x)


def _silu(x):
    return jax.nn.silu(x)


def _elu(x):
    return jax.nn.elu(x)


def _selu(x):
    return jax.nn.selu(x)


def _softsign(x):
    return jax.nn.soft_sign(x)


_CLOSED_FORM: dict[str, Callable[[], Activation]] = {
    "relu": Relu,
    "leaky_relu": LeakyRelu,
    "abs": Abs,
    "step": Step,
    "heaviside": Step,
    "sign": Sign,
    "erf": Erf,
    "sigmoid_like": SigmoidLike,
    "gelu": Gelu,
    "sin": Sin,
    "cos": Cos,
    "rbf": Rbf,
    "gaussian": Gaussian,
    "exp": Exp,
    "identity": Identity,
    "linear": Identity,
    "quadratic": lambda: Monomial(2),
    "cubic": lambda: Monomial(3),
}

_QUADRATURE: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "softplus": _softplus,
    "sigmoid": _sigmoid,
    "silu": _silu,
    "swish": _silu,
    "elu": _elu,
    "selu": _selu,
    "softsign": _softsign,
}

ACTIVATION_NAMES = tuple(sorted({**_CLOSED_FORM, **_QUADRATURE}))


def get_activation(spec, *, n_nodes: int = 32) -> Activation:
    """Return the activation layer for a name, an :class:`Activation`, or a callable.

    Names with a closed form: relu, leaky_relu, abs, step, sign, erf,
    sigmoid_like, gelu, sin, cos, rbf, gaussian, exp, identity, quadratic,
    cubic. Names computed by quadrature (``n_nodes`` per dimension): tanh,
    softplus, sigmoid, silu/swish, elu, selu, softsign. A callable becomes an
    :class:`Elementwise` activation.

    Examples:
        >>> import lazykit
        >>> lazykit.get_activation("relu")
        ABRelu(a=0.0, b=1.0)
        >>> lazykit.get_activation("tanh", n_nodes=16)
        Elementwise(name='tanh', n_nodes=16)
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        key = spec.lower()
        if key in _CLOSED_FORM:
            return _CLOSED_FORM[key]()
        if key in _QUADRATURE:
            return Elementwise(_QUADRATURE[key], n_nodes=n_nodes, name=key)
        raise ValueError(f"activation must be one of {', '.join(ACTIVATION_NAMES)}, an "
                         f"Activation or a callable; got {spec!r}.")
    if callable(spec):
        return Elementwise(spec, n_nodes=n_nodes)
    raise TypeError(f"activation must be a name, an Activation or a callable; got {spec!r}.")
