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
    t.form_ = Form::factored;
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

TargetMatrix TargetMatrix::diagonal(int64_t rows, int64_t cols, std::vector<double> values) {
    require(rows > 0 && cols > 0, "target: dimensions must be positive");
    const int64_t n = std::min(rows, cols);
    require(static_cast<int64_t>(values.size()) == n, "target: diagonal size mismatch");
    TargetMatrix t;
    t.rows_ = rows;
    t.cols_ = cols;
    t.form_ = Form::diagonal;
    t.weights_ = std::move(values);
    for (int64_t i = 0; i < n; ++i) {
        t.frobenius_squared_ += t.weights_[i] * t.weights_[i];
        if (t.weights_[i] != 0.0) t.rank_ = i + 1;
    }
    return t;
}

bool TargetMatrix::narrow(int64_t w) const {
    return form_ == Form::dense && w <= kNarrowWidth && rows_ * cols_ <= kNarrowTargetSize;
}

void TargetMatrix::diagonal_times(const double* Z, int64_t w, double* out, int64_t out_rows) const {
    for (int64_t i = 0; i < rank_; ++i)
        for (int64_t j = 0; j < w; ++j) out[i * w + j] = weights_[i] * Z[i * w + j];
    std::fill(out + rank_ * w, out + out_rows * w, 0.0);
}

