// Python bindings of the deep-linear-network kernel (its Jacobi SVD is bound with the shared linear
// algebra, bind_linalg.cpp).

#include "bind_kernel.hpp"
#include "linear_network.hpp"
#include "pybind.hpp"

namespace trajcore {

namespace py = pybind11;
using py_helpers::ConstArray;
using py_helpers::copy_vector;

TRAJCORE_BINDINGS(linear_network, 1) {
    auto cls = bind_kernel<DeepLinearNetworkKernel>(
        m, "DeepLinearNetworkKernel", "Gradient descent on L = 1/2 ||W_N ... W_1 X - Y||_F^2.");
    cls.def(py::init([](std::vector<int64_t> widths, const ConstArray& X_rows, const ConstArray& Y_rows,
                        int64_t batch_size, double rank_rtol, double rank_atol, unsigned groups,
                        py::object optimum) {
                require(widths.size() >= 2, "widths: need at least two entries");
                require(X_rows.ndim() == 2 && X_rows.shape(1) == widths.front(), "X_rows: expected shape (n, d_0)");
                require(Y_rows.ndim() == 2 && Y_rows.shape(1) == widths.back(), "Y_rows: expected shape (n, d_N)");
                require(X_rows.shape(0) == Y_rows.shape(0), "X_rows, Y_rows: different numbers of samples");
                const int64_t n = X_rows.shape(0);
                std::vector<double> opt;
                if (!optimum.is_none())
                    opt = copy_vector(optimum.cast<ConstArray>(), widths.back() * widths.front(), "optimum");
                linalg::RankTolerance tol;
                tol.rtol = rank_rtol;
                tol.atol = rank_atol;
                return DeepLinearNetworkKernel(widths, n, copy_vector(X_rows, n * widths.front(), "X_rows"),
                                               copy_vector(Y_rows, n * widths.back(), "Y_rows"), batch_size, tol,
                                               groups, std::move(opt));
            }),
            py::arg("widths"), py::arg("X_rows"), py::arg("Y_rows"), py::arg("batch_size"), py::arg("rank_rtol"),
            py::arg("rank_atol"), py::arg("groups"), py::arg("optimum") = py::none());
}

}  // namespace trajcore
