// The C++ kernels against naive loops, without Python: every compiled kernel variant the CPU can run
// (the small GEMM, dot, scaled difference, finiteness check, transposes, the sorted tensor walk), the
// step kernels (symmetric and asymmetric matrix factorization, orthogonal tensor decomposition, the deep
// linear network) and the Philox random numbers. Built and run by tests/cpp/run, natively, with clang,
// in the portable configuration and cross-compiled for aarch64 (under qemu-user).
//
// The step kernels are tested through every member the driver (driver.hpp) calls: loss_and_grad,
// loss_and_step (next final or not, and the driver's sequence in which a step reuses the products the
// previous one prepared), observe (the recorded loss, also near convergence where the Gram form
// cancels, and the coefficients) and post_step; and through run_chunk itself against a naive loop of GD,
// heavy-ball and noisy steps. They call linalg, which runs the variant kernels::active() picked once,
// so they run once, with that variant (the generic one in the portable and aarch64 builds).
//
// When the portable variant is linked in (TRAJCORE_TEST_PORTABLE, kernels_generic.cpp compiled a second
// time with TRAJCORE_PORTABLE), it must give the generic variant's bits where the compiler cannot fuse
// multiply-adds behind the code's back (no FMA in the baseline instruction set, as on x86-64; GCC
// contracts a * b + c on aarch64 even with -std=c++17, differently for vector types and plain loops).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "kernels.hpp"
#include "driver.hpp"
#include "linalg.hpp"
#include "linear_network.hpp"
#include "matrix_factorization.hpp"
#include "rng.hpp"
#include "tensor.hpp"

#ifdef TRAJCORE_TEST_PORTABLE
namespace trajcore::kernels {
extern const Table portable_kernels;
}
#endif

using trajcore::kernels::Table;

namespace {

int failures = 0;
int checks = 0;

void check(bool ok, const std::string& what) {
    ++checks;
    if (!ok) {
        ++failures;
        if (failures <= 30) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    }
}

// Deterministic values in [-1, 1) (a 64-bit LCG; the test must not depend on the library's RNG).
struct Values {
    uint64_t state;
    explicit Values(uint64_t seed) : state(seed * 6364136223846793005ULL + 1442695040888963407ULL) {}
    double next() {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<double>(state >> 11) * (2.0 / 9007199254740992.0) - 1.0;
    }
    std::vector<double> vector(size_t n) {
        std::vector<double> v(n);
        for (double& x : v) x = next();
        return v;
    }
};

constexpr double kEps = std::numeric_limits<double>::epsilon();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string dims(const char* name, int64_t a, int64_t b, int64_t c) {
    return std::string(name) + " " + std::to_string(a) + "x" + std::to_string(b) + "x" + std::to_string(c);
}

// Every entry within the rounding bound of a sum of `terms` products of magnitudes summing to `scale`.
bool close(double got, double want, double scale, int64_t terms) {
    return std::fabs(got - want) <= 4.0 * static_cast<double>(terms + 2) * kEps * scale + 1e-300;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

// ---- small GEMM: C = alpha op(A) B + beta C ---------------------------------------------------------

std::vector<double> run_gemm(const Table& t, int64_t m, int64_t n, int64_t k, double alpha, bool a_transposed,
                             const std::vector<double>& A, const std::vector<double>& B, double beta,
                             std::vector<double> C, int64_t ldc) {
    const int64_t a_row = a_transposed ? 1 : k, a_col = a_transposed ? m : 1;  // A is (k x m) when transposed
    t.gemm(m, n, k, alpha, A.data(), a_row, a_col, B.data(), n, beta, C.data(), ldc);
    return C;
}

std::vector<double> test_gemm(const Table& t) {
    const int64_t sizes[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 23, 33};
    const int64_t depths[] = {0, 1, 3, 8, 29};
    std::vector<double> all;  // every result, for the bitwise comparison of variants
    Values values(1);
    int combo = 0;
    for (int64_t m : sizes)
        for (int64_t n : sizes)
            for (int64_t k : depths) {
                ++combo;
                const bool tr = combo % 2 == 0;
                const double alpha = combo % 3 == 0 ? -0.5 : 1.0;
                const double beta = combo % 4 == 0 ? 0.25 : (combo % 4 == 1 ? 1.0 : 0.0);
                const int64_t ldc = n + 3;  // padding columns must stay untouched
                std::vector<double> A = values.vector(static_cast<size_t>(m * k)), B = values.vector(
                                                                                      static_cast<size_t>(k * n));
                std::vector<double> C0 = values.vector(static_cast<size_t>(m * ldc));
                // beta = 0 must not read C: NaN there would propagate.
                if (beta == 0.0)
                    for (int64_t i = 0; i < m; ++i)
                        for (int64_t j = 0; j < n; ++j) C0[i * ldc + j] = kNaN;
                std::vector<double> C = run_gemm(t, m, n, k, alpha, tr, A, B, beta, C0, ldc);
                bool ok = true;
                for (int64_t i = 0; i < m; ++i)
                    for (int64_t j = 0; j < ldc; ++j) {
                        if (j >= n) {
                            ok &= same_bits({C[i * ldc + j]}, {C0[i * ldc + j]});
                            continue;
                        }
                        double sum = 0.0, scale = 0.0;
                        for (int64_t p = 0; p < k; ++p) {
                            const double a = tr ? A[p * m + i] : A[i * k + p];
                            sum += a * B[p * n + j];
                            scale += std::fabs(a * B[p * n + j]);
                        }
                        const double old = beta == 0.0 ? 0.0 : beta * C0[i * ldc + j];
                        ok &= close(C[i * ldc + j], alpha * sum + old, std::fabs(alpha) * scale + std::fabs(old), k);
                    }
                check(ok, std::string(t.isa) + dims(" gemm", m, n, k) + (tr ? " A^T" : ""));
                all.insert(all.end(), C.begin(), C.end());
            }
    // Long products with a small C take the k-blocked path (k > 256).
    for (int64_t k : {257, 700}) {
        const int64_t m = 5, n = 9;
        std::vector<double> A = values.vector(static_cast<size_t>(m * k)), B = values.vector(static_cast<size_t>(k * n));
        std::vector<double> C = run_gemm(t, m, n, k, 1.0, false, A, B, 0.0, std::vector<double>(m * n), n);
        bool ok = true;
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
                double sum = 0.0, scale = 0.0;
                for (int64_t p = 0; p < k; ++p) sum += A[i * k + p] * B[p * n + j], scale += std::fabs(A[i * k + p] * B[p * n + j]);
                ok &= close(C[i * n + j], sum, scale, k);
            }
        check(ok, std::string(t.isa) + dims(" gemm (k-blocked)", m, n, k));
        all.insert(all.end(), C.begin(), C.end());
    }
    return all;
}

// ---- transposes, dot, scaled difference, finiteness ---------------------------------------------------

std::vector<double> test_vector_kernels(const Table& t) {
    std::vector<double> all;
    Values values(2);
    for (int64_t m : {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33})
        for (int64_t n : {0, 1, 2, 3, 4, 6, 8, 11, 16, 19, 33}) {
            const int64_t lda = n + 2, ldo = m + 5;
            std::vector<double> A = values.vector(static_cast<size_t>(m * lda));
            std::vector<double> out(static_cast<size_t>(n * ldo), -7.0);
            t.transpose(m, n, A.data(), lda, out.data(), ldo);
            bool ok = true;
            for (int64_t j = 0; j < n; ++j)
                for (int64_t i = 0; i < ldo; ++i) ok &= out[j * ldo + i] == (i < m ? A[i * lda + j] : -7.0);
            check(ok, std::string(t.isa) + dims(" transpose", m, n, 0));
        }
    for (int64_t n : {0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000}) {
        std::vector<double> x = values.vector(static_cast<size_t>(n)), y = values.vector(static_cast<size_t>(n));
        double sum = 0.0, scale = 0.0;
        for (int64_t i = 0; i < n; ++i) sum += x[i] * y[i], scale += std::fabs(x[i] * y[i]);
        const double dot = t.dot(n, x.data(), y.data());
        check(close(dot, sum, scale, n), std::string(t.isa) + " dot n=" + std::to_string(n));
        check(same_bits({dot}, {t.dot(n, x.data(), y.data())}), std::string(t.isa) + " dot repeatable");
        std::vector<double> out(static_cast<size_t>(n) + 1, -7.0);
        const double squares = t.scaled_difference(n, x.data(), y.data(), -1.5, out.data());
        double want = 0.0, scale2 = 0.0;
        bool exact = out[n] == -7.0;
        for (int64_t i = 0; i < n; ++i) {
            const double u = x[i] - y[i];
            want += u * u, scale2 += u * u;
            exact &= same_bits({out[i]}, {-1.5 * u});  // one rounding per entry: exact
        }
        check(exact && close(squares, want, scale2, n), std::string(t.isa) + " scaled_difference n=" + std::to_string(n));
        all.push_back(dot);
        all.push_back(squares);
    }
    for (int64_t n : {0, 1, 2, 3, 5, 8, 9, 16, 17, 40}) {
        std::vector<double> x = values.vector(static_cast<size_t>(n));
        if (n > 0) x[0] = 1e308;  // large but finite: x * 0 is still 0
        check(t.all_finite(n, x.data()), std::string(t.isa) + " all_finite finite n=" + std::to_string(n));
        for (int64_t i = 0; i < n; ++i)
            for (double bad : {kNaN, std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()}) {
                std::vector<double> y = x;
                y[i] = bad;
                check(!t.all_finite(n, y.data()), std::string(t.isa) + " all_finite bad at " + std::to_string(i));
            }
    }
    return all;
}

// ---- the sorted walk: G[:, j] = T(u_j, ..., u_j, .) ---------------------------------------------------

// Sorted multi-indices of length l over {0..d-1} in lexicographic (packed) order.
std::vector<std::vector<int64_t>> sorted_indices(int64_t d, int l) {
    std::vector<std::vector<int64_t>> out;
    std::vector<int64_t> a(static_cast<size_t>(l), 0);
    while (true) {
        out.push_back(a);
        int p = l - 1;
        while (p >= 0 && a[p] == d - 1) --p;
        if (p < 0) return out;
        ++a[p];
        for (int q = p + 1; q < l; ++q) a[q] = a[p];
    }
}

std::vector<double> test_walk(const Table& t) {
    std::vector<double> all;
    Values values(3);
    for (int l : {2, 3, 4})
        for (int64_t d : {1, 2, 3, 5, 9})
            for (int64_t m : {1, 8, 13, 40}) {
                const auto index = sorted_indices(d, l);
                std::vector<double> packed = values.vector(index.size());
                // The dense array: every permutation of a sorted index holds its value.
                int64_t dl = 1;
                for (int q = 0; q < l; ++q) dl *= d;
                std::vector<double> dense(static_cast<size_t>(dl));
                for (int64_t flat = 0; flat < dl; ++flat) {
                    std::vector<int64_t> a(static_cast<size_t>(l));
                    int64_t rest = flat;
                    for (int q = l - 1; q >= 0; --q) a[q] = rest % d, rest /= d;
                    std::sort(a.begin(), a.end());
                    size_t k = 0;
                    while (index[k] != a) ++k;
                    dense[flat] = packed[k];
                }
                std::vector<double> U = values.vector(static_cast<size_t>(d * m));
                // naive: sum over all (i_1..i_{l-1}) of T[i_1..i_{l-1}, a] prod_q U[i_q, j]
                std::vector<double> want(static_cast<size_t>(d * m), 0.0), scale(want.size(), 0.0);
                int64_t dl1 = dl / d;
                for (int64_t prefix = 0; prefix < dl1; ++prefix)
                    for (int64_t j = 0; j < m; ++j) {
                        double p = 1.0;
                        for (int64_t rest = prefix, q = 0; q < l - 1; ++q, rest /= d) p *= U[(rest % d) * m + j];
                        for (int64_t a = 0; a < d; ++a) {
                            want[a * m + j] += dense[prefix * d + a] * p;
                            scale[a * m + j] += std::fabs(dense[prefix * d + a] * p);
                        }
                    }
                const int64_t mp = (m + 7) / 8 * 8;
                std::vector<double> Upad(static_cast<size_t>(d * mp), 0.0);
                for (int64_t i = 0; i < d; ++i)
                    for (int64_t j = 0; j < m; ++j) Upad[((j / 8) * d + i) * 8 + j % 8] = U[i * m + j];
                for (bool is_dense : {true, false})
                    for (int split = 1; split < l; ++split)
                        for (int64_t group = 1; group <= 4; ++group) {
                            std::vector<double> G(Upad.size(), 0.0), vectors(static_cast<size_t>(2 * l * mp));
                            trajcore::kernels::WalkSpec spec{is_dense ? dense.data() : packed.data(), is_dense, d, l,
                                                             Upad.data(), mp, 0, mp / 8, G.data(), vectors.data(),
                                                             split, group};
                            t.sorted_walk(spec);
                            bool ok = true;
                            for (int64_t i = 0; i < d; ++i)
                                for (int64_t j = 0; j < m; ++j)
                                    ok &= close(G[((j / 8) * d + i) * 8 + j % 8], want[i * m + j], scale[i * m + j],
                                                dl1);
                            check(ok, std::string(t.isa) + " walk " + (is_dense ? "dense" : "packed") + " l=" +
                                          std::to_string(l) + dims(" d,m,group", d, m, group) +
                                          " split=" + std::to_string(split));
                            all.insert(all.end(), G.begin(), G.end());
                        }
            }
    return all;
}

// ---- step kernels ------------------------------------------------------------------------------------

trajcore::StepContext no_noise() {
    static const std::vector<trajcore::NoiseTerm> none;
    return trajcore::StepContext{1, 0, 0, &none};
}

bool all_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
    double worst = 0.0, size = 0.0;
    for (size_t i = 0; i < want.size(); ++i) worst = std::fmax(worst, std::fabs(got[i] - want[i])),
                                              size = std::fmax(size, std::fabs(want[i]));
    return got.size() == want.size() && worst <= tol * (size + 1.0);
}

