#include "matrix_factorization.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace trajcore {

using linalg::gemm_nn;
using linalg::gemm_tn;

// Products with at most this many columns run transposed, (Z^T M^T)^T: a narrow Z fills only part
// of a vector register, while the rows of M^T fill whole ones.
constexpr int64_t kNarrowWidth = 7;
// ... for targets of at most this many entries (M^T is kept beside M when M is not symmetric).
constexpr int64_t kNarrowTargetSize = int64_t{1} << 16;

TargetMatrix TargetMatrix::dense(int64_t rows, int64_t cols, std::vector<double> values) {
    require(rows > 0 && cols > 0, "target: dimensions must be positive");
    require(static_cast<int64_t>(values.size()) == checked_size(rows, cols, "target"), "target: size mismatch");
    TargetMatrix t;
    t.rows_ = rows;
    t.cols_ = cols;
    t.rank_ = std::min(rows, cols);
    t.dense_ = std::move(values);
    for (double v : t.dense_) t.frobenius_squared_ += v * v;
    if (rows * cols <= kNarrowTargetSize) {
        bool symmetric = rows == cols;
        for (int64_t i = 0; i < rows && symmetric; ++i)
            for (int64_t j = 0; j < i && symmetric; ++j) symmetric = t.dense_[i * cols + j] == t.dense_[j * cols + i];
        if (!symmetric) {
            t.dense_transposed_.resize(static_cast<size_t>(rows * cols));
            for (int64_t i = 0; i < rows; ++i)
                for (int64_t j = 0; j < cols; ++j) t.dense_transposed_[j * rows + i] = t.dense_[i * cols + j];
        }
    }
    return t;
}

TargetMatrix TargetMatrix::factored(int64_t rows, int64_t cols, int64_t rank, std::vector<double> left,
                                    std::vector<double> weights, std::vector<double> right) {
    require(rows > 0 && cols > 0 && rank > 0, "target: dimensions must be positive");
    require(static_cast<int64_t>(left.size()) == checked_size(rows, rank, "target"), "target: left factor size");
    require(static_cast<int64_t>(right.size()) == checked_size(cols, rank, "target"), "target: right factor size");
    require(static_cast<int64_t>(weights.size()) == rank, "target: weights size");
    checked_size(rank, rank, "target rank");
    TargetMatrix t;
    t.rows_ = rows;
    t.cols_ = cols;
    t.rank_ = rank;
    t.factored_ = true;
    t.left_ = std::move(left);
    t.weights_ = std::move(weights);
    t.right_ = std::move(right);
    // ||L diag(s) R^T||^2 = sum_ij s_i s_j (L^T L)_ij (R^T R)_ij: exact for non-orthonormal factors too.
    std::vector<double> gl(static_cast<size_t>(rank * rank)), gr(static_cast<size_t>(rank * rank));
    gemm_tn(rank, rank, rows, 1.0, t.left_.data(), rank, t.left_.data(), rank, 0.0, gl.data(), rank);
    gemm_tn(rank, rank, cols, 1.0, t.right_.data(), rank, t.right_.data(), rank, 0.0, gr.data(), rank);
    for (int64_t i = 0; i < rank; ++i)
        for (int64_t j = 0; j < rank; ++j)
            t.frobenius_squared_ += t.weights_[i] * t.weights_[j] * gl[i * rank + j] * gr[i * rank + j];
    // The recorded loss (residual_norm_squared) splits the residual along L and R, which needs
    // orthonormal columns. Python checks to 1e-8; this looser bound stops direct misuse of the core.
    for (int64_t i = 0; i < rank; ++i)
        for (int64_t j = 0; j < rank; ++j) {
            const double identity = i == j ? 1.0 : 0.0;
            require(std::fabs(gl[i * rank + j] - identity) <= 1e-6 && std::fabs(gr[i * rank + j] - identity) <= 1e-6,
                    "target: the factors (left, right) must have orthonormal columns");
        }
    return t;
}

// out (n x w) = T^T, for T (w x n) row-major.
static void transpose_into(const double* T, int64_t w, int64_t n, double* out) {
    for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < w; ++k) out[i * w + k] = T[k * n + i];
}

