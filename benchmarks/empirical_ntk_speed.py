"""Empirical NTK speed: lazykit against neural-tangents' empirical_ntk_fn, in the same run.

Cases (issue 4): a two-layer ReLU network of width 2048 on n=500 inputs of dimension
d=100, and a 3-hidden-layer ReLU MLP of width 1024. Both libraries differentiate the very
same apply function (lazykit's, which also runs on neural-tangents' jax 0.5.3) with the
same parameters; kernels are the trace over outputs ("trace" / trace_axes=(-1,)).
neural-tangents runs in its pinned environment as a subprocess (`--nt-python`) with
vmap_axes=0 and each of its implementations; its STRUCTURED_DERIVATIVES fails on the jax
it needs (the error is printed). Times are medians of `--reps` runs after a warm-up run.

Usage:
    python benchmarks/empirical_ntk_speed.py --nt-python .venv-nt/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import jax
import numpy as np

import lazykit
from lazykit._dtypes import precision

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _timing import median_seconds

from benchmarks._empirical_cases import build

CASES = [
    {"name": "two-layer relu m=2048 n=500 d=100", "kind": "two_layer", "width": 2048,
     "n": 500, "d": 100, "dtypes": ["float32", "float64"]},
    {"name": "mlp 3x1024 relu n=256 d=100", "kind": "mlp", "depth": 3, "width": 1024,
     "n": 256, "d": 100, "dtypes": ["float32"]},
]




def neural_tangents_times(python: str, reps: int) -> dict | None:
    if not python or not os.path.exists(python):
        return None
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [python, os.path.join(root, "benchmarks", "_nt_empirical_timing.py"),
           "--cases", json.dumps(CASES), "--reps", str(reps)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--nt-python", default=".venv-nt/bin/python",
                        help="python of the neural-tangents environment ('' to skip)")
    args = parser.parse_args()
    nt = neural_tangents_times(args.nt_python, args.reps)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"jax {jax.__version__}; neural-tangents in its own env (jax 0.5.3)")
    print(f"{'case':36s} {'dtype':8s} {'lazykit impl':13s} {'lazykit ms':>10s} "
          f"{'NT JC ms':>9s} {'NT NTVP ms':>10s} {'JC/lk':>7s} {'best NT/lk':>10s}")
    failures = set()
    for case in CASES:
        for dtype in case["dtypes"]:
            with precision(dtype):
                apply_fn, params, x = build(case, dtype)
            model = apply_fn.__self__
            x_np = np.asarray(x)
            times = {impl: median_seconds(
                lambda impl=impl, model=model, params=params, x_np=x_np: np.asarray(
                    lazykit.empirical_ntk(model, params, x_np, implementation=impl)), args.reps)
                for impl in ("structured", "jacobian")}
            theirs = nt[case["name"]][dtype] if nt else {}
            jc = theirs.get("jacobian_contraction", float("nan"))
            ntvp = theirs.get("ntk_vector_products", float("nan"))
            numbers = [t for t in (jc, ntvp) if isinstance(t, float)]
            best = min(numbers) if numbers else float("nan")
            for impl, seconds in times.items():
                print(f"{case['name']:36s} {dtype:8s} {impl:13s} {seconds * 1e3:10.1f} "
                      f"{_ms(jc):>9s} {_ms(ntvp):>10s} {_ratio(jc, seconds):>7s} "
                      f"{_ratio(best, seconds):>10s}")
            error = theirs.get("structured_derivatives")
            if isinstance(error, str):
                failures.add(error)
    for error in sorted(failures):
        print(f"neural-tangents STRUCTURED_DERIVATIVES failed: {error}")
    sys.stdout.flush()


def _ms(value) -> str:
    return f"{value * 1e3:.1f}" if isinstance(value, float) else "fail"


def _ratio(theirs, ours) -> str:
    return f"{theirs / ours:.1f}" if isinstance(theirs, float) else "-"


if __name__ == "__main__":
    main()
