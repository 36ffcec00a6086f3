"""Mean and covariance of the infinite ensemble of networks trained by gradient flow.

Training set X with n points and targets Y of shape (n, k); MSE loss
L(f) = ||f(X) - Y||^2 / (2 n k) (the mean over all n k entries, as in
neural-tangents); learning rate eta; training time t. In the infinite-width
limit the outputs evolve linearly under the NTK Theta, and with the scaled time
s = eta t / (n k) and A = Theta + ridge I (docs/architecture.md, "Mathematics"):

    mean_t(x) = Theta(x, X) G_s Y,    G_s = A^{-1} (I - exp(-s A)),

the mean over random initializations f_0 ~ GP(0, K) (K the NNGP). Its
covariance (Lee et al. 2019, as in neural-tangents'
``predict.gradient_descent_mse_ensemble``) with B = G_s Theta(X, x'):

    cov_t(x, x') = K(x, x') - K(x, X) B - B^T K(X, x') + B^T K(X, X) B.

Training only the readout layer replaces Theta by K; the covariance then
simplifies to K(x, x') - K(x, X) G_{2s} K(X, x') (at s = inf, ridge = noise
variance: the NNGP posterior of Bayesian inference).
"""

from __future__ import annotations

import numpy as np


def scaled_times(times, learning_rate: float, n_entries: int) -> np.ndarray:
    """s = learning_rate * t / n_entries for each time t (inf stays inf), as a 1-D array.

    Examples:
        >>> from lazykit.solvers import scaled_times
        >>> scaled_times([0.0, 8.0, float("inf")], learning_rate=0.5, n_entries=4).tolist()
        [0.0, 1.0, inf]
    """
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    return np.where(np.isinf(times), np.inf, times * (learning_rate / n_entries))


def stacked_product(product, coef: np.ndarray, n_new: int) -> np.ndarray:
    """product(c) for c of shape (rows, k), or for each time of c of shape (T, rows, k) at once.

    ``product`` maps a (rows, m) matrix to (n_new, m); the times are stacked as
    columns so that one kernel pass serves them all.

    Examples:
        >>> import numpy as np
        >>> from lazykit.solvers.flow import stacked_product
        >>> k = np.array([[1.0, 2.0]])
        >>> stacked_product(lambda c: k @ c, np.ones((3, 2, 1)), 1)[:, 0, 0].tolist()
        [3.0, 3.0, 3.0]
    """
    flat = np.moveaxis(coef, -2, 0).reshape(coef.shape[-2], -1)
    out = product(flat)
    return np.moveaxis(out.reshape(n_new, *coef.shape[:-2], coef.shape[-1]), 0, -2)


def flow_mean(solver, targets: np.ndarray, k_test_train: np.ndarray, scaled) -> np.ndarray:
    """mean_t(x) for each scaled time: shape (n_times, n_test, k).

    Examples:
        >>> import numpy as np
        >>> from lazykit.solvers import flow_mean, make_solver
        >>> gram = np.array([[2.0, 1.0], [1.0, 2.0]])
        >>> solver = make_solver("eigh", gram)
        >>> flow_mean(solver, np.array([[1.0], [-1.0]]), gram, [0.0, np.inf]).round(6)[:, :, 0]
        array([[ 0.,  0.],
               [ 1., -1.]])
    """
    coefficients = solver.apply(targets, scaled)  # (T, n, k)
    return np.matmul(k_test_train, coefficients)


def flow_covariance(solver, scaled, *, readout_only: bool, k_test_train: np.ndarray,
                    nngp_test_train: np.ndarray, nngp_test: np.ndarray,
                    nngp_train: np.ndarray | None = None, full: bool = True) -> np.ndarray:
    """cov_t on the test inputs for each scaled time.

    Args:
        solver: factorization of the training kernel (NTK, or NNGP if ``readout_only``).
        scaled: scaled times (see :func:`scaled_times`).
        readout_only: the NNGP ensemble (only the readout layer trained).
        k_test_train: the trained kernel between test and training inputs (n_test, n).
        nngp_test_train: NNGP between test and training inputs (n_test, n).
        nngp_test: NNGP among the test inputs, (n_test, n_test), or its diagonal if not ``full``.
        nngp_train: NNGP among the training inputs (needed unless ``readout_only``).
        full: the full covariance (n_times, n_test, n_test), else the variances (n_times, n_test).

    Variances are clipped at 0 and covariances symmetrized (rounding only).

    Examples:
        >>> import numpy as np
        >>> from lazykit.solvers import flow_covariance, make_solver
        >>> k = np.array([[2.0, 1.0], [1.0, 2.0]])  # NNGP = NTK here; test = training points
        >>> solver = make_solver("eigh", k)
        >>> var = flow_covariance(solver, [0.0, np.inf], readout_only=True, k_test_train=k,
        ...                       nngp_test_train=k, nngp_test=np.diag(k), full=False)
        >>> var.round(12)  # the prior variance at t = 0; none left at interpolated points
        array([[2., 2.],
               [0., 0.]])
    """
    scaled = np.atleast_1d(np.asarray(scaled, dtype=np.float64))
    n_test = k_test_train.shape[0]
    out = np.empty((scaled.shape[0], n_test, n_test) if full else (scaled.shape[0], n_test))
    cross_t = np.ascontiguousarray(nngp_test_train.T)  # (n, n_test)
    for i, s in enumerate(scaled):
        if readout_only:
            b = solver.apply(cross_t, [2.0 * s])[0]  # G_2s K(X, x')
            if full:
                out[i] = nngp_test - nngp_test_train @ b
            else:
                out[i] = nngp_test - np.einsum("ij,ji->i", nngp_test_train, b)
        else:
            b = solver.apply(np.ascontiguousarray(k_test_train.T), [s])[0]  # (n, n_test)
            kb = nngp_train @ b
            if full:
                cross = nngp_test_train @ b
                out[i] = nngp_test - cross - cross.T + b.T @ kb
            else:
                out[i] = (nngp_test - 2.0 * np.einsum("ij,ji->i", nngp_test_train, b)
                          + np.einsum("ji,ji->i", b, kb))
    if full:
        out = 0.5 * (out + out.transpose(0, 2, 1))
        idx = np.arange(n_test)
        out[:, idx, idx] = np.maximum(out[:, idx, idx], 0.0)
        return out
    return np.maximum(out, 0.0)