bool TargetMatrix::narrow(int64_t w) const {
    return !factored_ && w <= kNarrowWidth && rows_ * cols_ <= kNarrowTargetSize;
}

// M Z = L (s * (R^T Z)):  O(rank * (rows + cols) * w) for the factored form.
void TargetMatrix::times(const double* Z, int64_t w, double* out, std::vector<double>& scratch) const {
    if (narrow(w)) {
        // (M Z)^T = Z^T M^T, and M^T is M when M is symmetric.
        const double* mt = dense_transposed_.empty() ? dense_.data() : dense_transposed_.data();
        scratch.resize(static_cast<size_t>(w * rows_));
        gemm_tn(w, rows_, cols_, 1.0, Z, w, mt, rows_, 0.0, scratch.data(), rows_);
        transpose_into(scratch.data(), w, rows_, out);
        return;
    }
    if (!factored_) {
        gemm_nn(rows_, w, cols_, 1.0, dense_.data(), cols_, Z, w, 0.0, out, w);
        return;
    }
    scratch.resize(static_cast<size_t>(rank_ * w));
    gemm_tn(rank_, w, cols_, 1.0, right_.data(), rank_, Z, w, 0.0, scratch.data(), w);
    for (int64_t i = 0; i < rank_; ++i)
        for (int64_t j = 0; j < w; ++j) scratch[i * w + j] *= weights_[i];
    gemm_nn(rows_, w, rank_, 1.0, left_.data(), rank_, scratch.data(), w, 0.0, out, w);
}

void TargetMatrix::transpose_times(const double* Z, int64_t w, double* out, std::vector<double>& scratch) const {
    if (narrow(w)) {
        // (M^T Z)^T = Z^T M.
        scratch.resize(static_cast<size_t>(w * cols_));
        gemm_tn(w, cols_, rows_, 1.0, Z, w, dense_.data(), cols_, 0.0, scratch.data(), cols_);
        transpose_into(scratch.data(), w, cols_, out);
        return;
    }
    if (!factored_) {
        gemm_tn(cols_, w, rows_, 1.0, dense_.data(), cols_, Z, w, 0.0, out, w);
        return;
    }
    scratch.resize(static_cast<size_t>(rank_ * w));
    gemm_tn(rank_, w, rows_, 1.0, left_.data(), rank_, Z, w, 0.0, scratch.data(), w);
    for (int64_t i = 0; i < rank_; ++i)
        for (int64_t j = 0; j < w; ++j) scratch[i * w + j] *= weights_[i];
    gemm_nn(cols_, w, rank_, 1.0, right_.data(), rank_, scratch.data(), w, 0.0, out, w);
}

