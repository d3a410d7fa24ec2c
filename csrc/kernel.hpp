// The step-kernel contract, in code: what a problem's kernel provides to the shared driver
// (driver.hpp), checked at compile time by check_kernel<K>() wherever a kernel is driven or bound.
//
// A kernel K provides (all const, thread-safe; per-thread scratch lives in its Workspace):
//   struct Workspace                -- scratch for one thread
//   Workspace workspace()
//   int64_t state_size()            -- parameters per trajectory (the flat layout of x)
//   int64_t n_observables()         -- values recorded per record step besides the loss
//   double loss_and_grad(const double* x, double* g, Workspace&, const StepContext&)
//                                   -- loss at x, gradient into g (model-level noise may use ctx)
//   double observe(const double* x, double* out, Workspace&)
//                                   -- noise-free loss at x (accurate to ~1e-10 relative), observables
//                                      into out
//   static constexpr Capabilities capabilities
//                                   -- the optional members below it implements, and the model-level
//                                      noise kinds it reads.
//
// An optional member exists if and only if its capability is declared: check_kernel fails to
// compile a kernel that has one without declaring it, or declares one it does not have, so the
// driver never takes a path by accident of a member's name.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "checks.hpp"
#include "noise.hpp"

namespace trajcore {

struct StepContext {
    uint64_t seed;
    uint64_t trajectory;  // global index: trajectory_offset + position in the batch
    int64_t step;
    const std::vector<NoiseTerm>* noise;
};

struct StepResult {
    double loss;       // at x
    bool next_finite;  // every entry of next is finite (only read when next_is_final)
};

struct Capabilities {
    // StepResult loss_and_step(const double* x, double lr, double* next, bool next_is_final,
    //                          Workspace&, const StepContext&)
    //   -- loss at x as loss_and_grad returns it, next = x - lr * grad in fewer passes over memory
    //      (the gradient is never stored), and whether next is finite; it leaves the workspace as
    //      loss_and_grad does, for observe. next_is_final says nothing changes next before the next
    //      call (no noise, no post_step): the kernel may then prepare next's products on the way,
    //      for a following call at next, as long as the results are the same bits as without them.
    //      The driver uses it whenever there is no momentum.
    bool fused_step = false;
    // double observe(const double* x, double* out, Workspace&, double gradient_loss)
    //   -- instead of the three-argument observe: when the driver has just called loss_and_grad (or
    //      loss_and_step) at the same x, gradient_loss is the loss it returned and the workspace
    //      still holds its products, which observe may reuse; otherwise it is NaN.
    bool observe_after_gradient = false;
    // void post_step(double* x, Workspace&, const StepContext&)
    //   -- kernel-level changes after the update (e.g. imputation)
    bool post_step = false;
    // bool state_transposed() -- whether a (p, w) parameter is stored as (w, p); a per-kernel choice
    bool transposed_state = false;
    // double exact_loss_and_grad(const double* x, double* g, Workspace&)
    //   -- loss_and_grad samples (minibatches): this is the exact, noise-free, full-data gradient
    bool sampled_gradient = false;
    // the kernel's methods take turns (e.g. on Python's GIL): the driver runs its trajectories on one
    // thread, since more would only add hand-offs
    bool serial = false;
    // model-level noise kinds the kernel reads from StepContext::noise (never parameter_noise)
    NoiseKinds model_noise = 0;

