// Step kernel of symmetric matrix sensing (the canonical problem of incremental learning).
//
//   f(U) = 1/(4m) sum_{i<=m} (<A_i, U U^T> - y_i)^2,   A_i symmetric (d x d),   U (d x w),
//   grad f(U) = (1/m) S U,   S = sum_i r_i A_i,   r_i = <A_i, U U^T> - y_i.
//
// Storage: the measurements are held packed, the d(d+1)/2 entries A_i[a][b] with a <= b of each, in
// row-major order of the upper triangle, one row of an (m x D) matrix per measurement (D = d(d+1)/2).
// The inner product with a symmetric P is then <A_i, P> = a_i . p_hat, where p_hat is P packed with
// its off-diagonal entries doubled (exactly: a product by 2 does not round).
//
// Why P = U U^T is formed: the residuals through P cost D w multiply-adds for P plus m D for the m
// dot products, against m (d^2 w + d w) for U^T A_i U measurement by measurement (A_i U, then
// <U, A_i U>). Since D = d (d + 1) / 2 < d (d + 1) w, forming P is cheaper for every w >= 1, about 2w
// times when m >> w. The same holds for the gradient: sum_i r_i (A_i U) = (sum_i r_i A_i) U costs
// m D + d^2 w, against m d^2 w.
//
// One step, per trajectory (the driver runs trajectories in parallel, one per thread):
//   P = U U^T                                        d^2 w    multiply-adds (then packed, doubled)
//   r_i = a_i . p_hat - y_i,  S += r_i a_i          2 m D                  (one pass over the A_i)
//   grad = (1/m) S U  (S unpacked to d x d)          d^2 w
//   f = (1/4m) sum_i r_i^2                           m
// about m d (d + 1) + 2 d^2 w multiply-adds in all. The m x D measurement matrix is read from memory
// once per step: measurements go in blocks that stay in L2 (kMeasurementBlockBytes), each block's
// residuals are dot products (linalg::dot) and its share of S one small product S += r_blk^T A_blk
// (linalg::gemm_nn, 1 x D x block) while the block is still in cache. The loss comes from the
// residuals themselves, so it has no cancellation and stays accurate down to the smallest losses;
// observe reuses the gradient's loss.
// Every sum runs in a fixed order (measurements in order, blocks in order), independent of threads.
//
// Observables: coefficients beta_k = (O^T U)[i_k] . (O^T U)[j_k] for basis columns O and index pairs
// (i_k, j_k) -- the same PairProjector as the symmetric factorization, beta = (O^T U)(O^T U)^T.
#pragma once
#include <cstdint>
#include <vector>

#include "checks.hpp"
#include "kernel.hpp"
#include "pair_projector.hpp"

namespace trajcore {

// The streaming pass takes the measurements in blocks: the dot products of a block read it from memory
// (L3 or DRAM), its share of S re-reads it from L2, and S itself is loaded and stored once per block.
// Measured at d = 40, m = 800, w = 8 (one trajectory-step, AVX-512): 210 us with one measurement per
// block, 145 us with 2, 115 us with 4, 97-104 us with 16-64 (the block no longer in L1 costs nothing
// visible); 32 also came out best at d = 10, 20 and 60 (4.5, 6.4 and 180 us). Blocks hold up to
// kMeasurementBlockBytes, at least one measurement and at most kMaxMeasurementBlock.
constexpr int64_t kMeasurementBlockBytes = 256 * 1024;
constexpr int64_t kMaxMeasurementBlock = 32;

// D = d (d + 1) / 2, the packed size of a symmetric d x d matrix (throws on overflow).
int64_t packed_symmetric_size(int64_t d);

// Packs m symmetric d x d matrices (dense, row-major, (m, d, d)) into (m, D): entry (a, b), a <= b,
// is (A[a][b] + A[b][a]) / 2. Refuses non-finite entries and a matrix with
// max |A_i - A_i^T| > symmetry_tol * max |A_i| (errors name `measurements` and the matrix).
std::vector<double> pack_symmetric_measurements(int64_t m, int64_t d, const double* dense, double symmetry_tol);

class MatrixSensingKernel {
public:
    struct Workspace {
        std::vector<double> packed_gram;  // (D) p_hat: U U^T packed, off-diagonal entries doubled
        std::vector<double> residuals;    // (m) r_i of the last pass
        std::vector<double> sum;          // (D) S = sum_i r_i A_i, packed
        std::vector<double> square;       // (d x d) U U^T, then S unpacked
        std::vector<double> scratch;      // the projector's O^T U
    };

    // packed (m x D) measurements from pack_symmetric_measurements, observations (m), width w.
    MatrixSensingKernel(int64_t d, int64_t width, std::vector<double> packed_measurements,
                        std::vector<double> observations, PairProjector projector);

    static constexpr Capabilities capabilities = Capabilities{}.with_observe_after_gradient();

    int64_t state_size() const { return d_ * w_; }
    int64_t n_observables() const { return projector_.size(); }
    int64_t n_measurements() const { return m_; }
    int64_t dim() const { return d_; }
    Workspace workspace() const;
    double loss_and_grad(const double* U, double* grad, Workspace& ws, const StepContext& ctx) const;
    double observe(const double* U, double* out, Workspace& ws, double gradient_loss) const;

private:
    // The loss at U from its residuals (left in ws.residuals); with `accumulate`, also S (ws.sum).
    double residual_pass(const double* U, Workspace& ws, bool accumulate) const;

    int64_t d_, w_, m_, packed_;  // packed_ = D
    int64_t block_;               // measurements per block of the streaming pass
    std::vector<double> measurements_;  // (m x D)
    std::vector<double> observations_;  // (m)
    PairProjector projector_;
};

}  // namespace trajcore
