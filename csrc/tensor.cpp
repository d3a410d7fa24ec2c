#include "tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <climits>
#include <exception>
#include <numeric>
#include <string>

#include "kernels.hpp"
#include "linalg.hpp"

#ifdef TRAJCORE_OPENMP
#include <omp.h>
#endif

namespace trajcore {

using linalg::gemm_nn;
using linalg::gemm_tn;

namespace {

using kernels::WalkSpec;

inline double ipow(double x, int n) {
    double r = 1.0;
    for (int i = 0; i < n; ++i) r *= x;
    return r;
}

// Next non-decreasing multi-index in lexicographic order (the packed order); false after the last.
bool next_sorted(std::vector<int64_t>& a, int64_t d) {
    int p = static_cast<int>(a.size()) - 1;
    while (p >= 0 && a[p] == d - 1) --p;
    if (p < 0) return false;
    ++a[p];
    for (size_t q = static_cast<size_t>(p) + 1; q < a.size(); ++q) a[q] = a[p];
    return true;
}

// Next multi-index of {0..d-1}^l in row-major order; false after the last.
bool next_index(std::vector<int64_t>& a, int64_t d) {
    int p = static_cast<int>(a.size()) - 1;
    while (p >= 0 && a[p] == d - 1) a[p--] = 0;
    if (p < 0) return false;
    ++a[p];
    return true;
}

int64_t flat_offset(const std::vector<int64_t>& a, int64_t d) {
    int64_t off = 0;
    for (int64_t v : a) off = off * d + v;
    return off;
}

// Distinct permutations l! / prod(multiplicity!) of a sorted multi-index.
double permutation_count(const std::vector<int64_t>& a) {
    double n = 1.0;
    int run = 0;
    for (size_t q = 0; q < a.size(); ++q) {
        run = (q > 0 && a[q] == a[q - 1]) ? run + 1 : 1;
        n = n * static_cast<double>(q + 1) / static_cast<double>(run);
    }
    return n;
}

void check_order(int order) {
    require(order >= 2 && order <= kMaxOrder,
            "order: expected 2 <= l <= " + std::to_string(kMaxOrder) + ", got " + std::to_string(order));
}

// U and G rows with the same index are read and written together by the walk; an offset between the
// two buffers that is a multiple of 4 KiB (d * mp * 8 bytes often is) makes every load of U look like
// it depends on the previous store to G (4K aliasing). Five cache lines of skew avoid that.
constexpr int64_t kBufferSkew = 40;

int64_t padded(int64_t m) { return (m + kColumnChunk - 1) / kColumnChunk * kColumnChunk; }

// U (d x m) row-major -> chunk-major (mp / 8, d, 8) with zero padding, and back.
void to_chunks(const double* U, int64_t d, int64_t m, double* out) {
    const int64_t mp = padded(m);
    std::fill(out, out + d * mp, 0.0);
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < m; ++j) out[((j / 8) * d + i) * 8 + j % 8] = U[i * m + j];
}

void from_chunks(const double* in, int64_t d, int64_t m, double* G) {
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < m; ++j) G[i * m + j] = in[((j / 8) * d + i) * 8 + j % 8];
}

// Chunks processed together by a leaf: as many (up to 4) as keep their U and G rows (2 x d x 64 bytes
// per chunk) within 32 KiB of L1.
int64_t chunk_group(int64_t d) { return std::max<int64_t>(1, std::min<int64_t>(4, 32768 / (128 * d))); }

// Shallowest depth k >= 1 whose subtrees (at most C(d + l - k - 1, l - k) values) fit in the cache
// budget, so that the column chunks below it reuse the subtree's values from cache.
int blocking_depth(int64_t d, int order) {
    constexpr int64_t kSubtreeBudget = 32 * 1024;  // values (256 KiB)
    for (int k = 1; k < order - 1; ++k)
        if (packed_size(d, order - k) <= kSubtreeBudget) return k;
    return order - 1;
}

}  // namespace

