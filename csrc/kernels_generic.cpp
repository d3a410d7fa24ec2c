// The generic kernel variant: the baseline instruction set of the target (SSE2 on x86-64, NEON on
// aarch64) through GCC vector types of 2 doubles, or plain C++17 lanes in the portable build.
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "kernels.hpp"

#if defined(TRAJCORE_PORTABLE)
#include "lanes.hpp"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"  // the 64-byte vectors are never passed across this TU's boundary
#endif

// Vector shuffles with constant lane lists (clang, GCC 12 and later); gemm_kernels.inc falls back to
// __builtin_shuffle otherwise.
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define TRAJCORE_HAS_SHUFFLEVECTOR 1
#endif

// The portable build's table may carry another name (tests/cpp links it next to the generic one).
#ifndef TRAJCORE_GENERIC_TABLE
#define TRAJCORE_GENERIC_TABLE generic_kernels
#endif

namespace trajcore::kernels {
namespace {
constexpr int W = 2;
#if defined(TRAJCORE_PORTABLE)
constexpr const char* kIsa = "portable";
using vec = Lanes<2>;
using v8 = Lanes<8>;
#else
constexpr const char* kIsa = "generic";
typedef double vec __attribute__((vector_size(16)));
typedef double v8 __attribute__((vector_size(64)));
#endif
using half_vec = vec;
using pair_vec = vec;
#include "kernel_variant.inc"
}  // namespace

extern const Table TRAJCORE_GENERIC_TABLE;
const Table TRAJCORE_GENERIC_TABLE = {kIsa, kBaseline, gemm, dot, all_finite, scaled_difference, transpose, sorted_walk};

}  // namespace trajcore::kernels
