// Noise specifications handed from Python to the driver as plain data (never a Python callback).
//
// A run carries a list of NoiseTerm. Terms that act on the flat parameter vector (gradient noise,
// Langevin, perturbed GD) are applied by the driver for every problem; terms that act inside a
// model (weight noise, masks, input or label noise, singular-value imputation) are read by the
// kernels that declare them (Capabilities::model_noise, kernel.hpp), and the driver refuses a run
// that carries a term its kernel does not declare. The enumerators are spelled as the Python
// specs' `kind` (trajcore.noise): one vocabulary on both sides.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "checks.hpp"
#include "rng.hpp"

namespace trajcore {

enum class NoiseKind : int {
    gradient = 1,  // g += s_t xi,  s_t = scale / (1 + t)^(anneal / 2)  (variance s0^2 / (1+t)^gamma)
    langevin = 2,           // x -= lr g + sqrt(2 lr / beta) xi,  beta = inverse temperature (`scale`)
    perturbed_gd = 3,       // x += uniform ball(radius) when ||g|| <= threshold and >= interval steps since last
    singular_value_imputation = 4,
    weight_noise = 5,
    dropconnect = 6,
    dropout = 7,
    input_noise = 8,
    label_noise = 9,
};

struct NoiseTerm {
    NoiseKind kind = NoiseKind::gradient;
    double scale = 0.0;      // standard deviation, or inverse temperature for Langevin
    double anneal = 0.0;     // gamma of s0^2 / (1 + t)^gamma
    double probability = 0.0;  // drop probability for masks
    double threshold = 0.0;  // gradient-norm trigger (perturbed GD), rank tolerance (imputation)
    double radius = 0.0;     // perturbation ball radius
    int64_t interval = 0;    // minimum steps between perturbations
    double jitter = 0.0;     // imputation jitter

    double scale_at(int64_t step) const {
        return anneal == 0.0 ? scale : scale / std::pow(1.0 + static_cast<double>(step), 0.5 * anneal);
    }
};

// The random stream of term `index` of a run at one (trajectory, step): terms never share draws, so
// adding a term does not change the draws of the others.
inline RandomStream noise_stream(uint64_t seed, uint64_t trajectory, int64_t step, size_t index) {
    return RandomStream(seed, trajectory, static_cast<uint64_t>(step), static_cast<uint32_t>(index + 1));
}

// The kind's name, as Python spells it (NoiseSpec.kind); nullptr for a value that is no enumerator
// (pybind11 lets Python build NoiseKind(99)). No default case: -Wswitch flags this function when a
// kind is added without it.
inline const char* noise_kind_name(NoiseKind kind) {
    switch (kind) {
        case NoiseKind::gradient:
            return "gradient";
        case NoiseKind::langevin:
            return "langevin";
        case NoiseKind::perturbed_gd:
            return "perturbed_gd";
        case NoiseKind::singular_value_imputation:
            return "singular_value_imputation";
        case NoiseKind::weight_noise:
            return "weight_noise";
        case NoiseKind::dropconnect:
            return "dropconnect";
        case NoiseKind::dropout:
            return "dropout";
        case NoiseKind::input_noise:
            return "input_noise";
        case NoiseKind::label_noise:
            return "label_noise";
    }
    return nullptr;
}

inline bool is_known(NoiseKind kind) { return noise_kind_name(kind) != nullptr; }

inline void check_noise_term(const NoiseTerm& term) {
    require(is_known(term.kind), "noise kind: not a NoiseKind value");
    require(std::isfinite(term.scale) && term.scale >= 0.0, "noise scale must be finite and >= 0");
    require(std::isfinite(term.anneal) && term.anneal >= 0.0, "noise anneal must be finite and >= 0");
    require(term.probability >= 0.0 && term.probability < 1.0, "noise probability must lie in [0, 1)");
    require(std::isfinite(term.threshold) && term.threshold >= 0.0, "noise threshold must be finite and >= 0");
    require(std::isfinite(term.radius) && term.radius >= 0.0, "noise radius must be finite and >= 0");
    require(term.interval >= 0, "noise interval must be >= 0");
    require(std::isfinite(term.jitter) && term.jitter >= 0.0, "noise jitter must be finite and >= 0");
    if (term.kind == NoiseKind::langevin)
        require(term.scale > 0.0, "noise scale (the Langevin inverse temperature) must be > 0");
}

// A set of noise kinds, one bit per kind.
using NoiseKinds = uint32_t;
constexpr NoiseKinds noise_kinds() { return 0; }
template <class... Rest>
constexpr NoiseKinds noise_kinds(NoiseKind kind, Rest... rest) {
    return (NoiseKinds{1} << static_cast<int>(kind)) | noise_kinds(rest...);
}
constexpr bool contains(NoiseKinds kinds, NoiseKind kind) { return (kinds & noise_kinds(kind)) != 0; }

// The names of the kinds in a set, in enumerator order.
inline std::vector<std::string> noise_kind_names(NoiseKinds kinds) {
    std::vector<std::string> names;
    for (int value = 0; value < 32; ++value)
        if (contains(kinds, static_cast<NoiseKind>(value)))
            names.emplace_back(noise_kind_name(static_cast<NoiseKind>(value)));
    return names;
}

// The kinds the driver applies to the flat parameter vector of any problem.
constexpr NoiseKinds parameter_noise = noise_kinds(NoiseKind::gradient, NoiseKind::langevin, NoiseKind::perturbed_gd);
constexpr bool acts_on_parameters(NoiseKind kind) { return contains(parameter_noise, kind); }

}  // namespace trajcore
