#include "matrix_factorization.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

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

namespace {

// (Z^T Z)_jj sums the squares of column j of Z: a NaN or infinite entry makes it NaN or infinite, so
// a finite diagonal means a finite Z. Only otherwise (divergence, or squares that overflow) is Z
// itself read. (Reading it every step cost more than the step's arithmetic for narrow widths:
// loads across the narrow stores just made stall.)
bool gram_diagonal_finite(const double* gram, int64_t n) {
    bool finite = true;
    for (int64_t j = 0; j < n; ++j) finite = finite && std::isfinite(gram[j * n + j]);
    return finite;
}

// Rows per block of the passes over U (factored or diagonal target): the products of a block meet
// while it is in L1. The same blocks, in the same order, for every pass, so the products come out
// the same bits whichever pass computed them.
constexpr int64_t kBlockRows = 128;

// Calls f(first_row, rows, first) for the row blocks of a pass over U, always in the same order: the
// rows from target.split() on first (a diagonal target's rows outside its support), then the others.
template <class Target, class F>
void for_each_block(const Target& target, F&& f) {
    const int64_t d = target.rows(), split = target.split();
    bool first = true;
    for (const auto& [begin, end] : {std::pair{split, d}, std::pair{int64_t{0}, split}})
        for (int64_t i0 = begin; i0 < end; i0 += kBlockRows) {
            f(i0, std::min(kBlockRows, end - i0), first);
            first = false;
        }
}

// U's products in one pass over its row blocks (factored or diagonal target).
template <class Target>
void fill_block_products(const Target& target, const double* U, typename Target::Workspace& ws) {
    const auto p = Target::current(ws);
    const int64_t w = target.width();
    for_each_block(target, [&](int64_t i0, int64_t rows, bool first) {
        target.add_block_products(U + i0 * w, i0, rows, first, p);
    });
}

// out = U A + c M U block by block (factored or diagonal target), with next's products on the way
// when asked (see the target policies in the header).
template <class Target>
void combine_blocks(const Target& target, const double* U, double c, double* out, typename Target::Workspace& ws,
                    bool prepare_next, bool* finite) {
    const int64_t d = target.rows(), w = target.width();
    target.prepare_combine(c, ws);
    // With next's products on the way, finiteness comes from next's Gram matrix (below); else each
    // block is checked while in L1.
    const bool check_blocks = finite != nullptr && !prepare_next;
    if (check_blocks) *finite = true;
    const auto next = Target::next(ws);
    for_each_block(target, [&](int64_t i0, int64_t rows, bool first) {
        double* block = out + i0 * w;
        const double* U_block = U + i0 * w;
        gemm_nn(rows, w, w, 1.0, U_block, w, ws.mix.data(), w, 0.0, block, w);
        target.add_target_rows(U_block, i0, rows, c, block, ws);
        if (check_blocks) *finite = linalg::all_finite(rows * w, block) && *finite;
        if (prepare_next) target.add_block_products(block, i0, rows, first, next);
    });
    if (finite != nullptr && prepare_next)
        *finite = gram_diagonal_finite(next.gram, w) || linalg::all_finite(d * w, out);
}

}  // namespace

// -- dense target --

DenseTarget::DenseTarget(TargetMatrix target, int64_t width)
    : target_(std::move(target)), d_(target_.rows()), w_(width) {
    require(!target_.is_factored() && !target_.is_diagonal(), "symmetric factorization: expected a dense target");
}

void DenseTarget::fill_products(const double* U, Workspace& ws, double*) const {
    linalg::gram(w_, d_, U, w_, 0.0, ws.gram.data(), w_);  // U^T U: O(d w^2)
}

double DenseTarget::cross(const double* U, Workspace& ws, double* target_times_u) const {
    target_.times(U, w_, target_times_u, ws.scratch);  // O(d^2 w)
    return linalg::dot(d_ * w_, U, target_times_u);
}

void DenseTarget::combine(const double* U, double c, double* out, Workspace& ws, bool prepare_next,
                          bool* finite) const {
    gemm_nn(d_, w_, w_, 1.0, U, w_, ws.mix.data(), w_, c, out, w_);  // out = U A + c (M U)
    if (prepare_next) {  // out^T out, as fill_products computes it
        linalg::gram(w_, d_, out, w_, 0.0, ws.next_gram.data(), w_);
        if (finite) *finite = gram_diagonal_finite(ws.next_gram.data(), w_) || linalg::all_finite(d_ * w_, out);
    } else if (finite) {
        *finite = linalg::all_finite(d_ * w_, out);
    }
}

