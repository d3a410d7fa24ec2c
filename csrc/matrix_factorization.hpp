// Step kernels of symmetric and asymmetric matrix factorization (PAPERS.md section 2).
//
// Symmetric:  f(U) = 1/4 ||U U^T - M||_F^2,  U (d x w).  grad = U (U^T U) - M U; U U^T is never formed.
//   M U costs O(d^2 w) for a dense M and O(d r w) for M = V diag(sigma) V^T given as (V, sigma).
//   A plain step is U (I - lr U^T U) + lr M U, written without a gradient array; for a factored M,
//   M U = V (sigma * V^T U) and <U, M U> = sum_k sigma_k |(V^T U)_k|^2 come from V^T U alone.
//   The gradient's loss is the Gram form 1/4 (||U^T U||^2 - 2 <U, M U> + ||M||^2) from the products the
//   gradient needs anyway; its rounding error is about eps (||U^T U||^2 + ||M||^2). The recorded loss
//   reuses it while it is at least kGramTrust times that scale (relative error below ~1e-11) and
//   otherwise is computed without cancellation (TargetMatrix::residual_norm_squared), so it stays
//   accurate down to the 1e-13 losses of converged runs.
// Asymmetric: f(X, Y) = 1/2 ||X Y^T - M||_F^2,  X (m x w), Y (n x w), state = [X; Y] ((m + n) x w).
//   grad_X = X (Y^T Y) - M Y,  grad_Y = Y (X^T X) - M^T X;  M dense or A diag(s) B^T.
// Observables: coefficients beta_k = (L^T X)[i_k] . (R^T Y)[j_k] for chosen basis columns L, R and
// index pairs (i_k, j_k) -- for the symmetric case X = Y = U and L = R = O, so beta = (O^T U)(O^T U)^T.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "checks.hpp"
#include "driver.hpp"
#include "linalg.hpp"

namespace trajcore {

// A target matrix (rows x cols), dense or factored as left diag(weights) right^T.
class TargetMatrix {
public:
    TargetMatrix() = default;
    static TargetMatrix dense(int64_t rows, int64_t cols, std::vector<double> values);
    static TargetMatrix factored(int64_t rows, int64_t cols, int64_t rank, std::vector<double> left,
                                 std::vector<double> weights, std::vector<double> right);

    int64_t rows() const { return rows_; }
    int64_t cols() const { return cols_; }
    int64_t rank() const { return rank_; }
    bool is_factored() const { return factored_; }
    // Factored form only: left (rows x rank), weights (rank), right (cols x rank).
    const double* left() const { return left_.data(); }
    const double* weights() const { return weights_.data(); }
    const double* right() const { return right_.data(); }
    double frobenius_squared() const { return frobenius_squared_; }

    // out (rows x w) = M Z for Z (cols x w); scratch grows as needed.
    void times(const double* Z, int64_t w, double* out, std::vector<double>& scratch) const;
    // out (cols x w) = M^T Z for Z (rows x w).
    void transpose_times(const double* Z, int64_t w, double* out, std::vector<double>& scratch) const;
    // ||X Y^T - M||_F^2 for X (rows x w), Y (cols x w), accurate to rounding of the residual itself
    // (no cancellation against ||M||^2). Factored form needs orthonormal left/right factors;
    // left_projection, when given, is left^T X (rank x w), already computed.
    double residual_norm_squared(const double* X, const double* Y, int64_t w, std::vector<double>& scratch,
                                 const double* left_projection = nullptr) const;

private:
    // Whether a product with w columns runs transposed (small dense M, w <= kNarrowWidth).
    bool narrow(int64_t w) const;
    int64_t rows_ = 0, cols_ = 0, rank_ = 0;
    bool factored_ = false;
    std::vector<double> dense_;                   // (rows x cols)
    std::vector<double> dense_transposed_;        // (cols x rows) for narrow products; empty if M^T == M
    std::vector<double> left_, weights_, right_;  // (rows x rank), (rank), (cols x rank)
    double frobenius_squared_ = 0.0;
};

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

private:
    int64_t rows_x_ = 0, q_left_ = 0, rows_y_ = 0, q_right_ = 0;
    std::vector<double> left_, right_;
    std::vector<int64_t> pairs_;
    bool same_side_ = false;  // X == Y and L == R: project once
};

