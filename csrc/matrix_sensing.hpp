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
// Two modes, chosen once per problem at construction by the memory a step moves (gram_mode()):
//
// Streaming mode (D + 1 >= 2m: few measurements for their size). Kept: the m x D measurements.
// One step, per trajectory (the driver runs trajectories in parallel, one per thread):
//   P = U U^T                                        d^2 w    multiply-adds (then packed, doubled)
//   r_i = a_i . p_hat - y_i,  S += r_i a_i          2 m D                  (one pass over the A_i)
//   grad = (1/m) S U  (S unpacked to d x d)          d^2 w
//   f = (1/4m) sum_i r_i^2                           m
// about m d (d + 1) + 2 d^2 w multiply-adds, and the m D doubles of the measurements read from memory
// once. The measurements go in blocks that stay in L2 (kMeasurementBlockBytes): each block's residuals
// are dot products (linalg::dot) and its share of S one small product S += r_blk^T A_blk
// (linalg::gemm_nn, 1 x D x block) while the block is still in cache. The loss comes from the
// residuals themselves, so it has no cancellation and stays accurate down to the smallest losses;
// observe reuses the gradient's.
//
// Gram mode (D + 1 < 2m: the normal equations are smaller than the measurements). With G = A^T A
// (D x D, symmetric) and b = A^T y, both built once at construction (m D (D + 1) / 2 + m D
// multiply-adds), S = sum_i r_i a_i = G p_hat - b. Kept: G's upper triangle in row blocks of
// kGramRows (block k holds rows i0.. i0 + R - 1, columns i0.. D - 1, dense R x (D - i0), its
// diagonal R x R block whole): D (D + 1) / 2 + (R - 1) D / 2 doubles; b (D); |y|^2; and the m x D
// measurements too, for the exact loss below (so (m + D / 2) D doubles in all, against m D).
// One step:
//   P = U U^T, packed                                d^2 w
//   q = G p_hat  (symmetric: one pass over the stored triangle; row i's dot with p_hat[i0:] and
//                 q[i1:] += p_blk^T G_blk[:, R:] per block)          D^2     multiply-adds
//   S = q - b; grad = (1/m) S U                      d^2 w
//   f = (p_hat . q - 2 b . p_hat + |y|^2) / (4m)     2 D
// about D^2 + 2 d^2 w multiply-adds, and D (D + 1) / 2 doubles read (half of the measurements' m D
// once D + 1 < 2m; at d = 40, m = 800: 2.7 MB against 5.25 MB). S's absolute error is about
// eps |G||p_hat| ~ eps |b|, harmless for the step; the Gram-form loss cancels near convergence
// (error about eps (p_hat . q + |y|^2)), so loss_and_grad returns it (the driver only checks it for
// divergence) and observe -- the recorded loss -- uses it only while it is at least kSensingGramTrust
// times that scale (relative error below ~1e-12) and otherwise computes the exact residuals with a
// pass over the measurements (m D multiply-adds, record steps only).
//
// Choice rule: Gram mode when its stored triangle is smaller than the measurements,
// D (D + 1) / 2 < m D, i.e. D + 1 < 2m (it also does fewer multiply-adds per step, D^2 < 2 m D).
// Building G costs m D (D + 1) / 2 multiply-adds, in the kernel variant's register-blocked product on
// one thread (not the BLAS: the same G whether or not one is registered, and no BLAS threads): the
// arithmetic of about D / 4 streaming steps, but at the rate of a large product, not bandwidth-bound.
// Measured at d = 40, m = 800, w = 8 (AVX-512, one thread): a step 50-57 us in the Gram mode against
// 100-110 us streaming; the construction 11-14 ms (2 ms of it packing), about 240 Gram steps.
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
// block (a fused dot + axpy per measurement, S loaded and stored per row), 145 us with 2, 115 us with 4,
// 97-104 us with 16-64 (the block no longer in L1 costs nothing visible); 32 also came out best at
// d = 10, 20 and 60 (4.5, 6.4 and 180 us). Blocks hold up to kMeasurementBlockBytes, at least one
// measurement and at most kMaxMeasurementBlock (the largest inner size of a step's products, which
// Python's MatrixSensing.largest_product assumes).
constexpr int64_t kMeasurementBlockBytes = 256 * 1024;
constexpr int64_t kMaxMeasurementBlock = 32;
// Rows of G per block of the Gram mode's matvec (a block's share of q[i1:] is a 1 x (D - i1) x R product).
constexpr int64_t kGramRows = 8;
// Rows of G per product when G is built (each block one product, R x (D - i0) x m).
constexpr int64_t kGramBuildRows = 64;
static_assert(kGramRows <= kMaxMeasurementBlock);
// The recorded Gram-form loss is trusted when it is at least this fraction of the size of its terms.
constexpr double kSensingGramTrust = 1e-3;

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
        std::vector<double> sum;          // (D) S = sum_i r_i A_i, packed (Gram mode: G p_hat, then S)
        std::vector<double> square;       // (d x d) U U^T, then S unpacked
        std::vector<double> scratch;      // the projector's O^T U
        double loss_scale = 0.0;          // Gram mode: p_hat . G p_hat + |y|^2 of the last Gram pass
    };

    // packed (m x D) measurements from pack_symmetric_measurements, observations (m), width w.
    MatrixSensingKernel(int64_t d, int64_t width, std::vector<double> packed_measurements,
                        std::vector<double> observations, PairProjector projector);

    static constexpr Capabilities capabilities = Capabilities{}.with_observe_after_gradient();

    int64_t state_size() const { return d_ * w_; }
    int64_t n_observables() const { return projector_.size(); }
    int64_t n_measurements() const { return m_; }
    int64_t dim() const { return d_; }
    // Whether the step goes through the normal equations (D + 1 < 2m; see the header comment).
    bool gram_mode() const { return !gram_.empty(); }
    Workspace workspace() const;
    double loss_and_grad(const double* U, double* grad, Workspace& ws, const StepContext& ctx) const;
    double observe(const double* U, double* out, Workspace& ws, double gradient_loss) const;

private:
    // ws.packed_gram = U U^T packed, off-diagonal entries doubled.
    void pack_gram(const double* U, Workspace& ws) const;
    // The loss at p_hat from its residuals (left in ws.residuals); with `accumulate`, also S (ws.sum).
    double residual_pass(Workspace& ws, bool accumulate) const;
    // Gram mode: ws.sum = S = G p_hat - b, ws.loss_scale; returns the Gram-form loss.
    double gram_pass(Workspace& ws) const;

    int64_t d_, w_, m_, packed_;  // packed_ = D
    int64_t block_;               // measurements per block of the streaming pass
    std::vector<double> measurements_;  // (m x D)
    std::vector<double> observations_;  // (m)
    // Gram mode only (empty otherwise): G's upper triangle in row blocks (gram_offsets_[k] is block k's
    // start), b = A^T y, |y|^2.
    std::vector<double> gram_;
    std::vector<int64_t> gram_offsets_;
    std::vector<double> moments_;
    double observations_squared_ = 0.0;
    PairProjector projector_;
};

}  // namespace trajcore