double DenseTarget::residual_norm_squared(const double* U, Workspace& ws, bool) const {
    return target_.residual_norm_squared(U, U, w_, ws.scratch);
}

// -- factored target --

FactoredTarget::FactoredTarget(TargetMatrix target, int64_t width)
    : target_(std::move(target)), d_(target_.rows()), w_(width) {
    require(target_.is_factored(), "symmetric factorization: expected a factored target");
}

void FactoredTarget::allocate(Workspace& ws) const {
    ws.signal.resize(static_cast<size_t>(target_.rank() * w_));
    ws.next_signal.resize(static_cast<size_t>(target_.rank() * w_));
    ws.signal_mix.resize(static_cast<size_t>(target_.rank() * w_));
}

void FactoredTarget::fill_products(const double* U, Workspace& ws, double*) const {
    fill_block_products(*this, U, ws);
}

double FactoredTarget::cross(const double*, Workspace& ws, double*) const {
    // <U, V S V^T U> = sum_k s_k |(V^T U)_k|^2: no (d x w) product needed.
    double cross = 0.0;
    for (int64_t k = 0; k < target_.rank(); ++k) {
        const double* p = ws.signal.data() + k * w_;
        cross += target_.weights()[k] * linalg::dot(w_, p, p);
    }
    return cross;
}

void FactoredTarget::add_block_products(const double* U_block, int64_t i0, int64_t rows, bool first,
                                        const Products& p) const {
    const double beta = first ? 0.0 : 1.0;
    const int64_t r = target_.rank();
    linalg::gram(w_, rows, U_block, w_, beta, p.gram, w_);                                    // O(rows w^2)
    gemm_tn(r, w_, rows, 1.0, target_.left() + i0 * r, r, U_block, w_, beta, p.signal, w_);  // V^T U: O(rows r w)
}

// M U = V (S V^T U), so out = U A + V C with C = c S (V^T U), (r x w).
void FactoredTarget::prepare_combine(double c, Workspace& ws) const {
    for (int64_t k = 0; k < target_.rank(); ++k)
        for (int64_t j = 0; j < w_; ++j)
            ws.signal_mix[k * w_ + j] = c * target_.weights()[k] * ws.signal[k * w_ + j];
}

void FactoredTarget::add_target_rows(const double*, int64_t i0, int64_t rows, double, double* block,
                                     const Workspace& ws) const {
    const int64_t r = target_.rank();
    gemm_nn(rows, w_, r, 1.0, target_.left() + i0 * r, r, ws.signal_mix.data(), w_, 1.0, block, w_);
}

void FactoredTarget::combine(const double* U, double c, double* out, Workspace& ws, bool prepare_next,
                             bool* finite) const {
    combine_blocks(*this, U, c, out, ws, prepare_next, finite);
}

double FactoredTarget::residual_norm_squared(const double* U, Workspace& ws, bool products_ready) const {
    // V^T U from the step starts the split of the residual.
    return target_.residual_norm_squared(U, U, w_, ws.scratch, products_ready ? ws.signal.data() : nullptr);
}

// -- diagonal target --

DiagonalTarget::DiagonalTarget(TargetMatrix target, int64_t width)
    : target_(std::move(target)), d_(target_.rows()), w_(width) {
    require(target_.is_diagonal(), "symmetric factorization: expected a diagonal target");
}

void DiagonalTarget::allocate(Workspace& ws) const {
    ws.perp_gram.resize(static_cast<size_t>(w_ * w_));
    ws.next_perp_gram.resize(static_cast<size_t>(w_ * w_));
}

void DiagonalTarget::fill_products(const double* U, Workspace& ws, double*) const {
    fill_block_products(*this, U, ws);
}

