// The private extension module trajcore._core: each bind_<family>.cpp contributes one function.
#include "pybind.hpp"

namespace trajcore {
void bind_core(pybind11::module_& m);
void bind_matrix_factorization(pybind11::module_& m);
void bind_projection(pybind11::module_& m);
void bind_linear_network(pybind11::module_& m);
void bind_tensor(pybind11::module_& m);
}  // namespace trajcore

PYBIND11_MODULE(_core, m) {
    m.doc() = "trajcore compiled core (private): step kernels, the shared driver, projections";
    trajcore::bind_core(m);
    trajcore::bind_matrix_factorization(m);
    trajcore::bind_projection(m);
    trajcore::bind_linear_network(m);
    trajcore::bind_tensor(m);
}
