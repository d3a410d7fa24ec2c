// The AVX2 + FMA kernel variant (x86-64; setup.py compiles this file with -mavx2 -mfma). Empty unless
// the build has the x86 variants (TRAJCORE_ISA_KERNELS on x86-64, see kernels.hpp).
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "kernels.hpp"

#ifdef TRAJCORE_X86_KERNELS
#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels_avx2.cpp must be compiled with -mavx2 -mfma"
#endif
#if defined(__AVX512F__)
#error "kernels_avx2.cpp must not be compiled with AVX-512 enabled"
#endif
#pragma GCC diagnostic ignored "-Wpsabi"  // the 64-byte vectors are never passed across this TU's boundary
#if defined(__clang__) || __GNUC__ >= 12  // else gemm_kernels.inc uses __builtin_shuffle
#define TRAJCORE_HAS_SHUFFLEVECTOR 1
#endif

namespace trajcore::kernels {
namespace {
constexpr int W = 4;
typedef double vec __attribute__((vector_size(32)));
typedef double half_vec __attribute__((vector_size(16)));
typedef half_vec pair_vec;
typedef double v8 __attribute__((vector_size(64)));
#include "kernel_variant.inc"
}  // namespace

const Table avx2_kernels = {"avx2", kBaseline, gemm, dot, all_finite, scaled_difference, transpose, sorted_walk};

}  // namespace trajcore::kernels
#endif