// Dense: the residual itself, O(rows cols w). Factored (orthonormal L, R): with P = L^T X, Q = R^T Y,
// X_perp = X - L P and Y_perp = Y - R Q the residual splits into four mutually orthogonal parts,
//   ||X Y^T - M||^2 = ||P Q^T - S||^2 + ||Y_perp P^T||^2 + ||X_perp Q^T||^2 + ||X_perp Y_perp^T||^2,
// each a sum of non-negative terms: O((rows + cols) rank w), plus O((rows + cols) w^2) for the last
// term unless its bound ||X_perp||^2 ||Y_perp||^2 is below the rounding of the other three.
double TargetMatrix::residual_norm_squared(const double* X, const double* Y, int64_t w, std::vector<double>& scratch,
                                           const double* left_projection) const {
    if (!factored_) {
        scratch.resize(static_cast<size_t>(rows_ * cols_));
        linalg::gemm_nt(rows_, cols_, w, 1.0, X, w, Y, w, 0.0, scratch.data(), cols_);
        double total = 0.0;
        for (int64_t i = 0; i < rows_ * cols_; ++i) {
            const double r = scratch[i] - dense_[i];
            total += r * r;
        }
        return total;
    }
    // A symmetric factorization (X == Y, M = V S V^T) has P = Q and X_perp = Y_perp: half the work.
    const bool symmetric = X == Y && left_ == right_;
    const int64_t r = rank_;
    scratch.resize(static_cast<size_t>(2 * r * w + (rows_ + cols_) * (w + r) + r * r + 2 * w * w));
    double* P = scratch.data();
    double* Q = symmetric ? P : P + r * w;
    double* Xp = P + 2 * r * w;
    double* Yp = symmetric ? Xp : Xp + rows_ * w;
    double* XpQ = Xp + (rows_ + cols_) * w;  // (rows x r)
    double* YpP = XpQ + rows_ * r;           // (cols x r)
    double* D = YpP + cols_ * r;
    double* gXp = D + r * r;
    double* gYp = symmetric ? gXp : gXp + w * w;
    if (left_projection != nullptr)
        std::copy(left_projection, left_projection + r * w, P);
    else
        gemm_tn(r, w, rows_, 1.0, left_.data(), r, X, w, 0.0, P, w);
    std::copy(X, X + rows_ * w, Xp);
    gemm_nn(rows_, w, r, -1.0, left_.data(), r, P, w, 1.0, Xp, w);
    if (!symmetric) {
        gemm_tn(r, w, cols_, 1.0, right_.data(), r, Y, w, 0.0, Q, w);
        std::copy(Y, Y + cols_ * w, Yp);
        gemm_nn(cols_, w, r, -1.0, right_.data(), r, Q, w, 1.0, Yp, w);
    }
    linalg::gemm_nt(r, r, w, 1.0, P, w, Q, w, 0.0, D, r);
    for (int64_t i = 0; i < r; ++i) D[i * r + i] -= weights_[i];
    double total = linalg::dot(r * r, D, D);
    linalg::gemm_nt(rows_, r, w, 1.0, Xp, w, Q, w, 0.0, XpQ, r);
    const double xq = linalg::dot(rows_ * r, XpQ, XpQ);
    if (symmetric) {
        total += 2.0 * xq;
    } else {
        linalg::gemm_nt(cols_, r, w, 1.0, Yp, w, P, w, 0.0, YpP, r);
        total += xq + linalg::dot(cols_ * r, YpP, YpP);
    }
    // ||X_perp Y_perp^T||^2 <= ||X_perp||^2 ||Y_perp||^2: skipped when that bound is below the
    // rounding of the sum so far (relative 1e-16 < eps), so the result is unchanged to rounding.
    const double xp2 = linalg::dot(rows_ * w, Xp, Xp);
    const double bound = xp2 * (symmetric ? xp2 : linalg::dot(cols_ * w, Yp, Yp));
    if (bound > 1e-16 * total) {
        linalg::gram(w, rows_, Xp, w, 0.0, gXp, w);
        if (!symmetric) linalg::gram(w, cols_, Yp, w, 0.0, gYp, w);
        total += linalg::dot(w * w, gXp, gYp);
    }
    return total;
}

PairProjector::PairProjector(int64_t rows_x, int64_t q_left, std::vector<double> left, int64_t rows_y,
                             int64_t q_right, std::vector<double> right, std::vector<int64_t> pairs,
                             bool same_side)
    : rows_x_(rows_x), q_left_(q_left), rows_y_(rows_y), q_right_(q_right), left_(std::move(left)),
      right_(std::move(right)), pairs_(std::move(pairs)), same_side_(same_side) {
    require(static_cast<int64_t>(left_.size()) == checked_size(rows_x, q_left, "basis"), "basis: left size");
    require(static_cast<int64_t>(right_.size()) == checked_size(rows_y, q_right, "basis"), "basis: right size");
    require(pairs_.size() % 2 == 0, "coefficient pairs must have shape (K, 2)");
    for (size_t k = 0; k < pairs_.size(); k += 2)
        require(pairs_[k] >= 0 && pairs_[k] < q_left && pairs_[k + 1] >= 0 && pairs_[k + 1] < q_right,
                "coefficient pair index out of range");
    require(!same_side || (rows_x == rows_y && q_left == q_right), "basis: same-side projector needs equal shapes");
}

