// Python binding of the matrix-sensing kernel.
#include <utility>
#include <vector>

#include "bind_kernel.hpp"
#include "matrix_sensing.hpp"
#include "pybind.hpp"

namespace trajcore {

namespace py = pybind11;
using py_helpers::ConstArray;
using py_helpers::copy_vector;

using IndexArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

TRAJCORE_BINDINGS(matrix_sensing, 1) {
    auto sensing = bind_kernel<MatrixSensingKernel>(
        m, "MatrixSensingKernel",
        "Gradient descent on f(U) = 1/(4m) sum_i (<A_i, U U^T> - y_i)^2 with symmetric measurements A_i.");
    sensing.def(py::init([](const ConstArray& measurements, const ConstArray& observations, int64_t width,
                            const ConstArray& basis, const IndexArray& pairs, double symmetry_tol) {
                    require(measurements.ndim() == 3 && measurements.shape(1) == measurements.shape(2),
                            "measurements: expected shape (m, d, d)");
                    const int64_t count = measurements.shape(0), d = measurements.shape(1);
                    require(d > 0, "measurements: d must be positive");
                    require(observations.ndim() == 1 && observations.shape(0) == count,
                            "observations: expected shape (m,) with m = " + std::to_string(count) +
                                " measurements");
                    require(basis.ndim() == 2 && basis.shape(0) == d,
                            "basis: expected shape (d, q) with d = " + std::to_string(d));
                    require(pairs.ndim() == 2 && pairs.shape(1) == 2, "pairs: expected shape (K, 2)");
                    const int64_t q = basis.shape(1);
                    std::vector<double> y = copy_vector(observations, count, "observations");
                    std::vector<double> packed;
                    {
                        py::gil_scoped_release release;
                        packed = pack_symmetric_measurements(count, d, measurements.data(), symmetry_tol);
                    }
                    PairProjector projector(d, q, copy_vector(basis, d * q, "basis"), d, q,
                                            copy_vector(basis, d * q, "basis"),
                                            std::vector<int64_t>(pairs.data(), pairs.data() + pairs.size()), true);
                    return MatrixSensingKernel(d, width, std::move(packed), std::move(y), std::move(projector));
                }),
                py::arg("measurements"), py::arg("observations"), py::arg("width"), py::arg("basis"),
                py::arg("pairs"), py::arg("symmetry_tol") = 1e-10);
}

}  // namespace trajcore