int64_t packed_size(int64_t d, int order) {
    check_order(order);
    require(d > 0, "d: must be positive");
    require(d <= INT64_MAX - order, "packed size overflows int64");
    // C(d+i-1, i) = C(d+i-2, i-1) (d+i-1) / i, exact after every step, in 64 bits (plain C++17): with
    // g = gcd(r, i), i / g divides d+i-1, so r (d+i-1) / i = (r / g) ((d+i-1) / (i / g)).
    int64_t r = 1;
    for (int64_t i = 1; i <= order; ++i) {
        const int64_t g = std::gcd(r, i);
        const int64_t a = r / g, c = (d + i - 1) / (i / g);
        require(a <= INT64_MAX / c, "packed size overflows int64");
        r = a * c;
    }
    return r;
}

int64_t dense_size(int64_t d, int order) {
    check_order(order);
    require(d > 0, "d: must be positive");
    int64_t n = 1;
    for (int i = 0; i < order; ++i) n = checked_size(n, d, "dense tensor");
    return n;
}

std::vector<double> packed_multiplicities(int64_t d, int order) {
    std::vector<double> out(static_cast<size_t>(packed_size(d, order)));
    std::vector<int64_t> a(static_cast<size_t>(order), 0);
    size_t i = 0;
    do out[i++] = permutation_count(a);
    while (next_sorted(a, d));
    return out;
}

double dense_asymmetry(int64_t d, int order, const double* values) {
    dense_size(d, order);
    std::vector<int64_t> a(static_cast<size_t>(order), 0), sorted(a);
    double worst = 0.0;
    int64_t flat = 0;
    do {
        sorted = a;
        std::sort(sorted.begin(), sorted.end());
        const double diff = std::fabs(values[flat] - values[flat_offset(sorted, d)]);
        if (!(diff <= worst)) worst = diff;  // NaN propagates
        ++flat;
    } while (next_index(a, d));
    return worst;
}

SymmetricTensor SymmetricTensor::from_factors(int64_t d, int order, std::vector<double> Z, std::vector<double> c) {
    check_order(order);
    require(d > 0, "Z: d must be positive");
    const int64_t r = static_cast<int64_t>(c.size());
    require(r > 0, "c: at least one component");
    require(static_cast<int64_t>(Z.size()) == checked_size(d, r, "Z"), "Z: expected shape (d, r)");
    SymmetricTensor t;
    t.d_ = d;
    t.l_ = order;
    t.rank_ = r;
    t.storage_ = TensorStorage::factored;
    t.Z_ = std::move(Z);
    t.c_ = std::move(c);
    // ||sum_k c_k z_k^l||^2 = sum_{k,k'} c_k c_k' <z_k, z_k'>^l  (exact for non-orthogonal z too).
    std::vector<double> gram(static_cast<size_t>(r * r));
    gemm_tn(r, r, d, 1.0, t.Z_.data(), r, t.Z_.data(), r, 0.0, gram.data(), r);
    for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < r; ++j) t.norm_squared_ += t.c_[i] * t.c_[j] * ipow(gram[i * r + j], order);
    return t;
}

SymmetricTensor SymmetricTensor::from_dense(int64_t d, int order, std::vector<double> values) {
    require(static_cast<int64_t>(values.size()) == dense_size(d, order), "T: expected d^l entries");
    SymmetricTensor t;
    t.d_ = d;
    t.l_ = order;
    t.storage_ = TensorStorage::dense;
    t.values_ = std::move(values);
    // The dense array is read at its sorted entries only (as by the contraction), so the norm of the
    // tensor they define is the packed sum; equal to sum v^2 for a symmetric array.
    std::vector<int64_t> a(static_cast<size_t>(order), 0);
    do t.norm_squared_ += permutation_count(a) * ipow(t.values_[flat_offset(a, d)], 2);
    while (next_sorted(a, d));
    t.rank_ = 0;
    return t;
}

SymmetricTensor SymmetricTensor::from_packed(int64_t d, int order, std::vector<double> values) {
    require(static_cast<int64_t>(values.size()) == packed_size(d, order), "T: expected C(d+l-1, l) entries");
    SymmetricTensor t;
    t.d_ = d;
    t.l_ = order;
    t.storage_ = TensorStorage::packed;
    t.values_ = std::move(values);
    std::vector<int64_t> a(static_cast<size_t>(order), 0);
    size_t i = 0;
    do t.norm_squared_ += permutation_count(a) * ipow(t.values_[i++], 2);
    while (next_sorted(a, d));
    return t;
}