// 1/4 ||U U^T - M||^2, gradient (U U^T - M) U, for a dense and a diagonal symmetric M.
void test_symmetric_matrix_factorization() {
    Values values(4);
    for (int64_t d : {1, 3, 7, 12})
        for (int64_t w : {1, 2, 5, 9})
            for (bool diagonal : {false, true}) {
                std::vector<double> M(static_cast<size_t>(d * d), 0.0), diag(static_cast<size_t>(d));
                for (int64_t i = 0; i < d; ++i) {
                    diag[i] = 1.0 + values.next();
                    for (int64_t j = 0; j <= i; ++j) M[i * d + j] = M[j * d + i] = diagonal ? 0.0 : values.next();
                    if (diagonal) M[i * d + i] = diag[i];
                }
                trajcore::TargetMatrix target = diagonal ? trajcore::TargetMatrix::diagonal(d, d, diag)
                                                         : trajcore::TargetMatrix::dense(d, d, M);
                trajcore::PairProjector none(d, 0, {}, d, 0, {}, {}, true);
                trajcore::SymmetricMatrixFactorizationKernel kernel(std::move(target), w, std::move(none));
                auto ws = kernel.workspace();
                std::vector<double> U = values.vector(static_cast<size_t>(d * w)), grad(U.size());
                const double loss = kernel.loss_and_grad(U.data(), grad.data(), ws, no_noise());
                std::vector<double> R(static_cast<size_t>(d * d)), want(U.size(), 0.0);
                double want_loss = 0.0;
                for (int64_t i = 0; i < d; ++i)
                    for (int64_t j = 0; j < d; ++j) {
                        double s = -M[i * d + j];
                        for (int64_t p = 0; p < w; ++p) s += U[i * w + p] * U[j * w + p];
                        R[i * d + j] = s;
                        want_loss += 0.25 * s * s;
                    }
                for (int64_t i = 0; i < d; ++i)
                    for (int64_t p = 0; p < w; ++p)
                        for (int64_t j = 0; j < d; ++j) want[i * w + p] += R[i * d + j] * U[j * w + p];
                check(std::fabs(loss - want_loss) <= 1e-12 * (want_loss + 1.0) && all_close(grad, want, 1e-12),
                      std::string("symmetric MF ") + (diagonal ? "diagonal" : "dense") + dims(" d,w", d, w, 0));
            }
}

// 1/2 ||X Y^T - M||^2 with state [X; Y]: gradients R Y and R^T X.
void test_asymmetric_matrix_factorization() {
    Values values(5);
    for (int64_t rows : {1, 4, 9})
        for (int64_t cols : {1, 3, 10})
            for (int64_t w : {1, 3, 8}) {
                std::vector<double> M = values.vector(static_cast<size_t>(rows * cols));
                trajcore::PairProjector none(rows, 0, {}, cols, 0, {}, {}, false);
                trajcore::AsymmetricMatrixFactorizationKernel kernel(trajcore::TargetMatrix::dense(rows, cols, M), w,
                                                                     std::move(none));
                auto ws = kernel.workspace();
                std::vector<double> XY = values.vector(static_cast<size_t>((rows + cols) * w)), grad(XY.size());
                const double loss = kernel.loss_and_grad(XY.data(), grad.data(), ws, no_noise());
                const double* X = XY.data();
                const double* Y = XY.data() + rows * w;
                std::vector<double> R(static_cast<size_t>(rows * cols)), want(XY.size(), 0.0);
                double want_loss = 0.0;
                for (int64_t i = 0; i < rows; ++i)
                    for (int64_t j = 0; j < cols; ++j) {
                        double s = -M[i * cols + j];
                        for (int64_t p = 0; p < w; ++p) s += X[i * w + p] * Y[j * w + p];
                        R[i * cols + j] = s;
                        want_loss += 0.5 * s * s;
                    }
                for (int64_t i = 0; i < rows; ++i)
                    for (int64_t j = 0; j < cols; ++j)
                        for (int64_t p = 0; p < w; ++p) {
                            want[i * w + p] += R[i * cols + j] * Y[j * w + p];
                            want[(rows + j) * w + p] += R[i * cols + j] * X[i * w + p];
                        }
                check(std::fabs(loss - want_loss) <= 1e-12 * (want_loss + 1.0) && all_close(grad, want, 1e-12),
                      dims("asymmetric MF rows,cols,w", rows, cols, w));
            }
}

// ||sum_j u_j^(x)l - T||^2 (halved: 1/2 of it); gradient 2 l (or l) times the residual contracted with
// u_j l - 1 times.
// The naive reference of the tensor loss and gradient (defined with the step-kernel references below).
double naive_tensor(const std::vector<double>& dense, int64_t d, int l, int64_t m, const double* U, bool halved,
                    double* grad);

void test_tensor_decomposition() {
    Values values(6);
    for (int l : {2, 3, 4})
        for (int64_t d : {2, 4, 6})
            for (int64_t m : {1, 3, 9})
                for (bool packed : {false, true}) {
                    int64_t dl = 1;
                    for (int q = 0; q < l; ++q) dl *= d;
                    const auto index = sorted_indices(d, l);
                    std::vector<double> values_packed = values.vector(index.size()), dense(static_cast<size_t>(dl));
                    for (int64_t flat = 0; flat < dl; ++flat) {
                        std::vector<int64_t> a(static_cast<size_t>(l));
                        for (int64_t rest = flat, q = l - 1; q >= 0; --q, rest /= d) a[q] = rest % d;
                        std::sort(a.begin(), a.end());
                        size_t k = 0;
                        while (index[k] != a) ++k;
                        dense[flat] = values_packed[k];
                    }
                    auto target = std::make_shared<const trajcore::SymmetricTensor>(
                        packed ? trajcore::SymmetricTensor::from_packed(d, l, values_packed)
                               : trajcore::SymmetricTensor::from_dense(d, l, dense));
                    const bool halved = m % 2 == 1;
                    trajcore::OrthogonalTensorDecompositionKernel kernel(target, m, {}, 0, halved);
                    auto ws = kernel.workspace();
                    std::vector<double> U = values.vector(static_cast<size_t>(d * m)), grad(U.size());
                    const double loss = kernel.loss_and_grad(U.data(), grad.data(), ws, no_noise());
                    std::vector<double> want(U.size());
                    const double want_loss = naive_tensor(dense, d, l, m, U.data(), halved, want.data());
                    check(std::fabs(loss - want_loss) <= 1e-11 * (want_loss + 1.0) && all_close(grad, want, 1e-11),
                          std::string("tensor decomposition ") + (packed ? "packed" : "dense") + " l=" +
                              std::to_string(l) + dims(" d,m", d, m, 0));
                }
}

// ---- naive dense algebra for the step-kernel references ---------------------------------------------

using Matrix = std::vector<double>;

// C (m x n) = A (m x k) B (k x n), in the plain i-j-p order.
template <class Real = double, class A_, class B_>
std::vector<Real> multiply(const A_& A, const B_& B, int64_t m, int64_t k, int64_t n) {
    std::vector<Real> C(static_cast<size_t>(m * n), Real(0));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            Real s = 0;
            for (int64_t p = 0; p < k; ++p) s += static_cast<Real>(A[i * k + p]) * static_cast<Real>(B[p * n + j]);
            C[i * n + j] = s;
        }
    return C;
}

template <class Real>
std::vector<Real> transposed(const std::vector<Real>& A, int64_t m, int64_t n) {
    std::vector<Real> out(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) out[j * m + i] = A[i * n + j];
    return out;
}

