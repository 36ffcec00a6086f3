"""Resources in one place (lazykit.kernels.resources): devices to compute on, device memory."""

import jax
import numpy as np
import pytest

import lazykit
from lazykit.kernels import resources


def test_use_devices_restricts_the_kernel_devices_and_gives_the_same_kernel():
    x = np.random.default_rng(0).normal(size=(20, 3))
    net = lazykit.mlp(2, activation="erf")
    everywhere = net.kernel(x)
    with lazykit.use_devices(jax.local_devices()[:1]):
        assert resources.kernel_devices() == tuple(jax.local_devices()[:1])
        one = net.kernel(x)
    assert resources.kernel_devices() == tuple(jax.local_devices())
    np.testing.assert_array_equal(one.ntk, everywhere.ntk)


@pytest.mark.parametrize("bad", [[], ["cpu:0"], 3])
def test_devices_must_be_local_jax_devices(bad):
    with pytest.raises(ValueError, match="devices must be None"):
        lazykit.set_devices(bad)


class FakeAccelerator:
    platform = "gpu"

    def __init__(self, limit, used):
        self.stats = {"bytes_limit": limit, "bytes_in_use": used}

    def memory_stats(self):
        return self.stats

    def __str__(self):
        return "gpu:0"


def test_device_memory_is_checked_against_the_device_not_the_host():
    gib = 2**30
    resources.check_device_memory(gib, "a tile", "", [FakeAccelerator(4 * gib, gib)])
    with pytest.raises(lazykit.InsufficientMemoryError, match=r"gpu:0 has only 1\.00 GiB free"):
        resources.check_device_memory(2 * gib, "a tile", "Use a smaller tile_size.",
                                      [FakeAccelerator(4 * gib, 3 * gib)])
    assert resources.device_free_memory(jax.devices("cpu")[0]) is None  # the host's budget
