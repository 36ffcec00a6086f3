"""lazykit: the kernel ("lazy", NTK) regime of neural networks, on current JAX.

One description of a fully-connected network gives its finite version and its
exact infinite-width kernels (NNGP and NTK), in float64 by default.
"""

from lazykit.activations import (
    ACTIVATION_NAMES,
    ABRelu,
    Abs,
    Activation,
    Cos,
    Elementwise,
    Erf,
    Exp,
    Gaussian,
    Gelu,
    Identity,
    LeakyRelu,
    Monomial,
    Polynomial,
    Rbf,
    Relu,
    SigmoidLike,
    Sign,
    Sin,
    Step,
    get_activation,
)
from lazykit.empirical import empirical_ntk
from lazykit.estimators import (
    NeuralKernel,
    NNGPClassifier,
    NNGPRegressor,
    NTKClassifier,
    NTKRegressor,
)
from lazykit.interop.neural_tangents import NeuralTangentsKernel, to_neural_tangents
from lazykit.kernels.compute import InsufficientMemoryError
from lazykit.kernels.monte_carlo import MonteCarloKernel, monte_carlo_kernel
from lazykit.kernels.recursion import Kernel
from lazykit.network import Dense, Network, mlp, serial
from lazykit.solvers import IllConditionedKernelWarning

__version__ = "0.1.0"

__all__ = [
    "ACTIVATION_NAMES",
    "ABRelu",
    "Abs",
    "Activation",
    "Cos",
    "Dense",
    "Elementwise",
    "Erf",
    "Exp",
    "Gaussian",
    "Gelu",
    "Identity",
    "IllConditionedKernelWarning",
    "InsufficientMemoryError",
    "Kernel",
    "LeakyRelu",
    "Monomial",
    "MonteCarloKernel",
    "NNGPClassifier",
    "NNGPRegressor",
    "NTKClassifier",
    "NTKRegressor",
    "Network",
    "NeuralKernel",
    "NeuralTangentsKernel",
    "Polynomial",
    "Rbf",
    "Relu",
    "SigmoidLike",
    "Sign",
    "Sin",
    "Step",
    "__version__",
    "empirical_ntk",
    "get_activation",
    "mlp",
    "monte_carlo_kernel",
    "serial",
    "to_neural_tangents",
]