Matrix scaled(Matrix v, double s) {
    for (double& x : v) x *= s;
    return v;
}

// r orthonormal columns (d x r, r <= d): random columns through two passes of Gram-Schmidt.
Matrix orthonormal_columns(Values& values, int64_t d, int64_t r) {
    Matrix V = values.vector(static_cast<size_t>(d * r));
    for (int64_t c = 0; c < r; ++c)
        for (int pass = 0; pass < 2; ++pass) {
            for (int64_t e = 0; e < c; ++e) {
                double dot = 0.0;
                for (int64_t i = 0; i < d; ++i) dot += V[i * r + c] * V[i * r + e];
                for (int64_t i = 0; i < d; ++i) V[i * r + c] -= dot * V[i * r + e];
            }
            double norm = 0.0;
            for (int64_t i = 0; i < d; ++i) norm += V[i * r + c] * V[i * r + c];
            for (int64_t i = 0; i < d; ++i) V[i * r + c] /= std::sqrt(norm);
        }
    return V;
}

// |got - want| <= tol |want| (losses).
bool rel_close(double got, double want, double tol) { return std::fabs(got - want) <= tol * std::fabs(want) + 1e-300; }

// Every entry within tol of the largest entry of want (gradients, states, coefficients).
bool all_rel_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
    if (got.size() != want.size()) return false;
    double worst = 0.0, size = 0.0;
    for (size_t i = 0; i < want.size(); ++i) {
        if (!std::isfinite(got[i])) return false;
        worst = std::fmax(worst, std::fabs(got[i] - want[i]));
        size = std::fmax(size, std::fabs(want[i]));
    }
    return worst <= tol * size + 1e-300;
}

// Coefficients beta_k = (L^T X)[i_k] . (R^T Y)[j_k], X (rows_x x w), Y (rows_y x w).
Matrix naive_coefficients(const Matrix& L, int64_t rows_x, int64_t q_left, const Matrix& R, int64_t rows_y,
                          int64_t q_right, const std::vector<int64_t>& pairs, const double* X, const double* Y,
                          int64_t w) {
    Matrix P(static_cast<size_t>(q_left * w), 0.0), Q(static_cast<size_t>(q_right * w), 0.0);
    for (int64_t a = 0; a < q_left; ++a)
        for (int64_t j = 0; j < w; ++j)
            for (int64_t i = 0; i < rows_x; ++i) P[a * w + j] += L[i * q_left + a] * X[i * w + j];
    for (int64_t b = 0; b < q_right; ++b)
        for (int64_t j = 0; j < w; ++j)
            for (int64_t i = 0; i < rows_y; ++i) Q[b * w + j] += R[i * q_right + b] * Y[i * w + j];
    Matrix out(pairs.size() / 2, 0.0);
    for (size_t k = 0; k < out.size(); ++k)
        for (int64_t j = 0; j < w; ++j) out[k] += P[pairs[2 * k] * w + j] * Q[pairs[2 * k + 1] * w + j];
    return out;
}

std::vector<int64_t> all_pairs(int64_t q) {
    std::vector<int64_t> pairs;
    for (int64_t i = 0; i < q; ++i)
        for (int64_t j = 0; j < q; ++j) pairs.push_back(i), pairs.push_back(j);
    return pairs;
}

// ---- the driver: run_chunk against a naive loop of GD / heavy-ball steps -------------------------------

struct NaiveProblem {
    // The loss and gradient a step uses (a minibatch draws from (step, trajectory)); grad may be null.
    std::function<double(const double* x, double* grad, int64_t step, uint64_t trajectory)> step_gradient;
    std::function<double(const double* x)> loss;  // noise-free, as recorded
    std::function<Matrix(const double* x)> observables;
};

// Runs `starts` through run_chunk in two chunks (steps [0, 2) and [2, steps)), recording every step,
// and compares losses, observables, recorded iterates, final states and velocities with the naive loop
//   v <- momentum v + g,  x <- x - lr_t v  (x <- x - lr_t g without momentum)
// plus, with gradient_noise, x <- x - lr_t s xi (xi from Philox stream 1 of (seed, trajectory, step)).
// One extra trajectory has a loss limit of 0: it must stop at step 0 with its state untouched.
template <class Problem>
void check_driver(const std::string& name, const Problem& problem, const NaiveProblem& naive,
                  const std::vector<Matrix>& starts, int64_t steps, double lr0, double momentum,
                  double gradient_noise = 0.0, double tol = 1e-11) {
    const int64_t n = problem.state_size(), K = problem.n_observables(), R = steps + 1;
    const int64_t B = static_cast<int64_t>(starts.size()) + 1;
    std::vector<double> lr(static_cast<size_t>(steps));
    for (int64_t t = 0; t < steps; ++t) lr[t] = lr0 * (1.0 + 0.25 * static_cast<double>(t % 3));
    std::vector<int64_t> record(static_cast<size_t>(R));
    for (int64_t t = 0; t < R; ++t) record[t] = t;
    trajcore::RunSpec spec;
    spec.total_steps = steps;
    spec.lr = lr.data();
    spec.momentum = momentum;
    if (gradient_noise > 0.0) {
        trajcore::NoiseTerm term;
        term.kind = trajcore::NoiseKind::gradient;
        term.scale = gradient_noise;
        spec.noise.push_back(term);
    }
    spec.seed = 0x5eed;
    spec.trajectory_offset = 3;
    spec.record_steps = record.data();
    spec.n_records = R;
    spec.n_threads = 1;
    Matrix x(static_cast<size_t>(B * n)), velocity(momentum != 0.0 ? static_cast<size_t>(B * n) : 0, 0.0);
    for (int64_t b = 0; b < B; ++b) std::copy(starts[b % (B - 1)].begin(), starts[b % (B - 1)].end(), x.begin() + b * n);
    std::vector<int64_t> diverged(static_cast<size_t>(B), -1), perturbed(static_cast<size_t>(B), -1);
    std::vector<double> limit(static_cast<size_t>(B), 1e300);
    limit[B - 1] = 0.0;
    Matrix loss(static_cast<size_t>(B * R), kNaN), obs(static_cast<size_t>(B * R * K), kNaN),
        iterates(static_cast<size_t>(B * R * n), kNaN);
    trajcore::BatchState state;
    state.batch = B;
    state.x = x.data();
    state.velocity = momentum != 0.0 ? velocity.data() : nullptr;
    state.diverged_at = diverged.data();
    state.last_perturbation = perturbed.data();
    state.loss_limit = limit.data();
    state.loss = loss.data();
    state.observations = obs.data();
    state.iterates = iterates.data();
    const int64_t split = std::min<int64_t>(2, steps);
    for (const auto& [t0, t1] : {std::pair{int64_t{0}, split}, std::pair{split, steps}}) {
        spec.t0 = t0;
        spec.t1 = t1;
        trajcore::run_chunk(problem, spec, state);
    }
    const std::string what = name + (momentum != 0.0 ? " (momentum)" : "") + (gradient_noise > 0.0 ? " (noise)" : "");
    for (int64_t b = 0; b + 1 < B; ++b) {
        const uint64_t trajectory = static_cast<uint64_t>(spec.trajectory_offset + b);
        Matrix xb = starts[b], v(static_cast<size_t>(n), 0.0), g(static_cast<size_t>(n));
        bool losses = true, observations = true, states = true;
        for (int64_t t = 0; t <= steps; ++t) {
            losses &= rel_close(loss[b * R + t], naive.loss(xb.data()), tol);
            observations &= all_rel_close(Matrix(obs.begin() + (b * R + t) * K, obs.begin() + (b * R + t + 1) * K),
                                          naive.observables(xb.data()), tol);
            states &= all_rel_close(Matrix(iterates.begin() + (b * R + t) * n, iterates.begin() + (b * R + t + 1) * n),
                                    xb, tol);
            if (t == steps) break;
            naive.step_gradient(xb.data(), g.data(), t, trajectory);
            for (int64_t i = 0; i < n; ++i) v[i] = momentum * v[i] + g[i];
            trajcore::RandomStream rng(spec.seed, trajectory, static_cast<uint64_t>(t), 1);
            for (int64_t i = 0; i < n; ++i) xb[i] -= lr[t] * v[i];
            if (gradient_noise > 0.0)
                for (int64_t i = 0; i < n; ++i) xb[i] -= lr[t] * gradient_noise * rng.normal();
        }
        check(diverged[b] == -1, what + ": healthy trajectory not flagged");
        check(losses, what + ": recorded losses");
        check(observations, what + ": recorded observables");
        check(states, what + ": recorded iterates");
        check(all_rel_close(Matrix(x.begin() + b * n, x.begin() + (b + 1) * n), xb, tol), what + ": final state");
        if (momentum != 0.0)
            check(all_rel_close(Matrix(velocity.begin() + b * n, velocity.begin() + (b + 1) * n), v, tol),
                  what + ": final velocity");
    }
    const int64_t last = B - 1;
    check(diverged[last] == 0 && rel_close(loss[last * R], naive.loss(starts[last % (B - 1)].data()), tol) &&
              same_bits(Matrix(x.begin() + last * n, x.end()), starts[last % (B - 1)]),
          what + ": a loss above the limit stops the trajectory at step 0, state untouched");
}

// ---- symmetric matrix factorization: every target form and layout -----------------------------------

enum class SymForm { dense, factored, diagonal, transposed };

const char* form_name(SymForm f) {
    switch (f) {
        case SymForm::dense: return "dense";
        case SymForm::factored: return "factored";
        case SymForm::diagonal: return "diagonal";
        case SymForm::transposed: return "transposed";
    }
    return "?";
}

struct SymmetricCase {
    SymForm form;
    int64_t d, w, r;  // r: the factored target's rank, or the diagonal's support
    Matrix V, weights;                 // factored: V (d x r) orthonormal, weights (r); diagonal: weights (d)
    std::vector<long double> M;        // the target as the kernel means it, dense (d x d)
    Matrix M_rounded;                  // ... rounded to double
    // The state: U (d x w), or U^T (w x d) for the transposed layout.
    Matrix U_of(const double* x) const {
        Matrix s(x, x + d * w);
        return form == SymForm::transposed ? transposed(s, w, d) : s;
    }
    Matrix state_of(const Matrix& U) const { return form == SymForm::transposed ? transposed(U, d, w) : U; }
    trajcore::TargetMatrix target() const {
        switch (form) {
            case SymForm::dense: return trajcore::TargetMatrix::dense(d, d, M_rounded);
            case SymForm::factored: return trajcore::TargetMatrix::factored(d, d, r, V, weights, V);
            default: return trajcore::TargetMatrix::diagonal(d, d, weights);
        }
    }
    std::string name() const { return std::string("symmetric MF ") + form_name(form) + dims(" d,w,r", d, w, r); }
};