// O(w (rows_x q_left + rows_y q_right) + K w).
void PairProjector::project(const double* X, const double* Y, int64_t w, double* out,
                            std::vector<double>& scratch) const {
    if (pairs_.empty()) return;
    scratch.resize(static_cast<size_t>((q_left_ + (same_side_ ? 0 : q_right_)) * w));
    double* P = scratch.data();
    gemm_tn(q_left_, w, rows_x_, 1.0, left_.data(), q_left_, X, w, 0.0, P, w);
    const double* Q = P;
    if (!same_side_) {
        double* Qw = P + q_left_ * w;
        gemm_tn(q_right_, w, rows_y_, 1.0, right_.data(), q_right_, Y, w, 0.0, Qw, w);
        Q = Qw;
    }
    project_from(P, Q, w, out);
}

void PairProjector::project_from(const double* P, const double* Q, int64_t w, double* out) const {
    const int64_t K = size();
    for (int64_t k = 0; k < K; ++k) out[k] = linalg::dot(w, P + pairs_[2 * k] * w, Q + pairs_[2 * k + 1] * w);
}

bool PairProjector::left_basis_is(const double* basis, int64_t columns) const {
    return columns == q_left_ && std::equal(left_.begin(), left_.end(), basis);
}

// ---------------------------------------------------------------------------------------------
// Symmetric

SymmetricMatrixFactorizationKernel::SymmetricMatrixFactorizationKernel(TargetMatrix target, int64_t width,
                                                                       PairProjector projector)
    : target_(std::move(target)), d_(target_.rows()), w_(width), projector_(std::move(projector)),
      projector_is_signal_(target_.is_factored() && projector_.left_basis_is(target_.left(), target_.rank())) {
    require(target_.rows() == target_.cols(), "symmetric factorization: target must be square");
    require(width > 0, "symmetric factorization: width must be positive");
    checked_size(d_, w_, "symmetric factorization state");
    checked_size(w_, w_, "symmetric factorization workspace");  // the w x w Gram matrix
}

SymmetricMatrixFactorizationKernel::Workspace SymmetricMatrixFactorizationKernel::workspace() const {
    Workspace ws;
    ws.gram.resize(static_cast<size_t>(w_ * w_));
    ws.mix.resize(static_cast<size_t>(w_ * w_));
    if (target_.is_factored()) {
        ws.next_gram.resize(static_cast<size_t>(w_ * w_));
        ws.signal.resize(static_cast<size_t>(target_.rank() * w_));
        ws.next_signal.resize(static_cast<size_t>(target_.rank() * w_));
        ws.signal_mix.resize(static_cast<size_t>(target_.rank() * w_));
    }
    return ws;
}

// Rows per block of the factored target's passes over U: the products of a block meet while it is
// in L1. One block size for both passes, so the products come out the same bits whichever pass
// computed them.
constexpr int64_t kBlockRows = 128;

// Adds a block's share to U^T U and V^T U (the first block sets them): U_block (rows x w), V_block (rows x r).
void SymmetricMatrixFactorizationKernel::add_block_products(const double* U_block, const double* V_block,
                                                            int64_t rows, bool first, double* gram,
                                                            double* signal) const {
    const double beta = first ? 0.0 : 1.0;
    linalg::gram(w_, rows, U_block, w_, beta, gram, w_);                                          // O(rows w^2)
    gemm_tn(target_.rank(), w_, rows, 1.0, V_block, target_.rank(), U_block, w_, beta, signal, w_);  // O(rows r w)
}

double SymmetricMatrixFactorizationKernel::loss_parts(const double* U, Workspace& ws, double* target_times_u) const {
    if (target_.is_factored()) {
        const int64_t r = target_.rank();
        for (int64_t i0 = 0; i0 < d_; i0 += kBlockRows)
            add_block_products(U + i0 * w_, target_.left() + i0 * r, std::min(kBlockRows, d_ - i0), i0 == 0,
                               ws.gram.data(), ws.signal.data());
        return loss_from_products(ws, 0.0);
    }
    linalg::gram(w_, d_, U, w_, 0.0, ws.gram.data(), w_);  // U^T U: O(d w^2)
    target_.times(U, w_, target_times_u, ws.scratch);      // O(d^2 w)
    return loss_from_products(ws, linalg::dot(d_ * w_, U, target_times_u));
}

