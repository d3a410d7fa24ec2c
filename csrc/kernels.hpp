// The hot kernels in instruction-set variants: the small GEMM, dot, transposes, the scaled difference,
// the finiteness check (gemm_kernels.inc) and the sorted tensor walk (tensor_walk.inc).
//
// Each variant is its own translation unit, compiled with its own flags, so the instruction set is
// decided by the compiler's flags, not by a pragma a compiler may ignore (clang ignores
// `#pragma GCC target`): kernels_avx2.cpp (-mavx2 -mfma), kernels_avx512.cpp (-mavx512f -mavx512vl
// -mavx512dq) and kernels_generic.cpp (the baseline of the target). Each checks with #error that its
// instruction-set macros are defined and names itself from them, so build_info() reports what was
// compiled. The variant TUs define nothing with external linkage but their table (everything else is
// in an anonymous namespace and uses no inline library functions), so no AVX code can be picked by the
// linker for a baseline caller. `active()` picks, once, the best compiled variant the CPU supports.
//
// Builds:
//   TRAJCORE_ISA_KERNELS  defined by setup.py when it compiles the AVX2 and AVX-512 TUs (x86-64, a
//                         compiler that accepts -mavx2 etc.); otherwise only the generic variant exists.
//   TRAJCORE_PORTABLE     plain C++17: the generic variant without GCC vector extensions (lanes.hpp),
//                         no x86 variants. Always on for MSVC, which has no vector extensions.
#pragma once
#include <cstdint>

#if defined(_MSC_VER) && !defined(__clang__) && !defined(TRAJCORE_PORTABLE)
#define TRAJCORE_PORTABLE 1
#endif

#if defined(TRAJCORE_ISA_KERNELS) && !defined(TRAJCORE_PORTABLE) && defined(__x86_64__)
#define TRAJCORE_X86_KERNELS 1
#endif

namespace trajcore::kernels {

constexpr int kMaxTensorOrder = 10;  // the largest order the sorted walk supports

// One call of the sorted walk (see tensor.hpp and tensor_walk.inc).
struct WalkSpec {
    const double* values;  // dense (d^l) or packed entries
    bool dense;
    int64_t d;
    int l;
    const double* U;  // (mp / 8, d, 8) chunk-major
    int64_t mp;       // padded column count, a multiple of 8
    int64_t h0, h1;   // chunk range
    double* G;        // (mp / 8, d, 8), accumulated into
    double* vectors;  // 2 l mp scratch
    int split;        // depth below which the walk runs one chunk group at a time
    int64_t group;    // chunks per group (1..4)
};

// The entry points of one variant. Semantics in linalg.hpp; gemm takes op(A) element (i, p) at
// A[i * a_row + p * a_col].
struct Table {
    const char* isa;       // "avx512", "avx2", "generic" or "portable"
    const char* baseline;  // the instruction set the TU was compiled for, from its macros ("sse2", "neon", ...)
    void (*gemm)(int64_t m, int64_t n, int64_t k, double alpha, const double* A, int64_t a_row, int64_t a_col,
                 const double* B, int64_t ldb, double beta, double* C, int64_t ldc);
    double (*dot)(int64_t n, const double* x, const double* y);
    bool (*all_finite)(int64_t n, const double* x);
    double (*scaled_difference)(int64_t n, const double* x, const double* y, double a, double* out);
    void (*transpose)(int64_t m, int64_t n, const double* A, int64_t lda, double* out, int64_t ldo);
    void (*sorted_walk)(const WalkSpec& spec);
};

extern const Table generic_kernels;
#ifdef TRAJCORE_X86_KERNELS
extern const Table avx2_kernels;
extern const Table avx512_kernels;
#endif

// Whether the CPU running this process can execute `table` (true for the baseline variants).
bool cpu_supports(const Table& table);

// The compiled variants, best first (generic last), and their count.
const Table* const* compiled(int* count);

// The best compiled variant the CPU supports, chosen at the first call.
const Table& active();

}  // namespace trajcore::kernels
