"""Quickstart: one network description, its exact NNGP and NTK on built-in data.

Run with `make demo` (or `python examples/quickstart.py` once lazykit is installed).
"""

import numpy as np
from sklearn.datasets import load_diabetes

import lazykit


def main() -> None:
    x, _ = load_diabetes(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    print(f"diabetes: {x.shape[0]} patients, {x.shape[1]} features\n")
    print(f"{'network':34s} {'NNGP mean diag':>15s} {'NTK mean diag':>14s} "
          f"{'NTK cond.':>10s} {'NTK/NNGP corr.':>15s}")
    for activation in ("relu", "erf", "gelu", "tanh"):
        for depth in (1, 3):
            net = lazykit.mlp(depth, width=512, activation=activation, W_std=1.4, b_std=0.1)
            k = net.kernel(x)
            eigenvalues = np.linalg.eigvalsh(k.ntk)
            corr = np.corrcoef(k.nngp.ravel(), k.ntk.ravel())[0, 1]
            name = f"mlp(depth={depth}, activation={activation!r})"
            print(f"{name:34s} {np.diag(k.nngp).mean():15.4f} {np.diag(k.ntk).mean():14.4f} "
                  f"{eigenvalues[-1] / eigenvalues[0]:10.2e} {corr:15.4f}")


if __name__ == "__main__":
    main()
