#include "projection.hpp"

#include <algorithm>

#include "linalg.hpp"

#ifdef TRAJCORE_OPENMP
#include <omp.h>
#endif

namespace trajcore::projection {

namespace {

// Rows of one block: at most kMaxRows, a multiple of 4 (the kernels' register block), and few
// enough that a block's product stays below the BLAS threshold. The register-blocked kernels give
// every output element the same bits whatever the row split and thread count; BLAS dgemm does not
// (OpenBLAS rounds differently with a different number of its own threads), so BLAS is kept out
// unless a single row's product is itself above the threshold. Returns 0 in that case.
constexpr int64_t kMaxRows = 64;

int64_t rows_per_block(int64_t multiply_adds_per_row) {
    if (!linalg::has_blas()) return kMaxRows;
    const int64_t limit = (linalg::blas_threshold() - 1) / std::max<int64_t>(multiply_adds_per_row, 1);
    if (limit < 1) return 0;
    const int64_t rows = std::min(kMaxRows, limit);
    return rows >= 4 ? rows - rows % 4 : rows;
}

}  // namespace

void project(int64_t T, int64_t N, int64_t k, const double* snapshots, const double* basis, double scale,
             double* out, int n_threads) {
    if (T == 0 || k == 0) return;
    if (N == 0) {
        std::fill(out, out + T * k, 0.0);
        return;
    }
    const int64_t rows = rows_per_block(N * k);
    if (rows == 0) {  // one snapshot alone is a BLAS-sized product: one threaded dgemm call
        linalg::gemm_nn(T, k, N, scale, snapshots, N, basis, k, 0.0, out, k);
        return;
    }
    const int64_t blocks = (T + rows - 1) / rows;
#ifdef TRAJCORE_OPENMP
#pragma omp parallel for schedule(static) num_threads(std::max(1, n_threads)) if (blocks > 1)
#endif
    for (int64_t b = 0; b < blocks; ++b) {
        const int64_t t0 = b * rows, m = std::min(rows, T - t0);
        linalg::gemm_nn(m, k, N, scale, snapshots + t0 * N, N, basis, k, 0.0, out + t0 * k, k);
    }
    (void)n_threads;
}

void project_per_output(int64_t T, int64_t n, int64_t C, int64_t k, const double* snapshots, const double* basis,
                        double scale, double* out, int n_threads) {
    if (T == 0 || C == 0 || k == 0) return;
    if (n == 0) {
        std::fill(out, out + T * C * k, 0.0);
        return;
    }
    // out[t] (C x k) = snapshots[t]^T (C x n) basis (n x k): blocks of output rows (outputs c) of
    // each snapshot, each block below the BLAS threshold.
    const int64_t rows = rows_per_block(n * k);
    const int64_t per_snapshot = rows == 0 ? 1 : (C + rows - 1) / rows;
    const int64_t tasks = T * per_snapshot;
#ifdef TRAJCORE_OPENMP
#pragma omp parallel for schedule(static) num_threads(std::max(1, n_threads)) if (tasks > 1 && rows > 0)
#endif
    for (int64_t task = 0; task < tasks; ++task) {
        const int64_t t = task / per_snapshot;
        const int64_t c0 = rows == 0 ? 0 : (task % per_snapshot) * rows;
        const int64_t m = rows == 0 ? C : std::min(rows, C - c0);
        linalg::gemm_tn(m, k, n, scale, snapshots + t * n * C + c0, C, basis, k, 0.0, out + (t * C + c0) * k, k);
    }
    (void)n_threads;
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
