// Build information, BLAS registration and the noise-term record shared by all problems.
#include <pybind11/numpy.h>

#include "driver.hpp"
#include "kernels.hpp"
#include "linalg.hpp"
#include "noise.hpp"
#include "pybind.hpp"

namespace trajcore {

namespace py = pybind11;

static const char* dgemm_signature =
    "void (char *, char *, int *, int *, int *, __pyx_t_5scipy_6linalg_11cython_blas_d *, "
    "__pyx_t_5scipy_6linalg_11cython_blas_d *, int *, __pyx_t_5scipy_6linalg_11cython_blas_d *, int *, "
    "__pyx_t_5scipy_6linalg_11cython_blas_d *, __pyx_t_5scipy_6linalg_11cython_blas_d *, int *)";

// The same signature spelled with plain doubles (another Cython module exporting dgemm).
static const char* dgemm_signature_plain =
    "void (char *, char *, int *, int *, int *, double *, double *, int *, double *, int *, double *, double *, "
    "int *)";

// Binds `name(seed, trajectory, step, stream, count)`: `count` values of `draw` from one stream.
template <class Draw>
void bind_draws(py::module_& m, const char* name, Draw draw) {
    m.def(
        name,
        [draw](uint64_t seed, uint64_t trajectory, int64_t step, uint32_t stream, int64_t count) {
            require(count >= 0, "count: must be >= 0");
            py::array_t<double> out(count);
            RandomStream rng(seed, trajectory, static_cast<uint64_t>(step), stream);
            double* p = out.mutable_data();
            for (int64_t i = 0; i < count; ++i) p[i] = draw(rng);
            return out;
        },
        py::arg("seed"), py::arg("trajectory"), py::arg("step"), py::arg("stream"), py::arg("count"));
}

TRAJCORE_BINDINGS(core, 0) {
    m.def("build_info", []() {
        py::dict info;
#ifdef TRAJCORE_OPENMP
        info["openmp"] = true;
        info["openmp_version"] = _OPENMP;
        info["max_threads"] = omp_get_max_threads();
#else
        info["openmp"] = false;
        info["openmp_version"] = 0;
        info["max_threads"] = 1;
#endif
#if defined(__GNUC__) && !defined(__clang__)
        info["compiler"] = std::string("GCC ") + __VERSION__;
#elif defined(__VERSION__)
        info["compiler"] = std::string(__VERSION__);
#elif defined(_MSC_FULL_VER)
        info["compiler"] = "MSVC " + std::to_string(_MSC_FULL_VER);
#else
        info["compiler"] = std::string("unknown");
#endif
#ifdef TRAJCORE_SANITIZE
        info["sanitizers"] = true;
#else
        info["sanitizers"] = false;
#endif
        info["kernel_isa"] = std::string(linalg::kernel_isa());
        // Each variant's name is backed by the #error checks of its TU on the compiler's ISA macros.
        py::list compiled;
        int count = 0;
        const kernels::Table* const* variants = kernels::compiled(&count);
        for (int i = 0; i < count; ++i) compiled.append(std::string(variants[i]->isa));
        info["kernel_isas_compiled"] = compiled;
        info["kernel_baseline"] = std::string(variants[count - 1]->baseline);  // the generic variant's target
#ifdef TRAJCORE_PORTABLE
        info["portable"] = true;
#else
        info["portable"] = false;
#endif
        info["blas_registered"] = linalg::has_blas();
        info["blas_threshold"] = linalg::blas_threshold();
        return info;
    });

    m.def(
        "register_blas_dgemm",
        [](py::capsule capsule, int64_t threshold) {
            // The capsule's name is the C signature Cython wrote. Calling a function of another signature
            // through this pointer would crash the interpreter, so only a dgemm signature is accepted.
            const char* name = capsule.name();
            const std::string spelled = name == nullptr ? std::string() : std::string(name);
            require(spelled == dgemm_signature || spelled == dgemm_signature_plain,
                    "capsule: expected scipy.linalg.cython_blas.__pyx_capi__['dgemm'] (a capsule named with the "
                    "dgemm C signature), got a capsule named '" + spelled + "'");
            void* pointer = PyCapsule_GetPointer(capsule.ptr(), name);
            if (pointer == nullptr) throw py::error_already_set();
            require(threshold > 0, "threshold: must be positive");
            linalg::set_blas_dgemm(reinterpret_cast<linalg::dgemm_fn>(pointer));
            linalg::set_blas_threshold(threshold);
        },
        py::arg("capsule"), py::arg("threshold"),
        "Use this BLAS dgemm (a scipy.linalg.cython_blas capsule) for products of >= threshold multiply-adds.");
    m.attr("scipy_dgemm_signature") = dgemm_signature;

    py::enum_<NoiseKind>(m, "NoiseKind")
        .value("gradient", NoiseKind::gradient)
        .value("langevin", NoiseKind::langevin)
        .value("perturbed_gd", NoiseKind::perturbed_gd)
        .value("singular_value_imputation", NoiseKind::singular_value_imputation)
        .value("weight_noise", NoiseKind::weight_noise)
        .value("dropconnect", NoiseKind::dropconnect)
        .value("dropout", NoiseKind::dropout)
        .value("input_noise", NoiseKind::input_noise)
        .value("label_noise", NoiseKind::label_noise);

    py::class_<NoiseTerm>(m, "NoiseTerm")
        .def(py::init([](NoiseKind kind, double scale, double anneal, double probability, double threshold,
                         double radius, int64_t interval, double jitter) {
                 NoiseTerm t;
                 t.kind = kind;
                 t.scale = scale;
                 t.anneal = anneal;
                 t.probability = probability;
                 t.threshold = threshold;
                 t.radius = radius;
                 t.interval = interval;
                 t.jitter = jitter;
                 check_noise_term(t);
                 return t;
             }),
             py::arg("kind"), py::arg("scale") = 0.0, py::arg("anneal") = 0.0, py::arg("probability") = 0.0,
             py::arg("threshold") = 0.0, py::arg("radius") = 0.0, py::arg("interval") = 0, py::arg("jitter") = 0.0)
        .def_readonly("kind", &NoiseTerm::kind)
        .def_readonly("scale", &NoiseTerm::scale)
        .def_readonly("anneal", &NoiseTerm::anneal)
        .def_readonly("probability", &NoiseTerm::probability)
        .def_readonly("threshold", &NoiseTerm::threshold)
        .def_readonly("radius", &NoiseTerm::radius)
        .def_readonly("interval", &NoiseTerm::interval)
        .def_readonly("jitter", &NoiseTerm::jitter);

    // Counter-based draws, exposed so tests and the Python layer can reproduce the core's noise
    // (normals) and masks and minibatches (uniforms) exactly.
    bind_draws(m, "normal_draws", [](RandomStream& rng) { return rng.normal(); });
    bind_draws(m, "uniform_draws", [](RandomStream& rng) { return rng.uniform(); });
}

}  // namespace trajcore