void DiagonalTarget::add_block_products(const double* U_block, int64_t i0, int64_t rows, bool first,
                                        const Products& p) const {
    const double beta = first ? 0.0 : 1.0;
    linalg::gram(w_, rows, U_block, w_, beta, p.gram, w_);  // O(rows w^2)
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

// out_i = U_i A + c m_i U_i.
void DiagonalTarget::add_target_rows(const double* U_block, int64_t i0, int64_t rows, double c, double* block,
                                     const Workspace&) const {
    for (int64_t i = i0; i < std::min(i0 + rows, target_.rank()); ++i) {
        const double m = c * target_.weights()[i];
        for (int64_t j = 0; j < w_; ++j) block[(i - i0) * w_ + j] += m * U_block[(i - i0) * w_ + j];
    }
}

void DiagonalTarget::combine(const double* U, double c, double* out, Workspace& ws, bool prepare_next,
                             bool* finite) const {
    combine_blocks(*this, U, c, out, ws, prepare_next, finite);
}

double DiagonalTarget::residual_norm_squared(const double* U, Workspace& ws, bool products_ready) const {
    // U_perp^T U_perp from the step completes the split of the residual.
    return target_.residual_norm_squared(U, U, w_, ws.scratch, nullptr,
                                         products_ready ? ws.perp_gram.data() : nullptr);
}

// -- the kernel over a target policy --

namespace {

// The checks every symmetric kernel makes first, in this order (the error a caller sees).
TargetMatrix checked_symmetric_target(TargetMatrix target, int64_t width) {
    require(target.rows() == target.cols(), "symmetric factorization: target must be square");
    require(width > 0, "symmetric factorization: width must be positive");
    return target;
}

}  // namespace

template <class Target>
SymmetricFactorizationKernel<Target>::SymmetricFactorizationKernel(TargetMatrix target, int64_t width,
                                                                   PairProjector projector)
    : d_(target.rows()), w_(width), target_(checked_symmetric_target(std::move(target), width), width),
      projector_(std::move(projector)), projector_is_signal_(target_.projects_on_signal(projector_)) {
    checked_size(d_, w_, "symmetric factorization state");
    checked_size(w_, w_, "symmetric factorization workspace");  // the w x w Gram matrix
}

template <class Target>
typename SymmetricFactorizationKernel<Target>::Workspace SymmetricFactorizationKernel<Target>::workspace() const {
    Workspace ws;
    ws.gram.resize(static_cast<size_t>(w_ * w_));
    ws.next_gram.resize(static_cast<size_t>(w_ * w_));
    ws.mix.resize(static_cast<size_t>(w_ * w_));
    target_.allocate(ws);
    return ws;
}

template <class Target>
double SymmetricFactorizationKernel<Target>::loss_parts(const double* U, Workspace& ws,
                                                        double* target_times_u) const {
    target_.fill_products(U, ws, target_times_u);
    return loss_from_products(ws, target_.cross(U, ws, target_times_u));
}

template <class Target>
double SymmetricFactorizationKernel<Target>::loss_from_products(Workspace& ws, double cross) const {
    const double frobenius_squared = target_.matrix().frobenius_squared();
    const double gram2 = linalg::dot(w_ * w_, ws.gram.data(), ws.gram.data());
    ws.loss_scale = gram2 + frobenius_squared;
    return 0.25 * (gram2 - 2.0 * cross + frobenius_squared);
}

template <class Target>
double SymmetricFactorizationKernel<Target>::loss_and_grad(const double* U, double* grad, Workspace& ws,
                                                           const StepContext&) const {
    ws.products_of_next = nullptr;
    const double loss = loss_parts(U, ws, grad);
    std::copy(ws.gram.begin(), ws.gram.end(), ws.mix.begin());
    target_.combine(U, -1.0, grad, ws, false, nullptr);  // U (U^T U) - M U
    return loss;
}

template <class Target>
StepResult SymmetricFactorizationKernel<Target>::loss_and_step(const double* U, double lr, double* next,
                                                               bool next_is_final, Workspace& ws,
                                                               const StepContext&) const {
    double loss;
    if (ws.products_of_next == U) {  // the previous step already computed U's products
        std::swap(ws.gram, ws.next_gram);
        target_.swap_next_products(ws);
        loss = loss_from_products(ws, target_.cross(U, ws, next));  // a dense target: M U into next
    } else {
        loss = loss_parts(U, ws, next);
    }
    // U - lr (U G - M U) = U (I - lr G) + lr M U: one pass over U instead of gradient, then step;
    // with a factored or diagonal target the same pass computes next's products for the following step.
    for (int64_t i = 0; i < w_ * w_; ++i) ws.mix[i] = -lr * ws.gram[i];
    for (int64_t i = 0; i < w_; ++i) ws.mix[i * w_ + i] += 1.0;
    // Only a final next is worth checking here: noise or post_step would change it afterwards.
    const bool prepare = next_is_final;
    bool finite = false;
    target_.combine(U, lr, next, ws, prepare, next_is_final ? &finite : nullptr);
    ws.products_of_next = prepare ? next : nullptr;
    return {loss, finite};
}

template <class Target>
double SymmetricFactorizationKernel<Target>::observe(const double* U, double* out, Workspace& ws,
                                                     double gradient_loss) const {
    // When the driver has just computed the step from U, the workspace holds U's products (V^T U
    // for a factored target): the signal coefficients and the accurate loss start from them.
    const bool products_ready = std::isfinite(gradient_loss);
    const double* signal = products_ready ? target_.signal(ws) : nullptr;
    if (signal != nullptr && projector_is_signal_)
        projector_.project_from(signal, signal, w_, out);
    else
        projector_.project(U, U, w_, out, ws.projection);
    if (products_ready && 4.0 * gradient_loss >= kGramTrust * ws.loss_scale) return gradient_loss;
    return 0.25 * target_.residual_norm_squared(U, ws, products_ready);
}

template class SymmetricFactorizationKernel<DenseTarget>;
template class SymmetricFactorizationKernel<FactoredTarget>;
template class SymmetricFactorizationKernel<DiagonalTarget>;
static_assert(check_kernel<SymmetricDenseKernel>());
static_assert(check_kernel<SymmetricFactoredKernel>());
static_assert(check_kernel<SymmetricDiagonalKernel>());

// -- the transposed state --

SymmetricTransposedKernel::SymmetricTransposedKernel(TargetMatrix target, int64_t width, PairProjector projector)
    : d_(target.rows()), w_(width), projector_(std::move(projector)) {
    target = checked_symmetric_target(std::move(target), width);
    require(target.is_diagonal() && d_ <= w_, "transposed: the U^T state needs a diagonal target and d <= width");
    checked_size(d_, w_, "symmetric factorization state");
    // M as a dense d x d matrix (d <= w: no larger than the state)
    target_.assign(static_cast<size_t>(d_ * d_), 0.0);
    for (int64_t i = 0; i < target.rank(); ++i) target_[i * d_ + i] = target.weights()[i];
}

SymmetricTransposedKernel::Workspace SymmetricTransposedKernel::workspace() const {
    Workspace ws;
    ws.row_gram.resize(static_cast<size_t>(d_ * d_));
    ws.next_row_gram.resize(static_cast<size_t>(d_ * d_));
    ws.step.resize(static_cast<size_t>(d_ * d_));
    // observe's P and residual of a state it has no P for, or U for a projector off the axes
    ws.scratch.resize(static_cast<size_t>(std::max(2 * d_ * d_, d_ * w_)));
    return ws;
}

void SymmetricTransposedKernel::fill_row_gram(const double* T, double* P) const {
    linalg::gram(d_, w_, T, d_, 0.0, P, d_);  // (U^T)^T U^T = U U^T, O(d^2 w)
}

double SymmetricTransposedKernel::row_gram_residual(const double* P, double a, double c, double* S) const {
    const double squares = linalg::scaled_difference(d_ * d_, P, target_.data(), a, S);
    if (c != 0.0)
        for (int64_t i = 0; i < d_; ++i) S[i * d_ + i] += c;
    return 0.25 * squares;
}

double SymmetricTransposedKernel::loss_and_grad(const double* T, double* grad, Workspace& ws,
                                                const StepContext&) const {
    ws.products_of_next = nullptr;
    fill_row_gram(T, ws.row_gram.data());  // grad^T = U^T R
    const double loss = row_gram_residual(ws.row_gram.data(), 1.0, 0.0, ws.step.data());
    gemm_nn(w_, d_, d_, 1.0, T, d_, ws.step.data(), d_, 0.0, grad, d_);
    return loss;
}

StepResult SymmetricTransposedKernel::loss_and_step(const double* T, double lr, double* next, bool next_is_final,
                                                    Workspace& ws, const StepContext&) const {
    if (ws.products_of_next == T)  // the previous step already computed U U^T
        std::swap(ws.row_gram, ws.next_row_gram);
    else
        fill_row_gram(T, ws.row_gram.data());
    // (U - lr (P - M) U)^T = U^T (I - lr R) with the symmetric residual R = P - M: O(d^2 w).
    double* step = ws.step.data();
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

double SymmetricTransposedKernel::observe(const double* T, double* out, Workspace& ws, double gradient_loss) const {
    // P = U U^T from the step when it has just been computed
    const double* P = ws.row_gram.data();
    double loss = gradient_loss;  // exact, the same sum as below
    if (!std::isfinite(gradient_loss)) {
        fill_row_gram(T, ws.scratch.data());
        P = ws.scratch.data();
        loss = row_gram_residual(P, 1.0, 0.0, ws.scratch.data() + d_ * d_);
    }
    if (projector_.on_axes()) {
        projector_.gather(P, d_, out);
    } else {  // the projector reads U itself (P is no longer needed)
        linalg::transpose(w_, d_, T, d_, ws.scratch.data(), w_);
        projector_.project(ws.scratch.data(), ws.scratch.data(), w_, out, ws.projection);
    }
    return loss;
}

static_assert(check_kernel<SymmetricTransposedKernel>());

// -- the kernel a target and layout call for --

namespace {

SymmetricMatrixFactorizationKernel::Kernel symmetric_kernel(TargetMatrix target, int64_t width,
                                                            PairProjector projector, bool transposed) {
    target = checked_symmetric_target(std::move(target), width);
    require(!transposed || (target.is_diagonal() && target.rows() <= width),
            "transposed: the U^T state needs a diagonal target and d <= width");
    if (transposed) return SymmetricTransposedKernel(std::move(target), width, std::move(projector));
    if (target.is_factored()) return SymmetricFactoredKernel(std::move(target), width, std::move(projector));
    if (target.is_diagonal()) return SymmetricDiagonalKernel(std::move(target), width, std::move(projector));
    return SymmetricDenseKernel(std::move(target), width, std::move(projector));
}

}  // namespace

SymmetricMatrixFactorizationKernel::SymmetricMatrixFactorizationKernel(TargetMatrix target, int64_t width,
                                                                       PairProjector projector, bool transposed)
    : kernel_(symmetric_kernel(std::move(target), width, std::move(projector), transposed)),
      state_size_(std::visit([](const auto& k) { return k.state_size(); }, kernel_)),
      n_observables_(std::visit([](const auto& k) { return k.n_observables(); }, kernel_)) {}

SymmetricMatrixFactorizationKernel::Workspace SymmetricMatrixFactorizationKernel::workspace() const {
    return std::visit([](const auto& k) -> Workspace { return k.workspace(); }, kernel_);
}

// f(kernel, its workspace) for the kernel held; ws comes from workspace(), so it holds that kernel's.
template <class F>
static decltype(auto) visit_kernel(const SymmetricMatrixFactorizationKernel::Kernel& kernel,
                                   SymmetricMatrixFactorizationKernel::Workspace& ws, F&& f) {
    return std::visit(
        [&](const auto& k) -> decltype(auto) {
            using K = std::decay_t<decltype(k)>;
            return f(k, std::get<typename K::Workspace>(ws));
        },
        kernel);
}

double SymmetricMatrixFactorizationKernel::loss_and_grad(const double* U, double* grad, Workspace& ws,
                                                         const StepContext& ctx) const {
    return visit_kernel(kernel_, ws, [&](const auto& k, auto& w) { return k.loss_and_grad(U, grad, w, ctx); });
}

StepResult SymmetricMatrixFactorizationKernel::loss_and_step(const double* U, double lr, double* next,
                                                             bool next_is_final, Workspace& ws,
                                                             const StepContext& ctx) const {
    return visit_kernel(kernel_, ws,
                        [&](const auto& k, auto& w) { return k.loss_and_step(U, lr, next, next_is_final, w, ctx); });
}

double SymmetricMatrixFactorizationKernel::observe(const double* U, double* out, Workspace& ws,
                                                   double gradient_loss) const {
    return visit_kernel(kernel_, ws, [&](const auto& k, auto& w) { return k.observe(U, out, w, gradient_loss); });
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