SymmetricCase make_symmetric_case(SymForm form, int64_t d, int64_t w, int64_t r, Values& values) {
    SymmetricCase c{form, d, w, r, {}, {}, std::vector<long double>(static_cast<size_t>(d * d), 0.0L), {}};
    if (form == SymForm::dense) {
        for (int64_t i = 0; i < d; ++i)
            for (int64_t j = 0; j <= i; ++j) c.M[i * d + j] = c.M[j * d + i] = values.next();
    } else if (form == SymForm::factored) {
        c.V = orthonormal_columns(values, d, r);
        for (int64_t k = 0; k < r; ++k) c.weights.push_back(0.5 + std::fabs(values.next()));
        for (int64_t i = 0; i < d; ++i)
            for (int64_t j = 0; j < d; ++j)
                for (int64_t k = 0; k < r; ++k)
                    c.M[i * d + j] += static_cast<long double>(c.V[i * r + k]) * c.weights[k] * c.V[j * r + k];
    } else {  // diagonal, support r: zero from r on, and (r > 2) at index 1
        c.weights.assign(static_cast<size_t>(d), 0.0);
        for (int64_t i = 0; i < r; ++i) c.weights[i] = i == 1 && r > 2 ? 0.0 : 0.25 + std::fabs(values.next());
        for (int64_t i = 0; i < d; ++i) c.M[i * d + i] = c.weights[i];
    }
    for (long double m : c.M) c.M_rounded.push_back(static_cast<double>(m));
    return c;
}

// 1/4 ||U U^T - M||^2 and grad = (U U^T - M) U, with the residual in Real.
template <class Real>
Real naive_symmetric(const std::vector<Real>& M, int64_t d, int64_t w, const double* U, double* grad) {
    std::vector<Real> R(static_cast<size_t>(d * d));
    Real loss = 0;
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j) {
            Real s = -M[i * d + j];
            for (int64_t p = 0; p < w; ++p) s += static_cast<Real>(U[i * w + p]) * U[j * w + p];
            R[i * d + j] = s;
            loss += s * s / 4;
        }
    if (grad != nullptr)
        for (int64_t i = 0; i < d; ++i)
            for (int64_t p = 0; p < w; ++p) {
                Real s = 0;
                for (int64_t j = 0; j < d; ++j) s += R[i * d + j] * U[j * w + p];
                grad[i * w + p] = static_cast<double>(s);
            }
    return loss;
}

// Loss and gradient of the state (the gradient in the state's layout).
double naive_symmetric_state(const SymmetricCase& c, const double* x, double* grad) {
    const Matrix U = c.U_of(x);
    Matrix g(U.size());
    const double loss = naive_symmetric(c.M_rounded, c.d, c.w, U.data(), g.data());
    if (grad != nullptr) {
        const Matrix gs = c.state_of(g);
        std::copy(gs.begin(), gs.end(), grad);
    }
    return loss;
}

// The coefficient basis O (d x q) of a projector: none, random columns, coordinate axes, or the factored
// target's own V (then the kernel reads the coefficients off V^T U).
enum class BasisKind { none, general, axes, signal };

struct Basis {
    int64_t q = 0;
    Matrix O;
    std::vector<int64_t> pairs;
    std::string name;
    trajcore::PairProjector projector(int64_t d) const { return trajcore::PairProjector(d, q, O, d, q, O, pairs, true); }
};

Basis make_basis(BasisKind kind, const SymmetricCase& c, Values& values) {
    Basis b;
    const int64_t d = c.d;
    switch (kind) {
        case BasisKind::none: b.name = "no coefficients"; return b;
        case BasisKind::general:
            b.q = std::min<int64_t>(3, d);
            b.O = values.vector(static_cast<size_t>(d * b.q));
            b.name = "general basis";
            break;
        case BasisKind::axes: {
            const int64_t rows[] = {d - 1, 0, d / 2};
            b.q = std::min<int64_t>(3, d);
            b.O.assign(static_cast<size_t>(d * b.q), 0.0);
            for (int64_t a = 0; a < b.q; ++a) b.O[rows[a] * b.q + a] = 1.0;
            b.name = "axes basis";
            break;
        }
        case BasisKind::signal:
            b.q = c.r;
            b.O = c.V;
            b.name = "basis = V";
            break;
    }
    b.pairs = all_pairs(b.q);
    return b;
}

Matrix naive_symmetric_coefficients(const SymmetricCase& c, const Basis& b, const double* x) {
    const Matrix U = c.U_of(x);
    return naive_coefficients(b.O, c.d, b.q, b.O, c.d, b.q, b.pairs, U.data(), U.data(), c.w);
}

struct SymmetricShape {
    SymForm form;
    int64_t d, w, r;
};

const SymmetricShape kSymmetricShapes[] = {
    {SymForm::dense, 7, 5, 0},        {SymForm::dense, 9, 9, 0},        {SymForm::dense, 131, 3, 0},
    {SymForm::factored, 7, 5, 3},     {SymForm::factored, 7, 2, 5},     {SymForm::factored, 131, 5, 4},
    {SymForm::factored, 5, 3, 5},     {SymForm::diagonal, 7, 5, 5},     {SymForm::diagonal, 7, 9, 7},
    {SymForm::diagonal, 131, 3, 129}, {SymForm::diagonal, 5, 3, 1},     {SymForm::transposed, 3, 7, 2},
    {SymForm::transposed, 7, 9, 5},   {SymForm::transposed, 5, 13, 5},  {SymForm::transposed, 7, 7, 7},
};

// loss_and_grad, loss_and_step (next final or not, the driver's sequence of steps and observe calls with
// next's products prepared) and observe, for every target form and layout, against naive loops.
void test_symmetric_steps() {
    const double lr = 0.02;
    for (uint64_t seed : {21, 22, 23}) {
        Values values(seed);
        for (const SymmetricShape& shape : kSymmetricShapes) {
            if (seed != 21 && shape.d > 100) continue;  // the large shapes once
            const SymmetricCase c = make_symmetric_case(shape.form, shape.d, shape.w, shape.r, values);
            const int64_t n = c.d * c.w;
            for (BasisKind kind : {BasisKind::none, BasisKind::general, BasisKind::axes, BasisKind::signal}) {
                if (kind == BasisKind::signal && c.form != SymForm::factored) continue;
                const Basis basis = make_basis(kind, c, values);
                const std::string what = c.name() + ", " + basis.name + ", seed " + std::to_string(seed);
                trajcore::SymmetricMatrixFactorizationKernel kernel(c.target(), c.w, basis.projector(c.d),
                                                                    c.form == SymForm::transposed);
                check(kernel.state_size() == n && kernel.n_observables() == basis.q * basis.q &&
                          kernel.state_transposed() == (c.form == SymForm::transposed),
                      what + ": sizes and layout");
                auto ws = kernel.workspace();
                const Matrix x0 = scaled(values.vector(static_cast<size_t>(n)), 0.7);
                Matrix g(static_cast<size_t>(n)), want_g(static_cast<size_t>(n)), out(basis.pairs.size() / 2);
                auto naive_step = [&](const Matrix& x, double& loss) {
                    loss = naive_symmetric_state(c, x.data(), want_g.data());
                    Matrix next = x;
                    for (int64_t i = 0; i < n; ++i) next[i] -= lr * want_g[i];
                    return next;
                };
                // loss_and_grad
                double want_loss = naive_symmetric_state(c, x0.data(), want_g.data());
                double loss = kernel.loss_and_grad(x0.data(), g.data(), ws, no_noise());
                check(rel_close(loss, want_loss, 1e-12) && all_rel_close(g, want_g, 1e-12), what + ": loss_and_grad");
                // loss_and_step with a next that noise or post_step would change
                Matrix a = x0, b(static_cast<size_t>(n), kNaN);
                Matrix want_next = naive_step(a, want_loss);
                trajcore::StepResult step = kernel.loss_and_step(a.data(), lr, b.data(), false, ws, no_noise());
                check(rel_close(step.loss, want_loss, 1e-12) && all_rel_close(b, want_next, 1e-12),
                      what + ": loss_and_step (next not final)");
                // The driver's sequence without noise: step x -> next (final: next's products prepared),
                // observe x, step next -> x (reusing them), observe next.
                std::fill(b.begin(), b.end(), kNaN);
                want_next = naive_step(a, want_loss);
                step = kernel.loss_and_step(a.data(), lr, b.data(), true, ws, no_noise());
                check(rel_close(step.loss, want_loss, 1e-12) && all_rel_close(b, want_next, 1e-12) && step.next_finite,
                      what + ": loss_and_step (next final)");
                double observed = kernel.observe(a.data(), out.data(), ws, step.loss);
                check(rel_close(observed, want_loss, 1e-12) &&
                          all_rel_close(out, naive_symmetric_coefficients(c, basis, a.data()), 1e-12),
                      what + ": observe after a step");
                const Matrix x1 = b;
                want_next = naive_step(x1, want_loss);
                step = kernel.loss_and_step(b.data(), lr, a.data(), true, ws, no_noise());
                check(rel_close(step.loss, want_loss, 1e-12) && all_rel_close(a, want_next, 1e-12) && step.next_finite,
                      what + ": second loss_and_step (from the prepared products)");
                observed = kernel.observe(b.data(), out.data(), ws, step.loss);
                check(rel_close(observed, want_loss, 1e-12) &&
                          all_rel_close(out, naive_symmetric_coefficients(c, basis, b.data()), 1e-12),
                      what + ": observe after the second step");
                // The contract: preparing next's products must not change the bits of the following step.
                {
                    auto fresh = kernel.workspace();
                    Matrix copy = x1, next(static_cast<size_t>(n));
                    const trajcore::StepResult again = kernel.loss_and_step(copy.data(), lr, next.data(), true, fresh,
                                                                            no_noise());
                    check(same_bits({again.loss}, {step.loss}) && same_bits(next, a),
                          what + ": a step from prepared products = the same bits as from scratch");
                }
                // observe of a state the workspace knows nothing about
                want_loss = naive_symmetric_state(c, a.data(), nullptr);
                observed = kernel.observe(a.data(), out.data(), ws, kNaN);
                check(rel_close(observed, want_loss, 1e-12) &&
                          all_rel_close(out, naive_symmetric_coefficients(c, basis, a.data()), 1e-12),
                      what + ": observe (no gradient loss)");
                if (kind != BasisKind::none) continue;
                // next_finite: false for a NaN entry, and for entries whose squares overflow
                Matrix bad = x0;
                bad[n / 2] = kNaN;
                step = kernel.loss_and_step(bad.data(), lr, b.data(), true, ws, no_noise());
                check(!step.next_finite && std::isnan(step.loss), what + ": a NaN entry makes next non-finite");
                const Matrix huge = scaled(x0, 1e200);
                step = kernel.loss_and_step(huge.data(), lr, b.data(), true, ws, no_noise());
                check(!step.next_finite, what + ": overflowing entries make next non-finite");
            }
        }
    }
}

