// Python bindings of the repeated orthonormal projections (csrc/projection.hpp).
#include "projection.hpp"
#include "pybind.hpp"

namespace trajcore {

namespace py = pybind11;
using py_helpers::ConstArray;

TRAJCORE_BINDINGS(projection, 1) {
    m.def(
        "project",
        [](const ConstArray& snapshots, const ConstArray& basis, double scale, int n_threads) {
            require(snapshots.ndim() == 2, "snapshots: expected shape (T, N)");
            require(basis.ndim() == 2, "basis: expected shape (N, k)");
            const int64_t T = snapshots.shape(0), N = snapshots.shape(1), k = basis.shape(1);
            require(basis.shape(0) == N, "basis: expected " + std::to_string(N) + " rows (the snapshot length), got " +
                                             std::to_string(basis.shape(0)));
            require(n_threads >= 1, "n_threads: must be >= 1");
            require_thread_count(n_threads);
            py::array_t<double> out({T, k});
            double* o = out.mutable_data();
            const double *s = snapshots.data(), *b = basis.data();
            {
                py::gil_scoped_release release;
                projection::project(T, N, k, s, b, scale, o, n_threads);
            }
            return out;
        },
        py::arg("snapshots"), py::arg("basis"), py::arg("scale"), py::arg("n_threads") = 1,
        "scale * snapshots (T, N) @ basis (N, k) -> (T, k).");

    m.def(
        "project_per_output",
        [](const ConstArray& snapshots, const ConstArray& basis, double scale, int n_threads) {
            require(snapshots.ndim() == 3, "snapshots: expected shape (T, n, C)");
            require(basis.ndim() == 2, "basis: expected shape (n, k)");
            const int64_t T = snapshots.shape(0), n = snapshots.shape(1), C = snapshots.shape(2), k = basis.shape(1);
            require(basis.shape(0) == n, "basis: expected " + std::to_string(n) + " rows (probe points), got " +
                                             std::to_string(basis.shape(0)));
            require(n_threads >= 1, "n_threads: must be >= 1");
            require_thread_count(n_threads);
            py::array_t<double> out({T, C, k});
            double* o = out.mutable_data();
            const double *s = snapshots.data(), *b = basis.data();
            {
                py::gil_scoped_release release;
                projection::project_per_output(T, n, C, k, s, b, scale, o, n_threads);
            }
            return out;
        },
        py::arg("snapshots"), py::arg("basis"), py::arg("scale"), py::arg("n_threads") = 1,
        "out[t] = scale * snapshots[t]^T (C, n) @ basis (n, k) -> (T, C, k).");

    m.def(
        "project_into",
        [](const ConstArray& snapshot, const ConstArray& basis, double scale, py::array& out, int64_t row) {
            require(basis.ndim() == 2, "basis: expected shape (N, k)");
            const int64_t N = basis.shape(0), k = basis.shape(1);
            require(snapshot.size() == N, "snapshot: expected " + std::to_string(N) + " values, got " +
                                              std::to_string(snapshot.size()));
            require(out.ndim() == 2, "out: expected shape (T, k)");
            double* o = py_helpers::mutable_data<double>(out, {out.shape(0), k}, "out");
            require(row >= 0 && row < out.shape(0), "row: out of range for the buffer");
            projection::project_one(N, k, snapshot.data(), basis.data(), scale, o + row * k);
        },
        py::arg("snapshot"), py::arg("basis"), py::arg("scale"), py::arg("out"), py::arg("row"),
        "Write scale * snapshot (N,) @ basis (N, k) into out[row] of a preallocated (T, k) buffer.");
}

}  // namespace trajcore
