// Repeated orthonormal projections: coefficients of a stack of snapshots onto k basis vectors.
//
// A snapshot is a function sampled on a probe set, flattened to N values (n points x C outputs);
// the basis is stored as the columns of a row-major (N x k) matrix. The coefficients are
//     beta[t, i] = scale * sum_j snapshots[t, j] * basis[j, i]          (scale = 1/n on a probe set)
// i.e. one (T x N) (N x k) product: O(T N k). Per-output projections onto a scalar basis
// (snapshots (T, n, C), basis (n, k) -> (T, C, k)) are one (C x n)(n x k) product per snapshot.
//
// Determinism: threads split rows of the output into blocks small enough for the register-blocked
// kernels of linalg.hpp, never the reduction, so every element has the same bits for any thread
// count. BLAS is used only when one snapshot's product alone exceeds the BLAS threshold (then the
// bits can depend on BLAS's own thread count).
#pragma once
#include <cstdint>

namespace trajcore::projection {

// out (T x k) = scale * snapshots (T x N) basis (N x k), OpenMP over blocks of snapshots.
void project(int64_t T, int64_t N, int64_t k, const double* snapshots, const double* basis, double scale,
             double* out, int n_threads);

// out (T x C x k): out[t] = scale * snapshots[t]^T (C x n) basis (n x k), snapshots (T x n x C).
void project_per_output(int64_t T, int64_t n, int64_t C, int64_t k, const double* snapshots, const double* basis,
                        double scale, double* out, int n_threads);

// One snapshot (N) into one row (k) of a preallocated buffer: the streaming form used during
// training. O(N k); no allocation.
void project_one(int64_t N, int64_t k, const double* snapshot, const double* basis, double scale, double* row);

}  // namespace trajcore::projection
