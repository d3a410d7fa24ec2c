#include "matrix_sensing.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "kernels.hpp"
#include "linalg.hpp"

namespace trajcore {

int64_t packed_symmetric_size(int64_t d) {
    require(d > 0, "measurements: d must be positive");
    // d (d + 1) / 2 with the even factor halved first.
    return d % 2 == 0 ? checked_size(d / 2, d + 1, "measurements") : checked_size(d, (d + 1) / 2, "measurements");
}

std::vector<double> pack_symmetric_measurements(int64_t m, int64_t d, const double* dense, double symmetry_tol) {
    require(m > 0, "measurements: expected at least one measurement");
    const int64_t D = packed_symmetric_size(d);
    const int64_t square = checked_size(d, d, "measurements");
    checked_size(m, square, "measurements");
    require(std::isfinite(symmetry_tol) && symmetry_tol >= 0.0, "symmetry_tol: expected a finite number >= 0");
    if (!linalg::all_finite(m * square, dense))
        throw std::invalid_argument("measurements: contains NaN or infinite values");
    std::vector<double> packed(static_cast<size_t>(checked_size(m, D, "measurements")));
    for (int64_t i = 0; i < m; ++i) {
        const double* A = dense + i * square;
        double* out = packed.data() + i * D;
        double scale = 0.0, asymmetry = 0.0;
        for (int64_t a = 0; a < d; ++a)
            for (int64_t b = a; b < d; ++b) {
                const double upper = A[a * d + b], lower = A[b * d + a];
                scale = std::max({scale, std::fabs(upper), std::fabs(lower)});
                asymmetry = std::max(asymmetry, std::fabs(upper - lower));
                *out++ = 0.5 * (upper + lower);
            }
        if (asymmetry > symmetry_tol * scale)
            throw std::invalid_argument("measurements: measurement " + std::to_string(i) +
                                        " is not symmetric (max |A_i - A_i^T| = " + std::to_string(asymmetry) +
                                        " > symmetry_tol * max |A_i| = " + std::to_string(symmetry_tol * scale) +
                                        ")");
    }
    return packed;
}

MatrixSensingKernel::MatrixSensingKernel(int64_t d, int64_t width, std::vector<double> packed_measurements,
                                         std::vector<double> observations, PairProjector projector)
    : d_(d), w_(width), m_(static_cast<int64_t>(observations.size())), packed_(packed_symmetric_size(d)),
      measurements_(std::move(packed_measurements)), observations_(std::move(observations)),
      projector_(std::move(projector)) {
    require(width > 0, "matrix sensing: width must be positive");
    require(m_ > 0, "observations: expected at least one observation");
    require(static_cast<int64_t>(measurements_.size()) == checked_size(m_, packed_, "measurements"),
            "measurements: expected one packed measurement (d (d + 1) / 2 values) per observation");
    checked_size(d_, w_, "matrix sensing state");
    checked_size(d_, d_, "matrix sensing workspace");
    require(linalg::all_finite(m_, observations_.data()), "observations: contains NaN or infinite values");
    require(linalg::all_finite(m_ * packed_, measurements_.data()), "measurements: contains NaN or infinite values");
    block_ = std::clamp<int64_t>(kMeasurementBlockBytes / (8 * packed_), 1, kMaxMeasurementBlock);
    const int64_t D = packed_;
    if (D + 1 >= 2 * m_) return;  // streaming mode
    // Gram mode: G's upper triangle in row blocks of kGramRows, built kGramBuildRows rows at a time
    // (one product R x (D - i0) x m each, the diagonal block whole), and b = A^T y.
    int64_t total = 0;
    for (int64_t i0 = 0; i0 < D; i0 += kGramRows) {
        gram_offsets_.push_back(total);
        total += std::min(kGramRows, D - i0) * (D - i0);
    }
    gram_.resize(static_cast<size_t>(total));
    const double* A = measurements_.data();
    std::vector<double> rows(static_cast<size_t>(std::min(kGramBuildRows, D) * D));
    const kernels::Table& variant = kernels::active();
    for (int64_t b0 = 0; b0 < D; b0 += kGramBuildRows) {
        const int64_t count = std::min(kGramBuildRows, D - b0), n = D - b0;
        // the kernel variant's product, not the BLAS: the same G with or without a BLAS registered, and
        // no BLAS threads to contend with the driver's
        variant.gemm(count, n, m_, 1.0, A + b0, 1, D, A + b0, D, 0.0, rows.data(), n);
        for (int64_t i0 = b0; i0 < b0 + count; i0 += kGramRows) {
            const int64_t r = std::min(kGramRows, D - i0);
            double* block = gram_.data() + gram_offsets_[static_cast<size_t>(i0 / kGramRows)];
            for (int64_t i = 0; i < r; ++i)
                std::copy_n(rows.data() + (i0 - b0 + i) * n + (i0 - b0), D - i0, block + i * (D - i0));
        }
    }
    moments_.resize(static_cast<size_t>(D));
    variant.gemm(D, 1, m_, 1.0, A, 1, D, observations_.data(), 1, 0.0, moments_.data(), 1);
    observations_squared_ = linalg::dot(m_, observations_.data(), observations_.data());
}

MatrixSensingKernel::Workspace MatrixSensingKernel::workspace() const {
    Workspace ws;
    ws.packed_gram.resize(static_cast<size_t>(packed_));
    ws.residuals.resize(static_cast<size_t>(m_));
    ws.sum.resize(static_cast<size_t>(packed_));
    ws.square.resize(static_cast<size_t>(d_ * d_));
    return ws;
}

void MatrixSensingKernel::pack_gram(const double* U, Workspace& ws) const {
    const int64_t d = d_;
    // P = U U^T (d^2 w), then packed with the off-diagonal entries doubled: a_i . p_hat = <A_i, P>.
    double* P = ws.square.data();
    linalg::gemm_nt(d, d, w_, 1.0, U, w_, U, w_, 0.0, P, d);
    double* p_hat = ws.packed_gram.data();
    for (int64_t a = 0, k = 0; a < d; ++a) {
        p_hat[k++] = P[a * d + a];
        for (int64_t b = a + 1; b < d; ++b) p_hat[k++] = 2.0 * P[a * d + b];
    }
}

double MatrixSensingKernel::residual_pass(Workspace& ws, bool accumulate) const {
    const int64_t D = packed_;
    const double* p_hat = ws.packed_gram.data();
    double* r = ws.residuals.data();
    for (int64_t i0 = 0; i0 < m_; i0 += block_) {
        const int64_t rows = std::min(block_, m_ - i0);
        const double* A = measurements_.data() + i0 * D;
        for (int64_t i = 0; i < rows; ++i) r[i0 + i] = linalg::dot(D, A + i * D, p_hat) - observations_[i0 + i];
        // S (1 x D) += r_blk^T A_blk while the block is in cache (the first block sets S).
        if (accumulate)
            linalg::gemm_nn(1, D, rows, 1.0, r + i0, rows, A, D, i0 == 0 ? 0.0 : 1.0, ws.sum.data(), D);
    }
    return linalg::dot(m_, r, r) / (4.0 * static_cast<double>(m_));
}

double MatrixSensingKernel::gram_pass(Workspace& ws) const {
    const int64_t D = packed_;
    const double* p = ws.packed_gram.data();
    double* q = ws.sum.data();
    std::fill_n(q, D, 0.0);
    // q = G p in one pass over the stored triangle, block by block: each row's dot with p from the
    // block's first column on (the diagonal block is stored whole), then the block's rows, as columns
    // of G below it, into q past the block. q_i sums the blocks above i's in order, then its own dot.
    for (int64_t i0 = 0, k = 0; i0 < D; i0 += kGramRows, ++k) {
        const int64_t rows = std::min(kGramRows, D - i0), n = D - i0;
        const double* G = gram_.data() + gram_offsets_[static_cast<size_t>(k)];
        for (int64_t i = 0; i < rows; ++i) q[i0 + i] += linalg::dot(n, G + i * n, p + i0);
        if (n > rows) linalg::gemm_nn(1, n - rows, rows, 1.0, p + i0, rows, G + rows, n, 1.0, q + i0 + rows, n);
    }
    const double pq = linalg::dot(D, p, q), bp = linalg::dot(D, moments_.data(), p);
    const double* b = moments_.data();
    for (int64_t j = 0; j < D; ++j) q[j] -= b[j];  // S = G p - b
    ws.loss_scale = pq + observations_squared_;
    return (pq - 2.0 * bp + observations_squared_) / (4.0 * static_cast<double>(m_));
}

double MatrixSensingKernel::loss_and_grad(const double* U, double* grad, Workspace& ws, const StepContext&) const {
    pack_gram(U, ws);
    const double loss = gram_mode() ? gram_pass(ws) : residual_pass(ws, true);
    // S unpacked into the d x d buffer (P is no longer needed), then grad = (1/m) S U.
    const int64_t d = d_;
    double* S = ws.square.data();
    const double* s = ws.sum.data();
    for (int64_t a = 0, k = 0; a < d; ++a)
        for (int64_t b = a; b < d; ++b, ++k) S[a * d + b] = S[b * d + a] = s[k];
    linalg::gemm_nn(d, w_, d, 1.0 / static_cast<double>(m_), S, d, U, w_, 0.0, grad, w_);
    return loss;
}

double MatrixSensingKernel::observe(const double* U, double* out, Workspace& ws, double gradient_loss) const {
    // After loss_and_grad at the same U, the workspace holds p_hat (and in Gram mode the scale of the
    // Gram-form loss). Streaming mode: the gradient's loss is the same residual sum, bit for bit.
    // Gram mode: its loss is kept while it is at least kSensingGramTrust of its terms' scale, and is
    // otherwise computed from the residuals (the exact pass over the measurements).
    double loss = gradient_loss;
    const bool fresh = std::isnan(gradient_loss);
    if (fresh) pack_gram(U, ws);
    if (!gram_mode()) {
        if (fresh) loss = residual_pass(ws, false);
    } else {
        if (fresh) loss = gram_pass(ws);
        const bool trusted = 4.0 * static_cast<double>(m_) * loss >= kSensingGramTrust * ws.loss_scale;
        if (!trusted) loss = residual_pass(ws, false);  // also when the loss is NaN
    }
    projector_.project(U, U, w_, out, ws.scratch);
    return loss;
}

}  // namespace trajcore
