// Which kernel variant runs: the best compiled one the CPU supports (see kernels.hpp).
#include "kernels.hpp"

namespace trajcore::kernels {

bool cpu_supports(const Table& table) {
#ifdef TRAJCORE_X86_KERNELS
    __builtin_cpu_init();
    if (&table == &avx512_kernels)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (&table == &avx2_kernels) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    (void)table;
    return true;  // the other variants use the baseline instruction set only
}

const Table* const* compiled(int* count) {
#ifdef TRAJCORE_X86_KERNELS
    static const Table* const variants[] = {&avx512_kernels, &avx2_kernels, &generic_kernels};
#else
    static const Table* const variants[] = {&generic_kernels};
#endif
    *count = static_cast<int>(sizeof(variants) / sizeof(variants[0]));
    return variants;
}

const Table& active() {
    static const Table& chosen = []() -> const Table& {
        int count = 0;
        const Table* const* variants = compiled(&count);
        for (int i = 0; i < count; ++i)
            if (cpu_supports(*variants[i])) return *variants[i];
        return generic_kernels;
    }();
    return chosen;
}

}  // namespace trajcore::kernels
