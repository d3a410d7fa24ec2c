// Python bindings of the shared linear algebra: the small Jacobi SVD and the batched change of basis.
#include <algorithm>

#include "decompositions.hpp"
#include "driver.hpp"
#include "linalg.hpp"
#include "pybind.hpp"

namespace trajcore {

namespace py = pybind11;
using py_helpers::ConstArray;

TRAJCORE_BINDINGS(linalg, 1) {
    m.def(
        "jacobi_svd",
        [](const ConstArray& A, bool vectors) -> py::object {
            require(A.ndim() == 2 && A.shape(0) > 0 && A.shape(1) > 0, "A: expected a non-empty 2-d array");
            const int64_t rows = A.shape(0), cols = A.shape(1), k = std::min(rows, cols);
            py::array_t<double> s(k);
            std::vector<double> work;
            if (!vectors) {
                linalg::jacobi_svd(rows, cols, A.data(), s.mutable_data(), nullptr, nullptr, work);
                return s;
            }
            py::array_t<double> U({rows, k}), V({cols, k});
            linalg::jacobi_svd(rows, cols, A.data(), s.mutable_data(), U.mutable_data(), V.mutable_data(), work);
            return py::make_tuple(U, s, V);
        },
        py::arg("A"), py::arg("vectors") = false,
        "One-sided Jacobi SVD of a small matrix: s, or (U, s, V) with A = U diag(s) V^T.");

    m.def(
        "change_basis",
        [](const ConstArray& Q, const ConstArray& X, bool transpose, int n_threads) {
            require(Q.ndim() == 2 && Q.shape(0) == Q.shape(1), "Q: expected a square matrix");
            require(X.ndim() == 3 && X.shape(1) == Q.shape(0), "X: expected shape (B, n, w) with n = Q's order");
            require(n_threads >= 1 && n_threads <= max_run_threads, "n_threads: expected 1 to 1024 threads");
            const int64_t B = X.shape(0), n = X.shape(1), w = X.shape(2);
            py::array_t<double> out({B, n, w});
            const double* q = Q.data();
            const double* x = X.data();
            double* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                linalg::change_basis(n, q, B, w, x, transpose, o, resolve_threads(n_threads, B));
            }
            return out;
        },
        py::arg("Q"), py::arg("X"), py::arg("transpose"), py::arg("n_threads") = 1,
        "Q^T X_b (transpose) or Q X_b for each X_b of X (B, n, w): parameters into or out of the basis Q (n, n).");
}

}  // namespace trajcore
