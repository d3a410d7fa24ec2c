// The AVX-512 (F, VL, DQ) kernel variant (x86-64; setup.py compiles this file with -mavx512f
// -mavx512vl -mavx512dq -mavx2 -mfma). Empty unless the build has the x86 variants (see kernels.hpp).
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "kernels.hpp"

#ifdef TRAJCORE_X86_KERNELS
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__AVX512DQ__) || !defined(__FMA__)
#error "kernels_avx512.cpp must be compiled with -mavx512f -mavx512vl -mavx512dq -mavx2 -mfma"
#endif
#if defined(__clang__) || __GNUC__ >= 12  // else gemm_kernels.inc uses __builtin_shuffle
#define TRAJCORE_HAS_SHUFFLEVECTOR 1
#endif

namespace trajcore::kernels {
namespace {
constexpr int W = 8;
typedef double vec __attribute__((vector_size(64)));
typedef double half_vec __attribute__((vector_size(32)));
typedef double pair_vec __attribute__((vector_size(16)));
typedef vec v8;
#include "kernel_variant.inc"
}  // namespace

const Table avx512_kernels = {"avx512", kBaseline, gemm, dot, all_finite, scaled_difference, transpose,
                              sorted_walk};

}  // namespace trajcore::kernels
#endif
