"""The inputs and settings that give neural-tangents users NaNs (its issues #36 and #197):
very deep networks, large W_std, near-duplicate and antipodal inputs. Checked against
a 50-digit mpmath transcription of the recursions (tests/reference.py)."""

import numpy as np
import pytest

import lazykit
from tests.reference import kernel_pair


def _inputs(rng):
    x = rng.normal(size=(3, 4))
    near = x[0] + 1e-9 * rng.normal(size=4)
    return np.stack([x[0], near, -x[0], x[1], x[2]])


CASES = [
    ("relu", 50, 2**0.5, 0.1),
    ("erf", 50, 2.0, 0.1),
    ("relu", 6, 10.0, 0.5),
    ("erf", 8, 10.0, 0.1),
    ("erf", 4, 1.5, 0.0),
]

# In the chaotic phase (erf, W_std = 10) correlation 1 is an unstable fixed point:
# inputs 1e-9 apart (1 - rho ~ 1e-18, below float64 resolution) end with different
# kernels after about 20 layers in exact arithmetic, while any float computation
# sees them as duplicates. Such pairs are checked only at depths where exact
# arithmetic has not separated them yet (depth 8 below; not at depth 50).


def test_erf_depth_50_w_std_10_float64(rng):
    """NTK entries near 1e40: finite and correct in float64, a clear error in float32."""
    x = _inputs(rng)
    net = lazykit.mlp(50, 512, "erf", W_std=10.0, b_std=0.1)
    k = net.kernel(x)
    for i, j in [(0, 0), (1, 1), (0, 2), (2, 3), (3, 4)]:
        nngp, ntk = kernel_pair(x[i], x[j], activation="erf", depth=50, W_std=10.0, b_std=0.1)
        assert k.nngp[i, j] == pytest.approx(nngp, rel=1e-9, abs=1e-9)
        assert k.ntk[i, j] == pytest.approx(ntk, rel=1e-8)
    with pytest.raises(ValueError, match="overflows float32"):
        net.kernel(x, dtype="float32")


@pytest.mark.parametrize("activation,depth,w,b", CASES)
# float64: angles below about sqrt(eps) ~ 1e-8 cannot be resolved from Gram entries
# (d arccos / d rho is infinite at 1), which bounds the near-duplicate pair's accuracy.
@pytest.mark.parametrize("dtype,rtol", [("float64", 2e-8), ("float32", 2e-3)])
def test_matches_high_precision_reference(rng, activation, depth, w, b, dtype, rtol):
    x = _inputs(rng)
    net = lazykit.mlp(depth, 512, activation, W_std=w, b_std=b)
    k = net.kernel(x, dtype=dtype)
    assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
    for i in range(len(x)):
        for j in range(i, len(x)):
            nngp, ntk = kernel_pair(x[i], x[j], activation=activation, depth=depth, W_std=w,
                                    b_std=b)
            scale_n = np.sqrt(k.nngp[i, i] * k.nngp[j, j])
            scale_t = np.sqrt(k.ntk[i, i] * k.ntk[j, j])
            assert abs(k.nngp[i, j] - nngp) <= rtol * scale_n, (i, j)
            assert abs(k.ntk[i, j] - ntk) <= rtol * scale_t, (i, j)


def test_growing_w_std_of_issue_197_is_finite_in_float32(rng):
    """W_std = 1, 2, ..., 15 over 15 ReLU layers: about 1e19, NaN in neural-tangents float32."""
    layers = []
    for w in range(1, 16):
        layers += [lazykit.Dense(1, W_std=float(w)), lazykit.Relu()]
    net = lazykit.serial(*layers, lazykit.Dense(1, 1.0, 0.0))
    x = rng.uniform(size=(20, 30))
    k32, k64 = net.kernel(x, dtype="float32"), net.kernel(x)
    assert np.all(np.isfinite(k32.ntk)) and np.abs(k64.ntk).max() > 1e17
    np.testing.assert_allclose(k32.ntk, k64.ntk, rtol=1e-3)


def test_overflow_is_a_clear_error_not_inf(rng):
    """ReLU, W_std = 10, depth 50: entries near 1e85 cannot be float32."""
    net = lazykit.mlp(50, 512, "relu", W_std=10.0, b_std=0.1)
    x = rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match="overflows float32"):
        net.kernel(x, dtype="float32")
    k = net.kernel(x)
    assert np.all(np.isfinite(k.ntk)) and k.ntk.max() > 1e80


def test_zero_input_without_bias(rng):
    x = np.vstack([np.zeros(3), rng.normal(size=3)])
    k = lazykit.mlp(3, 64, "relu", b_std=None).kernel(x)
    assert np.all(np.isfinite(k.nngp)) and k.nngp[0, 0] == 0.0 and k.ntk[0, 1] == 0.0