// The recorded loss near convergence, where the Gram form 1/4 (||U^T U||^2 - 2 <U, M U> + ||M||^2)
// cancels: observe must still return 1/4 ||U U^T - M||^2 to 1e-8 (against a long double residual), fresh
// and right after a step.
void test_symmetric_accurate_loss() {
    Values values(24);
    for (const SymmetricShape& shape : kSymmetricShapes) {
        SymmetricCase c = make_symmetric_case(shape.form, shape.d, shape.w, shape.r, values);
        const bool diagonal = c.form == SymForm::diagonal || c.form == SymForm::transposed;
        if (c.form == SymForm::dense) {  // a reachable dense target: V diag(s) V^T of rank min(d, w), rounded
            const SymmetricCase f = make_symmetric_case(SymForm::factored, c.d, c.w, std::min(c.d, c.w), values);
            c.M_rounded = f.M_rounded;
            c.M.assign(f.M_rounded.begin(), f.M_rounded.end());
            c.V = f.V;
            c.weights = f.weights;
            c.r = f.r;
        }
        if (c.r > c.w) continue;  // the target's rank exceeds the width: not reachable
        // U = [V sqrt(s), 0] (V = I for a diagonal target) + 1e-6 noise
        Matrix U = scaled(values.vector(static_cast<size_t>(c.d * c.w)), 1e-6);
        for (int64_t j = 0; j < c.r; ++j)
            for (int64_t i = 0; i < c.d; ++i)
                U[i * c.w + j] += diagonal ? (i == j ? std::sqrt(c.weights[i]) : 0.0) : c.V[i * c.r + j] * std::sqrt(c.weights[j]);
        const Matrix x = c.state_of(U);
        trajcore::PairProjector none(c.d, 0, {}, c.d, 0, {}, {}, true);
        trajcore::SymmetricMatrixFactorizationKernel kernel(c.target(), c.w, std::move(none),
                                                            c.form == SymForm::transposed);
        auto ws = kernel.workspace();
        const double want = static_cast<double>(naive_symmetric(c.M, c.d, c.w, U.data(), nullptr));
        const double fresh = kernel.observe(x.data(), nullptr, ws, kNaN);
        // The driver's sequence: step x -> next, observe x, step next -> x2 (from next's prepared
        // products), observe next.
        Matrix next(x.size()), x2(x.size());
        const trajcore::StepResult step = kernel.loss_and_step(x.data(), 1e-3, next.data(), true, ws, no_noise());
        const double after_step = kernel.observe(x.data(), nullptr, ws, step.loss);
        const trajcore::StepResult step2 = kernel.loss_and_step(next.data(), 1e-3, x2.data(), true, ws, no_noise());
        const double after_second = kernel.observe(next.data(), nullptr, ws, step2.loss);
        const double want_next = static_cast<double>(naive_symmetric(c.M, c.d, c.w, c.U_of(next.data()).data(), nullptr));
        char size[32];
        std::snprintf(size, sizeof(size), " (%.2g)", want);
        check(want > 0.0 && want < 1e-8 && rel_close(fresh, want, 1e-8) && rel_close(after_step, want, 1e-8) &&
                  want_next < 1e-8 && rel_close(after_second, want_next, 1e-8),
              c.name() + ": the recorded loss near convergence" + size);
    }
}

// A diagonal target whose support rows are fit exactly, with small rows outside the support
// (orthogonal to it): the loss is 1/4 ||U_perp U_perp^T||^2, which the recorded loss takes from
// U_perp^T U_perp -- of the state observed, also when the step's products were prepared by the step before.
void test_symmetric_outside_support() {
    Values values(29);
    for (const auto& [d, w, support] : {std::tuple{7, 5, 2}, std::tuple{140, 4, 3}, std::tuple{5, 3, 1}}) {
        const SymmetricCase c = make_symmetric_case(SymForm::diagonal, d, w, support, values);
        Matrix U(static_cast<size_t>(d * w), 0.0);
        for (int64_t i = 0; i < d; ++i)
            for (int64_t j = 0; j < w; ++j)
                U[i * w + j] = i < support ? (i == j ? std::sqrt(c.weights[i]) : 0.0) : (j >= support ? 1e-2 * values.next() : 0.0);
        trajcore::SymmetricMatrixFactorizationKernel kernel(c.target(), w, trajcore::PairProjector(d, 0, {}, d, 0, {}, {}, true));
        auto ws = kernel.workspace();
        Matrix next(U.size()), x2(U.size());
        const double lr = 0.5;
        const trajcore::StepResult step = kernel.loss_and_step(U.data(), lr, next.data(), true, ws, no_noise());
        const double first = kernel.observe(U.data(), nullptr, ws, step.loss);
        const trajcore::StepResult step2 = kernel.loss_and_step(next.data(), lr, x2.data(), true, ws, no_noise());
        const double second = kernel.observe(next.data(), nullptr, ws, step2.loss);
        const double want = static_cast<double>(naive_symmetric(c.M, d, w, U.data(), nullptr));
        const double want_next = static_cast<double>(naive_symmetric(c.M, d, w, next.data(), nullptr));
        check(want < 1e-4 && want_next < want * (1.0 - 1e-5) && rel_close(first, want, 1e-8) &&
                  rel_close(second, want_next, 1e-8),
              c.name() + ": the recorded loss from the rows outside the support");
    }
}

void test_symmetric_driver(uint64_t seed) {
    Values values(seed);
    for (const SymmetricShape& shape : kSymmetricShapes) {
        const SymmetricCase c = make_symmetric_case(shape.form, shape.d, shape.w, shape.r, values);
        const Basis basis = make_basis(c.form == SymForm::factored ? BasisKind::signal : BasisKind::general, c, values);
        trajcore::SymmetricMatrixFactorizationKernel kernel(c.target(), c.w, basis.projector(c.d),
                                                            c.form == SymForm::transposed);
        const std::string what = c.name() + " seed " + std::to_string(seed);
        NaiveProblem naive{[&](const double* x, double* g, int64_t, uint64_t) { return naive_symmetric_state(c, x, g); },
                           [&](const double* x) { return naive_symmetric_state(c, x, nullptr); },
                           [&](const double* x) { return naive_symmetric_coefficients(c, basis, x); }};
        std::vector<Matrix> starts;
        for (int b = 0; b < 2; ++b) starts.push_back(scaled(values.vector(static_cast<size_t>(c.d * c.w)), 0.5));
        const double lr = c.d > 100 ? 0.004 : 0.03;
        check_driver(what, kernel, naive, starts, 5, lr, 0.0);
        check_driver(what, kernel, naive, starts, 5, lr, 0.9);
        check_driver(what, kernel, naive, starts, 4, lr, 0.0, 0.3);
        // The kernel the wrapper holds (SymForm lists the forms in the variant's order), driven directly.
        check(kernel.kernel().index() == static_cast<size_t>(c.form), what + ": the kernel held");
        std::visit([&](const auto& held) { check_driver(what + " (held kernel)", held, naive, starts, 5, lr, 0.0); },
                   kernel.kernel());
    }
}

// ---- asymmetric matrix factorization: factored target, coefficients, the driver ---------------------

// 1/2 ||X Y^T - M||^2 with state [X; Y]; gradients R Y and R^T X.
template <class Real>
Real naive_asymmetric(const std::vector<Real>& M, int64_t rows, int64_t cols, int64_t w, const double* XY,
                      double* grad) {
    const double* X = XY;
    const double* Y = XY + rows * w;
    std::vector<Real> R(static_cast<size_t>(rows * cols));
    Real loss = 0;
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
            Real s = -M[i * cols + j];
            for (int64_t p = 0; p < w; ++p) s += static_cast<Real>(X[i * w + p]) * Y[j * w + p];
            R[i * cols + j] = s;
            loss += s * s / 2;
        }
    if (grad != nullptr) {
        std::fill(grad, grad + (rows + cols) * w, 0.0);
        for (int64_t i = 0; i < rows; ++i)
            for (int64_t p = 0; p < w; ++p) {
                Real s = 0;
                for (int64_t j = 0; j < cols; ++j) s += R[i * cols + j] * Y[j * w + p];
                grad[i * w + p] = static_cast<double>(s);
            }
        for (int64_t j = 0; j < cols; ++j)
            for (int64_t p = 0; p < w; ++p) {
                Real s = 0;
                for (int64_t i = 0; i < rows; ++i) s += R[i * cols + j] * X[i * w + p];
                grad[(rows + j) * w + p] = static_cast<double>(s);
            }
    }
    return loss;
}

