"""Time neural-tangents' empirical_ntk_fn (run by empirical_ntk_speed.py in the pinned NT env).

The functions are lazykit's own TwoLayer / Network apply functions (lazykit runs on jax
0.5.3 too), so both libraries differentiate exactly the same function with the same
parameters. Prints one JSON object {case: {dtype: {implementation: seconds or error}}}.
"""

import argparse
import json
import sys

import jax
from _timing import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", required=True, help="JSON list of case descriptions")
    parser.add_argument("--reps", type=int, required=True)
    args = parser.parse_args()
    import neural_tangents as nt
    from jax.experimental import enable_x64

    from benchmarks._empirical_cases import build

    out = {}
    for case in json.loads(args.cases):
        out[case["name"]] = {}
        for dtype in case["dtypes"]:
            out[case["name"]][dtype] = {}
            with enable_x64(dtype == "float64"):
                apply_fn, params, x = build(case, dtype)
                for name, impl in (("jacobian_contraction", 1), ("ntk_vector_products", 2),
                                   ("structured_derivatives", 3)):
                    fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0,
                                                     implementation=impl))
                    try:
                        seconds = median_seconds(
                            lambda fn=fn, x=x, params=params: fn(x, None, params)
                            .block_until_ready(), args.reps)
                        out[case["name"]][dtype][name] = seconds
                    except Exception as err:
                        out[case["name"]][dtype][name] = f"{type(err).__name__}: {err}"[:200]
                    print(case["name"], dtype, name, out[case["name"]][dtype][name],
                          file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
