"""Kernels at extreme variances and for near-duplicate inputs in the chaotic phase (issue 16,
items 2 and 6), against the 50-digit mpmath transcription of the recursions
(tests/reference.py), which takes the float inputs as exact."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import lazykit
from lazykit._dtypes import precision
from lazykit.kernels import duals
from lazykit.kernels.recursion import (
    Kernel,
    NearDuplicateWarning,
    check_near_duplicates,
    input_separation,
    input_state,
    near_duplicate_error,
    near_duplicate_tolerance,
    plan_near_duplicates,
    propagate,
)
from tests.reference import kernel_pair

ROW = np.array([0.3, -1.2, 0.8, 0.5])


def _assert_matches_reference(k, x, rtol, **config):
    """Every entry within rtol of the reference, relative to sqrt(K(x, x) K(x', x'))."""
    for i in range(len(x)):
        for j in range(i, len(x)):
            nngp, ntk = kernel_pair(x[i], x[j], **config)
            assert abs(k.nngp[i, j] - nngp) <= rtol * np.sqrt(k.nngp[i, i] * k.nngp[j, j]), (i, j)
            assert abs(k.ntk[i, j] - ntk) <= rtol * np.sqrt(k.ntk[i, i] * k.ntk[j, j]), (i, j)


def test_erf_ntk_at_w_std_1e8_issue_probe():
    """The issue's probe: 4.28e23 where the formula gives 4.95e23 (XLA fused k11 k22 - k12^2)."""
    k = lazykit.mlp(1, activation="erf", W_std=1e8, b_std=0.1).kernel([ROW])
    nngp, ntk = kernel_pair(ROW, ROW, activation="erf", depth=1, W_std=1e8, b_std=0.1)
    assert k.ntk[0, 0] == pytest.approx(ntk, rel=1e-13)
    assert k.nngp[0, 0] == pytest.approx(nngp, rel=1e-13)


@pytest.mark.parametrize("w_std", [1.0, 1e4, 1e8])
@pytest.mark.parametrize("norm", [1.0, 1e4, 1e8])
def test_erf_kernels_at_large_variances(w_std, norm):
    """Identical and unrelated rows, input norms up to 1e8: 1e-13."""
    x = norm * np.stack([ROW, [-0.9, 0.4, 1.1, 0.2], [0.1, 0.1, -2.0, 0.7]])
    k = lazykit.mlp(1, activation="erf", W_std=w_std, b_std=0.1).kernel(x)
    _assert_matches_reference(k, x, 1e-13, activation="erf", depth=1, W_std=w_std, b_std=0.1)


def test_general_erf_deep_at_large_variance(rng):
    """a erf(b x) + c over three layers at W_std = 1e4."""
    x = 1e3 * rng.normal(size=(4, 3))
    act = lazykit.Erf(1.3, 0.7, 0.2)
    net = lazykit.serial(*[lazykit.Dense(8, 1e4, 0.1), act] * 3, lazykit.Dense(1, 1e4, 0.1))
    _assert_matches_reference(net.kernel(x), x, 1e-13, activation="erf", depth=3, W_std=1e4,
                              b_std=0.1, params=(1.3, 0.7, 0.2))


# Near-duplicates in the chaotic phase ----------------------------------------------------
# The recursion resolves them when it gets the inputs' exact separation
# (recursion.input_separation) and the activations track it (dual_with_gap). These helpers
# wire both by hand.


class _TrackedErf(lazykit.Erf):
    def dual_with_gap(self, k12, k11, k22, separation):
        return duals.erf_with_gap(k12, k11, k22, separation, a=self.a, b=self.b, c=self.c)


class _TrackedSin(lazykit.Sin):
    def dual_with_gap(self, k12, k11, k22, separation):
        return duals.sin_with_gap(k12, k11, k22, separation, a=self.a, b=self.b, c=self.c)


def _kernel_with_gaps(net, x, tracked=True):
    """(nngp, ntk) of ``net`` on the rows of x, with the inputs' exact separation if tracked."""
    with precision("float64"):
        sq = np.einsum("ij,ij->i", x, x)
        gram = x @ x.T
        np.fill_diagonal(gram, sq)
        separation = input_separation(x, cross=gram) if tracked else None
        if separation is not None:
            separation = type(separation)(*map(jnp.asarray, separation))
        state = input_state(*(jnp.asarray(v) for v in (gram, sq, sq)), x.shape[1],
                            separation=separation)
        state = propagate(net.layers, state)
        return Kernel(np.asarray(state.nngp), np.asarray(state.ntk))


def _kernel_from_moments(net, x):
    """The kernel from the moments alone, as without the separation."""
    return _kernel_with_gaps(net, x, tracked=False)


def _near_duplicates(rng, separation):
    x0 = rng.normal(size=4)
    return np.stack([x0, x0 + separation * rng.normal(size=4), -x0, rng.normal(size=4),
                     x0 * (1 + separation)])