void test_asymmetric(uint64_t seed) {
    Values values(seed);
    struct Shape {
        int64_t rows, cols, w, r;  // r = 0: dense target
    };
    for (const Shape& s : {Shape{7, 5, 3, 0}, Shape{4, 9, 6, 0}, Shape{7, 5, 3, 2}, Shape{11, 6, 5, 3}, Shape{5, 9, 1, 4}}) {
        const bool factored = s.r > 0;
        Matrix A, B, weights, M_rounded;
        std::vector<long double> M(static_cast<size_t>(s.rows * s.cols), 0.0L);
        if (factored) {
            A = orthonormal_columns(values, s.rows, s.r);
            B = orthonormal_columns(values, s.cols, s.r);
            for (int64_t k = 0; k < s.r; ++k) weights.push_back(0.5 + std::fabs(values.next()));
            for (int64_t i = 0; i < s.rows; ++i)
                for (int64_t j = 0; j < s.cols; ++j)
                    for (int64_t k = 0; k < s.r; ++k)
                        M[i * s.cols + j] += static_cast<long double>(A[i * s.r + k]) * weights[k] * B[j * s.r + k];
        } else {
            for (long double& m : M) m = values.next();
        }
        for (long double m : M) M_rounded.push_back(static_cast<double>(m));
        auto target = [&] {
            return factored ? trajcore::TargetMatrix::factored(s.rows, s.cols, s.r, A, weights, B)
                            : trajcore::TargetMatrix::dense(s.rows, s.cols, M_rounded);
        };
        const int64_t q1 = 3, q2 = 2;
        const Matrix L = values.vector(static_cast<size_t>(s.rows * q1)), R = values.vector(static_cast<size_t>(s.cols * q2));
        std::vector<int64_t> pairs = {0, 0, 2, 1, 1, 0, 2, 0};
        trajcore::AsymmetricMatrixFactorizationKernel kernel(target(), s.w,
                                                             trajcore::PairProjector(s.rows, q1, L, s.cols, q2, R, pairs, false));
        const std::string what = std::string("asymmetric MF ") + (factored ? "factored" : "dense") +
                                 dims(" rows,cols,w", s.rows, s.cols, s.w) + " r=" + std::to_string(s.r) +
                                 " seed " + std::to_string(seed);
        const int64_t n = (s.rows + s.cols) * s.w;
        auto naive_loss = [&](const double* x, double* g) {
            return naive_asymmetric(M_rounded, s.rows, s.cols, s.w, x, g);
        };
        auto naive_obs = [&](const double* x) {
            return naive_coefficients(L, s.rows, q1, R, s.cols, q2, pairs, x, x + s.rows * s.w, s.w);
        };
        auto ws = kernel.workspace();
        const Matrix x0 = scaled(values.vector(static_cast<size_t>(n)), 0.7);
        Matrix g(static_cast<size_t>(n)), want_g(static_cast<size_t>(n)), out(4);
        const double want = naive_loss(x0.data(), want_g.data());
        const double loss = kernel.loss_and_grad(x0.data(), g.data(), ws, no_noise());
        check(rel_close(loss, want, 1e-12) && all_rel_close(g, want_g, 1e-12), what + ": loss_and_grad");
        check(rel_close(kernel.observe(x0.data(), out.data(), ws, loss), want, 1e-12) &&
                  all_rel_close(out, naive_obs(x0.data()), 1e-12),
              what + ": observe");
        NaiveProblem naive{[&](const double* x, double* gr, int64_t, uint64_t) { return naive_loss(x, gr); },
                           [&](const double* x) { return naive_loss(x, nullptr); }, naive_obs};
        const std::vector<Matrix> starts = {x0, scaled(values.vector(static_cast<size_t>(n)), 0.5)};
        check_driver(what, kernel, naive, starts, 4, 0.03, 0.0);
        check_driver(what, kernel, naive, starts, 4, 0.03, 0.8);
        // Near convergence (X = A sqrt(s), Y = B sqrt(s) + 1e-5 noise): the accurate recorded loss.
        if (!factored) continue;
        Matrix x = scaled(values.vector(static_cast<size_t>(n)), 1e-5);
        for (int64_t k = 0; k < std::min(s.r, s.w); ++k) {
            for (int64_t i = 0; i < s.rows; ++i) x[i * s.w + k] += A[i * s.r + k] * std::sqrt(weights[k]);
            for (int64_t j = 0; j < s.cols; ++j) x[(s.rows + j) * s.w + k] += B[j * s.r + k] * std::sqrt(weights[k]);
        }
        if (s.r > s.w) continue;
        const double exact = static_cast<double>(naive_asymmetric(M, s.rows, s.cols, s.w, x.data(), nullptr));
        const double fresh = kernel.observe(x.data(), out.data(), ws, kNaN);
        const double after = kernel.observe(x.data(), out.data(), ws, kernel.loss_and_grad(x.data(), g.data(), ws, no_noise()));
        check(exact < 1e-7 && rel_close(fresh, exact, 1e-8) && rel_close(after, exact, 1e-8),
              what + ": the recorded loss near convergence");
    }
}

// ---- orthogonal tensor decomposition: factored targets, coefficients, the driver ----------------------

// ||sum_j u_j^(x)l - T||^2 (halved: 1/2 of it) and its gradient, from the dense target (d^l).
double naive_tensor(const Matrix& dense, int64_t d, int l, int64_t m, const double* U, bool halved, double* grad) {
    int64_t dl = 1;
    for (int q = 0; q < l; ++q) dl *= d;
    Matrix R(static_cast<size_t>(dl));
    double loss = 0.0;
    for (int64_t flat = 0; flat < dl; ++flat) {
        double s = -dense[flat];
        for (int64_t j = 0; j < m; ++j) {
            double p = 1.0;
            for (int64_t rest = flat, q = 0; q < l; ++q, rest /= d) p *= U[(rest % d) * m + j];
            s += p;
        }
        R[flat] = s;
        loss += s * s;
    }
    const double factor = halved ? 0.5 : 1.0;
    if (grad != nullptr) {
        std::fill(grad, grad + d * m, 0.0);
        for (int64_t flat = 0; flat < dl; ++flat)
            for (int64_t j = 0; j < m; ++j) {
                double p = 1.0;
                for (int64_t rest = flat / d, q = 0; q < l - 1; ++q, rest /= d) p *= U[(rest % d) * m + j];
                grad[(flat % d) * m + j] += factor * 2.0 * l * R[flat] * p;
            }
    }
    return factor * loss;
}

void test_tensor_steps(uint64_t seed) {
    Values values(seed);
    struct Shape {
        int l;
        int64_t d, m, r;
    };
    for (const Shape& s : {Shape{3, 5, 3, 2}, Shape{4, 3, 2, 3}, Shape{2, 7, 5, 4}, Shape{3, 6, 9, 1}})
        for (trajcore::TensorStorage storage :
             {trajcore::TensorStorage::factored, trajcore::TensorStorage::dense, trajcore::TensorStorage::packed}) {
            int64_t dl = 1;
            for (int q = 0; q < s.l; ++q) dl *= s.d;
            Matrix dense(static_cast<size_t>(dl), 0.0);
            std::shared_ptr<const trajcore::SymmetricTensor> target;
            std::string kind;
            if (storage == trajcore::TensorStorage::factored) {
                const Matrix Z = values.vector(static_cast<size_t>(s.d * s.r));
                Matrix weights;
                for (int64_t k = 0; k < s.r; ++k) {
                    const double magnitude = 1.0 + values.next();
                    weights.push_back(values.next() > 0 ? magnitude : -magnitude);
                }
                for (int64_t flat = 0; flat < dl; ++flat)
                    for (int64_t k = 0; k < s.r; ++k) {
                        double p = weights[k];
                        for (int64_t rest = flat, q = 0; q < s.l; ++q, rest /= s.d) p *= Z[(rest % s.d) * s.r + k];
                        dense[flat] += p;
                    }
                target = std::make_shared<const trajcore::SymmetricTensor>(
                    trajcore::SymmetricTensor::from_factors(s.d, s.l, Z, weights));
                kind = "factored";
            } else {
                const auto index = sorted_indices(s.d, s.l);
                const Matrix packed = values.vector(index.size());
                for (int64_t flat = 0; flat < dl; ++flat) {
                    std::vector<int64_t> a(static_cast<size_t>(s.l));
                    for (int64_t rest = flat, q = s.l - 1; q >= 0; --q, rest /= s.d) a[q] = rest % s.d;
                    std::sort(a.begin(), a.end());
                    size_t k = 0;
                    while (index[k] != a) ++k;
                    dense[flat] = packed[k];
                }
                const bool is_dense = storage == trajcore::TensorStorage::dense;
                target = std::make_shared<const trajcore::SymmetricTensor>(
                    is_dense ? trajcore::SymmetricTensor::from_dense(s.d, s.l, dense)
                             : trajcore::SymmetricTensor::from_packed(s.d, s.l, packed));
                kind = is_dense ? "dense" : "packed";
            }
            const int64_t q = 3;
            const Matrix basis = values.vector(static_cast<size_t>(s.d * q));
            const bool halved = s.m % 2 == 1;
            trajcore::OrthogonalTensorDecompositionKernel kernel(target, s.m, basis, q, halved);
            const std::string what = "tensor decomposition " + kind + " l=" + std::to_string(s.l) + dims(" d,m,r", s.d, s.m, s.r) +
                                     " seed " + std::to_string(seed);
            auto naive_obs = [&](const double* U) {
                Matrix out(static_cast<size_t>(q), 0.0);
                for (int64_t k = 0; k < q; ++k)
                    for (int64_t j = 0; j < s.m; ++j) {
                        double p = 0.0;
                        for (int64_t i = 0; i < s.d; ++i) p += basis[i * q + k] * U[i * s.m + j];
                        out[k] += std::pow(p, s.l);
                    }
                return out;
            };
            auto naive_loss = [&](const double* U, double* g) { return naive_tensor(dense, s.d, s.l, s.m, U, halved, g); };
            auto ws = kernel.workspace();
            const int64_t n = s.d * s.m;
            const Matrix U0 = scaled(values.vector(static_cast<size_t>(n)), 0.6);
            Matrix g(static_cast<size_t>(n)), want_g(static_cast<size_t>(n)), out(static_cast<size_t>(q));
            const double want = naive_loss(U0.data(), want_g.data());
            check(rel_close(kernel.loss_and_grad(U0.data(), g.data(), ws, no_noise()), want, 1e-11) &&
                      all_rel_close(g, want_g, 1e-11),
                  what + ": loss_and_grad");
            check(rel_close(kernel.observe(U0.data(), out.data(), ws), want, 1e-11) &&
                      all_rel_close(out, naive_obs(U0.data()), 1e-12),
                  what + ": observe");
            NaiveProblem naive{[&](const double* x, double* gr, int64_t, uint64_t) { return naive_loss(x, gr); },
                               [&](const double* x) { return naive_loss(x, nullptr); }, naive_obs};
            const std::vector<Matrix> starts = {U0, scaled(values.vector(static_cast<size_t>(n)), 0.5)};
            check_driver(what, kernel, naive, starts, 4, 0.01, 0.0, 0.0, 1e-10);
            check_driver(what, kernel, naive, starts, 4, 0.01, 0.7, 0.0, 1e-10);
        }
}

// ---- deep linear network ------------------------------------------------------------------------------

