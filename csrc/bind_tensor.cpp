// Python bindings of the symmetric-tensor kernels and the tensor-decomposition step kernel.
#include <memory>
#include <string>

#include "bind_kernel.hpp"
#include "pybind.hpp"
#include "tensor.hpp"

namespace trajcore {

namespace py = pybind11;
using py_helpers::ConstArray;
using py_helpers::copy_vector;

namespace {

const char* storage_name(TensorStorage s) {
    switch (s) {
        case TensorStorage::factored:
            return "factored";
        case TensorStorage::dense:
            return "dense";
        default:
            return "packed";
    }
}

py::array_t<double> to_array(std::vector<double>&& v) {
    auto* owned = new std::vector<double>(std::move(v));
    py::capsule release(owned, [](void* p) { delete static_cast<std::vector<double>*>(p); });
    return py::array_t<double>({static_cast<py::ssize_t>(owned->size())}, owned->data(), release);
}

// U as (d, m) float64 C-contiguous with d = the tensor's dimension.
const double* columns(const ConstArray& U, int64_t d, int64_t& m) {
    require(U.ndim() == 2 && U.shape(0) == d, "U: expected shape (d, m) with d = " + std::to_string(d));
    m = U.shape(1);
    return U.data();
}

}  // namespace

TRAJCORE_BINDINGS(tensor, 1) {
    m.def("packed_size", &packed_size, py::arg("d"), py::arg("order"),
          "Distinct entries C(d + l - 1, l) of a symmetric order-l tensor on R^d.");
    m.def(
        "packed_multiplicities", [](int64_t d, int order) { return to_array(packed_multiplicities(d, order)); },
        py::arg("d"), py::arg("order"), "Distinct permutations of each packed entry (packed order).");
    m.def(
        "dense_asymmetry",
        [](const ConstArray& T, int64_t d, int order) {
            require(T.size() == dense_size(d, order), "T: expected d^l entries");
            py::gil_scoped_release release;
            return dense_asymmetry(d, order, T.data());
        },
        py::arg("T"), py::arg("d"), py::arg("order"), "max |T[a] - T[sorted(a)]| over all multi-indices a.");

    using Tensor = SymmetricTensor;
    py::class_<Tensor, std::shared_ptr<Tensor>> tensor(m, "SymmetricTensorCore");
    tensor.def_static(
        "from_factors",
        [](const ConstArray& Z, const ConstArray& c, int order) {
            require(Z.ndim() == 2 && c.ndim() == 1 && Z.shape(1) == c.shape(0), "Z, c: expected (d, r) and (r,)");
            const int64_t d = Z.shape(0), r = Z.shape(1);
            return std::make_shared<Tensor>(
                Tensor::from_factors(d, order, copy_vector(Z, d * r, "Z"), copy_vector(c, r, "c")));
        },
        py::arg("Z"), py::arg("c"), py::arg("order"));
    tensor.def_static(
        "from_dense",
        [](const ConstArray& T, int64_t d, int order) {
            return std::make_shared<Tensor>(Tensor::from_dense(d, order, copy_vector(T, dense_size(d, order), "T")));
        },
        py::arg("T"), py::arg("d"), py::arg("order"));
    tensor.def_static(
        "from_packed",
        [](const ConstArray& T, int64_t d, int order) {
            return std::make_shared<Tensor>(
                Tensor::from_packed(d, order, copy_vector(T, packed_size(d, order), "T")));
        },
        py::arg("T"), py::arg("d"), py::arg("order"));
    tensor.def_property_readonly("dim", &Tensor::dim);
    tensor.def_property_readonly("order", &Tensor::order);
    tensor.def_property_readonly("rank", &Tensor::rank);
    tensor.def_property_readonly("storage", [](const Tensor& t) { return std::string(storage_name(t.storage())); });
    tensor.def_property_readonly("norm_squared", &Tensor::norm_squared);
    tensor.def("to_dense", [](const Tensor& t) {
        std::vector<double> v;
        {
            py::gil_scoped_release release;
            v = t.to_dense();
        }
        return to_array(std::move(v));
    });
    tensor.def("to_packed", [](const Tensor& t) {
        std::vector<double> v;
        {
            py::gil_scoped_release release;
            v = t.to_packed();
        }
        return to_array(std::move(v));
    });
    // Conversions inside the core: the new storage is built once and moved in (no NumPy copy on the way).
    tensor.def("as_dense", [](const Tensor& t) {
        py::gil_scoped_release release;
        return std::make_shared<Tensor>(Tensor::from_dense(t.dim(), t.order(), t.to_dense()));
    });
    tensor.def("as_packed", [](const Tensor& t) {
        py::gil_scoped_release release;
        return std::make_shared<Tensor>(Tensor::from_packed(t.dim(), t.order(), t.to_packed()));
    });
    tensor.def(
        "contract",
        [](const Tensor& t, const ConstArray& U, int n_threads) {
            require_thread_count(n_threads);
            int64_t cols = 0;
            const double* u = columns(U, t.dim(), cols);
            py::array_t<double> G({static_cast<py::ssize_t>(t.dim()), static_cast<py::ssize_t>(cols)});
            double* g = G.mutable_data();
            {
                py::gil_scoped_release release;
                t.contract(u, cols, g, n_threads);
            }
            return G;
        },
        py::arg("U"), py::arg("n_threads") = 1, "G (d, m): G[:, j] = T(u_j, ..., u_j, .).");
    tensor.def(
        "full_contract",
        [](const Tensor& t, const ConstArray& U, int n_threads) {
            require_thread_count(n_threads);
            int64_t cols = 0;
            const double* u = columns(U, t.dim(), cols);
            py::array_t<double> out(static_cast<py::ssize_t>(cols));
            double* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                t.full_contract(u, cols, o, n_threads);
            }
            return out;
        },
        py::arg("U"), py::arg("n_threads") = 1, "(m,): T(u_j, ..., u_j).");

    auto ostd = bind_kernel<OrthogonalTensorDecompositionKernel>(
        m, "OrthogonalTensorDecompositionKernel", "Gradient descent on f(U) = ||sum_j u_j^{(x)l} - T||_F^2 (or half of it).");
    ostd.def(py::init([](std::shared_ptr<Tensor> target, int64_t width, const ConstArray& basis, bool halved) {
                 require(target != nullptr, "target: missing");
                 const int64_t d = target->dim();
                 require(basis.ndim() == 2 && basis.shape(0) == d, "basis: expected shape (d, q)");
                 const int64_t q = basis.shape(1);
                 // The basis is copied before `target` is moved from: the order in which arguments are
                 // evaluated is unspecified (GCC goes right to left, clang left to right).
                 std::vector<double> copied = copy_vector(basis, d * q, "basis");
                 return OrthogonalTensorDecompositionKernel(std::move(target), width, std::move(copied), q, halved);
             }),
             py::arg("target"), py::arg("width"), py::arg("basis"), py::arg("halved"));
}

}  // namespace trajcore
