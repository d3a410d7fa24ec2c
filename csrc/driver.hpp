// The one trajectory driver shared by every problem.
//
// It advances B trajectories by steps [t0, t1) of a run: OpenMP across trajectories (each trajectory
// belongs to one thread for the whole chunk, so its arithmetic never depends on the thread count),
// per-step noise from counter-based streams keyed by (seed, global trajectory index, step, term),
// recording at the requested steps, and divergence detection. Python calls it chunk by chunk so that
// Ctrl-C and progress bars work between chunks; all state lives in caller-owned arrays.
//
// What a kernel provides is the contract in kernel.hpp, checked when run_chunk is instantiated.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "checks.hpp"
#include "kernel.hpp"
#include "linalg.hpp"
#include "noise.hpp"

#ifdef TRAJCORE_OPENMP
#include <omp.h>
#endif

namespace trajcore {

struct RunSpec {
    int64_t t0 = 0, t1 = 0;            // steps advanced by this chunk: t0, ..., t1 - 1
    int64_t total_steps = 0;           // the run's length; the state after it is recorded by the last chunk
    const double* lr = nullptr;        // (total_steps,) step size per step
    double momentum = 0.0;             // heavy ball: v <- momentum v + g, x <- x - lr v
    std::vector<NoiseTerm> noise;
    uint64_t seed = 0;
    int64_t trajectory_offset = 0;
    const int64_t* record_steps = nullptr;  // (n_records,) increasing
    int64_t n_records = 0;
    int n_threads = 1;
};

// Caller-owned arrays, persistent across chunks.
struct BatchState {
    int64_t batch = 0;
    double* x = nullptr;                 // (B, n) current iterates
    double* velocity = nullptr;          // (B, n), only when momentum != 0
    int64_t* diverged_at = nullptr;      // (B,) -1 while the trajectory is healthy
    int64_t* last_perturbation = nullptr;  // (B,) step of the last perturbed-GD kick
    const double* loss_limit = nullptr;  // (B,) a loss above this counts as divergence
    double* loss = nullptr;              // (B, R)
    double* observations = nullptr;      // (B, R, K)
    double* iterates = nullptr;          // (B, R, n) or nullptr
};

// Threads for a batch of `batch` trajectories: never more than trajectories, so a single run does not
// start an idle team whose spinning slows it down.
inline int resolve_threads(int requested, int64_t batch) {
    require_thread_count(requested);
#ifdef TRAJCORE_OPENMP
    const int64_t wanted = requested > 0 ? requested : omp_get_max_threads();
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(wanted, batch)));
#else
    (void)requested;
    (void)batch;
    return 1;
#endif
}

inline bool all_finite(const double* v, int64_t n) { return linalg::all_finite(n, v); }

// Adds the driver-level noise terms to one update; `next` already holds the noise-free update of
// x. `gradient_norm` is |grad f(x)|, read by perturbed GD only.
inline void apply_parameter_noise(const RunSpec& spec, const StepContext& ctx, double gradient_norm, double lr,
                                  double* next, int64_t n, int64_t* last_perturbation) {
    for (size_t term_index = 0; term_index < spec.noise.size(); ++term_index) {
        const NoiseTerm& term = spec.noise[term_index];
        RandomStream rng = noise_stream(ctx.seed, ctx.trajectory, ctx.step, term_index);
        switch (term.kind) {
            case NoiseKind::gradient: {
                const double s = lr * term.scale_at(ctx.step);
                if (s == 0.0) break;
                for (int64_t i = 0; i < n; ++i) next[i] -= s * rng.normal();
                break;
            }
            case NoiseKind::langevin: {
                const double s = std::sqrt(2.0 * lr / term.scale);
                for (int64_t i = 0; i < n; ++i) next[i] += s * rng.normal();
                break;
            }
            case NoiseKind::perturbed_gd: {
                const bool quiet_long_enough =
                    *last_perturbation < 0 || ctx.step - *last_perturbation >= term.interval;
                if (gradient_norm > term.threshold || !quiet_long_enough || term.radius == 0.0) break;
                // Uniform in the ball: Gaussian direction, radius r * u^(1/n).
                std::vector<double> direction(static_cast<size_t>(n));
                double dn2 = 0.0;
                for (int64_t i = 0; i < n; ++i) {
                    direction[i] = rng.normal();
                    dn2 += direction[i] * direction[i];
                }
                const double r = term.radius * std::pow(rng.uniform(), 1.0 / static_cast<double>(n));
                const double s = dn2 > 0.0 ? r / std::sqrt(dn2) : 0.0;
                for (int64_t i = 0; i < n; ++i) next[i] += s * direction[i];
                *last_perturbation = ctx.step;
                break;
            }
            default:
                break;  // model-level terms are the problem's business
        }
    }
}