struct Network {
    std::vector<int64_t> widths;
    int64_t n;
    Matrix X, Y;  // (n x d_0), (n x d_N): samples as rows
    int64_t layers() const { return static_cast<int64_t>(widths.size()) - 1; }
    int64_t offset(int64_t i) const {  // of W_i (1-based)
        int64_t o = 0;
        for (int64_t j = 1; j < i; ++j) o += widths[j] * widths[j - 1];
        return o;
    }
    int64_t size() const { return offset(layers() + 1); }
    // W_b ... W_a (d_b x d_{a-1}); the identity when b < a.
    template <class Real = double>
    std::vector<Real> product(const double* x, int64_t a, int64_t b) const {
        const int64_t d = widths[a - 1];
        std::vector<Real> P(static_cast<size_t>(d * d), Real(0));
        for (int64_t i = 0; i < d; ++i) P[i * d + i] = 1;
        for (int64_t i = a; i <= b; ++i)
            P = multiply<Real>(x + offset(i), P, widths[i], widths[i - 1], d);
        return P;
    }
    // scale/2 ||X_rows P^T - Y_rows||^2 over the rows `index`, and its gradient (scaled).
    template <class Real = double>
    Real loss(const double* x, double* grad, const std::vector<int64_t>& index, double scale) const {
        const int64_t N = layers(), d0 = widths[0], dN = widths[N];
        const std::vector<Real> P = product<Real>(x, 1, N);
        std::vector<Real> E(static_cast<size_t>(dN * d0), Real(0));  // scale R^T X
        Real loss = 0;
        for (int64_t s : index)
            for (int64_t a = 0; a < dN; ++a) {
                Real r = -static_cast<Real>(Y[s * dN + a]);
                for (int64_t c = 0; c < d0; ++c) r += P[a * d0 + c] * X[s * d0 + c];
                loss += r * r * scale / 2;
                for (int64_t c = 0; c < d0; ++c) E[a * d0 + c] += scale * r * X[s * d0 + c];
            }
        if (grad != nullptr)
            for (int64_t i = 1; i <= N; ++i) {  // grad W_i = (W_N..W_{i+1})^T E (W_{i-1}..W_1)^T
                const std::vector<Real> left = product<Real>(x, i + 1, N), right = product<Real>(x, 1, i - 1);
                const std::vector<Real> g = multiply<Real>(multiply<Real>(transposed(left, dN, widths[i]), E, widths[i], dN, d0),
                                                           transposed(right, widths[i - 1], d0), widths[i], d0, widths[i - 1]);
                for (size_t t = 0; t < g.size(); ++t) grad[offset(i) + static_cast<int64_t>(t)] = static_cast<double>(g[t]);
            }
        return loss;
    }
    std::vector<int64_t> all_rows() const {
        std::vector<int64_t> index(static_cast<size_t>(n));
        for (int64_t s = 0; s < n; ++s) index[s] = s;
        return index;
    }
    // The minibatch of a step: the first b entries of a partial Fisher-Yates shuffle of 0..n-1 driven by
    // uniform draws of Philox stream 0 of (seed, trajectory, step).
    std::vector<int64_t> minibatch(int64_t b, uint64_t seed, uint64_t trajectory, int64_t step) const {
        std::vector<int64_t> perm = all_rows();
        trajcore::RandomStream rng(seed, trajectory, static_cast<uint64_t>(step), 0);
        for (int64_t j = 0; j < b; ++j) {
            const int64_t r = std::min(n - 1, j + static_cast<int64_t>(rng.uniform() * static_cast<double>(n - j)));
            std::swap(perm[j], perm[r]);
        }
        perm.resize(static_cast<size_t>(b));
        return perm;
    }
    Matrix weights(Values& values) const {  // W_i entries in [-1, 1) / sqrt(d_{i-1})
        Matrix x;
        for (int64_t i = 1; i <= layers(); ++i)
            for (int64_t t = 0; t < widths[i] * widths[i - 1]; ++t)
                x.push_back(values.next() / std::sqrt(static_cast<double>(widths[i - 1])));
        return x;
    }
};

// ||W_{j+1}^T W_{j+1} - W_j W_j^T||_F for j = 1..N-1, then ||P - optimum||_F.
Matrix naive_network_observables(const Network& net, const double* x, const Matrix& optimum) {
    Matrix out;
    const int64_t N = net.layers();
    for (int64_t j = 1; j < N; ++j) {
        const int64_t dj = net.widths[j], dn = net.widths[j + 1], dp = net.widths[j - 1];
        const double* Wj = x + net.offset(j);
        const double* Wn = x + net.offset(j + 1);
        double sum = 0.0;
        for (int64_t a = 0; a < dj; ++a)
            for (int64_t b = 0; b < dj; ++b) {
                double v = 0.0;
                for (int64_t t = 0; t < dn; ++t) v += Wn[t * dj + a] * Wn[t * dj + b];
                for (int64_t t = 0; t < dp; ++t) v -= Wj[a * dp + t] * Wj[b * dp + t];
                sum += v * v;
            }
        out.push_back(std::sqrt(sum));
    }
    const Matrix P = net.product(x, 1, N);
    double d2 = 0.0;
    for (size_t t = 0; t < P.size(); ++t) d2 += (P[t] - optimum[t]) * (P[t] - optimum[t]);
    out.push_back(std::sqrt(d2));
    return out;
}

void test_linear_network(uint64_t seed) {
    using Kernel = trajcore::DeepLinearNetworkKernel;
    Values values(seed);
    const std::vector<int64_t> configs[] = {{5, 3, 7, 2}, {3, 9, 4}, {4, 1, 3}, {6, 6}, {2, 5, 3, 4, 3}};
    for (const std::vector<int64_t>& widths : configs) {
        Network net{widths, 11, {}, {}};
        const int64_t N = net.layers(), d0 = widths.front(), dN = widths.back(), k = std::min(d0, dN);
        net.X = values.vector(static_cast<size_t>(net.n * d0));
        net.Y = values.vector(static_cast<size_t>(net.n * dN));
        const Matrix optimum = values.vector(static_cast<size_t>(dN * d0));
        const int64_t n = net.size();
        std::string what = "linear network widths";
        for (int64_t d : widths) what += " " + std::to_string(d);
        what += " seed " + std::to_string(seed);
        const std::vector<int64_t> rows = net.all_rows();
        Matrix x0 = net.weights(values);
        // An exactly rank-deficient first layer where it can be (a zero row of W_1, d_1 <= d_0).
        const bool deficient = widths[1] > 1 && widths[1] <= d0;
        if (deficient) std::fill(x0.begin() + d0, x0.begin() + 2 * d0, 0.0);
        Matrix g(static_cast<size_t>(n)), want_g(static_cast<size_t>(n));

        // Full batch: loss_and_grad (the moment path) and exact_loss_and_grad.
        const unsigned all_groups = 63u;
        Kernel kernel(widths, net.n, net.X, net.Y, net.n, trajcore::linalg::RankTolerance{}, all_groups, optimum);
        auto ws = kernel.workspace();
        const double want = net.loss(x0.data(), want_g.data(), rows, 1.0);
        const double loss = kernel.loss_and_grad(x0.data(), g.data(), ws, no_noise());
        check(rel_close(loss, want, 1e-12) && all_rel_close(g, want_g, 1e-12), what + ": loss_and_grad");
        Matrix g2(static_cast<size_t>(n));
        auto ws2 = kernel.workspace();
        check(rel_close(kernel.exact_loss_and_grad(x0.data(), g2.data(), ws2), want, 1e-12) &&
                  all_rel_close(g2, want_g, 1e-12),
              what + ": exact_loss_and_grad");
        Matrix P(static_cast<size_t>(dN * d0));
        kernel.product(x0.data(), P.data(), ws2);
        check(all_rel_close(P, net.product(x0.data(), 1, N), 1e-13), what + ": product");

        // Every observable group, after the step (reusing its products) and from scratch.
        Matrix out(static_cast<size_t>(kernel.n_observables()), kNaN);
        check(kernel.n_observables() == k + 3 + N + 2 * (N - 1) + 1, what + ": observable count");
        for (double gradient_loss : {loss, kNaN}) {
            const double observed = kernel.observe(x0.data(), out.data(), ws, gradient_loss);
            check(rel_close(observed, want, 1e-12), what + ": observe loss");
            const Matrix Pn = net.product(x0.data(), 1, N);
            // sum_i s_i^(2p) = tr((P^T P)^p), p = 1..k: for k <= 3 these fix the singular values.
            const Matrix PtP = multiply(transposed(Pn, dN, d0), Pn, d0, dN, d0);
            Matrix power = PtP;
            bool values_ok = true, sorted = true;
            for (int64_t i = 0; i < k; ++i) sorted &= out[i] >= 0.0 && (i == 0 || out[i] <= out[i - 1]);
            for (int p = 1; p <= std::min<int64_t>(k, 3); ++p) {
                double trace = 0.0, sum = 0.0;
                for (int64_t i = 0; i < d0; ++i) trace += power[i * d0 + i];
                for (int64_t i = 0; i < k; ++i) sum += std::pow(out[i], 2 * p);
                values_ok &= rel_close(sum, trace, 1e-12 * (1 << p));
                power = multiply(power, PtP, d0, d0, d0);
            }
            check(sorted && values_ok, what + ": product singular values (tr (P^T P)^p)");
            // ranks: every product here has rank min(widths) (the zero row leaves W_1 rank d_1 - 1)
            int64_t rank = *std::min_element(widths.begin(), widths.end());
            if (deficient) rank = std::min(rank, widths[1] - 1);
            double total = 0.0, squares = 0.0, entropy = 0.0;
            for (int64_t i = 0; i < k; ++i) total += out[i], squares += out[i] * out[i];
            for (int64_t i = 0; i < k; ++i)
                if (out[i] > 0.0) entropy -= out[i] / total * std::log(out[i] / total);
            check(out[k] == static_cast<double>(rank) && rel_close(out[k + 1], std::exp(entropy), 1e-12) &&
                      rel_close(out[k + 2], squares / (out[0] * out[0]), 1e-12) &&
                      (rank > 1 || rel_close(out[k + 2], 1.0, 1e-12)),
                  what + ": product ranks (numerical, effective, stable)");
            bool layers_ok = true;
            for (int64_t i = 1; i <= N; ++i)
                layers_ok &= out[k + 2 + i] == static_cast<double>(std::min(widths[i], widths[i - 1]) -
                                                                   (deficient && i == 1 ? 1 : 0));
            check(layers_ok, what + ": layer ranks");
            bool subspaces_ok = true;
            for (int64_t j = 1; j < N; ++j)
                subspaces_ok &= out[k + 2 + N + (N - 1) + j] ==
                                static_cast<double>(std::min(widths[j], widths[j - 1] + widths[j + 1]));
            check(subspaces_ok, what + ": subspace dimensions");
            const Matrix want_obs = naive_network_observables(net, x0.data(), optimum);
            const Matrix got_obs = [&] {
                Matrix o(out.begin() + k + 3 + N, out.begin() + k + 3 + N + (N - 1));
                o.push_back(out.back());
                return o;
            }();
            check(all_rel_close(got_obs, want_obs, 1e-12), what + ": balancedness and optimum distance");
        }

        // Minibatch steps (b < n): the sample's moments, scaled by n / b.
        const int64_t b = 4;
        Kernel minibatch(widths, net.n, net.X, net.Y, b, trajcore::linalg::RankTolerance{}, 0u, {});
        auto wsb = minibatch.workspace();
        bool batches_ok = true;
        for (int64_t step = 0; step < 3; ++step) {
            static const std::vector<trajcore::NoiseTerm> none;
            const trajcore::StepContext ctx{77, 5, step, &none};
            const double got = minibatch.loss_and_grad(x0.data(), g.data(), wsb, ctx);
            const double wanted = net.loss(x0.data(), want_g.data(), net.minibatch(b, 77, 5, step),
                                           static_cast<double>(net.n) / static_cast<double>(b));
            batches_ok &= rel_close(got, wanted, 1e-12) && all_rel_close(g, want_g, 1e-12);
        }
        check(batches_ok, what + ": minibatch loss_and_grad");

        // post_step: nothing without imputation; with it, W_1's zero row becomes value * v^T, v a unit
        // vector orthogonal to W_1's other rows, value = the term's draw (or s_r + jitter when smaller).
        {
            Matrix x = x0;
            static const std::vector<trajcore::NoiseTerm> none;
            kernel.post_step(x.data(), ws, trajcore::StepContext{9, 1, 3, &none});
            check(same_bits(x, x0), what + ": post_step without imputation changes nothing");
        }
        if (deficient && widths[1] == 3) {
            trajcore::NoiseTerm term;
            term.kind = trajcore::NoiseKind::singular_value_imputation;
            term.scale = 0.8;
            term.jitter = 0.1;
            const std::vector<trajcore::NoiseTerm> noise = {trajcore::NoiseTerm{}, term};  // the term has index 1
            for (int64_t step = 0; step < 6; ++step) {
                Matrix x = x0;
                kernel.post_step(x.data(), ws, trajcore::StepContext{9, 1, step, &noise});
                trajcore::RandomStream rng(9, 1, static_cast<uint64_t>(step), 2);
                double value = term.scale * rng.normal();
                const double jitter = term.jitter * rng.normal();
                // the smaller singular value of rows 0 and 2 of W_1: from their 2 x 2 Gram matrix
                double a = 0.0, c = 0.0, e = 0.0;
                for (int64_t t = 0; t < d0; ++t) a += x0[t] * x0[t], c += x0[t] * x0[2 * d0 + t], e += x0[2 * d0 + t] * x0[2 * d0 + t];
                const double s_min = std::sqrt((a + e) / 2 - std::sqrt((a - e) * (a - e) / 4 + c * c));
                if (std::fabs(value) < s_min) value = s_min + jitter;
                double norm2 = 0.0, dot0 = 0.0, dot2 = 0.0;
                for (int64_t t = 0; t < d0; ++t) {
                    norm2 += x[d0 + t] * x[d0 + t];
                    dot0 += x[d0 + t] * x0[t];
                    dot2 += x[d0 + t] * x0[2 * d0 + t];
                }
                Matrix others = x, others0 = x0;
                std::fill(others.begin() + d0, others.begin() + 2 * d0, 0.0);
                check(same_bits(others, others0) && rel_close(norm2, value * value, 1e-12) &&
                          std::fabs(dot0) <= 1e-13 * std::sqrt(a * norm2) && std::fabs(dot2) <= 1e-13 * std::sqrt(e * norm2),
                      what + ": post_step imputes the missing singular value (step " + std::to_string(step) + ")");
            }
        }

        // Near the data's fit (Y = X P^T + 1e-6 noise) the moment form cancels: observe recomputes the
        // loss from the data (long double reference).
        {
            Network close_fit = net;
            const Matrix Pn = net.product(x0.data(), 1, N);
            for (int64_t s = 0; s < net.n; ++s)
                for (int64_t a = 0; a < dN; ++a) {
                    double y = 1e-6 * values.next();
                    for (int64_t c = 0; c < d0; ++c) y += Pn[a * d0 + c] * net.X[s * d0 + c];
                    close_fit.Y[s * dN + a] = y;
                }
            Kernel fit(widths, net.n, close_fit.X, close_fit.Y, net.n, trajcore::linalg::RankTolerance{}, 0u, {});
            auto wsf = fit.workspace();
            const double exact = static_cast<double>(close_fit.loss<long double>(x0.data(), nullptr, rows, 1.0));
            const double fresh = fit.observe(x0.data(), nullptr, wsf, kNaN);
            const double after = fit.observe(x0.data(), nullptr, wsf, fit.loss_and_grad(x0.data(), g.data(), wsf, no_noise()));
            check(exact < 1e-10 && rel_close(fresh, exact, 1e-8) && rel_close(after, exact, 1e-8),
                  what + ": the recorded loss near the data's fit");
        }

        // The driver: GD, heavy ball, gradient noise (post_step in the loop), minibatch SGD.
        Kernel recorded(widths, net.n, net.X, net.Y, net.n, trajcore::linalg::RankTolerance{},
                        Kernel::balancedness | Kernel::optimum_distance, optimum);
        NaiveProblem naive{
            [&](const double* x, double* gr, int64_t, uint64_t) { return net.loss(x, gr, rows, 1.0); },
            [&](const double* x) { return net.loss(x, nullptr, rows, 1.0); },
            [&](const double* x) { return naive_network_observables(net, x, optimum); }};
        const std::vector<Matrix> starts = {x0, net.weights(values)};
        check_driver(what, recorded, naive, starts, 5, 0.02, 0.0);
        check_driver(what, recorded, naive, starts, 5, 0.02, 0.9);
        check_driver(what, recorded, naive, starts, 4, 0.02, 0.0, 0.2);
        Kernel sgd(widths, net.n, net.X, net.Y, b, trajcore::linalg::RankTolerance{}, Kernel::optimum_distance, optimum);
        NaiveProblem naive_sgd{
            [&](const double* x, double* gr, int64_t step, uint64_t trajectory) {
                return net.loss(x, gr, net.minibatch(b, 0x5eed, trajectory, step),
                                static_cast<double>(net.n) / static_cast<double>(b));
            },
            naive.loss,
            [&](const double* x) { return Matrix{naive_network_observables(net, x, optimum).back()}; }};
        check_driver(what + " minibatch", sgd, naive_sgd, starts, 5, 0.02, 0.0);
    }
}

