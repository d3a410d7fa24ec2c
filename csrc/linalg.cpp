#include "linalg.hpp"

#include "kernels.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace trajcore::linalg {

namespace {

std::atomic<dgemm_fn> blas_dgemm{nullptr};
std::atomic<int64_t> blas_min_multiply_adds{INT64_MAX};

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
bool try_blas(char trans_a, char trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* A,
              int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
    dgemm_fn fn = blas_dgemm.load(std::memory_order_relaxed);
    if (fn == nullptr || m * n * k < blas_min_multiply_adds.load(std::memory_order_relaxed)) return false;
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX) return false;
    int mm = static_cast<int>(n), nn = static_cast<int>(m), kk = static_cast<int>(k);
    int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
    fn(&trans_b, &trans_a, &mm, &nn, &kk, &alpha, const_cast<double*>(B), &lb, const_cast<double*>(A), &la,
       &beta, C, &lc);
    return true;
}

}  // namespace

void gemm_nn(int64_t m, int64_t n, int64_t k, double alpha, const double* A, int64_t lda, const double* B,
             int64_t ldb, double beta, double* C, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (try_blas('N', 'N', m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    kernels::active().gemm(m, n, k, alpha, A, lda, 1, B, ldb, beta, C, ldc);
}

void gemm_tn(int64_t m, int64_t n, int64_t k, double alpha, const double* A, int64_t lda, const double* B,
             int64_t ldb, double beta, double* C, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (try_blas('T', 'N', m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    kernels::active().gemm(m, n, k, alpha, A, 1, lda, B, ldb, beta, C, ldc);
}

void gemm_nt(int64_t m, int64_t n, int64_t k, double alpha, const double* A, int64_t lda, const double* B,
             int64_t ldb, double beta, double* C, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (try_blas('N', 'T', m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    // B^T into a per-thread buffer (O(n k) moves) so the product runs in the vector kernel.
    thread_local std::vector<double> transposed;
    transposed.resize(static_cast<std::size_t>(n * k));
    transpose(n, k, B, ldb, transposed.data(), n);
    kernels::active().gemm(m, n, k, alpha, A, lda, 1, transposed.data(), n, beta, C, ldc);
}

void gram(int64_t n, int64_t k, const double* A, int64_t lda, double beta, double* C, int64_t ldc) {
    if (n == 0) return;
    // Row blocks of 8 from the diagonal on, each mirrored below the diagonal by an in-register
    // transpose, save work once there are three of them; below that the extra calls cost more than
    // the skipped lower blocks (measured at n = 16 and 20).
    constexpr int64_t kRows = 8;
    const bool blas = blas_dgemm.load(std::memory_order_relaxed) != nullptr && n * n * k >= blas_threshold();
    if (blas) {
        gemm_tn(n, n, k, 1.0, A, lda, A, lda, beta, C, ldc);
        return;
    }
    const kernels::Table& variant = kernels::active();
    if (n < 3 * kRows) {  // gemm_tn's kernel call, its BLAS check made above (gram is called every step)
        variant.gemm(n, n, k, 1.0, A, 1, lda, A, lda, beta, C, ldc);
        return;
    }
    for (int64_t i0 = 0; i0 < n; i0 += kRows) {
        const int64_t rows = std::min(kRows, n - i0);
        variant.gemm(rows, n - i0, k, 1.0, A + i0, 1, lda, A + i0, lda, beta, C + i0 * ldc + i0, ldc);
        // rows i0.. left of the diagonal = columns i0.. above it, computed by the blocks before
        variant.transpose(i0, rows, C + i0, ldc, C + i0 * ldc, ldc);
    }
}

double dot(int64_t n, const double* x, const double* y) { return kernels::active().dot(n, x, y); }

bool all_finite(int64_t n, const double* x) { return kernels::active().all_finite(n, x); }

double scaled_difference(int64_t n, const double* x, const double* y, double a, double* out) {
    return kernels::active().scaled_difference(n, x, y, a, out);
}

void transpose(int64_t m, int64_t n, const double* A, int64_t lda, double* out, int64_t ldo) {
    kernels::active().transpose(m, n, A, lda, out, ldo);
}

void change_basis(int64_t n, const double* Q, int64_t batch, int64_t w, const double* X, bool transpose,
                  double* out, int threads) {
    (void)threads;
#ifdef TRAJCORE_OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
    for (int64_t b = 0; b < batch; ++b) {
        if (transpose)
            gemm_tn(n, w, n, 1.0, Q, n, X + b * n * w, w, 0.0, out + b * n * w, w);
        else
            gemm_nn(n, w, n, 1.0, Q, n, X + b * n * w, w, 0.0, out + b * n * w, w);
    }
}

void set_blas_dgemm(dgemm_fn fn) { blas_dgemm.store(fn); }
bool has_blas() { return blas_dgemm.load() != nullptr; }
void set_blas_threshold(int64_t multiply_adds) { blas_min_multiply_adds.store(multiply_adds); }
int64_t blas_threshold() { return blas_min_multiply_adds.load(); }
const char* kernel_isa() { return kernels::active().isa; }

}  // namespace trajcore::linalg