template <class Problem>
void run_chunk(const Problem& problem, const RunSpec& spec, BatchState& state) {
    static_assert(check_kernel<Problem>());
    check_noise_supported<Problem>(spec.noise);
    const int64_t n = problem.state_size();
    const int64_t K = problem.n_observables();
    const int64_t R = spec.n_records;
    require(spec.t0 >= 0 && spec.t0 <= spec.t1 && spec.t1 <= spec.total_steps, "run_chunk: bad step range");
    const int64_t first_record =
        std::lower_bound(spec.record_steps, spec.record_steps + R, spec.t0) - spec.record_steps;

    std::exception_ptr error;
    std::mutex error_mutex;
    const int resolved = resolve_threads(spec.n_threads, state.batch);  // (checks the request, too)
    const int threads = Problem::capabilities.serial ? 1 : resolved;
    (void)threads;

    // Without momentum a step may go through loss_and_step; perturbed GD then reads the gradient's
    // norm off the displacement, |x - next| / lr.
    const bool fused = Problem::capabilities.fused_step && spec.momentum == 0.0 && state.velocity == nullptr;
    bool needs_gradient_norm = false;
    for (const NoiseTerm& term : spec.noise) needs_gradient_norm |= term.kind == NoiseKind::perturbed_gd;
    // Nothing changes next after loss_and_step: its finiteness check stands.
    const bool next_is_final = spec.noise.empty() && !Problem::capabilities.post_step;

#ifdef TRAJCORE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
    for (int64_t b = 0; b < state.batch; ++b) {
        if (state.diverged_at[b] >= 0) continue;
        try {
            auto workspace = problem.workspace();
            // The chunk runs in thread-private buffers: x and next alternate between two of them
            // (no copy per step), and the caller's rows are read here and written back at the end.
            // Writing the caller's rows every step would share the cache lines at the row
            // boundaries with the neighbouring trajectories, which the other threads run.
            double* const home = state.x + b * n;
            double* const home_velocity = state.velocity ? state.velocity + b * n : nullptr;
            std::vector<double> grad(static_cast<size_t>(fused ? 0 : n));
            std::vector<double> buffers(static_cast<size_t>((home_velocity ? 3 : 2) * n));
            double* x = buffers.data();
            double* next = x + n;
            double* velocity = home_velocity ? next + n : nullptr;
            std::copy(home, home + n, x);
            if (velocity) std::copy(home_velocity, home_velocity + n, velocity);
            int64_t record = first_record;
            auto record_if_due = [&](int64_t t, double gradient_loss) {
                if (record < R && spec.record_steps[record] == t) {
                    const int64_t slot = b * R + record;
                    state.loss[slot] = observe(problem, x, state.observations + slot * K, workspace, gradient_loss);
                    if (state.iterates) std::copy(x, x + n, state.iterates + slot * n);
                    ++record;
                }
            };
            bool healthy = true;
            for (int64_t t = spec.t0; t < spec.t1; ++t) {
                const StepContext ctx{spec.seed, static_cast<uint64_t>(spec.trajectory_offset + b), t, &spec.noise};
                const double lr = spec.lr[t];
                double loss;
                bool next_known_finite = false;
                if constexpr (Problem::capabilities.fused_step) {
                    if (fused) {
                        const StepResult step = problem.loss_and_step(x, lr, next, next_is_final, workspace, ctx);
                        loss = step.loss;
                        next_known_finite = next_is_final && step.next_finite;
                    } else {
                        loss = problem.loss_and_grad(x, grad.data(), workspace, ctx);
                    }
                } else {
                    loss = problem.loss_and_grad(x, grad.data(), workspace, ctx);
                }
                record_if_due(t, loss);
                if (!std::isfinite(loss) || loss > state.loss_limit[b]) {
                    state.diverged_at[b] = t;
                    healthy = false;
                    break;
                }
                if (!fused) {
                    const double* direction = grad.data();
                    if (velocity) {
                        for (int64_t i = 0; i < n; ++i) velocity[i] = spec.momentum * velocity[i] + grad[i];
                        direction = velocity;
                    }
                    for (int64_t i = 0; i < n; ++i) next[i] = x[i] - lr * direction[i];
                }
                double gradient_norm = 0.0;
                if (needs_gradient_norm) {
                    for (int64_t i = 0; i < n; ++i) {
                        const double g = fused ? (x[i] - next[i]) / lr : grad[i];
                        gradient_norm += g * g;
                    }
                    gradient_norm = std::sqrt(gradient_norm);
                }
                apply_parameter_noise(spec, ctx, gradient_norm, lr, next, n, state.last_perturbation + b);
                if constexpr (Problem::capabilities.post_step) problem.post_step(next, workspace, ctx);
                if (!next_known_finite && !all_finite(next, n)) {
                    state.diverged_at[b] = t + 1;
                    healthy = false;
                    break;
                }
                std::swap(x, next);
            }
            if (healthy && spec.t1 == spec.total_steps) record_if_due(spec.t1, std::nan(""));
            std::copy(x, x + n, home);
            if (velocity) std::copy(velocity, velocity + n, home_velocity);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
}

// Exact losses of B parameter vectors x (B, n) into out (B,), through Problem::observe.
template <class Problem>
void evaluate_losses(const Problem& problem, const double* x, int64_t batch, double* out, int n_threads) {
    static_assert(check_kernel<Problem>());
    const int64_t n = problem.state_size();
    std::exception_ptr error;
    std::mutex error_mutex;
    const int resolved = resolve_threads(n_threads, batch);
    const int threads = Problem::capabilities.serial ? 1 : resolved;
    (void)threads;
#ifdef TRAJCORE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
    for (int64_t b = 0; b < batch; ++b) {
        try {
            auto workspace = problem.workspace();
            std::vector<double> observables(static_cast<size_t>(problem.n_observables()));
            out[b] = observe(problem, x + b * n, observables.data(), workspace, std::nan(""));
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace trajcore
