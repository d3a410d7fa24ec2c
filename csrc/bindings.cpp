// The private extension module trajcore._core. Each bind_<family>.cpp registers its bindings with
// TRAJCORE_BINDINGS (pybind.hpp); this file only runs them, in a fixed order.
#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "pybind.hpp"

namespace trajcore {

namespace {

struct Registration {
    int order;
    std::string name;
    BindFunction bind;
};

// A function-local static: registrations run during static initialisation, in any order of files.
std::vector<Registration>& registrations() {
    static std::vector<Registration> all;
    return all;
}

}  // namespace

bool register_bindings(int order, const char* name, BindFunction bind) {
    registrations().push_back({order, name, bind});
    return true;
}

}  // namespace trajcore

PYBIND11_MODULE(_core, m) {
    m.doc() = "trajcore compiled core (private): step kernels, the shared driver, projections";
    auto all = trajcore::registrations();
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
        return std::tie(a.order, a.name) < std::tie(b.order, b.name);
    });
    for (const auto& registration : all) registration.bind(m);
}
