// Dense row-major matrix products for the step kernels.
//
// Small products run in register-blocked kernels compiled for up to three instruction sets (the
// baseline, AVX2+FMA, AVX-512; kernels.hpp) and picked at load time from what the CPU reports, so
// wheels stay portable. Products at or above `blas_threshold()` multiply-adds go to the BLAS `dgemm` that
// Python hands over (scipy's, through its Cython capsule) when one was registered. Every path is
// deterministic: the same inputs on the same machine give the same bits, whatever the thread count.
#pragma once
#include <cstdint>

namespace trajcore::linalg {

// C(m x n) = alpha * A(m x k) B(k x n) + beta * C.  lda/ldb/ldc are row strides.
void gemm_nn(int64_t m, int64_t n, int64_t k, double alpha, const double* A, int64_t lda,
             const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// C(m x n) = alpha * A^T B + beta * C with A stored (k x m).
void gemm_tn(int64_t m, int64_t n, int64_t k, double alpha, const double* A, int64_t lda,
             const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// C(m x n) = alpha * A B^T + beta * C with A (m x k) and B stored (n x k).
void gemm_nt(int64_t m, int64_t n, int64_t k, double alpha, const double* A, int64_t lda,
             const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// C(n x n) = A^T A + beta * C with A stored (k x n), C symmetric. For n >= 24 only the blocks on
// and above the diagonal are computed (about (n + 8) / 2n of gemm_tn's work) and mirrored below.
void gram(int64_t n, int64_t k, const double* A, int64_t lda, double beta, double* C, int64_t ldc);

// Sum of x[i] * y[i] (vectorised; a fixed summation order, so deterministic on a given machine).
double dot(int64_t n, const double* x, const double* y);

// Sum of x[i] * y[i] in index order with one accumulator: the order the small decompositions and the
// linear network's moments are defined in, independent of the kernel variant (unlike dot).
inline double sequential_dot(int64_t n, const double* x, const double* y) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
    return s;
}

// out (n x m) = A^T for A (m x n); lda and ldo are row strides (in-register block transposes).
void transpose(int64_t m, int64_t n, const double* A, int64_t lda, double* out, int64_t ldo);

// out = a (x - y) for x, y (n); returns ||x - y||^2 (vectorised, a fixed summation order).
double scaled_difference(int64_t n, const double* x, const double* y, double a, double* out);

// Whether every x[i] is finite.
bool all_finite(int64_t n, const double* x);

// Change of basis of a batch: out_b = Q^T X_b (transpose) or Q X_b for the `batch` matrices X_b (n x w)
// stored one after the other in X, with Q (n x n); parameters into or out of the basis Q. O(batch n^2 w),
// `threads` OpenMP threads over the batch (one product per matrix: the same bits for any thread count).
void change_basis(int64_t n, const double* Q, int64_t batch, int64_t w, const double* X, bool transpose,
                  double* out, int threads);

// Fortran BLAS dgemm signature (column-major), as exported by scipy.linalg.cython_blas.
using dgemm_fn = void (*)(char*, char*, int*, int*, int*, double*, double*, int*, double*, int*, double*,
                          double*, int*);
void set_blas_dgemm(dgemm_fn fn);
bool has_blas();
void set_blas_threshold(int64_t multiply_adds);
int64_t blas_threshold();

// Name of the kernel variant in use ("avx512", "avx2", "generic" or "portable"; kernels.hpp).
const char* kernel_isa();

}  // namespace trajcore::linalg
