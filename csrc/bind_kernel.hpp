// One binding for any step kernel: bind_kernel<K>(m, name, doc) binds the kernel's whole surface
// (the shared driver as run_chunk, exact losses, single-point loss/gradient and observables, sizes and
// declared capabilities) and returns the class, to which the family's bind file adds its constructor.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "driver.hpp"
#include "kernel.hpp"
#include "pybind.hpp"

namespace trajcore {

template <class Kernel>
pybind11::class_<Kernel> bind_kernel(pybind11::module_& m, const char* name, const char* doc) {
    static_assert(check_kernel<Kernel>());
    namespace py = pybind11;
    using py_helpers::ConstArray;
    using py_helpers::mutable_data;
    py::class_<Kernel> cls(m, name, doc);
    cls.def(
        "run_chunk",
        [](const Kernel& kernel, py::array x, py::object velocity, py::array diverged_at,
           py::array last_perturbation, py::array loss_limit, py::array loss, py::array observations,
           py::object iterates, py::array lr, py::array record_steps, int64_t t0, int64_t t1,
           int64_t total_steps, double momentum, std::vector<NoiseTerm> noise, uint64_t seed,
           int64_t trajectory_offset, int n_threads) {
            require(x.ndim() == 2, "x: expected shape (B, n)");
            // More OpenMP threads than this make libgomp fail to create them (a segfault, not an error).
            require(n_threads >= 1 && n_threads <= max_run_threads, "n_threads: expected 1 to 1024 threads");
            const int64_t B = x.shape(0), n = kernel.state_size(), K = kernel.n_observables();
            const int64_t R = record_steps.ndim() == 1 ? record_steps.shape(0) : -1;
            require(R >= 0, "record_steps: expected a 1-d array");
            RunSpec spec;
            spec.t0 = t0;
            spec.t1 = t1;
            spec.total_steps = total_steps;
            spec.lr = mutable_data<double>(lr, {total_steps}, "lr");
            spec.momentum = momentum;
            for (const NoiseTerm& term : noise) check_noise_term(term);
            spec.noise = std::move(noise);
            spec.seed = seed;
            spec.trajectory_offset = trajectory_offset;
            spec.record_steps = mutable_data<int64_t>(record_steps, {R}, "record_steps");
            spec.n_records = R;
            spec.n_threads = n_threads;
            BatchState state;
            state.batch = B;
            state.x = mutable_data<double>(x, {B, n}, "x");
            // Optional buffers must be arrays already: a list would be converted to a temporary copy and
            // the updates written into it would be lost silently.
            if (!velocity.is_none()) {
                require(py::isinstance<py::array>(velocity), "velocity: expected a float64 array or None");
                auto v = velocity.cast<py::array>();
                state.velocity = mutable_data<double>(v, {B, n}, "velocity");
            }
            require(momentum == 0.0 || state.velocity != nullptr, "velocity: required when momentum != 0");
            state.diverged_at = mutable_data<int64_t>(diverged_at, {B}, "diverged_at");
            state.last_perturbation = mutable_data<int64_t>(last_perturbation, {B}, "last_perturbation");
            state.loss_limit = mutable_data<double>(loss_limit, {B}, "loss_limit");
            state.loss = mutable_data<double>(loss, {B, R}, "loss");
            state.observations = mutable_data<double>(observations, {B, R, K}, "observations");
            if (!iterates.is_none()) {
                require(py::isinstance<py::array>(iterates), "iterates: expected a float64 array or None");
                auto it = iterates.cast<py::array>();
                state.iterates = mutable_data<double>(it, {B, R, n}, "iterates");
            }
            for (int64_t i = 1; i < R; ++i)
                require(spec.record_steps[i] > spec.record_steps[i - 1], "record_steps: must be increasing");
            py::gil_scoped_release release;
            run_chunk(kernel, spec, state);
        },
        py::arg("x"), py::arg("velocity"), py::arg("diverged_at"), py::arg("last_perturbation"),
        py::arg("loss_limit"), py::arg("loss"), py::arg("observations"), py::arg("iterates"), py::arg("lr"),
        py::arg("record_steps"), py::arg("t0"), py::arg("t1"), py::arg("total_steps"), py::arg("momentum"),
        py::arg("noise"), py::arg("seed"), py::arg("trajectory_offset"), py::arg("n_threads"),
        "Advance a batch by steps [t0, t1) in place (the shared trajectory driver).");
    cls.def(
        "losses",
        [](const Kernel& kernel, py::array x, int n_threads) {
            require(x.ndim() == 2, "x: expected shape (B, n)");
            const int64_t B = x.shape(0);
            const double* data = mutable_data<double>(x, {B, kernel.state_size()}, "x");
            py::array_t<double> out(B);
            double* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                evaluate_losses(kernel, data, B, o, n_threads);
            }
            return out;
        },
        py::arg("x"), py::arg("n_threads") = 1, "Exact losses (B,) of parameter vectors x (B, n).");
    cls.def(
        "loss_and_grad",
        [](const Kernel& kernel, const ConstArray& x) {
            require(x.size() == kernel.state_size(),
                    "x: expected state_size = " + std::to_string(kernel.state_size()) + " values");
            py::array_t<double> grad(static_cast<py::ssize_t>(kernel.state_size()));
            double* g = grad.mutable_data();
            double loss = 0.0;
            {
                py::gil_scoped_release release;
                auto ws = kernel.workspace();
                loss = exact_loss_and_grad(kernel, x.data(), g, ws);
            }
            return py::make_tuple(loss, grad);
        },
        py::arg("x"), "(loss, flat gradient (state_size,)) at one state (any shape of state_size values): exact, noise-free, full data.");
    cls.def(
        "observe",
        [](const Kernel& kernel, const ConstArray& x) {
            require(x.size() == kernel.state_size(),
                    "x: expected state_size = " + std::to_string(kernel.state_size()) + " values");
            py::array_t<double> out(static_cast<py::ssize_t>(kernel.n_observables()));
            double* o = out.mutable_data();
            double loss = 0.0;
            {
                py::gil_scoped_release release;
                auto ws = kernel.workspace();
                loss = observe(kernel, x.data(), o, ws, std::nan(""));
            }
            return py::make_tuple(loss, out);
        },
        py::arg("x"), "(exact loss, observables (n_observables,)) at one flat state, as a record step computes them.");
    cls.def_property_readonly("state_size", &Kernel::state_size);
    cls.def_property_readonly(
        "state_transposed", [](const Kernel& kernel) { return state_transposed(kernel); },
        "Whether a trajectory's (p, w) parameters are stored transposed, as (w, p).");
    cls.def_property_readonly("n_observables", &Kernel::n_observables);
    cls.def_property_readonly_static(
        "model_noise",
        [](const py::object&) { return noise_kind_names(Kernel::capabilities.model_noise); },
        "Names of the model-level noise kinds this kernel reads (parameter-level kinds work for every kernel).");
    return cls;
}

}  // namespace trajcore
