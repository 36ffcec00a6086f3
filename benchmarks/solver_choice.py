"""Peak memory of the exact fit, and what solver="auto" chooses against each solver forced.

Data: scikit-learn's ``make_regression`` (20 features, 10 informative, noise
10, seed 0), inputs and targets standardized, 2000 test points; ReLU NTK of
depth 1 (lazykit's defaults), ridge 0.1, float64.

Every run is a fresh subprocess, one after the other. Its peak memory above
the baseline is VmHWM (the process's peak resident set) minus VmRSS just
before the fit, with the data, JAX and the compiled kernels already in
memory (a warm-up fit on 600 points compiles them), reported in GiB and in
units of n^2 float64 (8 n^2 bytes).

1. ``--memory N``: ``NTKRegressor(solver="cholesky").fit(X, y).predict(Xt)``
   against scikit-learn ``KernelRidge(alpha=0.1, kernel="precomputed")`` on
   the same NTK (computed by lazykit alone, then fit and predict): its fit
   and predict on the kernel already in memory, and the whole (kernel
   included).
2. ``--choice N [N ...]``: ``solver="auto"`` (its ``solver_choice_``: name
   and reason), then each solver forced; a forced solver whose planned
   memory exceeds the memory available, or whose expected time (the cost
   model of lazykit.solvers.planning at this machine's BLAS rate) exceeds
   ``--max-seconds``, is skipped and the reason printed. Test R^2, fit +
   predict seconds, peak GiB.

Run from the repository root:
    python benchmarks/solver_choice.py --memory 8000 --choice 10000 20000 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

RIDGE, N_TEST, WARM = 0.1, 2000, 600


def make_data(n: int):
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=n + N_TEST, n_features=20, n_informative=10, noise=10.0,
                           random_state=0)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = (y - y.mean()) / y.std()
    return x[:n], y[:n], x[n:], y[n:]


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def worker(n: int, method: str) -> dict:
    """One measured run in this process (see the module text)."""
    import lazykit

    x, y, x_test, y_test = make_data(n)
    lazykit.NTKRegressor(ridge=RIDGE).fit(x[:WARM], y[:WARM]).predict(x_test[:10])  # compile
    row = {"n": n, "method": method}
    if method == "sklearn":
        from sklearn.kernel_ridge import KernelRidge

        net = lazykit.mlp(1)
        baseline = _status("VmRSS")
        start = time.perf_counter()
        gram = net.kernel(x, get="ntk").ntk  # the same kernel alone, as lazykit's fit
        kernel_peak = _status("VmHWM")
        with_kernel = _status("VmRSS")
        model = KernelRidge(alpha=RIDGE, kernel="precomputed").fit(gram, y)
        prediction = model.predict(net.kernel(x_test, x, get="ntk").ntk)
        row["seconds"] = time.perf_counter() - start
        row["fit_on_kernel_peak"] = _status("VmHWM") - with_kernel
        row["kernel_peak"] = kernel_peak - baseline
    else:
        baseline = _status("VmRSS")
        start = time.perf_counter()
        model = lazykit.NTKRegressor(ridge=RIDGE, solver=method).fit(x, y)
        prediction = model.predict(x_test)
        row["seconds"] = time.perf_counter() - start
        row["solver_"] = model.solver_
        row["reason"] = model.solver_choice_.reason
        row["path"] = model.diagnostics_.path
        row["iterations"] = model.n_iter_
    row["peak"] = _status("VmHWM") - baseline
    row["n2"] = row["peak"] / (8 * n * n)
    row["r2"] = 1 - np.mean((prediction - y_test) ** 2) / np.var(y_test)
    return row


def planned(n: int, method: str) -> tuple[bool, str]:
    """Whether a forced solver is run: its planned memory and expected time (cost model)."""
    from lazykit.solvers import planning
    from lazykit.solvers.base import Problem

    problem = Problem(n=n, k=1, ridge=RIDGE, d=20, layers=3)
    estimate = {
        "cholesky": lambda: planning.exact_estimate(problem, False),
        "eigh": lambda: planning.exact_estimate(problem, True),
        "cg": lambda: planning.cg_estimate(problem, n_centers=2000, max_iter=1000,
                                           centers="uniform"),
        "nystrom": lambda: planning.nystrom_estimate(problem, n_centers=2000,
                                                     centers="uniform", store=True),
    }[method]()
    seconds, free = estimate.seconds(planning.blas_rate()), planning.available_memory()
    if estimate.bytes > 0.9 * free:
        return False, (f"skipped: needs {planning.size(estimate.bytes)}, "
                       f"{planning.size(free)} available")
    if seconds > ARGS.max_seconds:
        return False, f"skipped: expected {seconds:.0f} s > {ARGS.max_seconds:g} s"
    return True, f"planned {planning.size(estimate.bytes)}, expected {seconds:.1f} s"


def run(n: int, method: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", str(n), method],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"n": n, "method": method, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(row: dict) -> None:
    if "error" in row or "skipped" in row:
        print(f"{row['n']:>7} {row['method']:>9}  {row.get('error') or row['skipped']}",
              flush=True)
        return
    extra = (f" kernel {row['kernel_peak'] / 2**30:.2f} GiB, KernelRidge on it "
             f"{row['fit_on_kernel_peak'] / (8 * row['n']**2):.2f} n^2"
             if row["method"] == "sklearn" else f" -> {row['solver_']}: {row['reason']}")
    print(f"{row['n']:>7} {row['method']:>9}  {row['seconds']:7.1f} s  "
          f"{row['peak'] / 2**30:6.2f} GiB ({row['n2']:.2f} n^2)  R^2 {row['r2']:.5f}{extra}",
          flush=True)


def main() -> None:
    if ARGS.worker:
        print(json.dumps(worker(int(ARGS.worker[0]), ARGS.worker[1])))
        return
    from lazykit.solvers import planning

    print(f"BLAS rate {planning.blas_rate() / 1e9:.0f} GFLOP/s, "
          f"{planning.available_memory() / 2**30:.1f} GiB available", flush=True)
    if ARGS.memory:
        for method in ("cholesky", "sklearn"):
            show(run(ARGS.memory, method))
    for n in ARGS.choice:
        show(run(n, "auto"))
        for method in ("cholesky", "eigh", "cg", "nystrom"):
            ok, why = planned(n, method)
            show(run(n, method) if ok else {"n": n, "method": method, "skipped": why})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", type=int, default=0)
    parser.add_argument("--choice", type=int, nargs="*", default=[])
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--worker", nargs=2)
    ARGS = parser.parse_args()
    main()