double SymmetricMatrixFactorizationKernel::loss_from_products(Workspace& ws, double cross) const {
    if (target_.is_factored()) {
        // <U, V S V^T U> = sum_k s_k |(V^T U)_k|^2: no (d x w) product needed.
        for (int64_t k = 0; k < target_.rank(); ++k) {
            const double* p = ws.signal.data() + k * w_;
            cross += target_.weights()[k] * linalg::dot(w_, p, p);
        }
    }
    const double gram2 = linalg::dot(w_ * w_, ws.gram.data(), ws.gram.data());
    ws.loss_scale = gram2 + target_.frobenius_squared();
    return 0.25 * (gram2 - 2.0 * cross + target_.frobenius_squared());
}

void SymmetricMatrixFactorizationKernel::combine(const double* U, double c, double* out, Workspace& ws,
                                                 bool prepare_next, bool* finite) const {
    if (!target_.is_factored()) {
        gemm_nn(d_, w_, w_, 1.0, U, w_, ws.mix.data(), w_, c, out, w_);  // out = U A + c (M U)
        if (finite) *finite = linalg::all_finite(d_ * w_, out);
        return;
    }
    // M U = V (S V^T U): out = U A + V C with C = c S (V^T U), (r x w).
    const int64_t r = target_.rank();
    for (int64_t k = 0; k < r; ++k)
        for (int64_t j = 0; j < w_; ++j) ws.signal_mix[k * w_ + j] = c * target_.weights()[k] * ws.signal[k * w_ + j];
    if (finite) *finite = true;
    for (int64_t i0 = 0; i0 < d_; i0 += kBlockRows) {
        const int64_t rows = std::min(kBlockRows, d_ - i0);
        double* block = out + i0 * w_;
        const double* V_block = target_.left() + i0 * r;
        gemm_nn(rows, w_, w_, 1.0, U + i0 * w_, w_, ws.mix.data(), w_, 0.0, block, w_);
        gemm_nn(rows, w_, r, 1.0, V_block, r, ws.signal_mix.data(), w_, 1.0, block, w_);
        if (finite) *finite = linalg::all_finite(rows * w_, block) && *finite;
        if (prepare_next) add_block_products(block, V_block, rows, i0 == 0, ws.next_gram.data(), ws.next_signal.data());
    }
}

double SymmetricMatrixFactorizationKernel::loss_and_grad(const double* U, double* grad, Workspace& ws,
                                                         const StepContext&) const {
    const double loss = loss_parts(U, ws, grad);
    ws.products_of_next = nullptr;
    std::copy(ws.gram.begin(), ws.gram.end(), ws.mix.begin());
    combine(U, -1.0, grad, ws, false, nullptr);  // U (U^T U) - M U
    return loss;
}

StepResult SymmetricMatrixFactorizationKernel::loss_and_step(const double* U, double lr, double* next,
                                                             bool next_is_final, Workspace& ws,
                                                             const StepContext&) const {
    double loss;
    if (ws.products_of_next == U) {  // the previous step already computed U^T U and V^T U
        std::swap(ws.gram, ws.next_gram);
        std::swap(ws.signal, ws.next_signal);
        loss = loss_from_products(ws, 0.0);
    } else {
        loss = loss_parts(U, ws, next);
    }
    // U - lr (U G - M U) = U (I - lr G) + lr M U: one pass over U instead of gradient, then step;
    // with a factored target the same pass computes next's products for the following step.
    for (int64_t i = 0; i < w_ * w_; ++i) ws.mix[i] = -lr * ws.gram[i];
    for (int64_t i = 0; i < w_; ++i) ws.mix[i * w_ + i] += 1.0;
    // Only a final next is worth checking here: noise or post_step would change it afterwards.
    const bool prepare = next_is_final && target_.is_factored();
    bool finite = false;
    combine(U, lr, next, ws, prepare, next_is_final ? &finite : nullptr);
    ws.products_of_next = prepare ? next : nullptr;
    return {loss, finite};
}