std::vector<double> SymmetricTensor::to_packed() const {
    if (storage_ == TensorStorage::packed) return values_;
    std::vector<double> out(static_cast<size_t>(packed_size(d_, l_)));
    std::vector<int64_t> a(static_cast<size_t>(l_), 0);
    size_t i = 0;
    do {
        if (storage_ == TensorStorage::dense) {
            out[i++] = values_[flat_offset(a, d_)];
        } else {
            double v = 0.0;
            for (int64_t k = 0; k < rank_; ++k) {
                double p = c_[k];
                for (int64_t idx : a) p *= Z_[idx * rank_ + k];
                v += p;
            }
            out[i++] = v;
        }
    } while (next_sorted(a, d_));
    return out;
}

std::vector<double> SymmetricTensor::to_dense() const {
    const int64_t n = dense_size(d_, l_);
    std::vector<double> out(static_cast<size_t>(n));
    if (storage_ == TensorStorage::dense) return values_;
    if (storage_ == TensorStorage::packed) {
        // Each distinct entry goes to all its distinct permutations (std::next_permutation on a sorted
        // multi-index enumerates exactly those): d^l writes.
        std::vector<int64_t> a(static_cast<size_t>(l_), 0), perm;
        size_t i = 0;
        do {
            perm = a;
            const double v = values_[i++];
            do out[static_cast<size_t>(flat_offset(perm, d_))] = v;
            while (std::next_permutation(perm.begin(), perm.end()));
        } while (next_sorted(a, d_));
        return out;
    }
    // Factored: for each prefix (a_1..a_{l-1}), w_k = c_k prod z_k[a_q], then the row T[prefix, :] = Z w:
    // O(d^l r) multiply-adds.
    std::vector<int64_t> prefix(static_cast<size_t>(l_ - 1), 0);
    std::vector<double> w(static_cast<size_t>(rank_));
    int64_t row = 0;
    do {
        for (int64_t k = 0; k < rank_; ++k) {
            double p = c_[k];
            for (int64_t idx : prefix) p *= Z_[idx * rank_ + k];
            w[k] = p;
        }
        double* dst = out.data() + row * d_;
        for (int64_t a = 0; a < d_; ++a) dst[a] = linalg::dot(rank_, Z_.data() + a * rank_, w.data());
        ++row;
    } while (next_index(prefix, d_));
    return out;
}

// G = Z (c * (Z^T U)^{.(l-1)}):  O(d r m).
void SymmetricTensor::factored_contract(const double* U, int64_t m, double* G, std::vector<double>& scratch) const {
    scratch.resize(static_cast<size_t>(rank_ * m));
    double* W = scratch.data();
    gemm_tn(rank_, m, d_, 1.0, Z_.data(), rank_, U, m, 0.0, W, m);
    for (int64_t k = 0; k < rank_; ++k)
        for (int64_t j = 0; j < m; ++j) W[k * m + j] = c_[k] * ipow(W[k * m + j], l_ - 1);
    gemm_nn(d_, m, rank_, 1.0, Z_.data(), rank_, W, m, 0.0, G, m);
}

void SymmetricTensor::walk(const double* Upad, int64_t mp, int64_t chunk_begin, int64_t chunk_end, double* Gpad,
                           double* vectors) const {
    if (chunk_begin >= chunk_end) return;
    WalkSpec spec{values_.data(), storage_ == TensorStorage::dense, d_, l_, Upad, mp, chunk_begin, chunk_end,
                  Gpad, vectors, blocking_depth(d_, l_), chunk_group(d_)};
    kernels::active().sorted_walk(spec);
}

void SymmetricTensor::contract_into(const double* U, int64_t m, double* G, std::vector<double>& scratch) const {
    if (m == 0) return;
    if (storage_ == TensorStorage::factored) {
        factored_contract(U, m, G, scratch);
        return;
    }
    const int64_t mp = padded(m);
    // scratch = [U chunk-major (d x mp) | skew | G chunk-major (d x mp) | walk vectors (2 l mp)]
    scratch.assign(static_cast<size_t>((2 * d_ + 2 * l_) * mp + kBufferSkew), 0.0);
    double* Upad = scratch.data();
    double* Gpad = Upad + d_ * mp + kBufferSkew;
    to_chunks(U, d_, m, Upad);
    walk(Upad, mp, 0, mp / kColumnChunk, Gpad, Gpad + d_ * mp);
    from_chunks(Gpad, d_, m, G);
}

