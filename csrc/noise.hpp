// Noise specifications handed from Python to the driver as plain data (never a Python callback).
//
// A run carries a list of NoiseTerm. Terms that act on the flat parameter vector (gradient noise,
// Langevin, perturbed GD) are applied by the driver for every problem; terms that act inside a
// model (weight noise, masks, input or label noise, singular-value imputation) are read by the
// problems that support them, and a problem rejects terms it does not support when it is built.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "checks.hpp"
#include "rng.hpp"

namespace trajcore {

enum class NoiseKind : int {
    gradient_gaussian = 1,  // g += s_t xi,  s_t = scale / (1 + t)^(anneal / 2)  (variance s0^2 / (1+t)^gamma)
    langevin = 2,           // x -= lr g + sqrt(2 lr / beta) xi,  beta = inverse temperature (`scale`)
    perturbed_gd = 3,       // x += uniform ball(radius) when ||g|| <= threshold and >= interval steps since last
    singular_value_imputation = 4,
    weight_additive = 5,
    dropconnect = 6,
    dropout = 7,
    input_gaussian = 8,
    label_gaussian = 9,
};

struct NoiseTerm {
    NoiseKind kind = NoiseKind::gradient_gaussian;
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

// Whether `kind` is one of the enumerators (pybind11 lets Python build NoiseKind(99)). No default
// case: -Wswitch flags this function when a kind is added without it.
inline bool is_known(NoiseKind kind) {
    switch (kind) {
        case NoiseKind::gradient_gaussian:
        case NoiseKind::langevin:
        case NoiseKind::perturbed_gd:
        case NoiseKind::singular_value_imputation:
        case NoiseKind::weight_additive:
        case NoiseKind::dropconnect:
        case NoiseKind::dropout:
        case NoiseKind::input_gaussian:
        case NoiseKind::label_gaussian:
            return true;
    }
    return false;
}

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

inline bool acts_on_parameters(NoiseKind kind) {
    return kind == NoiseKind::gradient_gaussian || kind == NoiseKind::langevin || kind == NoiseKind::perturbed_gd;
}

}  // namespace trajcore
