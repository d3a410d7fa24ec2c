// Small dense decompositions shared by the kernels: the one-sided Jacobi SVD, the pivoted QR that
// preconditions it, and the numerical-rank rule applied to singular values.
//
// They run inside per-step loops on matrices of tens of rows, so they are written for that size:
// contiguous rotations, no allocation beyond a caller-owned work vector, and a fixed operation order
// (bitwise deterministic, whatever thread calls them).
#pragma once
#include <cstdint>
#include <vector>

namespace trajcore::linalg {

// Singular values (and optionally vectors) of a small dense matrix by one-sided Jacobi (Hestenes).
// A is (rows x cols) row-major, k = min(rows, cols). On return s (k) is descending and >= 0; when U and
// V are given, U is (rows x k) and V is (cols x k), row-major, with orthonormal columns (vectors of zero
// singular values completed to an orthonormal set), A = U diag(s) V^T. Fixed sweep order: deterministic.
// Cost O(sweeps * k^2 * max(rows, cols)); 10 x 10 matrices take 5-8 sweeps. `work` is resized as needed.
// Values only: the columns are first reduced by pivoted_qr_rows, on whose R Jacobi converges in fewer sweeps.
void jacobi_svd(int64_t rows, int64_t cols, const double* A, double* s, double* U, double* V,
                std::vector<double>& work);

// Householder QR with column pivoting of G (p x k, p >= k), given by its columns as the rows of Gt
// (k x p, overwritten); writes the rows of R (k x k, upper triangular) into R. The pivoted R has rows of
// decreasing size. O(p k^2).
void pivoted_qr_rows(double* Gt, int64_t p, int64_t k, double* R);

// Numerical-rank rule: tol = atol when atol > 0, else rtol * s_max with rtol defaulting (rtol <= 0)
// to max(m, n) * eps, numpy's matrix_rank rule.
struct RankTolerance {
    double rtol = 0.0;
    double atol = 0.0;
    double threshold(double s_max, int64_t rows, int64_t cols) const;
    // Singular values s (k, descending) above the threshold for a (rows x cols) matrix.
    int64_t rank(const double* s, int64_t k, int64_t rows, int64_t cols) const;
};

}  // namespace trajcore::linalg
