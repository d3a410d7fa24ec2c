// Symmetric order-l tensors and the orthogonal symmetric tensor decomposition kernel (PAPERS.md section 3).
//
// A symmetric tensor T of order l (2 <= l <= kMaxOrder) on R^d is stored in one of three ways:
//   factored  T = sum_k c_k z_k^{(x)l}, Z (d x r) row-major, c (r): O(d r) memory;
//   dense     all d^l entries, row-major (last index fastest);
//   packed    the C(d+l-1, l) distinct entries T[a_1 <= ... <= a_l], in lexicographic order of the sorted
//             multi-index (about d^l / l! values).
//
// The hot operation is the contraction G[:, j] = T(u_j, ..., u_j, .) for all m columns of U (d x m).
// Dense and packed storage share one kernel, the *sorted walk*: it visits every sorted multi-index once
// (the dense array is read only at its sorted entries, contiguous runs of the last index), so both cost
// 2 m C(d+l-1, l) multiply-adds and read about d^l / l! values -- l! less work than an einsum or a
// DGEMM on the dense array. It is reverse-mode differentiation of f(u) = T(u, ..., u) written as the
// nest a_1 <= ... <= a_l:
//   f = sum_a N(a) t(a) prod_q u[a_q],   N(a) = l! / prod(multiplicities!)  (distinct permutations of a),
//   G = grad f / l: at a node of depth k the prefix product P_k = prod_{q<=k} u[a_q] goes down, the
//   adjoint S_k = sum over the subtree of N t prod_{q>k} u[a_q] comes back up, and G[a_k] += P_{k-1} S_k.
// Leaves (the innermost segment a_l = a_{l-1}, ..., d-1, contiguous in both storages) carry the
// multiplicity weights: N(a) = N(a_1..a_{l-1}) * l / c with c the multiplicity of a_l (c = 1 except for
// the first entry of the segment), so the weight is one scalar per segment plus one correction.
// The columns are processed in chunks of 8 (one AVX-512 register, two AVX2), up to 4 chunks per pass
// over a segment; subtrees of the nest small enough for L2 are walked once per chunk group, so the
// tensor is read from memory once per call for all columns (see tensor_walk.inc for the blocking).
// Work is split across threads by column chunks: every column's arithmetic is the same for any thread
// count (bitwise deterministic).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "checks.hpp"
#include "kernel.hpp"

namespace trajcore {

constexpr int kMaxOrder = 10;
constexpr int64_t kColumnChunk = 8;  // columns per vector chunk of the sorted walk

enum class TensorStorage { factored, dense, packed };

// Number of distinct entries C(d + l - 1, l) of a symmetric order-l tensor on R^d (throws on overflow).
int64_t packed_size(int64_t d, int order);
// d^l (throws on overflow).
int64_t dense_size(int64_t d, int order);
// Distinct permutations l! / prod(multiplicity!) of every packed entry, in packed order.
std::vector<double> packed_multiplicities(int64_t d, int order);
// Max |T[a] - T[sorted(a)]| over all multi-indices of a dense order-l array on R^d.
double dense_asymmetry(int64_t d, int order, const double* values);

class SymmetricTensor {
public:
    // Z (d x rank) row-major, c (rank).
    static SymmetricTensor from_factors(int64_t d, int order, std::vector<double> Z, std::vector<double> c);
    static SymmetricTensor from_dense(int64_t d, int order, std::vector<double> values);
    static SymmetricTensor from_packed(int64_t d, int order, std::vector<double> values);

    int64_t dim() const { return d_; }
    int order() const { return l_; }
    int64_t rank() const { return rank_; }
    TensorStorage storage() const { return storage_; }
    const std::vector<double>& values() const { return values_; }  // dense or packed entries
    const std::vector<double>& factors() const { return Z_; }
    const std::vector<double>& weights() const { return c_; }

    std::vector<double> to_dense() const;   // d^l values
    std::vector<double> to_packed() const;  // C(d+l-1, l) values
    double norm_squared() const { return norm_squared_; }  // ||T||_F^2, computed once

    // G (d x m) = T(u_j, ..., u_j, .) for U (d x m), both row-major. n_threads > 1 splits the column
    // chunks (dense/packed); the result is bitwise the same for any n_threads.
    void contract(const double* U, int64_t m, double* G, int n_threads = 1) const;
    // Same, with caller-owned scratch (reused across calls by the step kernel; single thread).
    void contract_into(const double* U, int64_t m, double* G, std::vector<double>& scratch) const;
    // out (m) = T(u_j, ..., u_j).
    void full_contract(const double* U, int64_t m, double* out, int n_threads = 1) const;

private:
    void walk(const double* Upad, int64_t mp, int64_t chunk_begin, int64_t chunk_end, double* Gpad,
              double* vectors) const;
    void factored_contract(const double* U, int64_t m, double* G, std::vector<double>& scratch) const;

    int64_t d_ = 0, rank_ = 0;
    int l_ = 0;
    TensorStorage storage_ = TensorStorage::dense;
    std::vector<double> values_;  // dense (d^l) or packed (C(d+l-1, l))
    std::vector<double> Z_, c_;   // factored: (d x rank), (rank)
    double norm_squared_ = 0.0;
};

// f(U) = ||sum_j u_j^{(x)l} - T*||_F^2  (halved: 1/2 of it), U (d x m).
//   Gram form: f = sum_{jk} A_jk^l - 2 sum_j <u_j, G_j> + ||T*||^2 with A = U^T U, G = T*(u_j, .., u_j, .);
//   grad = 2 l (U A^{.(l-1)} - G)  (halved: l (U A^{.(l-1)} - G)).
//   Cost per step: O(d m^2) for the Gram part plus the contraction: O(d r m) for a factored target,
//   2 m C(d+l-1, l) multiply-adds for a dense or packed one.
// Observables: beta_k = sum_j <b_k, u_j>^l for the q columns b_k of a basis B (d x q); O(d q m).
class OrthogonalTensorDecompositionKernel {
public:
    struct Workspace {
        std::vector<double> padded, gram, gram_power, contraction, scratch, projection, stack;
    };

    OrthogonalTensorDecompositionKernel(std::shared_ptr<const SymmetricTensor> target, int64_t width,
                                        std::vector<double> basis, int64_t n_basis, bool halved);

    static constexpr Capabilities capabilities{};

    int64_t state_size() const { return d_ * m_; }
    int64_t n_observables() const { return q_; }
    Workspace workspace() const;
    double loss_and_grad(const double* U, double* grad, Workspace& ws, const StepContext& ctx) const;
    double observe(const double* U, double* out, Workspace& ws) const;

private:
    // Returns the loss and leaves in ws what the gradient needs: dense/packed targets ws.gram_power =
    // A^{.(l-1)} and ws.contraction = G; factored targets the stacked [U Z] and [A^{.(l-1)}; -c W^{.(l-1)}].
    double loss_parts(const double* U, Workspace& ws) const;
    std::shared_ptr<const SymmetricTensor> target_;
    int64_t d_, m_, q_;
    int l_;
    bool halved_;
    std::vector<double> basis_;  // (d x q)
};

}  // namespace trajcore
