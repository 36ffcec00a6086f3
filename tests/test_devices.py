"""Tiles sharded over several (forced host) devices give the single-device kernels and solves."""

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


# Matrix-free fits: CG and Nystrom at infinite time, the Lanczos and Nystrom-kernel flows.
SOLVER_CONFIGS = {
    "cg": {"solver": "cg"},
    "nystrom": {"solver": "nystrom"},
    "cg_flow": {"solver": "cg", "t": 3.0},
    "nystrom_rpcholesky_flow": {"solver": "nystrom", "t": 3.0, "centers": "rpcholesky"},
}

SOLVER_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import jax
    import lazykit
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    x, y, x_test = rng.normal(size=(70, 5)), rng.normal(size=(70, 2)), rng.normal(size=(23, 5))
    out = {}
    for name, config in json.loads(sys.argv[1]).items():
        model = lazykit.NTKRegressor(depth=2, ridge=0.1, tol=1e-12, n_centers=40, tile_size=16,
                                     **config).fit(x, y)
        out[name] = model.predict(x_test).tolist()
    json.dump(out, sys.stdout)
""")


def _run_on_four_devices(script: str, *args: str) -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                            text=True, timeout=600, check=True)
    return json.loads(result.stdout)


def test_matrix_free_solvers_on_four_devices_match_one_device():
    """CG and Lanczos (operator tiles sharded with shard_map), Nystrom (kernel tiles), 4 devices."""
    sharded = _run_on_four_devices(SOLVER_SCRIPT, json.dumps(SOLVER_CONFIGS))
    rng = np.random.default_rng(0)
    x, y, x_test = rng.normal(size=(70, 5)), rng.normal(size=(70, 2)), rng.normal(size=(23, 5))
    for name, config in SOLVER_CONFIGS.items():
        model = lazykit.NTKRegressor(depth=2, ridge=0.1, tol=1e-12, n_centers=40, tile_size=16,
                                     **config).fit(x, y)
        np.testing.assert_allclose(np.array(sharded[name]), model.predict(x_test), rtol=1e-9,
                                   atol=1e-11, err_msg=name)


def test_four_devices_match_one_device():
    sharded = _run_on_four_devices(SCRIPT)
    x = np.random.default_rng(0).normal(size=(37, 6))
    y = np.random.default_rng(1).normal(size=(29, 6))
    net = lazykit.mlp(3, 512, "relu", W_std=1.4, b_std=0.1)
    for name, args in (("sym", (x,)), ("cross", (x, y)), ("one_tile", (x,))):
        k = net.kernel(*args)
        np.testing.assert_allclose(np.array(sharded[name][0]), k.nngp, rtol=1e-13)
        np.testing.assert_allclose(np.array(sharded[name][1]), k.ntk, rtol=1e-13)
