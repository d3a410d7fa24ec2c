// The one place pybind11 enters the core: bind_*.cpp files include this header; kernel headers never do.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "checks.hpp"
#include "linalg.hpp"

namespace trajcore::py_helpers {

namespace py = pybind11;

using ConstArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

// A C-contiguous, writeable array of T with exactly `shape`: the state the driver updates in place.
template <class T>
T* mutable_data(py::array& a, const std::vector<int64_t>& shape, const char* name) {
    require(py::isinstance<py::array_t<T>>(a) && a.dtype().is(py::dtype::of<T>()),
            std::string(name) + ": wrong dtype");
    require(a.flags() & py::array::c_style, std::string(name) + ": must be C-contiguous");
    require(a.writeable(), std::string(name) + ": must be writeable");
    require(a.ndim() == static_cast<py::ssize_t>(shape.size()), std::string(name) + ": wrong number of dimensions");
    for (size_t i = 0; i < shape.size(); ++i)
        require(a.shape(static_cast<py::ssize_t>(i)) == shape[i], std::string(name) + ": wrong shape");
    return static_cast<T*>(a.mutable_data());
}

// Copy of a finite float64 array with `size` elements (any shape), as the kernels own their inputs.
inline std::vector<double> copy_vector(const ConstArray& a, int64_t size, const char* name) {
    require(a.size() == size, std::string(name) + ": expected " + std::to_string(size) + " values, got " +
                                  std::to_string(a.size()));
    std::vector<double> values(a.data(), a.data() + a.size());
    // The message is built only on failure: a std::string per element would cost more than the copy.
    if (!linalg::all_finite(static_cast<int64_t>(values.size()), values.data()))
        throw std::invalid_argument(std::string(name) + ": contains NaN or infinite values");
    return values;
}

}  // namespace trajcore::py_helpers

namespace trajcore {

using BindFunction = void (*)(pybind11::module_&);

// Adds a family's bindings to trajcore._core (called at static initialisation by TRAJCORE_BINDINGS);
// the module runs them in (order, name) order. Returns true, to initialise a static.
bool register_bindings(int order, const char* name, BindFunction bind);

}  // namespace trajcore

// Defines the function that binds a family and registers it, so that a new family's bind file is all
// it takes (no list to edit):
//     TRAJCORE_BINDINGS(tensor, 1) { ... m.def(...) ... }
// `order` 0 is for the shared types other bindings use in their signatures (NoiseTerm); families use 1.
#define TRAJCORE_BINDINGS(name, order)                                                              \
    static void trajcore_bind_##name(pybind11::module_& m);                                         \
    [[maybe_unused]] static const bool trajcore_registered_##name =                                 \
        ::trajcore::register_bindings(order, #name, &trajcore_bind_##name);                         \
    static void trajcore_bind_##name(pybind11::module_& m)
