"""trajcore: run and analyse gradient-descent trajectories, fast, on CPUs.

import trajcore as tc
problem = tc.SymmetricMatrixFactorization.planted(d=20, rank=4, sigma=[10, 5, 3, 1], seed=0)
traj = tc.run(problem, tc.small_init((20, 20), 5e-7, seed=1), lr=0.04, steps=500)
tc.analysis.monotonicity_index(traj.diagonal()[1])
"""

from . import analysis, bases, config, data, network, noise, plot
from ._memory import memory_limit, set_memory_limit
from .config import show_config, version
from .dynamics import Record, run
from .initialization import small_init
from .linear_network import DeepLinearNetwork
from .matrix_factorization import AsymmetricMatrixFactorization, SymmetricMatrixFactorization
from .matrix_sensing import MatrixSensing
from .network import MLP, NetworkRun, Training
from .noise import (
    DropConnect,
    Dropout,
    GradientNoise,
    InputNoise,
    LabelNoise,
    Langevin,
    PerturbedGD,
    SingularValueImputation,
    WeightNoise,
)
from .numpy_problem import NumpyProblem
from .problem import Problem
from .tensor import OrthogonalTensorDecomposition, SymmetricTensor
from .trajectory import Trajectory

__version__ = version()

__all__ = [
    "AsymmetricMatrixFactorization",
    "DeepLinearNetwork",
    "DropConnect",
    "Dropout",
    "InputNoise",
    "LabelNoise",
    "SingularValueImputation",
    "WeightNoise",
    "GradientNoise",
    "OrthogonalTensorDecomposition",
    "Langevin",
    "MLP",
    "MatrixSensing",
    "NetworkRun",
    "NumpyProblem",
    "PerturbedGD",
    "Problem",
    "Record",
    "SymmetricMatrixFactorization",
    "SymmetricTensor",
    "Trajectory",
    "Training",
    "__version__",
    "analysis",
    "bases",
    "config",
    "data",
    "memory_limit",
    "network",
    "noise",
    "plot",
    "run",
    "set_memory_limit",
    "show_config",
    "small_init",
]
