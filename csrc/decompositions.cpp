#include "decompositions.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "checks.hpp"
#include "linalg.hpp"

namespace trajcore::linalg {

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();

// The sums below run in index order with one accumulator (sequential_dot): the singular values
// are part of recorded observables, so their bits must not depend on the vector kernel in use.
double dot(const double* a, const double* b, int64_t n) { return sequential_dot(n, a, b); }

// Makes column-vectors stored as the rows of Q (count x dim) orthonormal in place: vectors whose norm
// survives projection keep their direction (two Gram-Schmidt passes), the others are replaced by the
// first standard basis vectors that complete the set. Deterministic.
void orthonormalize_rows(double* Q, int64_t count, int64_t dim, const std::vector<bool>& trusted) {
    for (int64_t i = 0; i < count; ++i) {
        double* q = Q + i * dim;
        bool ok = trusted[i];
        if (ok) {
            for (int pass = 0; pass < 2; ++pass)
                for (int64_t j = 0; j < i; ++j) {
                    const double c = dot(q, Q + j * dim, dim);
                    for (int64_t t = 0; t < dim; ++t) q[t] -= c * Q[j * dim + t];
                }
            const double norm = std::sqrt(dot(q, q, dim));
            ok = norm > 0.5;
            if (ok)
                for (int64_t t = 0; t < dim; ++t) q[t] /= norm;
        }
        for (int64_t e = 0; !ok && e < dim; ++e) {
            std::fill(q, q + dim, 0.0);
            q[e] = 1.0;
            for (int pass = 0; pass < 2; ++pass)
                for (int64_t j = 0; j < i; ++j) {
                    const double c = dot(q, Q + j * dim, dim);
                    for (int64_t t = 0; t < dim; ++t) q[t] -= c * Q[j * dim + t];
                }
            const double norm = std::sqrt(dot(q, q, dim));
            if (norm > 0.5) {
                for (int64_t t = 0; t < dim; ++t) q[t] /= norm;
                ok = true;
            }
        }
    }
}

// One-sided Jacobi (Hestenes) on `count` vectors of length `len` stored as the rows of `rows`: rotates pairs
// until all are mutually orthogonal to working precision. Rotations are accumulated into the rows of Vt
// (count x count) when it is given. Squared norms are cached and updated by each rotation
// (a' = a - t c, b' = b + t c), so a pair costs one dot product; they are recomputed exactly at the start
// of every sweep. Returns with norms[i] = squared norm of row i.
void jacobi_sweeps(double* rows, int64_t count, int64_t len, double* Vt, double* norms) {
    const int64_t k = count, p = len;
    double* Gt = rows;
    const bool vectors = Vt != nullptr;
    for (int sweep = 0; sweep < 80; ++sweep) {
        bool rotated = false;
        for (int64_t i = 0; i < k; ++i) norms[i] = dot(Gt + i * p, Gt + i * p, p);
        for (int64_t i = 0; i + 1 < k; ++i) {
            double* gi = Gt + i * p;
            for (int64_t j = i + 1; j < k; ++j) {
                double* gj = Gt + j * p;
                const double a = norms[i], b = norms[j];
                const double c = dot(gi, gj, p);
                if (c == 0.0 || std::fabs(c) <= kEps * std::sqrt(a * b)) continue;
                rotated = true;
                const double zeta = (b - a) / (2.0 * c);
                const double tan = (zeta >= 0.0 ? 1.0 : -1.0) / (std::fabs(zeta) + std::sqrt(1.0 + zeta * zeta));
                const double cs = 1.0 / std::sqrt(1.0 + tan * tan), sn = cs * tan;
                for (int64_t t = 0; t < p; ++t) {
                    const double x = gi[t], y = gj[t];
                    gi[t] = cs * x - sn * y;
                    gj[t] = sn * x + cs * y;
                }
                norms[i] = std::max(0.0, a - tan * c);
                norms[j] = std::max(0.0, b + tan * c);
                if (vectors) {
                    double* vi = Vt + i * k;
                    double* vj = Vt + j * k;
                    for (int64_t t = 0; t < k; ++t) {
                        const double x = vi[t], y = vj[t];
                        vi[t] = cs * x - sn * y;
                        vj[t] = sn * x + cs * y;
                    }
                }
            }
        }
        if (!rotated) break;
    }
    for (int64_t i = 0; i < k; ++i) norms[i] = dot(Gt + i * p, Gt + i * p, p);
}

}  // namespace

// The pivoted R has rows of decreasing size, on which one-sided Jacobi converges in a few sweeps
// (Drmac & Veselic).
void pivoted_qr_rows(double* Gt, int64_t p, int64_t k, double* R) {
    std::fill(R, R + k * k, 0.0);
    int64_t done = 0;
    for (int64_t j = 0; j < k; ++j) {
        int64_t pivot = j;
        double best = -1.0;
        for (int64_t m = j; m < k; ++m) {
            const double nm = dot(Gt + m * p + j, Gt + m * p + j, p - j);
            if (nm > best) {
                best = nm;
                pivot = m;
            }
        }
        // Whole rows move: the entries above j that later become R[i][j], i < j, move with their column.
        if (pivot != j) std::swap_ranges(Gt + j * p, Gt + (j + 1) * p, Gt + pivot * p);
        double* x = Gt + j * p + j;
        const int64_t len = p - j;
        const double norm = std::sqrt(best);
        if (norm == 0.0) break;  // the remaining columns are zero: so are the remaining rows of R
        const double alpha = x[0] >= 0.0 ? -norm : norm;
        x[0] -= alpha;  // x is now the Householder vector v
        const double v2 = dot(x, x, len);
        for (int64_t m = j + 1; m < k; ++m) {
            double* y = Gt + m * p + j;
            const double c = v2 > 0.0 ? 2.0 * dot(x, y, len) / v2 : 0.0;
            for (int64_t t = 0; t < len; ++t) y[t] -= c * x[t];
        }
        R[j * k + j] = alpha;
        done = j + 1;
    }
    // R[i][m] (i < m) is entry i of the transformed column m, untouched by the later reflections.
    for (int64_t m = 0; m < k; ++m)
        for (int64_t i = 0; i < std::min(m, done); ++i) R[i * k + m] = Gt[m * p + i];
}

