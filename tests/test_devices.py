"""Tiles sharded over several (forced host) devices give the single-device kernel."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

import lazykit

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import jax
    import lazykit
    assert jax.device_count() == 4, jax.devices()
    x = np.random.default_rng(0).normal(size=(37, 6))
    y = np.random.default_rng(1).normal(size=(29, 6))
    net = lazykit.mlp(3, 512, "relu", W_std=1.4, b_std=0.1)
    out = {}
    for name, args, tile in (("sym", (x,), 8), ("cross", (x, y), 10), ("one_tile", (x,), None)):
        k = net.kernel(*args, tile_size=tile)
        out[name] = [k.nngp.tolist(), k.ntk.tolist()]
    json.dump(out, sys.stdout)
""")


def test_four_devices_match_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                            text=True, timeout=600, check=True)
    sharded = json.loads(result.stdout)
    x = np.random.default_rng(0).normal(size=(37, 6))
    y = np.random.default_rng(1).normal(size=(29, 6))
    net = lazykit.mlp(3, 512, "relu", W_std=1.4, b_std=0.1)
    for name, args in (("sym", (x,)), ("cross", (x, y)), ("one_tile", (x,))):
        k = net.kernel(*args)
        np.testing.assert_allclose(np.array(sharded[name][0]), k.nngp, rtol=1e-13)
        np.testing.assert_allclose(np.array(sharded[name][1]), k.ntk, rtol=1e-13)
