#include "linalg.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace trajcore::linalg {

// Vector shuffles with constant lane lists (clang, GCC 12 and later); gemm_kernels.inc falls back to
// __builtin_shuffle otherwise.
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define TRAJCORE_HAS_SHUFFLEVECTOR 1
#endif

namespace generic {
constexpr int W = 2;
typedef double vec __attribute__((vector_size(16)));
typedef vec half_vec;
typedef vec pair_vec;
#include "gemm_kernels.inc"
}

#if defined(__x86_64__) && defined(__GNUC__)
#define TRAJCORE_X86_DISPATCH 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
constexpr int W = 4;
typedef double vec __attribute__((vector_size(32)));
typedef double half_vec __attribute__((vector_size(16)));
typedef half_vec pair_vec;
#include "gemm_kernels.inc"
}
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
namespace avx512 {
constexpr int W = 8;
typedef double vec __attribute__((vector_size(64)));
typedef double half_vec __attribute__((vector_size(32)));
typedef double pair_vec __attribute__((vector_size(16)));
#include "gemm_kernels.inc"
}
#pragma GCC pop_options
#endif

namespace {

using small_gemm_fn = void (*)(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                               const double*, int64_t, double, double*, int64_t);
using dot_fn = double (*)(int64_t, const double*, const double*);
using all_finite_fn = bool (*)(int64_t, const double*);
using scaled_difference_fn = double (*)(int64_t, const double*, const double*, double, double*);
using transpose_fn = void (*)(int64_t, int64_t, const double*, int64_t, double*, int64_t);

struct Dispatch {
    small_gemm_fn gemm = generic::gemm;
    dot_fn dot = generic::dot;
    all_finite_fn all_finite = generic::all_finite;
    transpose_fn transpose = generic::transpose;
    scaled_difference_fn scaled_difference = generic::scaled_difference;
    const char* isa = "generic";
    Dispatch() {
#ifdef TRAJCORE_X86_DISPATCH
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512dq")) {
            gemm = avx512::gemm;
            dot = avx512::dot;
            all_finite = avx512::all_finite;
            transpose = avx512::transpose;
            scaled_difference = avx512::scaled_difference;
            isa = "avx512";
        } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            gemm = avx2::gemm;
            dot = avx2::dot;
            all_finite = avx2::all_finite;
            transpose = avx2::transpose;
            scaled_difference = avx2::scaled_difference;
            isa = "avx2";
        }
#endif
    }
};

const Dispatch& dispatch() {
    static const Dispatch d;
    return d;
}

std::atomic<dgemm_fn> blas_dgemm{nullptr};
std::atomic<int64_t> blas_min_multiply_adds{INT64_MAX};

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
bool try_blas(char trans_a, char trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* A,
              int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
    dgemm_fn fn = blas_dgemm.load(std::memory_order_relaxed);
    if (fn == nullptr || m * n * k < blas_min_multiply_adds.load(std::memory_order_relaxed)) return false;
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX) return false;
    int mm = static_cast<int>(n), nn = static_cast<int>(m), kk = static_cast<int>(k);
    int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
    fn(&trans_b, &trans_a, &mm, &nn, &kk, &alpha, const_cast<double*>(B), &lb, const_cast<double*>(A), &la,
       &beta, C, &lc);
    return true;
}

}  // namespace

void gemm_nn(int64_t m, int64_t n, int64_t k, double alpha, const double* A, int64_t lda, const double* B,
             int64_t ldb, double beta, double* C, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (try_blas('N', 'N', m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    dispatch().gemm(m, n, k, alpha, A, lda, 1, B, ldb, beta, C, ldc);
}

void gemm_tn(int64_t m, int64_t n, int64_t k, double alpha, const double* A, int64_t lda, const double* B,
             int64_t ldb, double beta, double* C, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (try_blas('T', 'N', m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    dispatch().gemm(m, n, k, alpha, A, 1, lda, B, ldb, beta, C, ldc);
}

void gemm_nt(int64_t m, int64_t n, int64_t k, double alpha, const double* A, int64_t lda, const double* B,
             int64_t ldb, double beta, double* C, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (try_blas('N', 'T', m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    // B^T into a per-thread buffer (O(n k) moves) so the product runs in the vector kernel.
    thread_local std::vector<double> transposed;
    transposed.resize(static_cast<std::size_t>(n * k));
    transpose(n, k, B, ldb, transposed.data(), n);
    dispatch().gemm(m, n, k, alpha, A, lda, 1, transposed.data(), n, beta, C, ldc);
}

void gram(int64_t n, int64_t k, const double* A, int64_t lda, double beta, double* C, int64_t ldc) {
    if (n == 0) return;
    // Row blocks of 8 from the diagonal on, each mirrored below the diagonal by an in-register
    // transpose, save work once there are three of them; below that the extra calls cost more than
    // the skipped lower blocks (measured at n = 16 and 20).
    constexpr int64_t kRows = 8;
    const bool blas = blas_dgemm.load(std::memory_order_relaxed) != nullptr && n * n * k >= blas_threshold();
    if (blas || n < 3 * kRows) {
        gemm_tn(n, n, k, 1.0, A, lda, A, lda, beta, C, ldc);
        return;
    }
    const Dispatch& kernels = dispatch();
    for (int64_t i0 = 0; i0 < n; i0 += kRows) {
        const int64_t rows = std::min(kRows, n - i0);
        kernels.gemm(rows, n - i0, k, 1.0, A + i0, 1, lda, A + i0, lda, beta, C + i0 * ldc + i0, ldc);
        // rows i0.. left of the diagonal = columns i0.. above it, computed by the blocks before
        kernels.transpose(i0, rows, C + i0, ldc, C + i0 * ldc, ldc);
    }
}

double dot(int64_t n, const double* x, const double* y) { return dispatch().dot(n, x, y); }

bool all_finite(int64_t n, const double* x) { return dispatch().all_finite(n, x); }

double scaled_difference(int64_t n, const double* x, const double* y, double a, double* out) {
    return dispatch().scaled_difference(n, x, y, a, out);
}

void transpose(int64_t m, int64_t n, const double* A, int64_t lda, double* out, int64_t ldo) {
    dispatch().transpose(m, n, A, lda, out, ldo);
}

void set_blas_dgemm(dgemm_fn fn) { blas_dgemm.store(fn); }
bool has_blas() { return blas_dgemm.load() != nullptr; }
void set_blas_threshold(int64_t multiply_adds) { blas_min_multiply_adds.store(multiply_adds); }
int64_t blas_threshold() { return blas_min_multiply_adds.load(); }
const char* kernel_isa() { return dispatch().isa; }

}  // namespace trajcore::linalg