@pytest.mark.parametrize("depth,separation,b_std", [
    (30, 1e-9, 0.1), (50, 1e-13, 0.1), (30, 1e-5, 0.1), (30, 1e-9, 0.0)])
def test_near_duplicates_in_chaotic_erf_network(rng, depth, separation, b_std):
    """Issue 16 item 6: 93.43 (the duplicate's value) against 4.71 before; now 1e-12.

    Rows: x, a near-duplicate, -x (near-antipodal to it), an unrelated row, (1 + s) x.
    """
    x = _near_duplicates(rng, separation)
    net = lazykit.serial(*[lazykit.Dense(1, 10.0, b_std), _TrackedErf()] * depth,
                         lazykit.Dense(1, 10.0, b_std))
    k = _kernel_with_gaps(net, x)
    _assert_matches_reference(k, x, 1e-12, activation="erf", depth=depth, W_std=10.0,
                              b_std=b_std)
    if depth == 30 and separation == 1e-9:  # decorrelated: not the duplicate's value any more
        assert k.nngp[0, 1] < 0.2 * k.nngp[0, 0]


@pytest.mark.parametrize("w_std", [1.0, 1e4, 1e8])
@pytest.mark.parametrize("norm", [1.0, 1e4, 1e8])
def test_erf_antipodal_rows_at_large_variances(w_std, norm):
    """x and -x: after a Dense layer with a bias 1 + rho is far below the resolution of the
    moments; the tracked separation keeps it (1e-13)."""
    x = norm * np.stack([ROW, -ROW, [-0.9, 0.4, 1.1, 0.2]])
    net = lazykit.serial(lazykit.Dense(1, w_std, 0.1), _TrackedErf(), lazykit.Dense(1, w_std, 0.1))
    k = _kernel_with_gaps(net, x)
    _assert_matches_reference(k, x, 1e-13, activation="erf", depth=1, W_std=w_std, b_std=0.1)


def test_near_duplicates_in_chaotic_sin_network(rng):
    x = _near_duplicates(rng, 1e-10)
    act = _TrackedSin(1.0, 3.0, 0.2)
    net = lazykit.serial(*[lazykit.Dense(1, 1.5, 0.1), act] * 12, lazykit.Dense(1, 1.5, 0.1))
    k = _kernel_with_gaps(net, x)
    _assert_matches_reference(k, x, 1e-12, activation="sin", depth=12, W_std=1.5, b_std=0.1,
                              params=(1.0, 3.0, 0.2))


# Where the separation is not tracked: an estimate and a warning ---------------------------


def test_chaotic_near_duplicates_warn(rng):
    """erf, W_std 10, depth 30, rows 1e-9 apart: off by 100% from the moments alone."""
    x = _near_duplicates(rng, 1e-9)
    layers = lazykit.mlp(30, activation="erf", W_std=10.0, b_std=0.1).layers
    error, pair, count = near_duplicate_error(layers, x)
    assert error > 1e-3 and count >= 2
    assert pair in {(0, 1), (0, 4), (1, 4), (1, 2), (2, 4)}
    with pytest.warns(NearDuplicateWarning, match=r"row \d of x1 and row \d of x1"):
        check_near_duplicates(layers, x)
    with pytest.warns(NearDuplicateWarning, match="float32"):
        check_near_duplicates(layers, x[:2], x[1:3], diagonal=True, dtype="float32")


@pytest.mark.parametrize("activation,depth,w_std,separation", [
    ("erf", 12, 10.0, 1e-6), ("erf", 16, 10.0, 1e-6), ("erf", 50, 2.0, 1e-6),
    ("relu", 50, 2**0.5, 1e-9)])
def test_estimate_bounds_the_actual_error(rng, activation, depth, w_std, separation):
    x0 = rng.normal(size=4)
    x = np.stack([x0, x0 + separation * rng.normal(size=4)])
    net = lazykit.mlp(depth, activation=activation, W_std=w_std, b_std=0.1)
    k = _kernel_from_moments(net, x)
    nngp, ntk = kernel_pair(x[0], x[1], activation=activation, depth=depth, W_std=w_std,
                            b_std=0.1)
    actual = max(abs(k.nngp[0, 1] - nngp) / np.sqrt(k.nngp[0, 0] * k.nngp[1, 1]),
                 abs(k.ntk[0, 1] - ntk) / np.sqrt(k.ntk[0, 0] * k.ntk[1, 1]))
    estimate = near_duplicate_error(net.layers, x)[0]
    assert actual <= estimate <= max(1e4 * actual, 1e-12)


@pytest.mark.parametrize("activation,depth,w_std", [("relu", 50, 2**0.5), ("erf", 8, 10.0),
                                                    ("erf", 4, 1.5), ("gelu", 10, 1.5)])
def test_no_warning_below_the_tolerance(rng, activation, depth, w_std):
    x = _near_duplicates(rng, 1e-9)
    layers = lazykit.mlp(depth, activation=activation, W_std=w_std, b_std=0.1).layers
    with warnings.catch_warnings():
        warnings.simplefilter("error", NearDuplicateWarning)
        check_near_duplicates(layers, x)
    assert near_duplicate_error(layers, x)[0] <= near_duplicate_tolerance("float64")


