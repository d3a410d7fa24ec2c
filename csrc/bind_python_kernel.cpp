// A step kernel whose loss, gradient and observables are Python callables: the way a problem written
// in NumPy (trajcore.NumpyProblem) runs through the shared driver, with the same records, noise
// streams, seeds, momentum, divergence handling and determinism as the compiled kernels.
//
// The driver runs trajectories on OpenMP threads with the GIL released; every call here takes the
// GIL, so the callbacks run one at a time. That is correct, not only safe: each trajectory's
// arithmetic is its own, so the results are the same bits for any thread count. Each call gets a new
// array holding a copy of x: a callback never sees, keeps or writes the driver's buffers. An exception
// raised by a callback (KeyboardInterrupt included) leaves run_chunk as the same Python exception:
// the driver keeps the first one and rethrows it after the parallel loop (pybind11 3's
// error_already_set shares its Python error and takes the GIL itself to free it, so it may be copied
// and destroyed on a worker thread without the GIL).
//
// Cost per step: one Python call and two copies of n values, about 3 us besides the callback's own
// work (measured with a 3-parameter quadratic, one thread); a record step without observables reuses
// the gradient's loss. More threads would only add GIL hand-offs (4 us per call with 2 threads on 2
// cores with the thread state kept per trajectory, 9 us when each call made its own), so the kernel
// declares itself serial and the driver runs it on one thread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "bind_kernel.hpp"
#include "kernel.hpp"
#include "pybind.hpp"

namespace trajcore {

namespace py = pybind11;

namespace {

std::string type_name(py::handle value) { return Py_TYPE(value.ptr())->tp_name; }

// The shape of an array as "(3, 5)", for messages.
std::string shape_text(const py::array& a) {
    std::string text = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) text += (i ? ", " : "") + std::to_string(a.shape(i));
    return text + (a.ndim() == 1 ? ",)" : ")");
}

// `value` as an array if it holds real numbers (bool, integer or float). (A default py::array is
// not a null handle but an empty float64 array, hence the optional.)
std::optional<py::array> real_array(py::handle value) {
    py::array array = py::array::ensure(value);
    const char kind = array ? array.dtype().kind() : 'O';
    if (kind == 'b' || kind == 'i' || kind == 'u' || kind == 'f') return array;
    return std::nullopt;
}

std::string description(py::handle value) {
    py::array array = py::array::ensure(value);
    return type_name(value) + (array ? " of dtype " + std::string(py::str(array.dtype())) : std::string());
}

}  // namespace

// Calls loss_and_grad(x (n,)) -> (loss, grad (n values)) and observe(x (n,)) -> (loss, observables
// (K values)), both with x a new float64 array; the loss is one real number (a Python or NumPy scalar
// or a 0-d array), the values real numbers of any shape (their count is checked), NaN and inf
// included: the driver reads them as divergence. Model-level noise is not available to a Python
// problem (model_noise is empty); the driver applies the parameter-level kinds to every kernel.
class PythonKernel {
public:
    // observe_after_gradient: a record step without observables reuses the loss the gradient call
    // just returned at the same x instead of calling back into Python for it; serial: see above.
    static constexpr Capabilities capabilities = Capabilities{}.with_observe_after_gradient().with_serial();

    // One Python thread state per trajectory's run on a thread, kept with the GIL released between
    // calls: a worker thread would otherwise create and destroy one at every call.
    struct Workspace {
        std::unique_ptr<py::gil_scoped_acquire> thread_state;
        std::unique_ptr<py::gil_scoped_release> released;
    };

    // `name` prefixes the messages of a callback's wrong result (trajcore passes the problem's class).
    PythonKernel(py::function loss_and_grad, py::function observe, int64_t state_size, int64_t n_observables,
                 std::string name)
        : loss_and_grad_(std::move(loss_and_grad)),
          observe_(std::move(observe)),
          state_size_(state_size),
          n_observables_(n_observables),
          name_(std::move(name)) {
        require(state_size >= 0, "state_size: expected a non-negative size");
        require(n_observables >= 0, "n_observables: expected a non-negative count");
    }

    Workspace workspace() const {
        Workspace ws;
        ws.thread_state = std::make_unique<py::gil_scoped_acquire>();
        ws.released = std::make_unique<py::gil_scoped_release>();
        return ws;
    }
    int64_t state_size() const { return state_size_; }
    int64_t n_observables() const { return n_observables_; }

    double loss_and_grad(const double* x, double* g, Workspace&, const StepContext&) const {
        py::gil_scoped_acquire gil;
        return read_pair(loss_and_grad_(copy_of(x)), "loss_and_grad", "grad", state_size_, g);
    }

    double observe(const double* x, double* out, Workspace&, double gradient_loss) const {
        if (n_observables_ == 0 && !std::isnan(gradient_loss)) return gradient_loss;
        py::gil_scoped_acquire gil;
        return read_pair(observe_(copy_of(x)), "observe", "observables", n_observables_, out);
    }

private:
    py::array_t<double> copy_of(const double* x) const {
        py::array_t<double> copy(static_cast<py::ssize_t>(state_size_));
        std::copy(x, x + state_size_, copy.mutable_data());
        return copy;
    }

    // A (loss, values) tuple from `callback`: the loss a real number, `count` real values into out.
    // Messages are built only on failure (this runs once per step).
    double read_pair(const py::object& result, const char* callback, const char* values_name, int64_t count,
                     double* out) const {
        auto where = [&] { return name_ + "." + callback + ": "; };
        const bool pair = py::isinstance<py::tuple>(result) && py::len(result) == 2;
        if (!pair)
            throw py::type_error(where() + "expected a tuple (loss, " + values_name + "), got " + type_name(result) +
                                 (py::isinstance<py::tuple>(result) ? " of length " + std::to_string(py::len(result))
                                                                     : std::string()));
        const auto items = py::reinterpret_borrow<py::tuple>(result);
        const std::optional<py::array> loss = real_array(items[0]);
        if (!loss || loss->ndim() != 0)
            throw py::type_error(where() + "expected the loss as one real number, got " +
                                 (loss ? "an array of shape " + shape_text(*loss) : description(items[0])));
        const std::optional<py::array> values = real_array(items[1]);
        if (!values)
            throw py::type_error(where() + "expected " + values_name + " as real numbers (float64-convertible), got " +
                                 description(items[1]));
        if (values->size() != count)
            throw std::invalid_argument(where() + "expected " + values_name + " with " + std::to_string(count) +
                                        " values, got shape " + shape_text(*values));
        const auto doubles = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(*values);
        std::copy(doubles.data(), doubles.data() + count, out);
        return py::array_t<double, py::array::forcecast>::ensure(*loss).data()[0];
    }

    py::function loss_and_grad_;
    py::function observe_;
    int64_t state_size_;
    int64_t n_observables_;
    std::string name_;
};

TRAJCORE_BINDINGS(python_kernel, 1) {
    bind_kernel<PythonKernel>(
        m, "PythonKernel",
        "The shared driver around Python callables loss_and_grad(x (n,)) -> (loss, grad (n,)) and "
        "observe(x (n,)) -> (loss, observables (K,)); x is a new float64 array per call. The callbacks "
        "run under the GIL, one at a time, and their exceptions leave run_chunk unchanged.")
        .def(py::init<py::function, py::function, int64_t, int64_t, std::string>(), py::arg("loss_and_grad"),
             py::arg("observe"), py::arg("state_size"), py::arg("n_observables"), py::arg("name") = "PythonKernel");
}

}  // namespace trajcore