// The Gram-form loss is trusted when it is at least this fraction of the size of its terms.
constexpr double kGramTrust = 1e-4;

class SymmetricMatrixFactorizationKernel {
public:
    struct Workspace {
        std::vector<double> gram;    // (w x w) U^T U
        std::vector<double> signal;  // (r x w) V^T U, factored target
        std::vector<double> mix;     // (w x w) and (r x w): the two factors of `combine`
        std::vector<double> signal_mix;
        // Factored target: U^T U and V^T U of the last step's result, and that result's address
        // (nullptr when they are not ready).
        std::vector<double> next_gram, next_signal;
        const double* products_of_next = nullptr;
        std::vector<double> scratch, projection;
        double loss_scale = 0.0;  // ||U^T U||^2 + ||M||^2 of the last loss_parts call
    };

    SymmetricMatrixFactorizationKernel(TargetMatrix target, int64_t width, PairProjector projector);

    int64_t state_size() const { return d_ * w_; }
    int64_t n_observables() const { return projector_.size(); }
    Workspace workspace() const;
    double loss_and_grad(const double* U, double* grad, Workspace& ws, const StepContext& ctx) const;
    StepResult loss_and_step(const double* U, double lr, double* next, bool next_is_final, Workspace& ws,
                             const StepContext& ctx) const;
    double observe(const double* U, double* out, Workspace& ws, double gradient_loss) const;

private:
    // Fills ws.gram = U^T U, and ws.signal = V^T U (factored) or target_times_u = M U (dense, a
    // (d x w) buffer of the caller's); returns the Gram-form loss.
    double loss_parts(const double* U, Workspace& ws, double* target_times_u) const;
    // The Gram-form loss from ws.gram (and ws.signal); cross = <U, M U> for a dense target, 0 else.
    double loss_from_products(Workspace& ws, double cross) const;
    void add_block_products(const double* U_block, const double* V_block, int64_t rows, bool first, double* gram,
                            double* signal) const;
    // out = U A + c M U, with A (w x w) in ws.mix; out holds M U on entry for a dense target.
    // The gradient is A = U^T U, c = -1; a step of size lr is A = I - lr U^T U, c = lr. With
    // `finite`, reports whether out is finite (checked block by block while in L1); with
    // prepare_next (factored target) also fills ws.next_gram and ws.next_signal with out's products.
    void combine(const double* U, double c, double* out, Workspace& ws, bool prepare_next, bool* finite) const;
    TargetMatrix target_;
    int64_t d_, w_;
    PairProjector projector_;
    bool projector_is_signal_;  // projecting on V itself: coefficients come from ws.signal = V^T U
};

class AsymmetricMatrixFactorizationKernel {
public:
    struct Workspace {
        std::vector<double> gram_x, gram_y, m_y, mt_x, scratch, projection;
        double loss_scale = 0.0;  // ||X Y^T||^2 + ||M||^2 of the last loss_parts call
    };

    AsymmetricMatrixFactorizationKernel(TargetMatrix target, int64_t width, PairProjector projector);

    int64_t state_size() const { return (m_ + n_) * w_; }
    int64_t n_observables() const { return projector_.size(); }
    Workspace workspace() const;
    double loss_and_grad(const double* XY, double* grad, Workspace& ws, const StepContext& ctx) const;
    double observe(const double* XY, double* out, Workspace& ws, double gradient_loss) const;

private:
    double loss_parts(const double* XY, Workspace& ws) const;
    TargetMatrix target_;
    int64_t m_, n_, w_;
    PairProjector projector_;
};

}  // namespace trajcore