def test_no_warning_for_exact_duplicates_or_tracked_layers(rng):
    """Identical inputs are exact; tracked erf layers resolve near-duplicates."""
    x = rng.normal(size=(3, 4))
    x = np.vstack([x, x[:1], x[1:2]])
    layers = lazykit.mlp(30, activation="erf", W_std=10.0, b_std=0.1).layers
    with warnings.catch_warnings():
        warnings.simplefilter("error", NearDuplicateWarning)
        check_near_duplicates(layers, x)
        near = _near_duplicates(rng, 1e-9)
        tracked = [_TrackedErf() if isinstance(layer, lazykit.Erf) else layer
                   for layer in layers]
        check_near_duplicates(tracked, near, tracked=True)
    assert near_duplicate_error(tracked, near, tracked=True) == (0.0, None, 0)
    assert near_duplicate_error(tracked, near, tracked=False)[0] > 1e-3  # moments only


# Through the public API: Network.kernel carries the separation where it is needed.


def test_network_kernel_resolves_chaotic_near_duplicates(rng):
    """Issue 16 item 6 through the public API: 4.71, not the duplicate's 93.43, and no warning."""
    x = _near_duplicates(rng, 1e-9)
    net = lazykit.mlp(30, activation="erf", W_std=10.0, b_std=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NearDuplicateWarning)
        k = net.kernel(x)
        diagonal = net.kernel(x[:2], x[1:3], diagonal=True)
    _assert_matches_reference(k, x, 1e-12, activation="erf", depth=30, W_std=10.0, b_std=0.1)
    np.testing.assert_allclose(diagonal.ntk, [k.ntk[0, 1], k.ntk[1, 2]], rtol=1e-12)


def test_network_kernel_antipodal_rows_at_w_std_1e8():
    x = 1e4 * np.stack([ROW, -ROW])
    k = lazykit.mlp(1, activation="erf", W_std=1e8, b_std=0.1).kernel(x)
    _assert_matches_reference(k, x, 1e-13, activation="erf", depth=1, W_std=1e8, b_std=0.1)


def test_network_kernel_warns_where_layers_cannot_track(rng):
    """sign: 1 - rho grows like its square root in every layer; the moments cannot keep up."""
    x = _near_duplicates(rng, 1e-9)
    with pytest.warns(NearDuplicateWarning, match="near-duplicate"):
        lazykit.mlp(10, activation="sign", W_std=1.0, b_std=0.1).kernel(x)


def test_plan_tracks_only_where_it_pays(rng):
    """The separation is carried where a layer can use it and the network amplifies."""
    x = _near_duplicates(rng, 1e-9)

    def tracked_mlp(depth, w_std):
        return [_TrackedErf() if isinstance(layer, lazykit.Erf) else layer
                for layer in lazykit.mlp(depth, activation="erf", W_std=w_std, b_std=0.1).layers]

    with warnings.catch_warnings():
        warnings.simplefilter("error", NearDuplicateWarning)
        assert plan_near_duplicates(tracked_mlp(20, 10.0), x)
        assert not plan_near_duplicates(tracked_mlp(2, 1.5), x)  # nothing to amplify
        assert not plan_near_duplicates(lazykit.mlp(20, activation="relu").layers, x)
        assert not plan_near_duplicates(tracked_mlp(20, 10.0), x, diagonal=True)
    with pytest.warns(NearDuplicateWarning):  # a device path that cannot carry it
        assert not plan_near_duplicates(tracked_mlp(20, 10.0), x, can_track=False)


def _erf_diagonal_reference(value, depth, w_std):
    """NNGP and NTK of one input with itself, erf, no bias, by mpmath at 50 digits."""
    import mpmath

    with mpmath.workdps(50):
        w2 = mpmath.mpf(w_std) ** 2
        nngp = ntk = w2 * mpmath.mpf(value) ** 2
        for _ in range(depth):
            dot = (4 / mpmath.pi) / mpmath.sqrt(1 + 4 * nngp)
            nngp = w2 * (2 / mpmath.pi) * mpmath.asin(2 * nngp / (1 + 2 * nngp))
            ntk = nngp + w2 * dot * ntk
        return float(nngp), float(ntk)


@pytest.mark.parametrize("depth,value", [(1, 1e100), (2, 1e150), (3, 1e153)])
def test_erf_kernels_past_the_square_root_of_the_float_range(depth, value):
    """Pre-activation variances beyond 1e154: k11 k22 overflows, the kernel must not."""
    k = lazykit.mlp(depth, activation="erf", W_std=1.5, b_std=None).kernel([[value]])
    nngp, ntk = _erf_diagonal_reference(value, depth, 1.5)
    assert k.nngp[0, 0] == pytest.approx(nngp, rel=1e-12)
    assert k.ntk[0, 0] == pytest.approx(ntk, rel=1e-12)
