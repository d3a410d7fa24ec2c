// Step kernels of symmetric and asymmetric matrix factorization (PAPERS.md section 2).
//
// Symmetric:  f(U) = 1/4 ||U U^T - M||_F^2,  U (d x w).  grad = U (U^T U) - M U; U U^T is formed only
//   by the kernel whose state is U^T (SymmetricTransposedKernel: a diagonal M with d <= w, where it is
//   the smaller Gram matrix).
//   M U costs O(d^2 w) for a dense M, O(d r w) for M = V diag(sigma) V^T given as (V, sigma), and
//   O(d w) for a diagonal M: the same problem in the target's eigenbasis (U -> O^T U), which is how
//   Python runs with coordinates="eigenbasis". Each form is its own kernel,
//   SymmetricFactorizationKernel<DenseTarget | FactoredTarget | DiagonalTarget>.
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
#include <variant>
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

// ---------------------------------------------------------------------------------------------
// Symmetric factorization: one kernel per target form, sharing the step through a class template
// over the target (SymmetricFactorizationKernel<DenseTarget | FactoredTarget | DiagonalTarget>), a
// kernel for the transposed state (SymmetricTransposedKernel), and SymmetricMatrixFactorizationKernel,
// which holds the one a target and layout call for (what Python binds).

// What every kernel whose state is U (d x w) keeps per thread.
struct SymmetricWorkspace {
    std::vector<double> gram;       // (w x w) U^T U
    std::vector<double> next_gram;  // (w x w) the same for the last step's result
    std::vector<double> mix;        // (w x w) the U-side factor of `combine`
    std::vector<double> scratch, projection;
    // The last step's result whose products the next_* buffers hold (nullptr when they are not ready).
    const double* products_of_next = nullptr;
    double loss_scale = 0.0;  // ||U^T U||^2 + ||M||^2 of the last Gram-form loss
};

// A target policy is the part of a step that depends on how M is held. For U (d x w) it provides
//   Workspace                         SymmetricWorkspace and the target's own products
//   fill_products(U, ws, mu)          ws.gram = U^T U and the target's products of U (mu: a d x w buffer
//                                     of the caller's, which a dense target fills with M U)
//   cross(U, ws, mu)                  <U, M U> once U's products are in ws (a dense target computes M U
//                                     into mu here)
//   swap_next_products(ws)            makes the target's products of the last step's result current
//   combine(U, c, out, ws, prepare_next, finite)
//                                     out = U A + c M U with A (w x w) in ws.mix; out holds M U on entry
//                                     for a dense target. The gradient is A = U^T U, c = -1; a step of
//                                     size lr is A = I - lr U^T U, c = lr. With `finite`, reports whether
//                                     out is finite; with prepare_next also fills the next products with
//                                     out's.
//   signal(ws)                        V^T U (r x w) when the target keeps it (factored), else nullptr
//   projects_on_signal(projector)     whether the coefficients are entries of signal(ws) signal(ws)^T
//   residual_norm_squared(U, ws, products_ready)
//                                     ||U U^T - M||^2 without cancellation, reusing U's products when
//                                     the driver has just computed them

// Dense M: M U by a product, O(d^2 w).
class DenseTarget {
public:
    using Workspace = SymmetricWorkspace;
    DenseTarget(TargetMatrix target, int64_t width);
    const TargetMatrix& matrix() const { return target_; }
    void allocate(Workspace&) const {}
    void fill_products(const double* U, Workspace& ws, double* target_times_u) const;
    double cross(const double* U, Workspace& ws, double* target_times_u) const;
    void swap_next_products(Workspace&) const {}
    void combine(const double* U, double c, double* out, Workspace& ws, bool prepare_next, bool* finite) const;
    const double* signal(const Workspace&) const { return nullptr; }
    bool projects_on_signal(const PairProjector&) const { return false; }
    double residual_norm_squared(const double* U, Workspace& ws, bool products_ready) const;

private:
    TargetMatrix target_;
    int64_t d_, w_;
};

