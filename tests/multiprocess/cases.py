"""The computations tests/test_processes.py runs in one process and over several."""

import numpy as np

import lazykit


def results() -> dict:
    rng = np.random.default_rng(0)
    x, x_test = rng.normal(size=(150, 5)), rng.normal(size=(40, 5))
    y = np.sin(x[:, 0]) + 0.1 * x[:, 1]
    net = lazykit.mlp(2, activation="erf", W_std=1.3, b_std=0.1)
    symmetric = net.kernel(x, tile_size=32)
    cross = net.kernel(x, x_test, tile_size=32, get="ntk")
    out = {"nngp": symmetric.nngp, "ntk": symmetric.ntk, "cross_ntk": cross.ntk}
    for solver in ("cholesky", "cg", "nystrom"):
        options = {"n_centers": 60} if solver == "nystrom" else {}
        model = lazykit.NTKRegressor(network=net, ridge=1e-3, solver=solver, **options)
        out[f"predict_{solver}"] = model.fit(x, y).predict(x_test)
    return out
