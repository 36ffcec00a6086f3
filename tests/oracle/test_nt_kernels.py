"""lazykit's kernels against neural-tangents' kernel_fn, live, in the pinned oracle
environment (jax 0.5.3, neural-tangents 0.6.5; `make test` builds it). Skipped elsewhere."""

import numpy as np
import pytest

nt_stax = pytest.importorskip("neural_tangents.stax")

import lazykit  # noqa: E402
from lazykit._dtypes import precision  # noqa: E402
from lazykit.interop.neural_tangents import NeuralTangentsKernel, to_neural_tangents  # noqa: E402

pytestmark = pytest.mark.oracle

ACTIVATIONS = {
    "relu": lazykit.Relu(),
    "leaky_relu": lazykit.LeakyRelu(0.2),
    "abs": lazykit.Abs(),
    "abrelu": lazykit.ABRelu(-0.3, 1.7),
    "sign": lazykit.Sign(),
    "erf": lazykit.Erf(1.3, 0.7, 0.2),
    "sigmoid_like": lazykit.SigmoidLike(),
    "gelu": lazykit.Gelu(),
    "sin": lazykit.Sin(1.1, 0.8, 0.3),
    "cos": lazykit.Cos(0.9, 1.2, 0.1),
    "rbf": lazykit.Rbf(0.7),
    "gaussian": lazykit.Gaussian(1.2, -0.8),
    "exp": lazykit.Exp(0.9, 0.5),
    "identity": lazykit.Identity(),
    "quadratic": lazykit.Monomial(2),
    "cubic": lazykit.Monomial(3),
    "polynomial": lazykit.Polynomial((0.3, -1.0, 0.5, 0.2)),
}
# Growing activations need a smaller W_std for the kernel to stay moderate at depth 4.
SETTINGS = [(1.3, 0.2), (0.8, None), (1.0, 0.0)]
GROWING = {"exp", "cubic", "polynomial", "quadratic", "gaussian"}


def _network(activation, depth, w, b, parameterization):
    layers = []
    for _ in range(depth):
        layers += [lazykit.Dense(48, w, b, parameterization), activation]
    return lazykit.serial(*layers, lazykit.Dense(1, w, b, parameterization))


def _relative(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(np.asarray(b)).max(), 1e-300)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    return rng.normal(size=(9, 5)), rng.normal(size=(6, 5))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_kernel_fn_agreement(inputs, name, depth, parameterization):
    """Each (activation, depth, parameterization) gets one of the W_std / b_std settings,
    cycling with the depth, so every setting meets every activation and parameterization."""
    x1, x2 = inputs
    w, b = SETTINGS[(depth + len(name)) % len(SETTINGS)]
    for other in (x2, None):
        if name in GROWING:
            w = min(w, 0.9)
        net = _network(ACTIVATIONS[name], depth, w, b, parameterization)
        _, _, kernel_fn = to_neural_tangents(net)
        with precision("float64"):
            expected = kernel_fn(x1, other, ("nngp", "ntk"))
        got = net.kernel(x1, other)
        assert _relative(got.nngp, expected[0]) < 1e-10, (w, b, other is None)
        assert _relative(got.ntk, expected[1]) < 1e-10, (w, b, other is None)


def test_numerical_activation_agrees_with_nt_at_high_order(inputs):
    """Both quadratures converge to the same kernel for a smooth function."""
    x1, _ = inputs
    net = lazykit.mlp(2, 48, "sigmoid", W_std=1.2, b_std=0.1, n_nodes=64)
    with pytest.warns(UserWarning, match="Numerical Activation"):
        _, _, kernel_fn = to_neural_tangents(net)
    with precision("float64"):
        expected = kernel_fn(x1, None, ("nngp", "ntk"))
    got = net.kernel(x1)
    assert _relative(got.nngp, expected[0]) < 1e-9
    assert _relative(got.ntk, expected[1]) < 1e-9


def test_nt_kernel_fn_as_a_lazykit_kernel_source(inputs):
    x1, x2 = inputs
    _, _, kernel_fn = nt_stax.serial(nt_stax.Dense(64, 1.5, 0.1), nt_stax.Erf(),
                                     nt_stax.Dense(1, 1.5, 0.1))
    source = NeuralTangentsKernel(kernel_fn)
    mine = lazykit.serial(lazykit.Dense(64, 1.5, 0.1), lazykit.Erf(), lazykit.Dense(1, 1.5, 0.1))
    for args in ((x1,), (x1, x2)):
        k = source.kernel(*args)
        assert k.ntk.dtype == np.float64
        assert _relative(k.ntk, mine.kernel(*args).ntk) < 1e-12
    diag = source.kernel(x1, diagonal=True)
    np.testing.assert_allclose(diag.nngp, np.diag(mine.kernel(x1).nngp), rtol=1e-12)


def test_finite_networks_agree(inputs):
    """The same parameters give the same finite-network outputs in both libraries."""
    import jax

    x1, _ = inputs
    for parameterization in ("ntk", "standard"):
        net = lazykit.mlp(2, 32, "relu", W_std=1.4, b_std=0.3, parameterization=parameterization)
        init_fn, apply_fn, _ = to_neural_tangents(net)
        with precision("float64"):
            _, nt_params = init_fn(jax.random.PRNGKey(3), x1.shape)
            params = [{} if not p else ({"W": p[0]} if p[1] is None else
                                        {"W": p[0], "b": p[1].reshape(-1)}) for p in nt_params]
            params = [p if p else () for p in params]
            np.testing.assert_allclose(np.asarray(net.apply(params, x1)),
                                       np.asarray(apply_fn(nt_params, x1)), rtol=1e-12)