// M = V diag(sigma) V^T given as (V, sigma): M U = V (sigma * V^T U) and <U, M U> =
// sum_k sigma_k |(V^T U)_k|^2 from V^T U alone, O(d r w). U's products come from one pass over its
// row blocks, which the step fuses with the computation of next.
class FactoredTarget {
public:
    struct Workspace : SymmetricWorkspace {
        std::vector<double> signal, next_signal;  // (r x w) V^T U, of U and of the last step's result
        std::vector<double> signal_mix;           // (r x w) c sigma V^T U, the V-side factor of combine
    };
    // Where one pass over U leaves its products.
    struct Products {
        double* gram;
        double* signal;
    };
    FactoredTarget(TargetMatrix target, int64_t width);
    const TargetMatrix& matrix() const { return target_; }
    void allocate(Workspace& ws) const;
    void fill_products(const double* U, Workspace& ws, double* target_times_u) const;
    double cross(const double* U, Workspace& ws, double* target_times_u) const;
    void swap_next_products(Workspace& ws) const { std::swap(ws.signal, ws.next_signal); }
    void combine(const double* U, double c, double* out, Workspace& ws, bool prepare_next, bool* finite) const;
    const double* signal(const Workspace& ws) const { return ws.signal.data(); }
    bool projects_on_signal(const PairProjector& projector) const {
        return projector.left_basis_is(target_.left(), target_.rank());
    }
    double residual_norm_squared(const double* U, Workspace& ws, bool products_ready) const;

    // The row-block passes (shared with DiagonalTarget, see the .cpp).
    int64_t rows() const { return d_; }
    int64_t width() const { return w_; }
    int64_t split() const { return 0; }
    static Products current(Workspace& ws) { return {ws.gram.data(), ws.signal.data()}; }
    static Products next(Workspace& ws) { return {ws.next_gram.data(), ws.next_signal.data()}; }
    void add_block_products(const double* U_block, int64_t i0, int64_t rows, bool first, const Products& p) const;
    void prepare_combine(double c, Workspace& ws) const;
    void add_target_rows(const double* U_block, int64_t i0, int64_t rows, double c, double* block,
                         const Workspace& ws) const;

private:
    TargetMatrix target_;
    int64_t d_, w_;
};

// Diagonal M (the problem in its eigenbasis, which is how Python runs with coordinates="eigenbasis"):
// M U scales rows, O(d w). The rows outside the support come first in the pass over U, so that their
// Gram matrix U_perp^T U_perp, which the accurate loss needs, is complete on the way to U^T U.
class DiagonalTarget {
public:
    struct Workspace : SymmetricWorkspace {
        // U_perp^T U_perp over the rows outside the support (w x w) and <U, M U> = sum_i m_i |U_i|^2,
        // of U and of the last step's result.
        std::vector<double> perp_gram, next_perp_gram;
        double cross = 0.0, next_cross = 0.0;
    };
    struct Products {
        double* gram;
        double* perp_gram;
        double* cross;
    };
    DiagonalTarget(TargetMatrix target, int64_t width);
    const TargetMatrix& matrix() const { return target_; }
    void allocate(Workspace& ws) const;
    void fill_products(const double* U, Workspace& ws, double* target_times_u) const;
    double cross(const double*, Workspace& ws, double*) const { return ws.cross; }
    void swap_next_products(Workspace& ws) const {
        std::swap(ws.perp_gram, ws.next_perp_gram);
        std::swap(ws.cross, ws.next_cross);
    }
    void combine(const double* U, double c, double* out, Workspace& ws, bool prepare_next, bool* finite) const;
    const double* signal(const Workspace&) const { return nullptr; }
    bool projects_on_signal(const PairProjector&) const { return false; }
    double residual_norm_squared(const double* U, Workspace& ws, bool products_ready) const;

    int64_t rows() const { return d_; }
    int64_t width() const { return w_; }
    int64_t split() const { return target_.rank(); }
    static Products current(Workspace& ws) { return {ws.gram.data(), ws.perp_gram.data(), &ws.cross}; }
    static Products next(Workspace& ws) { return {ws.next_gram.data(), ws.next_perp_gram.data(), &ws.next_cross}; }
    void add_block_products(const double* U_block, int64_t i0, int64_t rows, bool first, const Products& p) const;
    void prepare_combine(double, Workspace&) const {}
    void add_target_rows(const double* U_block, int64_t i0, int64_t rows, double c, double* block,
                         const Workspace& ws) const;

private:
    TargetMatrix target_;
    int64_t d_, w_;
};

// f(U) = 1/4 ||U U^T - M||_F^2 for U (d x w) with the target held as Target (a policy above).
template <class Target>
class SymmetricFactorizationKernel {
public:
    using Workspace = typename Target::Workspace;

    SymmetricFactorizationKernel(TargetMatrix target, int64_t width, PairProjector projector);

    static constexpr Capabilities capabilities = Capabilities{}.with_fused_step().with_observe_after_gradient();

