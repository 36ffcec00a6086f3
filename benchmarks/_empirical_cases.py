"""Benchmark cases shared by empirical_ntk_speed.py and its neural-tangents subprocess."""

import jax.numpy as jnp
import numpy as np

import lazykit


def build(case, dtype):
    """(apply_fn, params, x) for a case {"kind": "two_layer" | "mlp", "width", "n", "d", ...}."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(case["n"], case["d"])) / np.sqrt(case["d"]), dtype)
    if case["kind"] == "two_layer":
        model = lazykit.TwoLayer(case["width"], alpha=float(np.sqrt(case["width"])))
        params = model.init(0, case["d"], dtype=dtype)
        return model.apply, params, x
    model = lazykit.mlp(case["depth"], case["width"], "relu")
    params, width = [], case["d"]
    for layer in model.layers:
        if isinstance(layer, lazykit.Dense):
            params.append({"W": jnp.asarray(rng.normal(size=(width, layer.out_dim)), dtype),
                           "b": jnp.asarray(rng.normal(size=layer.out_dim), dtype)})
            width = layer.out_dim
        else:
            params.append(())
    return model.apply, params, x
