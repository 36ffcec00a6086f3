"""scikit-learn's own estimator checks over every lazykit estimator and over NeuralKernel.

A Kernel is not an estimator, so NeuralKernel is checked inside the three
scikit-learn estimators that take a kernel object: GaussianProcessRegressor,
KernelRidge and SVC. The Gaussian process keeps its kernel fixed here (its
optimizer would run L-BFGS in each of the ~50 checks); maximizing the marginal
likelihood with NeuralKernel's gradients is tested in test_neural_kernel.py.
"""

from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.kernel_ridge import KernelRidge
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import parametrize_with_checks

import lazykit

ESTIMATORS = [
    lazykit.NTKRegressor(),
    lazykit.NNGPRegressor(ridge=1e-3),
    lazykit.NTKRegressor(t=5.0, ridge=1e-3),  # finite time: the eigendecomposition path
    lazykit.NTKRegressor(network="precomputed"),
    lazykit.NTKRegressor(solver="cg", ridge=1e-3),  # matrix-free: never forms the n x n kernel
    lazykit.NNGPClassifier(solver="nystrom", ridge=1e-3, n_centers=20),
    # finite time, matrix-free: the Lanczos flow (the Nystrom-kernel flow with RPCholesky
    # centres, the slowest configuration here, is checked in test_matrix_free.py and
    # test_devices.py instead)
    lazykit.NTKRegressor(solver="cg", t=5.0),
    lazykit.NTKClassifier(),
    lazykit.NNGPClassifier(t=50.0),
    GaussianProcessRegressor(kernel=lazykit.NeuralKernel(kind="nngp"), optimizer=None),
    KernelRidge(kernel=lazykit.NeuralKernel()),
    SVC(kernel=lazykit.NeuralKernel()),
]

# Failures of SVC itself with any callable kernel (e.g. SVC(kernel=lambda a, b: a @ b.T)),
# not of NeuralKernel: scikit-learn's own test-suite marks the last one as expected.
SVC_WITH_CALLABLE_KERNEL = {
    "check_n_features_in": "SVC does not set n_features_in_ when its kernel is a callable",
    "check_n_features_in_after_fitting": "SVC does not validate X when its kernel is a callable",
    "check_sample_weight_equivalence_on_dense_data":
        "SVC's sample_weight rescales C per sample, not equivalent to repeating samples",
    "check_sample_weight_equivalence_on_sparse_data":
        "SVC's sample_weight rescales C per sample, not equivalent to repeating samples",
}


def _expected_failures(estimator):
    return SVC_WITH_CALLABLE_KERNEL if isinstance(estimator, SVC) else {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_scikit_learn_compatible(estimator, check):
    check(estimator)