void jacobi_svd(int64_t rows, int64_t cols, const double* A, double* s, double* U, double* V,
                std::vector<double>& work) {
    require(rows > 0 && cols > 0, "jacobi_svd: empty matrix");
    // Orthogonalise the k columns of the tall matrix G (p x k): G = A when rows >= cols, else A^T.
    // They are stored as the rows of Gt (k x p) so that every rotation touches contiguous memory.
    const bool transposed = rows < cols;
    const int64_t p = std::max(rows, cols), k = std::min(rows, cols);
    const bool vectors = U != nullptr && V != nullptr;
    work.resize(static_cast<size_t>(k * p + k * k + k));
    double* Gt = work.data();
    double* Vt = Gt + k * p;  // accumulated right rotations of G, rows are its columns
    double* norms = Vt + k * k;
    if (transposed) {
        std::copy(A, A + rows * cols, Gt);  // Gt = A (k = rows, p = cols)
    } else {
        for (int64_t i = 0; i < rows; ++i)
            for (int64_t j = 0; j < cols; ++j) Gt[j * p + i] = A[i * cols + j];
    }
    if (vectors) {
        std::fill(Vt, Vt + k * k, 0.0);
        for (int64_t i = 0; i < k; ++i) Vt[i * k + i] = 1.0;
    }
    if (!vectors) {
        // Values only: precondition by pivoted QR, then orthogonalise the rows of R (k x k).
        double* R = Vt;  // the rotation storage is free when no vectors are wanted
        pivoted_qr_rows(Gt, p, k, R);
        jacobi_sweeps(R, k, k, nullptr, norms);
    } else {
        jacobi_sweeps(Gt, k, p, Vt, norms);
    }
    for (int64_t i = 0; i < k; ++i) norms[i] = std::sqrt(norms[i]);
    // Descending order; ties keep the column order (deterministic).
    // A stack buffer for the usual small k: no allocation inside the per-step loop, so threads never
    // meet in the allocator.
    int64_t order_small[64];
    std::vector<int64_t> order_heap;
    int64_t* order = order_small;
    if (k > 64) {
        order_heap.resize(static_cast<size_t>(k));
        order = order_heap.data();
    }
    // Stable insertion sort (std::stable_sort may allocate a buffer); k is small.
    for (int64_t i = 0; i < k; ++i) {
        int64_t j = i;
        while (j > 0 && norms[order[j - 1]] < norms[i]) {
            order[j] = order[j - 1];
            --j;
        }
        order[j] = i;
    }
    for (int64_t i = 0; i < k; ++i) s[i] = norms[order[i]];
    if (!vectors) return;

    // Left vectors of G: normalised columns (rows of Gt); right vectors: columns of the rotation.
    const double s_max = k > 0 ? s[0] : 0.0;
    std::vector<double> left(static_cast<size_t>(k * p)), right(static_cast<size_t>(k * k));
    std::vector<bool> trusted(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) {
        const int64_t src = order[i];
        const double norm = norms[src];
        trusted[i] = norm > 0.0 && norm > s_max * 1e-300;
        for (int64_t t = 0; t < p; ++t) left[i * p + t] = trusted[i] ? Gt[src * p + t] / norm : 0.0;
        std::copy(Vt + src * k, Vt + src * k + k, right.begin() + i * k);
    }
    orthonormalize_rows(left.data(), k, p, trusted);
    // G = left^T diag(s) right;  A = G (rows >= cols) or G^T.
    const double* a_left = transposed ? right.data() : left.data();   // (k x rows) as rows
    const double* a_right = transposed ? left.data() : right.data();  // (k x cols) as rows
    for (int64_t i = 0; i < k; ++i) {
        for (int64_t r = 0; r < rows; ++r) U[r * k + i] = a_left[i * rows + r];
        for (int64_t c = 0; c < cols; ++c) V[c * k + i] = a_right[i * cols + c];
    }
}

double RankTolerance::threshold(double s_max, int64_t rows, int64_t cols) const {
    if (atol > 0.0) return atol;
    const double r = rtol > 0.0 ? rtol : static_cast<double>(std::max(rows, cols)) * kEps;
    return r * s_max;
}

int64_t RankTolerance::rank(const double* s, int64_t k, int64_t rows, int64_t cols) const {
    if (k == 0) return 0;
    const double tol = threshold(s[0], rows, cols);
    int64_t r = 0;
    for (int64_t i = 0; i < k; ++i) r += s[i] > tol ? 1 : 0;
    return r;
}

}  // namespace trajcore::linalg