double SymmetricMatrixFactorizationKernel::observe(const double* U, double* out, Workspace& ws,
                                                   double gradient_loss) const {
    // When the driver has just computed the step from U, the workspace holds V^T U (factored
    // target): the signal coefficients and the accurate loss start from it.
    const double* signal = std::isfinite(gradient_loss) && target_.is_factored() ? ws.signal.data() : nullptr;
    if (signal != nullptr && projector_is_signal_)
        projector_.project_from(signal, signal, w_, out);
    else
        projector_.project(U, U, w_, out, ws.projection);
    if (std::isfinite(gradient_loss) && 4.0 * gradient_loss >= kGramTrust * ws.loss_scale) return gradient_loss;
    return 0.25 * target_.residual_norm_squared(U, U, w_, ws.scratch, signal);
}

// ---------------------------------------------------------------------------------------------
// Asymmetric

AsymmetricMatrixFactorizationKernel::AsymmetricMatrixFactorizationKernel(TargetMatrix target, int64_t width,
                                                                         PairProjector projector)
    : target_(std::move(target)), m_(target_.rows()), n_(target_.cols()), w_(width),
      projector_(std::move(projector)) {
    require(width > 0, "asymmetric factorization: width must be positive");
    checked_size(m_ + n_, w_, "asymmetric factorization state");
    checked_size(w_, w_, "asymmetric factorization workspace");  // the w x w Gram matrices
}

AsymmetricMatrixFactorizationKernel::Workspace AsymmetricMatrixFactorizationKernel::workspace() const {
    Workspace ws;
    ws.gram_x.resize(static_cast<size_t>(w_ * w_));
    ws.gram_y.resize(static_cast<size_t>(w_ * w_));
    ws.m_y.resize(static_cast<size_t>(m_ * w_));
    ws.mt_x.resize(static_cast<size_t>(n_ * w_));
    return ws;
}

double AsymmetricMatrixFactorizationKernel::loss_parts(const double* XY, Workspace& ws) const {
    const double* X = XY;
    const double* Y = XY + m_ * w_;
    linalg::gram(w_, m_, X, w_, 0.0, ws.gram_x.data(), w_);
    linalg::gram(w_, n_, Y, w_, 0.0, ws.gram_y.data(), w_);
    target_.times(Y, w_, ws.m_y.data(), ws.scratch);
    target_.transpose_times(X, w_, ws.mt_x.data(), ws.scratch);
    // ||X Y^T||^2 = tr((X^T X)(Y^T Y)) = sum_ij Gx_ij Gy_ij (both symmetric).
    const double fit2 = linalg::dot(w_ * w_, ws.gram_x.data(), ws.gram_y.data());
    const double cross = linalg::dot(m_ * w_, X, ws.m_y.data());
    ws.loss_scale = fit2 + target_.frobenius_squared();
    return 0.5 * (fit2 - 2.0 * cross + target_.frobenius_squared());
}

double AsymmetricMatrixFactorizationKernel::loss_and_grad(const double* XY, double* grad, Workspace& ws,
                                                          const StepContext&) const {
    const double loss = loss_parts(XY, ws);
    const double* X = XY;
    const double* Y = XY + m_ * w_;
    double* gX = grad;
    double* gY = grad + m_ * w_;
    gemm_nn(m_, w_, w_, 1.0, X, w_, ws.gram_y.data(), w_, 0.0, gX, w_);
    gemm_nn(n_, w_, w_, 1.0, Y, w_, ws.gram_x.data(), w_, 0.0, gY, w_);
    for (int64_t i = 0; i < m_ * w_; ++i) gX[i] -= ws.m_y[i];
    for (int64_t i = 0; i < n_ * w_; ++i) gY[i] -= ws.mt_x[i];
    return loss;
}

double AsymmetricMatrixFactorizationKernel::observe(const double* XY, double* out, Workspace& ws,
                                                    double gradient_loss) const {
    projector_.project(XY, XY + m_ * w_, w_, out, ws.projection);
    if (std::isfinite(gradient_loss) && 2.0 * gradient_loss >= kGramTrust * ws.loss_scale) return gradient_loss;
    return 0.5 * target_.residual_norm_squared(XY, XY + m_ * w_, w_, ws.scratch);
}

}  // namespace trajcore