void SymmetricTensor::contract(const double* U, int64_t m, double* G, int n_threads) const {
    if (m == 0) return;
    if (storage_ == TensorStorage::factored || n_threads <= 1) {
        std::vector<double> scratch;
        contract_into(U, m, G, scratch);
        return;
    }
    const int64_t mp = padded(m), chunks = mp / kColumnChunk;
    const int threads = static_cast<int>(std::min<int64_t>(n_threads, chunks));
    std::vector<double> buffer(static_cast<size_t>(2 * d_ * mp + kBufferSkew), 0.0);
    double* Upad = buffer.data();
    double* Gpad = Upad + d_ * mp + kBufferSkew;
    to_chunks(U, d_, m, Upad);
    // Static contiguous split of the column chunks: each column is computed by exactly the same
    // sequence of operations whatever the thread count.
    std::exception_ptr error;
#ifdef TRAJCORE_OPENMP
#pragma omp parallel for schedule(static, 1) num_threads(threads)
#endif
    for (int t = 0; t < threads; ++t) {
        try {
            std::vector<double> vectors(static_cast<size_t>(2 * l_ * mp));
            walk(Upad, mp, chunks * t / threads, chunks * (t + 1) / threads, Gpad, vectors.data());
        } catch (...) {
#ifdef TRAJCORE_OPENMP
#pragma omp critical
#endif
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
    from_chunks(Gpad, d_, m, G);
}

// T(u_j, ..., u_j) = <u_j, T(u_j, ..., u_j, .)>.
void SymmetricTensor::full_contract(const double* U, int64_t m, double* out, int n_threads) const {
    std::vector<double> G(static_cast<size_t>(d_ * m));
    contract(U, m, G.data(), n_threads);
    std::fill(out, out + m, 0.0);
    for (int64_t i = 0; i < d_; ++i)
        for (int64_t j = 0; j < m; ++j) out[j] += U[i * m + j] * G[i * m + j];
}

// ---------------------------------------------------------------------------------------------
// Orthogonal symmetric tensor decomposition

OrthogonalTensorDecompositionKernel::OrthogonalTensorDecompositionKernel(std::shared_ptr<const SymmetricTensor> target,
                                                                         int64_t width, std::vector<double> basis,
                                                                         int64_t n_basis, bool halved)
    : target_(std::move(target)), d_(0), m_(width), q_(n_basis), l_(0), halved_(halved),
      basis_(std::move(basis)) {
    require(target_ != nullptr, "target: missing");
    d_ = target_->dim();
    l_ = target_->order();
    require(width > 0, "width: must be positive");
    require(n_basis >= 0 && static_cast<int64_t>(basis_.size()) == checked_size(d_, n_basis, "basis"),
            "basis: expected shape (d, q)");
    checked_size(d_, m_, "tensor decomposition state");
}

OrthogonalTensorDecompositionKernel::Workspace OrthogonalTensorDecompositionKernel::workspace() const {
    Workspace ws;
    // Products run on column-padded copies (mp = m rounded up to 8 columns, zeros in the padding) so the
    // small GEMMs stay in full vector registers: for m = 10 the 2 leftover columns would otherwise take
    // the scalar path and cost more than the 8 vectorised ones.
    const int64_t mp = padded(m_);
    const int64_t extra = target_->storage() == TensorStorage::factored ? target_->rank() : 0;
    ws.padded.assign(static_cast<size_t>(2 * d_ * mp), 0.0);
    ws.gram.assign(static_cast<size_t>((m_ + extra) * mp), 0.0);
    ws.gram_power.assign(static_cast<size_t>((m_ + extra) * mp), 0.0);
    ws.contraction.resize(static_cast<size_t>(d_ * m_));
    ws.projection.resize(static_cast<size_t>(q_ * m_));
    if (extra > 0) ws.stack.resize(static_cast<size_t>(d_ * (m_ + extra)));
    return ws;
}

// Fills the first m of mp columns of row i of `out` (the padding stays zero).
static void copy_padded(const double* U, int64_t d, int64_t m, int64_t mp, double* out) {
    for (int64_t i = 0; i < d; ++i) std::copy(U + i * m, U + (i + 1) * m, out + i * mp);
}

double OrthogonalTensorDecompositionKernel::loss_parts(const double* U, Workspace& ws) const {
    const int64_t d = d_, m = m_, mp = padded(m_);
    double* Upad = ws.padded.data();
    copy_padded(U, d, m, mp, Upad);
    double fit2 = 0.0, cross = 0.0;
    if (target_->storage() == TensorStorage::factored) {
        // One product for both Gram matrices: [A; W] = [U Z]^T U with A = U^T U (m x m), W = Z^T U (r x m),
        // then gram_power = [A^{.(l-1)}; -c W^{.(l-1)}] so that [U Z] gram_power = U A^{.(l-1)} - G.
        // Two small GEMMs per step, O(d m (m + r)).
        const int64_t r = target_->rank(), w = m + r;
        const std::vector<double>& Z = target_->factors();
        const std::vector<double>& c = target_->weights();
        double* stack = ws.stack.data();
        for (int64_t i = 0; i < d; ++i) {
            std::copy(U + i * m, U + (i + 1) * m, stack + i * w);
            std::copy(Z.data() + i * r, Z.data() + (i + 1) * r, stack + i * w + m);
        }
        gemm_tn(w, mp, d, 1.0, stack, w, Upad, mp, 0.0, ws.gram.data(), mp);
        for (int64_t k = 0; k < r; ++k)
            for (int64_t j = 0; j < m; ++j) {
                const int64_t i = (m + k) * mp + j;
                const double p = c[k] * ipow(ws.gram[i], l_ - 1);
                ws.gram_power[i] = -p;
                cross += p * ws.gram[i];  // sum_j T*(u_j, ..., u_j) = sum_jk c_k <z_k, u_j>^l
            }
    } else {
        gemm_tn(m, mp, d, 1.0, U, m, Upad, mp, 0.0, ws.gram.data(), mp);  // A = U^T U: O(d m^2)
        target_->contract_into(U, m, ws.contraction.data(), ws.scratch);
        cross = linalg::dot(d * m, U, ws.contraction.data());  // sum_j T*(u_j, ..., u_j)
    }
    for (int64_t i = 0; i < m; ++i)  // ||sum_j u_j^l||^2 = sum_jk A_jk^l
        for (int64_t j = 0; j < m; ++j) {
            const double p = ipow(ws.gram[i * mp + j], l_ - 1);
            ws.gram_power[i * mp + j] = p;
            fit2 += p * ws.gram[i * mp + j];
        }
    const double loss = fit2 - 2.0 * cross + target_->norm_squared();
    return halved_ ? 0.5 * loss : loss;
}

double OrthogonalTensorDecompositionKernel::loss_and_grad(const double* U, double* grad, Workspace& ws,
                                                          const StepContext&) const {
    const double loss = loss_parts(U, ws);
    const double scale = (halved_ ? 1.0 : 2.0) * static_cast<double>(l_);
    const int64_t mp = padded(m_);
    double* out = ws.padded.data() + d_ * mp;
    if (target_->storage() == TensorStorage::factored) {
        const int64_t w = m_ + target_->rank();  // [U Z] [A^{l-1}; -c W^{l-1}] = U A^{.(l-1)} - G
        gemm_nn(d_, mp, w, 1.0, ws.stack.data(), w, ws.gram_power.data(), mp, 0.0, out, mp);
        for (int64_t i = 0; i < d_; ++i)
            for (int64_t j = 0; j < m_; ++j) grad[i * m_ + j] = scale * out[i * mp + j];
        return loss;
    }
    gemm_nn(d_, mp, m_, 1.0, U, m_, ws.gram_power.data(), mp, 0.0, out, mp);  // U A^{.(l-1)}: O(d m^2)
    const double* G = ws.contraction.data();
    for (int64_t i = 0; i < d_; ++i)
        for (int64_t j = 0; j < m_; ++j) grad[i * m_ + j] = scale * (out[i * mp + j] - G[i * m_ + j]);
    return loss;
}

double OrthogonalTensorDecompositionKernel::observe(const double* U, double* out, Workspace& ws) const {
    if (q_ > 0) {
        double* P = ws.projection.data();
        gemm_tn(q_, m_, d_, 1.0, basis_.data(), q_, U, m_, 0.0, P, m_);  // B^T U: O(d q m)
        for (int64_t k = 0; k < q_; ++k) {
            double beta = 0.0;
            for (int64_t j = 0; j < m_; ++j) beta += ipow(P[k * m_ + j], l_);
            out[k] = beta;
        }
    }
    return loss_parts(U, ws);
}

}  // namespace trajcore
