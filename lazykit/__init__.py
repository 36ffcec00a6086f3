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
from lazykit.kernels.recursion import Kernel, NearDuplicateWarning
from lazykit.kernels.resources import memory_budget, set_devices, set_memory_budget, use_devices
from lazykit.laziness import Laziness, laziness
from lazykit.lazy import SlopeFit, SweepResult, fit_loglog_slope, lazy_sweep
from lazykit.models import TwoLayer
from lazykit.monte_carlo import MonteCarloKernel, monte_carlo_kernel
from lazykit.network import Dense, Network, mlp, serial
from lazykit.population import (
    gaussian_feature_kernel,
    pack_teacher,
    population_loss,
    population_model,
    random_features_loss,
)
from lazykit.schedule import train_to_checkpoints
from lazykit.tangent import linearize, taylor_expand
from lazykit.trainer import Measurement, Trainer, TrainState, make_trainer
from lazykit.training import TrainingDivergedError, train
from lazykit.trajectory import TrajectoryRecord

__version__ = "0.1.0"

# scikit-learn (about 1 s) and scipy.linalg load on first use of these names.
_LAZY = {
    **{name: "lazykit.estimators" for name in (
        "NNGPClassifier", "NNGPRegressor", "NTKClassifier", "NTKRegressor", "NeuralKernel")},
    "IllConditionedKernelWarning": "lazykit.solvers",
    "NotConvergedWarning": "lazykit.solvers",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lazykit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


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
    "Laziness",
    "LeakyRelu",
    "Measurement",
    "Monomial",
    "MonteCarloKernel",
    "NNGPClassifier",
    "NNGPRegressor",
    "NTKClassifier",
    "NTKRegressor",
    "NearDuplicateWarning",
    "Network",
    "NeuralKernel",
    "NeuralTangentsKernel",
    "NotConvergedWarning",
    "Polynomial",
    "Rbf",
    "Relu",
    "SigmoidLike",
    "Sign",
    "Sin",
    "SlopeFit",
    "Step",
    "SweepResult",
    "TrainState",
    "Trainer",
    "TrainingDivergedError",
    "TrajectoryRecord",
    "TwoLayer",
    "__version__",
    "empirical_ntk",
    "fit_loglog_slope",
    "gaussian_feature_kernel",
    "get_activation",
    "laziness",
    "lazy_sweep",
    "linearize",
    "make_trainer",
    "memory_budget",
    "mlp",
    "monte_carlo_kernel",
    "pack_teacher",
    "population_loss",
    "population_model",
    "random_features_loss",
    "serial",
    "set_devices",
    "set_memory_budget",
    "taylor_expand",
    "to_neural_tangents",
    "train",
    "train_to_checkpoints",
    "use_devices",
]
