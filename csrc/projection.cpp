#include "projection.hpp"

#include <algorithm>

#include "linalg.hpp"

#ifdef TRAJCORE_OPENMP
#include <omp.h>
#endif

namespace trajcore::projection {

namespace {
// Rows of the output handled by one OpenMP task: large enough to amortise the pass over the
// basis, small enough that the basis panel stays in cache between rows.
constexpr int64_t kRowBlock = 32;
}  // namespace

void project(int64_t T, int64_t N, int64_t k, const double* snapshots, const double* basis, double scale,
             double* out, int n_threads) {
    if (T == 0 || k == 0) return;
    if (N == 0) {
        std::fill(out, out + T * k, 0.0);
        return;
    }
    // At or above the BLAS threshold a single dgemm call is fastest (BLAS threads it itself); below
    // it every row block is also below it, so gemm_nn stays in the small kernels inside the
    // parallel region and no BLAS call is ever nested in an OpenMP thread.
    if (linalg::has_blas() && T * N * k >= linalg::blas_threshold()) {
        linalg::gemm_nn(T, k, N, scale, snapshots, N, basis, k, 0.0, out, k);
        return;
    }
    const int64_t blocks = (T + kRowBlock - 1) / kRowBlock;
#ifdef TRAJCORE_OPENMP
#pragma omp parallel for schedule(static) num_threads(std::max(1, n_threads)) if (blocks > 1)
#endif
    for (int64_t b = 0; b < blocks; ++b) {
        const int64_t t0 = b * kRowBlock, rows = std::min(kRowBlock, T - t0);
        linalg::gemm_nn(rows, k, N, scale, snapshots + t0 * N, N, basis, k, 0.0, out + t0 * k, k);
    }
    (void)n_threads;
}

void project_per_output(int64_t T, int64_t n, int64_t C, int64_t k, const double* snapshots, const double* basis,
                        double scale, double* out, int n_threads) {
    if (T == 0 || C == 0 || k == 0) return;
    // Per-snapshot products big enough for BLAS run one after another (BLAS threads each one);
    // small ones run in parallel over snapshots in the small kernels.
    const bool parallel = T > 1 && !(linalg::has_blas() && C * n * k >= linalg::blas_threshold());
#ifdef TRAJCORE_OPENMP
#pragma omp parallel for schedule(static) num_threads(std::max(1, n_threads)) if (parallel)
#endif
    for (int64_t t = 0; t < T; ++t) {
        double* o = out + t * C * k;
        if (n == 0) {
            std::fill(o, o + C * k, 0.0);
            continue;
        }
        linalg::gemm_tn(C, k, n, scale, snapshots + t * n * C, C, basis, k, 0.0, o, k);
    }
    (void)n_threads;
    (void)parallel;
}

void project_one(int64_t N, int64_t k, const double* snapshot, const double* basis, double scale, double* row) {
    if (k == 0) return;
    if (N == 0) {
        std::fill(row, row + k, 0.0);
        return;
    }
    linalg::gemm_nn(1, k, N, scale, snapshot, N, basis, k, 0.0, row, k);
}

}  // namespace trajcore::projection