// ---- Philox4x32-10 --------------------------------------------------------------------------------------

// The reference round function, written from Salmon et al. (2011).
void philox_reference(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c[4] = {counter[0], counter[1], counter[2], counter[3]}, k[2] = {key[0], key[1]};
    for (int round = 0; round < 10; ++round) {
        if (round > 0) k[0] += 0x9E3779B9u, k[1] += 0xBB67AE85u;
        const uint64_t p0 = uint64_t{0xD2511F53u} * c[0], p1 = uint64_t{0xCD9E8D57u} * c[2];
        const uint32_t next[4] = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
                                  static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
        std::memcpy(c, next, sizeof(c));
    }
    std::memcpy(out, c, sizeof(c));
}

void test_philox() {
    // Random123's known-answer vectors.
    const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
        {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu,
         0xa20bc7c6u, 0x6d5451fdu},
        {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu,
         0x5001e420u, 0x24126ea1u}};
    for (const auto& v : kat) {
        uint32_t out[4];
        philox_reference(v, v + 4, out);
        check(std::memcmp(out, v + 6, sizeof(out)) == 0, "philox reference: known-answer vector");
    }
    trajcore::RandomStream zero(0, 0, 0, 0);
    bool kat_ok = true;
    for (int i = 0; i < 4; ++i) kat_ok &= zero.next_u32() == kat[0][6 + i];
    check(kat_ok, "RandomStream(0, 0, 0, 0): the known-answer block");
    // Counter (block, step low, step high 16 bits | stream << 16, trajectory), key (seed low, seed high).
    Values values(7);
    for (int trial = 0; trial < 200; ++trial) {
        const uint64_t seed = values.state, trajectory = values.state >> 7, step = (values.state >> 3) & 0xFFFFFFFFFFFFull;
        const uint32_t stream = static_cast<uint32_t>(values.state >> 48) & 0xFFFFu;
        values.next();
        trajcore::RandomStream rng(seed, trajectory, step, stream);
        bool ok = true;
        for (uint32_t block = 0; block < 3; ++block) {
            const uint32_t counter[4] = {block, static_cast<uint32_t>(step),
                                         static_cast<uint32_t>((step >> 32) & 0xFFFFu) | (stream << 16),
                                         static_cast<uint32_t>(trajectory)};
            const uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
            uint32_t want[4];
            philox_reference(counter, key, want);
            for (uint32_t w : want) ok &= rng.next_u32() == w;
        }
        check(ok, "RandomStream blocks = Philox4x32-10 of (block, step, stream, trajectory; seed)");
    }
    trajcore::RandomStream u(3, 1, 2, 0);
    bool open_unit = true;
    double mean = 0.0;
    for (int i = 0; i < 20000; ++i) {
        const double x = u.uniform();
        open_unit &= x > 0.0 && x < 1.0;
        mean += x / 20000.0;
    }
    check(open_unit && std::fabs(mean - 0.5) < 0.01, "uniform draws in (0, 1) with mean 1/2");
}

[[maybe_unused]] void compare_bits(const std::vector<double>& a, const std::vector<double>& b, const char* what) {
    check(same_bits(a, b), std::string("portable and generic variants give the same bits: ") + what);
}

}  // namespace

int main() {
    int count = 0;
    const Table* const* compiled = trajcore::kernels::compiled(&count);
    std::printf("kernel variants compiled:");
    for (int i = 0; i < count; ++i) std::printf(" %s", compiled[i]->isa);
    std::printf("; active: %s (generic baseline %s)\n", trajcore::kernels::active().isa,
                compiled[count - 1]->baseline);
#if !defined(__x86_64__)
    check(count == 1, "another architecture compiles only the generic variant");
#endif
#ifdef TRAJCORE_EXPECT_VARIANTS
    check(count == TRAJCORE_EXPECT_VARIANTS, "the expected number of compiled variants");
#endif
    std::vector<double> generic[3];
    for (int i = 0; i < count; ++i) {
        const Table& t = *compiled[i];
        if (!trajcore::kernels::cpu_supports(t)) {
            std::printf("  %s: not supported by this CPU, skipped\n", t.isa);
            continue;
        }
        const int before = failures;
        const std::vector<double> results[3] = {test_gemm(t), test_vector_kernels(t), test_walk(t)};
        std::printf("  %s: %s\n", t.isa, failures == before ? "ok" : "FAILED");
        if (&t == &trajcore::kernels::generic_kernels)
            for (int r = 0; r < 3; ++r) generic[r] = results[r];
    }
#ifdef TRAJCORE_TEST_PORTABLE
    {
        const Table& p = trajcore::kernels::portable_kernels;
        const int before = failures;
        const std::vector<double> results[3] = {test_gemm(p), test_vector_kernels(p), test_walk(p)};
#if !defined(__FP_FAST_FMA)  // else the compiler may fuse a * b + c differently in the two
        compare_bits(results[0], generic[0], "gemm");
        compare_bits(results[1], generic[1], "dot, scaled difference");
        compare_bits(results[2], generic[2], "sorted walk");
#endif
        std::printf("  %s: %s\n", p.isa, failures == before ? "ok" : "FAILED");
    }
#endif
    test_symmetric_matrix_factorization();
    test_asymmetric_matrix_factorization();
    test_tensor_decomposition();
    test_symmetric_steps();
    test_symmetric_accurate_loss();
    test_symmetric_outside_support();
    for (uint64_t seed : {101, 102, 103}) {
        test_symmetric_driver(seed);
        test_asymmetric(seed);
        test_tensor_steps(seed);
        test_linear_network(seed);
    }
    test_philox();
    std::printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
