// Recorded coefficients of factor models: beta_k = (L^T X)[i_k] . (R^T Y)[j_k] for parameters X, Y
// (rows x w), basis columns L, R and index pairs (i_k, j_k). With X = Y = U and L = R = O this is
// beta = (O^T U)(O^T U)^T, the basis-function coefficients of any model whose prediction is U U^T
// (symmetric factorization, matrix sensing); the asymmetric factorization uses both sides.
#pragma once
#include <cstdint>
#include <vector>

namespace trajcore {

// Coefficients beta_k = (L^T X)[i_k] . (R^T Y)[j_k].
class PairProjector {
public:
    PairProjector() = default;
    // left (rows_x x q_left), right (rows_y x q_right), pairs (K x 2) indices into their columns.
    PairProjector(int64_t rows_x, int64_t q_left, std::vector<double> left, int64_t rows_y, int64_t q_right,
                  std::vector<double> right, std::vector<int64_t> pairs, bool same_side);
    int64_t size() const { return static_cast<int64_t>(pairs_.size() / 2); }
    // X (rows_x x w), Y (rows_y x w); scratch grows as needed.
    void project(const double* X, const double* Y, int64_t w, double* out, std::vector<double>& scratch) const;
    // The same from P = L^T X (q_left x w) and Q = R^T Y (q_right x w).
    void project_from(const double* P, const double* Q, int64_t w, double* out) const;
    // Whether L is exactly `basis` (rows_x x columns).
    bool left_basis_is(const double* basis, int64_t columns) const;
    // Whether L and R are coordinate axes; then out[k] = gram[i_k * ld + j_k] for the Gram matrix
    // gram = X Y^T of the rows, (ld columns).
    bool on_axes() const { return axes_; }
    void gather(const double* gram, int64_t ld, double* out) const;

private:
    int64_t rows_x_ = 0, q_left_ = 0, rows_y_ = 0, q_right_ = 0;
    std::vector<double> left_, right_;
    std::vector<int64_t> pairs_;
    bool same_side_ = false;  // X == Y and L == R: project once
    // When every column of L and R is a coordinate axis (as in the eigenbasis coordinates), the
    // rows of X and Y they pick: pairs_ index these rows and projecting is free.
    bool axes_ = false;
};

}  // namespace trajcore