    constexpr Capabilities with_fused_step() const { return set(&Capabilities::fused_step); }
    constexpr Capabilities with_observe_after_gradient() const {
        return set(&Capabilities::observe_after_gradient);
    }
    constexpr Capabilities with_post_step() const { return set(&Capabilities::post_step); }
    constexpr Capabilities with_transposed_state() const { return set(&Capabilities::transposed_state); }
    constexpr Capabilities with_sampled_gradient() const { return set(&Capabilities::sampled_gradient); }
    constexpr Capabilities with_serial() const { return set(&Capabilities::serial); }
    constexpr Capabilities with_model_noise(NoiseKinds kinds) const {
        Capabilities c = *this;
        c.model_noise = kinds;
        return c;
    }

private:
    constexpr Capabilities set(bool Capabilities::*flag) const {
        Capabilities c = *this;
        c.*flag = true;
        return c;
    }
};

namespace detail {

template <class K>
using Workspace = typename K::Workspace;

template <class K, class = void>
struct has_core_members : std::false_type {};
template <class K>
struct has_core_members<
    K, std::void_t<decltype(int64_t{std::declval<const K&>().state_size()}),
                   decltype(int64_t{std::declval<const K&>().n_observables()}),
                   decltype(Workspace<K>{std::declval<const K&>().workspace()}),
                   decltype(double{std::declval<const K&>().loss_and_grad(
                       std::declval<const double*>(), std::declval<double*>(), std::declval<Workspace<K>&>(),
                       std::declval<const StepContext&>())})>> : std::true_type {};

template <class K, class = void>
struct has_plain_observe : std::false_type {};
template <class K>
struct has_plain_observe<K, std::void_t<decltype(double{std::declval<const K&>().observe(
                                std::declval<const double*>(), std::declval<double*>(),
                                std::declval<Workspace<K>&>())})>> : std::true_type {};

template <class K, class = void>
struct has_observe_after_gradient : std::false_type {};
template <class K>
struct has_observe_after_gradient<K, std::void_t<decltype(double{std::declval<const K&>().observe(
                                         std::declval<const double*>(), std::declval<double*>(),
                                         std::declval<Workspace<K>&>(), 0.0)})>> : std::true_type {};

template <class K, class = void>
struct has_loss_and_step : std::false_type {};
template <class K>
struct has_loss_and_step<K, std::void_t<decltype(StepResult{std::declval<const K&>().loss_and_step(
                                std::declval<const double*>(), 0.0, std::declval<double*>(), false,
                                std::declval<Workspace<K>&>(), std::declval<const StepContext&>())})>>
    : std::true_type {};

template <class K, class = void>
struct has_post_step : std::false_type {};
template <class K>
struct has_post_step<K, std::void_t<decltype(std::declval<const K&>().post_step(
                            std::declval<double*>(), std::declval<Workspace<K>&>(),
                            std::declval<const StepContext&>()))>> : std::true_type {};

template <class K, class = void>
struct has_state_transposed : std::false_type {};
template <class K>
struct has_state_transposed<K, std::void_t<decltype(bool{std::declval<const K&>().state_transposed()})>>
    : std::true_type {};

template <class K, class = void>
struct has_exact_loss_and_grad : std::false_type {};
template <class K>
struct has_exact_loss_and_grad<K, std::void_t<decltype(double{std::declval<const K&>().exact_loss_and_grad(
                                      std::declval<const double*>(), std::declval<double*>(),
                                      std::declval<Workspace<K>&>())})>> : std::true_type {};

template <class K, class = void>
struct declares_capabilities : std::false_type {};
template <class K>
struct declares_capabilities<K, std::enable_if_t<std::is_same_v<decltype(K::capabilities), const Capabilities>>>
    : std::true_type {};

}  // namespace detail

// Compiles only for a kernel that keeps the contract above; use as static_assert(check_kernel<K>()).
template <class K>
constexpr bool check_kernel() {
    using namespace detail;
    static_assert(declares_capabilities<K>::value, "a kernel declares `static constexpr Capabilities capabilities`");
    static_assert(has_core_members<K>::value,
                  "a kernel provides Workspace, workspace(), state_size(), n_observables() and loss_and_grad(x, g, "
                  "ws, ctx)");
    constexpr Capabilities c = K::capabilities;
    static_assert(c.observe_after_gradient ? has_observe_after_gradient<K>::value : has_plain_observe<K>::value,
                  "observe(x, out, ws, gradient_loss) exists if and only if observe_after_gradient is declared "
                  "(observe(x, out, ws) otherwise)");
    static_assert(c.fused_step == has_loss_and_step<K>::value,
                  "loss_and_step exists if and only if fused_step is declared");
    static_assert(c.post_step == has_post_step<K>::value, "post_step exists if and only if post_step is declared");
    static_assert(c.transposed_state == has_state_transposed<K>::value,
                  "state_transposed() exists if and only if transposed_state is declared");
    static_assert(c.sampled_gradient == has_exact_loss_and_grad<K>::value,
                  "exact_loss_and_grad exists if and only if sampled_gradient is declared");
    static_assert((c.model_noise & parameter_noise) == 0,
                  "model_noise lists model-level kinds only: the driver applies the parameter-level ones");
    return true;
}

template <class K>
double observe(const K& kernel, const double* x, double* out, typename K::Workspace& ws, double gradient_loss) {
    if constexpr (K::capabilities.observe_after_gradient)
        return kernel.observe(x, out, ws, gradient_loss);
    else
        return kernel.observe(x, out, ws);
}

template <class K>
bool state_transposed(const K& kernel) {
    if constexpr (K::capabilities.transposed_state)
        return kernel.state_transposed();
    else
        return false;
}

// The exact, noise-free loss and gradient at x (what a single-point check compares with).
template <class K>
double exact_loss_and_grad(const K& kernel, const double* x, double* g, typename K::Workspace& ws) {
    if constexpr (K::capabilities.sampled_gradient) {
        return kernel.exact_loss_and_grad(x, g, ws);
    } else {
        static const std::vector<NoiseTerm> no_noise;
        return kernel.loss_and_grad(x, g, ws, StepContext{0, 0, 0, &no_noise});
    }
}

// Refuses a noise term the kernel does not read: a model-level kind it did not declare would be
// silently skipped otherwise.
template <class K>
void check_noise_supported(const std::vector<NoiseTerm>& noise) {
    for (const NoiseTerm& term : noise) {
        require(is_known(term.kind), "noise kind: not a NoiseKind value");
        if (acts_on_parameters(term.kind) || contains(K::capabilities.model_noise, term.kind)) continue;
        std::string supported;
        for (const std::string& name : noise_kind_names(K::capabilities.model_noise))
            supported += (supported.empty() ? "" : ", ") + name;
        require(false, std::string("noise: this problem does not support '") + noise_kind_name(term.kind) +
                           "' noise (model-level kinds it supports: " + (supported.empty() ? "none" : supported) + ")");
    }
}

}  // namespace trajcore
