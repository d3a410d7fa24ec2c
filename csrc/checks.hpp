// Argument checks shared by every kernel. Violations throw std::invalid_argument, which the
// bindings surface as Python ValueError: the Python layer validates first, this is the second line.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace trajcore {

inline void require(bool condition, const std::string& message) {
    if (!condition) throw std::invalid_argument(message);
}

// For literal messages: nothing is allocated unless the check fails (checks inside loops stay free).
inline void require(bool condition, const char* message) {
    if (!condition) throw std::invalid_argument(message);
}

// Product of non-negative sizes, throwing instead of overflowing int64.
inline int64_t checked_size(int64_t a, int64_t b, const char* what) {
    require(a >= 0 && b >= 0, std::string(what) + ": negative dimension");
    if (a != 0 && b > INT64_MAX / a) throw std::invalid_argument(std::string(what) + ": size overflows int64");
    return a * b;
}

// The most OpenMP threads one call may ask for. Beyond what the system can create, libgomp crashes
// instead of failing, so every binding that takes n_threads checks it here.
constexpr int max_run_threads = 1024;

inline void require_thread_count(int n_threads) {
    require(n_threads <= max_run_threads, "n_threads: expected at most 1024 threads, got " + std::to_string(n_threads));
}

}  // namespace trajcore
