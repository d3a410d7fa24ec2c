#include "pair_projector.hpp"

#include <algorithm>
#include <utility>

#include "checks.hpp"
#include "linalg.hpp"

namespace trajcore {

using linalg::gemm_tn;

// Whether every column of basis (rows x q) is a coordinate axis e_i; rows[c] = i of column c.
static bool axis_rows(const std::vector<double>& basis, int64_t rows, int64_t q, std::vector<int64_t>& out) {
    out.assign(static_cast<size_t>(q), -1);
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t c = 0; c < q; ++c) {
            const double v = basis[i * q + c];
            if (v == 0.0) continue;
            if (v != 1.0 || out[c] >= 0) return false;
            out[c] = i;
        }
    return std::find(out.begin(), out.end(), -1) == out.end();
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
    std::vector<int64_t> left_rows, right_rows;
    axes_ = axis_rows(left_, rows_x, q_left, left_rows) && axis_rows(right_, rows_y, q_right, right_rows);
    if (axes_) {
        for (size_t k = 0; k < pairs_.size(); k += 2) {
            pairs_[k] = left_rows[pairs_[k]];
            pairs_[k + 1] = right_rows[pairs_[k + 1]];
        }
    }
}

// O(w (rows_x q_left + rows_y q_right) + K w).
void PairProjector::project(const double* X, const double* Y, int64_t w, double* out,
                            std::vector<double>& scratch) const {
    if (pairs_.empty()) return;
    if (axes_) {  // the pairs index rows of X and Y themselves
        project_from(X, Y, w, out);
        return;
    }
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

void PairProjector::gather(const double* gram, int64_t ld, double* out) const {
    for (int64_t k = 0; k < size(); ++k) out[k] = gram[pairs_[2 * k] * ld + pairs_[2 * k + 1]];
}

bool PairProjector::left_basis_is(const double* basis, int64_t columns) const {
    return !axes_ && columns == q_left_ && std::equal(left_.begin(), left_.end(), basis);
}

}  // namespace trajcore
