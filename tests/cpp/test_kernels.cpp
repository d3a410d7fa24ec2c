// The C++ kernels against naive loops, without Python: every compiled kernel variant the CPU can run
// (the small GEMM, dot, scaled difference, finiteness check, transposes, the sorted tensor walk), the
// step kernels (symmetric and asymmetric matrix factorization, orthogonal tensor decomposition) and
// the Philox random numbers. Built and run by tests/cpp/run, natively, with clang, in the portable
// configuration and cross-compiled for aarch64 (under qemu-user).
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
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "linalg.hpp"
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
                    std::vector<double> R(static_cast<size_t>(dl));
                    double want_loss = 0.0;
                    for (int64_t flat = 0; flat < dl; ++flat) {
                        double s = -dense[flat];
                        for (int64_t j = 0; j < m; ++j) {
                            double p = 1.0;
                            for (int64_t rest = flat, q = 0; q < l; ++q, rest /= d) p *= U[(rest % d) * m + j];
                            s += p;
                        }
                        R[flat] = s;
                        want_loss += s * s;
                    }
                    const double factor = halved ? 0.5 : 1.0;
                    std::vector<double> want(U.size(), 0.0);
                    for (int64_t flat = 0; flat < dl; ++flat)
                        for (int64_t j = 0; j < m; ++j) {
                            double p = 1.0;
                            for (int64_t rest = flat / d, q = 0; q < l - 1; ++q, rest /= d) p *= U[(rest % d) * m + j];
                            want[(flat % d) * m + j] += factor * 2.0 * l * R[flat] * p;
                        }
                    want_loss *= factor;
                    check(std::fabs(loss - want_loss) <= 1e-11 * (want_loss + 1.0) && all_close(grad, want, 1e-11),
                          std::string("tensor decomposition ") + (packed ? "packed" : "dense") + " l=" +
                              std::to_string(l) + dims(" d,m", d, m, 0));
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
    test_philox();
    std::printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
