"""Type stubs of the compiled core (csrc/bind_*.cpp)."""

import enum
from typing import Any

import numpy as np
from numpy.typing import NDArray

scipy_dgemm_signature: str

def build_info() -> dict[str, Any]: ...
def register_blas_dgemm(capsule: Any, threshold: int) -> None: ...
def normal_draws(seed: int, trajectory: int, step: int, stream: int, count: int) -> NDArray[np.float64]: ...

# csrc/bind_projection.cpp
def project(
    snapshots: NDArray[np.float64], basis: NDArray[np.float64], scale: float, n_threads: int = 1
) -> NDArray[np.float64]: ...
def project_per_output(
    snapshots: NDArray[np.float64], basis: NDArray[np.float64], scale: float, n_threads: int = 1
) -> NDArray[np.float64]: ...
def project_into(
    snapshot: NDArray[np.float64], basis: NDArray[np.float64], scale: float, out: NDArray[np.float64], row: int
) -> None: ...

class NoiseKind(enum.Enum):
    gradient_gaussian = 1
    langevin = 2
    perturbed_gd = 3
    singular_value_imputation = 4
    weight_additive = 5
    dropconnect = 6
    dropout = 7
    input_gaussian = 8
    label_gaussian = 9

class NoiseTerm:
    kind: NoiseKind
    scale: float
    anneal: float
    probability: float
    threshold: float
    radius: float
    interval: int
    jitter: float
    def __init__(
        self,
        kind: NoiseKind,
        scale: float = 0.0,
        anneal: float = 0.0,
        probability: float = 0.0,
        threshold: float = 0.0,
        radius: float = 0.0,
        interval: int = 0,
        jitter: float = 0.0,
    ) -> None: ...

class _DrivenKernel:
    """Methods every kernel gets from bind_run_chunk (csrc/bind_driver.hpp)."""

    state_size: int
    state_transposed: bool
    n_observables: int
    def run_chunk(
        self,
        x: NDArray[np.float64],
        velocity: NDArray[np.float64] | None,
        diverged_at: NDArray[np.int64],
        last_perturbation: NDArray[np.int64],
        loss_limit: NDArray[np.float64],
        loss: NDArray[np.float64],
        observations: NDArray[np.float64],
        iterates: NDArray[np.float64] | None,
        lr: NDArray[np.float64],
        record_steps: NDArray[np.int64],
        t0: int,
        t1: int,
        total_steps: int,
        momentum: float,
        noise: list[NoiseTerm],
        seed: int,
        trajectory_offset: int,
        n_threads: int,
    ) -> None: ...
    def losses(self, x: NDArray[np.float64], n_threads: int = 1) -> NDArray[np.float64]: ...

class SymmetricMatrixFactorizationKernel(_DrivenKernel):
    def __init__(
        self,
        d: int,
        width: int,
        dense: NDArray[np.float64] | None = None,
        V: NDArray[np.float64] | None = None,
        sigma: NDArray[np.float64] | None = None,
        *,
        basis: NDArray[np.float64],
        pairs: NDArray[np.int64],
        diagonal: NDArray[np.float64] | None = None,
        transposed: bool = False,
    ) -> None: ...

def change_basis(
    Q: NDArray[np.float64], X: NDArray[np.float64], transpose: bool, n_threads: int = 1
) -> NDArray[np.float64]: ...

class AsymmetricMatrixFactorizationKernel(_DrivenKernel):
    def __init__(
        self,
        rows: int,
        cols: int,
        width: int,
        dense: NDArray[np.float64] | None = None,
        left: NDArray[np.float64] | None = None,
        weights: NDArray[np.float64] | None = None,
        right: NDArray[np.float64] | None = None,
        *,
        left_basis: NDArray[np.float64],
        right_basis: NDArray[np.float64],
        pairs: NDArray[np.int64],
        diagonal: NDArray[np.float64] | None = None,
    ) -> None: ...

# csrc/bind_linear_network.cpp
def uniform_draws(seed: int, trajectory: int, step: int, stream: int, count: int) -> NDArray[np.float64]: ...
def jacobi_svd(A: NDArray[np.float64], vectors: bool = False) -> Any: ...

class DeepLinearNetworkKernel(_DrivenKernel):
    def __init__(
        self,
        widths: list[int],
        X_rows: NDArray[np.float64],
        Y_rows: NDArray[np.float64],
        batch_size: int,
        rank_rtol: float,
        rank_atol: float,
        groups: int,
        optimum: NDArray[np.float64] | None = None,
    ) -> None: ...
    def loss_and_grad(self, x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]: ...
    def observe(self, x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]: ...

# csrc/bind_tensor.cpp
def packed_size(d: int, order: int) -> int: ...
def packed_multiplicities(d: int, order: int) -> NDArray[np.float64]: ...
def dense_asymmetry(T: NDArray[np.float64], d: int, order: int) -> float: ...

class SymmetricTensorCore:
    dim: int
    order: int
    rank: int
    storage: str
    norm_squared: float
    @staticmethod
    def from_factors(Z: NDArray[np.float64], c: NDArray[np.float64], order: int) -> SymmetricTensorCore: ...
    @staticmethod
    def from_dense(T: NDArray[np.float64], d: int, order: int) -> SymmetricTensorCore: ...
    @staticmethod
    def from_packed(T: NDArray[np.float64], d: int, order: int) -> SymmetricTensorCore: ...
    def to_dense(self) -> NDArray[np.float64]: ...
    def to_packed(self) -> NDArray[np.float64]: ...
    def as_dense(self) -> SymmetricTensorCore: ...
    def as_packed(self) -> SymmetricTensorCore: ...
    def contract(self, U: NDArray[np.float64], n_threads: int = 1) -> NDArray[np.float64]: ...
    def full_contract(self, U: NDArray[np.float64], n_threads: int = 1) -> NDArray[np.float64]: ...

class OrthogonalTensorDecompositionKernel(_DrivenKernel):
    def __init__(self, target: SymmetricTensorCore, width: int, basis: NDArray[np.float64], halved: bool) -> None: ...
    def loss_and_grad(self, U: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]: ...
    def observe(self, U: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]: ...
