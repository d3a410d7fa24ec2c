// Step kernels of symmetric and asymmetric matrix factorization (PAPERS.md section 2).
//
// Symmetric:  f(U) = 1/4 ||U U^T - M||_F^2,  U (d x w).  grad = U (U^T U) - M U; U U^T is formed only
//   by a kernel whose state is U^T (a diagonal M with d <= w, where it is the smaller Gram matrix:
//   see fill_row_gram).
//   M U costs O(d^2 w) for a dense M, O(d r w) for M = V diag(sigma) V^T given as (V, sigma), and
//   O(d w) for a diagonal M: the same problem in the target's eigenbasis (U -> O^T U), which is how
//   Python runs with coordinates="eigenbasis".
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
#include "kernel.hpp"
#include "linalg.hpp"
#include "pair_projector.hpp"

namespace trajcore {

// A target matrix (rows x cols): dense, factored as left diag(weights) right^T, or diagonal.
class TargetMatrix {
public:
    TargetMatrix() = default;
    static TargetMatrix dense(int64_t rows, int64_t cols, std::vector<double> values);
    static TargetMatrix factored(int64_t rows, int64_t cols, int64_t rank, std::vector<double> left,
                                 std::vector<double> weights, std::vector<double> right);
    // diag(values) (rows x cols, min(rows, cols) values); its support is the prefix of rows and
    // columns up to the last non-zero value.
    static TargetMatrix diagonal(int64_t rows, int64_t cols, std::vector<double> values);

    int64_t rows() const { return rows_; }
    int64_t cols() const { return cols_; }
    // Factored: the rank; diagonal: the support (the diagonal is zero from there on).
    int64_t rank() const { return rank_; }
    bool is_factored() const { return form_ == Form::factored; }
    bool is_diagonal() const { return form_ == Form::diagonal; }
    // Factored form: left (rows x rank), weights (rank), right (cols x rank); diagonal: weights
    // (min(rows, cols)), zero from rank() on.
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
    // left_projection, when given, is left^T X (rank x w), already computed. Diagonal form:
    // perp_gram, when given, is X_perp^T X_perp (w x w) of the rows after the support, X == Y.
    double residual_norm_squared(const double* X, const double* Y, int64_t w, std::vector<double>& scratch,
                                 const double* left_projection = nullptr, const double* perp_gram = nullptr) const;

private:
    enum class Form { dense, factored, diagonal };
    // Whether a product with w columns runs transposed (small dense M, w <= kNarrowWidth).
    bool narrow(int64_t w) const;
    // out (out_rows x w) = diag(weights) Z for M or M^T (out_rows = rows or cols): zero outside the support.
    void diagonal_times(const double* Z, int64_t w, double* out, int64_t out_rows) const;
    double diagonal_residual_norm_squared(const double* X, const double* Y, int64_t w, std::vector<double>& scratch,
                                          const double* perp_gram) const;
    int64_t rows_ = 0, cols_ = 0, rank_ = 0;
    Form form_ = Form::dense;
    std::vector<double> dense_;                   // (rows x cols)
    std::vector<double> dense_transposed_;        // (cols x rows) for narrow products; empty if M^T == M
    std::vector<double> left_, weights_, right_;  // (rows x rank), (rank or min(rows, cols)), (cols x rank)
    double frobenius_squared_ = 0.0;
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
        // U^T U (and V^T U, factored target) of the last step's result, and that result's address
        // (nullptr when they are not ready).
        std::vector<double> next_gram, next_signal;
        // Diagonal target: U_perp^T U_perp over the rows outside its support (w x w) and
        // <U, M U> = sum_i m_i |U_i|^2, of U and of the last step's result.
        std::vector<double> perp_gram, next_perp_gram;
        double cross = 0.0, next_cross = 0.0;
        // Transposed state: P = U U^T (d x d) of U and of the last step's result.
        std::vector<double> row_gram, next_row_gram;
        const double* products_of_next = nullptr;
        std::vector<double> scratch, projection;
        double loss_scale = 0.0;  // ||U^T U||^2 + ||M||^2 of the last loss_parts call
    };

