// Python bindings of the matrix-factorization kernels.
#include <algorithm>

#include "bind_kernel.hpp"
#include "matrix_factorization.hpp"
#include "pybind.hpp"

namespace trajcore {

namespace py = pybind11;
using py_helpers::ConstArray;
using py_helpers::copy_vector;

static TargetMatrix make_target(int64_t rows, int64_t cols, const py::object& dense, const py::object& left,
                                const py::object& weights, const py::object& right, const py::object& diagonal) {
    if (!diagonal.is_none()) {
        require(rows > 0 && cols > 0, "target: dimensions must be positive");
        const int64_t n = std::min(rows, cols);
        return TargetMatrix::diagonal(rows, cols, copy_vector(diagonal.cast<ConstArray>(), n, "diagonal"));
    }
    if (!dense.is_none()) {
        auto a = dense.cast<ConstArray>();
        return TargetMatrix::dense(rows, cols, copy_vector(a, checked_size(rows, cols, "target"), "target"));
    }
    require(!left.is_none() && !weights.is_none() && !right.is_none(),
            "target: give the dense matrix or all of (left, weights, right)");
    auto w = weights.cast<ConstArray>();
    const int64_t rank = w.size();
    return TargetMatrix::factored(rows, cols, rank, copy_vector(left.cast<ConstArray>(), checked_size(rows, rank, "left"), "left"),
                                  copy_vector(w, rank, "weights"),
                                  copy_vector(right.cast<ConstArray>(), checked_size(cols, rank, "right"), "right"));
}

static std::vector<int64_t> copy_pairs(const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& p) {
    require(p.ndim() == 2 && p.shape(1) == 2, "pairs: expected shape (K, 2)");
    return std::vector<int64_t>(p.data(), p.data() + p.size());
}

TRAJCORE_BINDINGS(matrix_factorization, 1) {
    auto smf = bind_kernel<SymmetricMatrixFactorizationKernel>(
        m, "SymmetricMatrixFactorizationKernel", "Gradient descent on f(U) = 1/4 ||U U^T - M||_F^2.");
    smf.def(py::init([](int64_t d, int64_t width, py::object dense, py::object V, py::object sigma,
                        const ConstArray& basis, const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& pairs,
                        py::object diagonal, bool transposed) {
                require(basis.ndim() == 2 && basis.shape(0) == d, "basis: expected shape (d, q)");
                const int64_t q = basis.shape(1);
                TargetMatrix target = make_target(d, d, dense, V, sigma, V, diagonal);
                PairProjector projector(d, q, copy_vector(basis, d * q, "basis"), d, q,
                                        copy_vector(basis, d * q, "basis"), copy_pairs(pairs), true);
                return SymmetricMatrixFactorizationKernel(std::move(target), width, std::move(projector), transposed);
            }),
            py::arg("d"), py::arg("width"), py::arg("dense") = py::none(), py::arg("V") = py::none(),
            py::arg("sigma") = py::none(), py::arg("basis"), py::arg("pairs"), py::arg("diagonal") = py::none(),
            py::arg("transposed") = false);

    auto amf = bind_kernel<AsymmetricMatrixFactorizationKernel>(
        m, "AsymmetricMatrixFactorizationKernel", "Gradient descent on f(X, Y) = 1/2 ||X Y^T - M||_F^2.");
    amf.def(py::init([](int64_t rows, int64_t cols, int64_t width, py::object dense, py::object A, py::object s,
                        py::object Bm, const ConstArray& left_basis, const ConstArray& right_basis,
                        const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& pairs,
                        py::object diagonal) {
                require(left_basis.ndim() == 2 && left_basis.shape(0) == rows, "left_basis: expected shape (m, q)");
                require(right_basis.ndim() == 2 && right_basis.shape(0) == cols, "right_basis: expected shape (n, q)");
                const int64_t ql = left_basis.shape(1), qr = right_basis.shape(1);
                TargetMatrix target = make_target(rows, cols, dense, A, s, Bm, diagonal);
                PairProjector projector(rows, ql, copy_vector(left_basis, rows * ql, "left_basis"), cols, qr,
                                        copy_vector(right_basis, cols * qr, "right_basis"), copy_pairs(pairs),
                                        false);
                return AsymmetricMatrixFactorizationKernel(std::move(target), width, std::move(projector));
            }),
            py::arg("rows"), py::arg("cols"), py::arg("width"), py::arg("dense") = py::none(),
            py::arg("left") = py::none(), py::arg("weights") = py::none(), py::arg("right") = py::none(),
            py::arg("left_basis"), py::arg("right_basis"), py::arg("pairs"), py::arg("diagonal") = py::none());
}

}  // namespace trajcore
