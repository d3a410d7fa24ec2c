// Binds the shared driver as `run_chunk` on a problem's kernel class (one line per problem).
#pragma once
#include "driver.hpp"
#include "pybind.hpp"

namespace trajcore {

// Kernels whose state is stored transposed say so with state_transposed().
template <class K, class = void>
struct has_state_transposed : std::false_type {};
template <class K>
struct has_state_transposed<K, std::void_t<decltype(std::declval<const K&>().state_transposed())>>
    : std::true_type {};

template <class Kernel, class PyClass>
void bind_run_chunk(PyClass& cls) {
    namespace py = pybind11;
    using py_helpers::mutable_data;
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
    cls.def_property_readonly("state_size", &Kernel::state_size);
    cls.def_property_readonly(
        "state_transposed",
        [](const Kernel& kernel) {
            if constexpr (has_state_transposed<Kernel>::value)
                return kernel.state_transposed();
            else
                return false;
        },
        "Whether a trajectory's (p, w) parameters are stored transposed, as (w, p).");
    cls.def_property_readonly("n_observables", &Kernel::n_observables);
}

}  // namespace trajcore