    // With `transposed` (a diagonal target and d <= w only) the state is U^T (w x d) instead of U,
    // and steps go through P = U U^T (see fill_row_gram).
    SymmetricMatrixFactorizationKernel(TargetMatrix target, int64_t width, PairProjector projector,
                                       bool transposed = false);

    static constexpr Capabilities capabilities =
        Capabilities{}.with_fused_step().with_observe_after_gradient().with_transposed_state();

    int64_t state_size() const { return d_ * w_; }
    bool state_transposed() const { return row_gram_; }
    int64_t n_observables() const { return projector_.size(); }
    Workspace workspace() const;
    double loss_and_grad(const double* U, double* grad, Workspace& ws, const StepContext& ctx) const;
    StepResult loss_and_step(const double* U, double lr, double* next, bool next_is_final, Workspace& ws,
                             const StepContext& ctx) const;
    double observe(const double* U, double* out, Workspace& ws, double gradient_loss) const;

private:
    // Where one pass over U leaves its products (see Workspace).
    struct Products {
        double* gram;
        double* signal;
        double* perp_gram;
        double* cross;
    };
    static Products products(Workspace& ws);
    static Products next_products(Workspace& ws);
    // Calls f(first_row, rows, first) for the row blocks of a pass over U (factored or diagonal
    // target), always in the same order: a diagonal target's rows outside its support first.
    template <class F>
    void for_each_block(F&& f) const;
    // Adds a block's share to the products (the first block sets them); U_block (rows x w) holds rows
    // i0, ..., i0 + rows - 1 of U.
    void add_block_products(const double* U_block, int64_t i0, int64_t rows, bool first, const Products& p) const;
    // Fills ws.gram = U^T U, and ws.signal = V^T U (factored), ws.perp_gram and ws.cross (diagonal)
    // or target_times_u = M U (dense, a (d x w) buffer of the caller's); returns the Gram-form loss.
    double loss_parts(const double* U, Workspace& ws, double* target_times_u) const;
    // The Gram-form loss from ws.gram (and ws.signal); cross = <U, M U> for a dense or diagonal
    // target, 0 for a factored one.
    double loss_from_products(Workspace& ws, double cross) const;
    // The transposed state T = U^T (a diagonal target with d <= w) steps through the smaller Gram
    // matrix P = U U^T = T^T T (d x d), with no transposition: grad^T = T (P - M) and a step is
    // T (I - lr (P - M)); the loss is 1/4 ||P - M||^2 summed without cancellation, and coefficients
    // on coordinate axes are entries of P.
    void fill_row_gram(const double* T, double* P) const;
    // S (d x d) = c I + a R for the residual R = P - M; returns 1/4 ||R||^2.
    double row_gram_residual(const double* P, double a, double c, double* S) const;
    StepResult row_gram_step(const double* T, double lr, double* next, bool next_is_final, Workspace& ws) const;
    // out = U A + c M U, with A (w x w) in ws.mix; out holds M U on entry for a dense target.
    // The gradient is A = U^T U, c = -1; a step of size lr is A = I - lr U^T U, c = lr. With
    // `finite`, reports whether out is finite; with prepare_next also fills the next_* products with
    // out's (a dense target: next_gram only).
    void combine(const double* U, double c, double* out, Workspace& ws, bool prepare_next, bool* finite) const;
    // Whether every diagonal entry of an (n x n) Gram matrix Z^T Z is finite (then Z is finite).
    static bool gram_diagonal_finite(const double* gram, int64_t n);
    TargetMatrix target_;
    int64_t d_, w_;
    PairProjector projector_;
    bool projector_is_signal_;  // projecting on V itself: coefficients come from ws.signal = V^T U
    bool row_gram_;             // the state is U^T: see fill_row_gram
    std::vector<double> row_gram_target_;  // then M (d x d), dense: the residual P - M in one pass
};

class AsymmetricMatrixFactorizationKernel {
public:
    struct Workspace {
        std::vector<double> gram_x, gram_y, m_y, mt_x, scratch, projection;
        double loss_scale = 0.0;  // ||X Y^T||^2 + ||M||^2 of the last loss_parts call
    };

    AsymmetricMatrixFactorizationKernel(TargetMatrix target, int64_t width, PairProjector projector);

    static constexpr Capabilities capabilities = Capabilities{}.with_observe_after_gradient();

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
