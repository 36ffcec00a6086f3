"""scikit-learn estimators and Kernel for infinite-width networks (a shell over lazykit.solvers)."""

from lazykit.estimators.classification import NNGPClassifier, NTKClassifier
from lazykit.estimators.kernel import NeuralKernel
from lazykit.estimators.regression import NNGPRegressor, NTKRegressor

__all__ = ["NNGPClassifier", "NNGPRegressor", "NTKClassifier", "NTKRegressor", "NeuralKernel"]