// M Z = L (s * (R^T Z)):  O(rank * (rows + cols) * w) for the factored form.
void TargetMatrix::times(const double* Z, int64_t w, double* out, std::vector<double>& scratch) const {
    if (form_ == Form::diagonal) {
        diagonal_times(Z, w, out, rows_);
        return;
    }
    if (narrow(w)) {
        // (M Z)^T = Z^T M^T, and M^T is M when M is symmetric.
        const double* mt = dense_transposed_.empty() ? dense_.data() : dense_transposed_.data();
        scratch.resize(static_cast<size_t>(w * rows_));
        gemm_tn(w, rows_, cols_, 1.0, Z, w, mt, rows_, 0.0, scratch.data(), rows_);
        linalg::transpose(w, rows_, scratch.data(), rows_, out, w);
        return;
    }
    if (form_ == Form::dense) {
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
    if (form_ == Form::diagonal) {
        diagonal_times(Z, w, out, cols_);
        return;
    }
    if (narrow(w)) {
        // (M^T Z)^T = Z^T M.
        scratch.resize(static_cast<size_t>(w * cols_));
        gemm_tn(w, cols_, rows_, 1.0, Z, w, dense_.data(), cols_, 0.0, scratch.data(), cols_);
        linalg::transpose(w, cols_, scratch.data(), cols_, out, w);
        return;
    }
    if (form_ == Form::dense) {
        gemm_tn(cols_, w, rows_, 1.0, dense_.data(), cols_, Z, w, 0.0, out, w);
        return;
    }
    scratch.resize(static_cast<size_t>(rank_ * w));
    gemm_tn(rank_, w, rows_, 1.0, left_.data(), rank_, Z, w, 0.0, scratch.data(), w);
    for (int64_t i = 0; i < rank_; ++i)
        for (int64_t j = 0; j < w; ++j) scratch[i * w + j] *= weights_[i];
    gemm_nn(cols_, w, rank_, 1.0, right_.data(), rank_, scratch.data(), w, 0.0, out, w);
}

// total + ||X_perp Y_perp^T||^2 for X_perp (rows_x x w) and Y_perp (rows_y x w), through
// <X_perp^T X_perp, Y_perp^T Y_perp>, O((rows_x + rows_y) w^2) -- skipped when its bound
// ||X_perp||^2 ||Y_perp||^2 is below the rounding of `total` (relative 1e-16 < eps), so the result
// is unchanged to rounding. grams: 2 w^2 scratch.
static double add_perp_term(double total, const double* Xp, int64_t rows_x, const double* Yp, int64_t rows_y,
                            int64_t w, double* grams) {
    const bool symmetric = Xp == Yp;
    const double xp2 = linalg::dot(rows_x * w, Xp, Xp);
    const double bound = xp2 * (symmetric ? xp2 : linalg::dot(rows_y * w, Yp, Yp));
    if (bound <= 1e-16 * total) return total;
    double* gXp = grams;
    double* gYp = symmetric ? gXp : gXp + w * w;
    linalg::gram(w, rows_x, Xp, w, 0.0, gXp, w);
    if (!symmetric) linalg::gram(w, rows_y, Yp, w, 0.0, gYp, w);
    return total + linalg::dot(w * w, gXp, gYp);
}

// Dense: the residual itself, O(rows cols w). Factored (orthonormal L, R): with P = L^T X, Q = R^T Y,
// X_perp = X - L P and Y_perp = Y - R Q the residual splits into four mutually orthogonal parts,
//   ||X Y^T - M||^2 = ||P Q^T - S||^2 + ||Y_perp P^T||^2 + ||X_perp Q^T||^2 + ||X_perp Y_perp^T||^2,
// each a sum of non-negative terms: O((rows + cols) rank w), plus O((rows + cols) w^2) for the last
// term (see add_perp_term). Diagonal: the same split with P = X_S, the rows in the support, and
// X_perp the rows after it.
double TargetMatrix::residual_norm_squared(const double* X, const double* Y, int64_t w, std::vector<double>& scratch,
                                           const double* left_projection, const double* perp_gram) const {
    if (form_ == Form::diagonal) return diagonal_residual_norm_squared(X, Y, w, scratch, perp_gram);
    if (form_ == Form::dense) {
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
    double* grams = D + r * r;
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
    return add_perp_term(total, Xp, rows_, Yp, cols_, w, grams);
}

double TargetMatrix::diagonal_residual_norm_squared(const double* X, const double* Y, int64_t w,
                                                    std::vector<double>& scratch, const double* perp_gram) const {
    const bool symmetric = X == Y;
    // rows of X and Y in the support, and after it
    const int64_t s = rank_, px = rows_ - rank_, py = cols_ - rank_;
    scratch.resize(static_cast<size_t>(s * s + (px + py) * s + 2 * w * w));
    double* D = scratch.data();  // (s x s)  X_S Y_S^T - S
    double* C = D + s * s;       // (px x s) X_perp Y_S^T, then (py x s) Y_perp X_S^T
    double* grams = C + (px + py) * s;
    linalg::gemm_nt(s, s, w, 1.0, X, w, Y, w, 0.0, D, s);
    for (int64_t i = 0; i < s; ++i) D[i * s + i] -= weights_[i];
    double total = linalg::dot(s * s, D, D);
    linalg::gemm_nt(px, s, w, 1.0, X + s * w, w, Y, w, 0.0, C, s);
    const double xq = linalg::dot(px * s, C, C);
    if (symmetric) {
        total += 2.0 * xq;
    } else {
        linalg::gemm_nt(py, s, w, 1.0, Y + s * w, w, X, w, 0.0, C + px * s, s);
        total += xq + linalg::dot(py * s, C + px * s, C + px * s);
    }
    if (perp_gram != nullptr && symmetric) return total + linalg::dot(w * w, perp_gram, perp_gram);
    return add_perp_term(total, X + s * w, px, Y + s * w, py, w, grams);
}

// ---------------------------------------------------------------------------------------------
// Symmetric

SymmetricMatrixFactorizationKernel::SymmetricMatrixFactorizationKernel(TargetMatrix target, int64_t width,
                                                                       PairProjector projector, bool transposed)
    : target_(std::move(target)), d_(target_.rows()), w_(width), projector_(std::move(projector)),
      projector_is_signal_(target_.is_factored() && projector_.left_basis_is(target_.left(), target_.rank())),
      row_gram_(transposed) {
    require(target_.rows() == target_.cols(), "symmetric factorization: target must be square");
    require(width > 0, "symmetric factorization: width must be positive");
    require(!transposed || (target_.is_diagonal() && d_ <= w_),
            "transposed: the U^T state needs a diagonal target and d <= width");
    checked_size(d_, w_, "symmetric factorization state");
    checked_size(w_, w_, "symmetric factorization workspace");  // the w x w Gram matrix
    if (row_gram_) {  // M as a dense d x d matrix (d <= w: no larger than the state)
        row_gram_target_.assign(static_cast<size_t>(d_ * d_), 0.0);
        for (int64_t i = 0; i < target_.rank(); ++i) row_gram_target_[i * d_ + i] = target_.weights()[i];
    }
}

SymmetricMatrixFactorizationKernel::Workspace SymmetricMatrixFactorizationKernel::workspace() const {
    Workspace ws;
    ws.gram.resize(static_cast<size_t>(w_ * w_));
    ws.next_gram.resize(static_cast<size_t>(w_ * w_));
    ws.mix.resize(static_cast<size_t>(w_ * w_));
    if (target_.is_factored()) {
        ws.signal.resize(static_cast<size_t>(target_.rank() * w_));
        ws.next_signal.resize(static_cast<size_t>(target_.rank() * w_));
        ws.signal_mix.resize(static_cast<size_t>(target_.rank() * w_));
    } else if (row_gram_) {  // ws.mix (w x w) holds the d x d step matrix
        ws.row_gram.resize(static_cast<size_t>(d_ * d_));
        ws.next_row_gram.resize(static_cast<size_t>(d_ * d_));
        // observe's P and residual of a state it has no P for, or U for a projector off the axes
        ws.scratch.resize(static_cast<size_t>(std::max(2 * d_ * d_, d_ * w_)));
    } else if (target_.is_diagonal()) {
        ws.perp_gram.resize(static_cast<size_t>(w_ * w_));
        ws.next_perp_gram.resize(static_cast<size_t>(w_ * w_));
    }
    return ws;
}

SymmetricMatrixFactorizationKernel::Products SymmetricMatrixFactorizationKernel::products(Workspace& ws) {
    return {ws.gram.data(), ws.signal.data(), ws.perp_gram.data(), &ws.cross};
}

SymmetricMatrixFactorizationKernel::Products SymmetricMatrixFactorizationKernel::next_products(Workspace& ws) {
    return {ws.next_gram.data(), ws.next_signal.data(), ws.next_perp_gram.data(), &ws.next_cross};
}

// Rows per block of the passes over U (factored or diagonal target): the products of a block meet
// while it is in L1. The same blocks, in the same order, for every pass, so the products come out
// the same bits whichever pass computed them.
constexpr int64_t kBlockRows = 128;

template <class F>
void SymmetricMatrixFactorizationKernel::for_each_block(F&& f) const {
    // A diagonal target's rows outside the support come first: their Gram matrix, needed for the
    // accurate loss, is then complete on the way to U^T U.
    const int64_t split = target_.is_diagonal() ? target_.rank() : 0;
    bool first = true;
    for (const auto& [begin, end] : {std::pair{split, d_}, std::pair{int64_t{0}, split}})
        for (int64_t i0 = begin; i0 < end; i0 += kBlockRows) {
            f(i0, std::min(kBlockRows, end - i0), first);
            first = false;
        }
}

void SymmetricMatrixFactorizationKernel::add_block_products(const double* U_block, int64_t i0, int64_t rows,
                                                            bool first, const Products& p) const {
    const double beta = first ? 0.0 : 1.0;
    linalg::gram(w_, rows, U_block, w_, beta, p.gram, w_);  // O(rows w^2)
    if (target_.is_factored()) {                           // V^T U: O(rows r w)
        const int64_t r = target_.rank();
        gemm_tn(r, w_, rows, 1.0, target_.left() + i0 * r, r, U_block, w_, beta, p.signal, w_);
        return;
    }
    const int64_t support = target_.rank();
    if (first) *p.cross = 0.0;
    // sum_i m_i |U_i|^2, inline: rows are short, a call per row would cost more than its work.
    for (int64_t i = i0; i < std::min(i0 + rows, support); ++i) {
        const double* row = U_block + (i - i0) * w_;
        double norm2 = 0.0;
        for (int64_t j = 0; j < w_; ++j) norm2 += row[j] * row[j];
        *p.cross += target_.weights()[i] * norm2;
    }
    if (i0 >= support && i0 + rows == d_)  // the last block outside the support
        std::copy(p.gram, p.gram + w_ * w_, p.perp_gram);
    else if (first && support == d_)  // no rows outside the support
        std::fill(p.perp_gram, p.perp_gram + w_ * w_, 0.0);
}

double SymmetricMatrixFactorizationKernel::loss_parts(const double* U, Workspace& ws, double* target_times_u) const {
    if (target_.is_factored() || target_.is_diagonal()) {
        const Products p = products(ws);
        for_each_block([&](int64_t i0, int64_t rows, bool first) { add_block_products(U + i0 * w_, i0, rows, first, p); });
        return loss_from_products(ws, target_.is_diagonal() ? ws.cross : 0.0);
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
    if (!target_.is_factored() && !target_.is_diagonal()) {
        gemm_nn(d_, w_, w_, 1.0, U, w_, ws.mix.data(), w_, c, out, w_);  // out = U A + c (M U)
        if (prepare_next) {  // out^T out, as loss_parts computes it
            linalg::gram(w_, d_, out, w_, 0.0, ws.next_gram.data(), w_);
            if (finite) *finite = gram_diagonal_finite(ws.next_gram.data(), w_) || linalg::all_finite(d_ * w_, out);
        } else if (finite) {
            *finite = linalg::all_finite(d_ * w_, out);
        }
        return;
    }
    // Factored: M U = V (S V^T U), so out = U A + V C with C = c S (V^T U), (r x w).
    // Diagonal: out_i = U_i A + c m_i U_i.
    const int64_t r = target_.rank();
    if (target_.is_factored())
        for (int64_t k = 0; k < r; ++k)
            for (int64_t j = 0; j < w_; ++j)
                ws.signal_mix[k * w_ + j] = c * target_.weights()[k] * ws.signal[k * w_ + j];
    // With next's products on the way, finiteness comes from next's Gram matrix (below); else each
    // block is checked while in L1.
    const bool check_blocks = finite != nullptr && !prepare_next;
    if (check_blocks) *finite = true;
    const Products next = next_products(ws);
    for_each_block([&](int64_t i0, int64_t rows, bool first) {
        double* block = out + i0 * w_;
        const double* U_block = U + i0 * w_;
        gemm_nn(rows, w_, w_, 1.0, U_block, w_, ws.mix.data(), w_, 0.0, block, w_);
        if (target_.is_factored()) {
            gemm_nn(rows, w_, r, 1.0, target_.left() + i0 * r, r, ws.signal_mix.data(), w_, 1.0, block, w_);
        } else {
            for (int64_t i = i0; i < std::min(i0 + rows, r); ++i) {
                const double m = c * target_.weights()[i];
                for (int64_t j = 0; j < w_; ++j) block[(i - i0) * w_ + j] += m * U_block[(i - i0) * w_ + j];
            }
        }
        if (check_blocks) *finite = linalg::all_finite(rows * w_, block) && *finite;
        if (prepare_next) add_block_products(block, i0, rows, first, next);
    });
    if (finite != nullptr && prepare_next)
        *finite = gram_diagonal_finite(next.gram, w_) || linalg::all_finite(d_ * w_, out);
}

// (Z^T Z)_jj sums the squares of column j of Z: a NaN or infinite entry makes it NaN or infinite, so
// a finite diagonal means a finite Z. Only otherwise (divergence, or squares that overflow) is Z
// itself read. (Reading it every step cost more than the step's arithmetic for narrow widths:
// loads across the narrow stores just made stall.)
bool SymmetricMatrixFactorizationKernel::gram_diagonal_finite(const double* gram, int64_t n) {
    bool finite = true;
    for (int64_t j = 0; j < n; ++j) finite = finite && std::isfinite(gram[j * n + j]);
    return finite;
}

void SymmetricMatrixFactorizationKernel::fill_row_gram(const double* T, double* P) const {
    linalg::gram(d_, w_, T, d_, 0.0, P, d_);  // (U^T)^T U^T = U U^T, O(d^2 w)
}

double SymmetricMatrixFactorizationKernel::row_gram_residual(const double* P, double a, double c, double* S) const {
    const double squares = linalg::scaled_difference(d_ * d_, P, row_gram_target_.data(), a, S);
    if (c != 0.0)
        for (int64_t i = 0; i < d_; ++i) S[i * d_ + i] += c;
    return 0.25 * squares;
}

StepResult SymmetricMatrixFactorizationKernel::row_gram_step(const double* T, double lr, double* next,
                                                             bool next_is_final, Workspace& ws) const {
    if (ws.products_of_next == T)  // the previous step already computed U U^T
        std::swap(ws.row_gram, ws.next_row_gram);
    else
        fill_row_gram(T, ws.row_gram.data());
    // (U - lr (P - M) U)^T = U^T (I - lr R) with the symmetric residual R = P - M: O(d^2 w).
    double* step = ws.mix.data();
    const double loss = row_gram_residual(ws.row_gram.data(), -lr, 1.0, step);
    gemm_nn(w_, d_, d_, 1.0, T, d_, step, d_, 0.0, next, d_);
    if (!next_is_final) {  // noise or post_step change next: its products would be wasted
        ws.products_of_next = nullptr;
        return {loss, false};
    }
    // next's P = T^T T for the following step, whose diagonal tells whether next is finite.
    double* P_next = ws.next_row_gram.data();
    fill_row_gram(next, P_next);
    ws.products_of_next = next;
    return {loss, gram_diagonal_finite(P_next, d_) || linalg::all_finite(d_ * w_, next)};
}

double SymmetricMatrixFactorizationKernel::loss_and_grad(const double* U, double* grad, Workspace& ws,
                                                         const StepContext&) const {
    ws.products_of_next = nullptr;
    if (row_gram_) {  // U holds U^T: grad^T = U^T R
        fill_row_gram(U, ws.row_gram.data());
        const double loss = row_gram_residual(ws.row_gram.data(), 1.0, 0.0, ws.mix.data());
        gemm_nn(w_, d_, d_, 1.0, U, d_, ws.mix.data(), d_, 0.0, grad, d_);
        return loss;
    }
    const double loss = loss_parts(U, ws, grad);
    std::copy(ws.gram.begin(), ws.gram.end(), ws.mix.begin());
    combine(U, -1.0, grad, ws, false, nullptr);  // U (U^T U) - M U
    return loss;
}

StepResult SymmetricMatrixFactorizationKernel::loss_and_step(const double* U, double lr, double* next,
                                                             bool next_is_final, Workspace& ws,
                                                             const StepContext&) const {
    if (row_gram_) return row_gram_step(U, lr, next, next_is_final, ws);
    double loss;
    if (ws.products_of_next == U) {  // the previous step already computed U's products
        std::swap(ws.gram, ws.next_gram);
        std::swap(ws.signal, ws.next_signal);
        std::swap(ws.perp_gram, ws.next_perp_gram);
        std::swap(ws.cross, ws.next_cross);
        double cross = target_.is_diagonal() ? ws.cross : 0.0;
        if (!target_.is_factored() && !target_.is_diagonal()) {  // dense: M U into next, as loss_parts
            target_.times(U, w_, next, ws.scratch);
            cross = linalg::dot(d_ * w_, U, next);
        }
        loss = loss_from_products(ws, cross);
    } else {
        loss = loss_parts(U, ws, next);
    }
    // U - lr (U G - M U) = U (I - lr G) + lr M U: one pass over U instead of gradient, then step;
    // with a factored target the same pass computes next's products for the following step.
    for (int64_t i = 0; i < w_ * w_; ++i) ws.mix[i] = -lr * ws.gram[i];
    for (int64_t i = 0; i < w_; ++i) ws.mix[i * w_ + i] += 1.0;
    // Only a final next is worth checking here: noise or post_step would change it afterwards.
    const bool prepare = next_is_final;
    bool finite = false;
    combine(U, lr, next, ws, prepare, next_is_final ? &finite : nullptr);
    ws.products_of_next = prepare ? next : nullptr;
    return {loss, finite};
}

double SymmetricMatrixFactorizationKernel::observe(const double* U, double* out, Workspace& ws,
                                                   double gradient_loss) const {
    if (row_gram_) {  // U holds U^T; P = U U^T from the step when it has just been computed
        const double* P = ws.row_gram.data();
        double loss = gradient_loss;  // exact, the same sum as below
        if (!std::isfinite(gradient_loss)) {
            fill_row_gram(U, ws.scratch.data());
            P = ws.scratch.data();
            loss = row_gram_residual(P, 1.0, 0.0, ws.scratch.data() + d_ * d_);
        }
        if (projector_.on_axes()) {
            projector_.gather(P, d_, out);
        } else {  // the projector reads U itself (P is no longer needed)
            linalg::transpose(w_, d_, U, d_, ws.scratch.data(), w_);
            projector_.project(ws.scratch.data(), ws.scratch.data(), w_, out, ws.projection);
        }
        return loss;
    }
    // When the driver has just computed the step from U, the workspace holds V^T U (factored
    // target): the signal coefficients and the accurate loss start from it.
    const double* signal = std::isfinite(gradient_loss) && target_.is_factored() ? ws.signal.data() : nullptr;
    if (signal != nullptr && projector_is_signal_)
        projector_.project_from(signal, signal, w_, out);
    else
        projector_.project(U, U, w_, out, ws.projection);
    if (std::isfinite(gradient_loss) && 4.0 * gradient_loss >= kGramTrust * ws.loss_scale) return gradient_loss;
    // ... and U_perp^T U_perp (diagonal target).
    const double* perp_gram = std::isfinite(gradient_loss) && target_.is_diagonal() ? ws.perp_gram.data() : nullptr;
    return 0.25 * target_.residual_norm_squared(U, U, w_, ws.scratch, signal, perp_gram);
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
