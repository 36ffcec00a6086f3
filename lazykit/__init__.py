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
from lazykit.interop.neural_tangents import NeuralTangentsKernel, to_neural_tangents
from lazykit.kernels.compute import InsufficientMemoryError
from lazykit.kernels.monte_carlo import MonteCarloKernel, monte_carlo_kernel
from lazykit.kernels.recursion import Kernel
from lazykit.laziness import Laziness, laziness
from lazykit.lazy import SlopeFit, SweepResult, fit_loglog_slope, lazy_sweep
from lazykit.models import TwoLayer
from lazykit.network import Dense, Network, mlp, serial
from lazykit.tangent import linearize, taylor_expand
from lazykit.training import TrainingDivergedError, train
from lazykit.trajectory import TrajectoryRecord

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
    "InsufficientMemoryError",
    "Kernel",
    "Laziness",
    "LeakyRelu",
    "Monomial",
    "MonteCarloKernel",
    "Network",
    "NeuralTangentsKernel",
    "Polynomial",
    "Rbf",
    "Relu",
    "SigmoidLike",
    "Sign",
    "Sin",
    "SlopeFit",
    "Step",
    "SweepResult",
    "TrainingDivergedError",
    "TrajectoryRecord",
    "TwoLayer",
    "__version__",
    "empirical_ntk",
    "fit_loglog_slope",
    "get_activation",
    "laziness",
    "lazy_sweep",
    "linearize",
    "mlp",
    "monte_carlo_kernel",
    "serial",
    "taylor_expand",
    "to_neural_tangents",
    "train",
]
