"""Strategies and checks shared by the property tests.

Shapes and hyperparameters come from small fixed sets, so that the kernels
compiled for one example serve the next ones (JAX compiles once per network
and shape); the values inside are free.
"""

from __future__ import annotations

import contextlib
import re

import jax
import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lazykit import InsufficientMemoryError

# The exceptions lazykit documents for bad input.
DOCUMENTED = (ValueError, TypeError, InsufficientMemoryError)

# Few shapes: every new (network, shape) pair costs a JAX compilation.
ROWS = (1, 3)
OTHER_ROWS = (2,)
FEATURES = (1, 3)
# Row magnitudes: entries stay within 1e-153 .. 2e150, so squared norms are normal floats.
SCALES = (1e-150, 1e-6, 1.0, 1e6, 1e150)
MODERATE = (0.1, 1.0, 3.0)
RELATIONS = ("free", "free", "duplicate", "near", "antipodal", "zero")
NEAR = (1e-15, 1e-9, 1e-6)


def examples(fraction: float) -> int:
    """A share of the active profile's max_examples (for the slower properties)."""
    return max(2, round(settings().max_examples * fraction))


@st.composite
def matrices(draw, rows=ROWS, features=FEATURES, scales=SCALES, relations=RELATIONS):
    """(n, d) float64 inputs: free rows of mixed magnitudes, exact and near duplicates,
    antipodal pairs and zero rows."""
    n, d = draw(st.sampled_from(rows)), draw(st.sampled_from(features))
    mantissa = st.one_of(st.just(0.0), st.floats(1e-3, 2.0), st.floats(-2.0, -1e-3))
    x = draw(hnp.arrays(np.float64, (n, d), elements=mantissa))
    x *= np.array([draw(st.sampled_from(scales)) for _ in range(n)])[:, None]
    for i in range(1, n):
        relation, j = draw(st.sampled_from(relations)), draw(st.integers(0, i - 1))
        if relation == "duplicate":
            x[i] = x[j]
        elif relation == "near":
            signs = draw(hnp.arrays(np.float64, (d,), elements=st.sampled_from((-1.0, 1.0))))
            x[i] = x[j] * (1 + draw(st.sampled_from(NEAR)) * signs)
        elif relation == "antipodal":
            x[i] = -x[j]
        elif relation == "zero":
            x[i] = 0.0
    return x


def moderate_matrices(rows=ROWS, features=FEATURES, relations=RELATIONS):
    return matrices(rows=rows, features=features, scales=MODERATE, relations=relations)


@st.composite
def pairs(draw, inputs=matrices):
    """(x1, x2): x1 (n1, d) and x2 (n2, d) with n2 in OTHER_ROWS, or x2 = None."""
    x1 = draw(inputs())
    if draw(st.booleans()):
        return x1, None
    return x1, draw(inputs(rows=OTHER_ROWS, features=(x1.shape[1],)))


@st.composite
def corrupted(draw, x, values=(np.nan, np.inf, -np.inf)):
    """A copy of ``x`` with one entry replaced by NaN or +-inf."""
    x = np.array(x, dtype=np.float64)
    i, j = draw(st.integers(0, x.shape[0] - 1)), draw(st.integers(0, x.shape[1] - 1))
    x[i, j] = draw(st.sampled_from(values))
    return x


# Inputs every entry point that takes an (n, d) matrix must refuse (a finite set, so the
# tests use pytest.mark.parametrize over it: one reported case each, nothing to shrink).
MALFORMED = {
    "empty rows": np.zeros((0, 3)),
    "empty features": np.zeros((3, 0)),
    "empty 1-D": np.zeros(0),
    "1-D": np.linspace(-1, 1, 4),
    "3-D": np.ones((2, 2, 2)),
    "scalar": np.float64(1.5),
    "complex": np.ones((2, 3), dtype=complex),
    "strings": np.array([["a", "b", "c"], ["d", "e", "f"]]),
    "objects": np.array([[1.0, None, 2.0]], dtype=object),
}


# Checks --------------------------------------------------------------------------------------

def mentions(message: str, name: str) -> bool:
    """Whether ``message`` names the argument ``name`` (not just contains its letters)."""
    if name.startswith("-"):
        return name in message
    pattern = rf"(?<![\w.]){re.escape(name)}(?![\w(])"
    if name == "a":  # the parameter, not the English article
        pattern += r"(?=\s*(=|must|is\b|of\b|should|:|'|`|\)|,|\]))"
    return re.search(pattern, message) is not None


@contextlib.contextmanager
def raises_naming(*names, types=DOCUMENTED):
    """Expect one of the documented exception types whose message names every argument in
    ``names`` (a tuple among them means: any one of these)."""
    with pytest.raises(types) as info:
        yield info
    message = str(info.value)
    for name in names:
        options = name if isinstance(name, tuple) else (name,)
        assert any(mentions(message, option) for option in options), (
            f"{type(info.value).__name__} does not name {' or '.join(options)}: {message!r}")


def x64():
    """JAX's float64 mode, locally (jax.enable_x64 on current JAX, the experimental one on 0.5)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


def assert_close_scaled(actual, expected, scale, rtol, what=""):
    """|actual - expected| <= rtol * scale entrywise (scale: the natural size of each entry)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert np.all(np.isfinite(actual)), (what, actual)
    error = np.abs(actual - expected)
    bound = rtol * np.asarray(scale) + 1e-300
    worst = np.unravel_index(np.argmax(error / bound), error.shape)
    assert np.all(error <= bound), (
        f"{what}: entry {worst} is {actual[worst]!r}, reference {expected[worst]!r} "
        f"(error {error[worst]:.3g} > {bound[worst]:.3g})")


def pair_scale(diagonal_1, diagonal_2):
    """sqrt(K(x_i, x_i) K(x'_j, x'_j)): the size that bounds |K(x_i, x'_j)| for a PSD kernel."""
    return np.sqrt(np.abs(diagonal_1))[:, None] * np.sqrt(np.abs(diagonal_2))[None, :]