    int64_t state_size() const { return d_ * w_; }
    int64_t n_observables() const { return projector_.size(); }
    Workspace workspace() const;
    double loss_and_grad(const double* U, double* grad, Workspace& ws, const StepContext& ctx) const;
    StepResult loss_and_step(const double* U, double lr, double* next, bool next_is_final, Workspace& ws,
                             const StepContext& ctx) const;
    double observe(const double* U, double* out, Workspace& ws, double gradient_loss) const;

private:
    // Fills U's products into ws (and M U into target_times_u, dense target); returns the Gram-form loss.
    double loss_parts(const double* U, Workspace& ws, double* target_times_u) const;
    // The Gram-form loss from ws.gram and cross = <U, M U>.
    double loss_from_products(Workspace& ws, double cross) const;
    int64_t d_, w_;
    Target target_;
    PairProjector projector_;
    bool projector_is_signal_;  // coefficients come from the target's signal products
};

using SymmetricDenseKernel = SymmetricFactorizationKernel<DenseTarget>;
using SymmetricFactoredKernel = SymmetricFactorizationKernel<FactoredTarget>;
using SymmetricDiagonalKernel = SymmetricFactorizationKernel<DiagonalTarget>;
extern template class SymmetricFactorizationKernel<DenseTarget>;
extern template class SymmetricFactorizationKernel<FactoredTarget>;
extern template class SymmetricFactorizationKernel<DiagonalTarget>;

// A diagonal target with d <= w and the state T = U^T (w x d): steps go through the smaller Gram
// matrix P = U U^T = T^T T (d x d), with no transposition: grad^T = T (P - M) and a step is
// T (I - lr (P - M)), O(d^2 w); the loss is 1/4 ||P - M||^2 summed without cancellation, and
// coefficients on coordinate axes are entries of P.
class SymmetricTransposedKernel {
public:
    struct Workspace {
        // P = U U^T (d x d) of the state and of the last step's result, ready when products_of_next
        // is that result.
        std::vector<double> row_gram, next_row_gram;
        std::vector<double> step;  // (d x d) the residual P - M, or the step matrix I - lr (P - M)
        std::vector<double> scratch, projection;
        const double* products_of_next = nullptr;
    };

    SymmetricTransposedKernel(TargetMatrix target, int64_t width, PairProjector projector);

    static constexpr Capabilities capabilities =
        Capabilities{}.with_fused_step().with_observe_after_gradient().with_transposed_state();

    int64_t state_size() const { return d_ * w_; }
    bool state_transposed() const { return true; }
    int64_t n_observables() const { return projector_.size(); }
    Workspace workspace() const;
    double loss_and_grad(const double* T, double* grad, Workspace& ws, const StepContext& ctx) const;
    StepResult loss_and_step(const double* T, double lr, double* next, bool next_is_final, Workspace& ws,
                             const StepContext& ctx) const;
    double observe(const double* T, double* out, Workspace& ws, double gradient_loss) const;

private:
    void fill_row_gram(const double* T, double* P) const;
    // S (d x d) = c I + a R for the residual R = P - M; returns 1/4 ||R||^2.
    double row_gram_residual(const double* P, double a, double c, double* S) const;
    int64_t d_, w_;
    std::vector<double> target_;  // M (d x d), dense: the residual P - M in one pass
    PairProjector projector_;
};

// f(U) = 1/4 ||U U^T - M||_F^2 with whichever kernel above the target and layout call for: with
// `transposed` (a diagonal target and d <= w only) the state is U^T. Its methods forward to that
// kernel (one std::visit per call, a jump through a table: no measurable cost beside a step).
class SymmetricMatrixFactorizationKernel {
public:
    using Kernel = std::variant<SymmetricDenseKernel, SymmetricFactoredKernel, SymmetricDiagonalKernel,
                                SymmetricTransposedKernel>;
    // The workspace of the kernel held (workspace() returns that alternative).
    using Workspace = std::variant<SymmetricDenseKernel::Workspace, SymmetricFactoredKernel::Workspace,
                                   SymmetricDiagonalKernel::Workspace, SymmetricTransposedKernel::Workspace>;

    SymmetricMatrixFactorizationKernel(TargetMatrix target, int64_t width, PairProjector projector,
                                       bool transposed = false);

    // The union of the held kernels' capabilities; state_transposed() says which layout this one has.
    static constexpr Capabilities capabilities =
        Capabilities{}.with_fused_step().with_observe_after_gradient().with_transposed_state();

    int64_t state_size() const { return state_size_; }
    bool state_transposed() const { return std::holds_alternative<SymmetricTransposedKernel>(kernel_); }
    int64_t n_observables() const { return n_observables_; }
    Workspace workspace() const;
    double loss_and_grad(const double* U, double* grad, Workspace& ws, const StepContext& ctx) const;
    StepResult loss_and_step(const double* U, double lr, double* next, bool next_is_final, Workspace& ws,
                             const StepContext& ctx) const;
    double observe(const double* U, double* out, Workspace& ws, double gradient_loss) const;
    const Kernel& kernel() const { return kernel_; }

private:
    Kernel kernel_;
    int64_t state_size_, n_observables_;
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
