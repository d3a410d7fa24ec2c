// Deep linear networks (PAPERS.md section 5): P = W_N ... W_1,  L = 1/2 ||P X - Y||_F^2.
//
// State of one trajectory: all layer matrices concatenated, row-major, layer 1 first;
// W_i is (d_i x d_{i-1}).
//
// Three code paths for a step:
//  * moments (full batch, no data-level noise): the data enter only through Sxx = X X^T,
//    Syx = Y X^T and ||Y||^2, so a step costs O(sum_i d_i d_{i-1} d_0 + d_N d_0^2), independent of n:
//      A_i = W_i ... W_1 (prefix products), E = P Sxx - Syx,
//      Q_N = E, Q_{i-1} = W_i^T Q_i,  grad W_i = Q_i A_{i-1}^T  (A_0 = I).
//  * sample (minibatch SGD, input noise, label noise): the b sampled (noisy) rows give their own moments
//    (n / b) X~ X~^T, (n / b) Y~ X~^T, (n / b) ||Y~||^2 in O(b d_0 (d_0 + d_N)), then the moment path.
//  * data (unit dropout: the masks act per sample): forward H_i = H_{i-1} W_i^T on the b rows,
//    backward G_{i-1} = G_i W_i, grad W_i = G_i^T H_{i-1}; O(b sum_i d_i d_{i-1}).
// A minibatch gradient is scaled by n / b, so it estimates the full-batch gradient without bias and
// the step size means the same thing on every path.
// Weight noise and DropConnect only change the weights the forward pass uses (W~ = mask / (1 - p) * W + E),
// so they run on any path; the gradient with respect to W is the gradient at W~ times the mask scale.
//
// Noise kinds read by this kernel (NoiseTerm fields in parentheses; each term its own stream):
//   weight_noise (scale, anneal), dropconnect (probability), dropout (probability; hidden units
//   only, per sample, inverse scaling), input_noise (scale, anneal), label_noise (scale, anneal),
//   singular_value_imputation (scale = std of the draw, jitter = std of the jitter, threshold =
//   absolute rank tolerance or 0 for the kernel's rank rule). Minibatch indices come from stream 0.
//
// Recorded loss: the moment form, unless it has cancelled below 1e-6 of its terms' size (then relative
// error could exceed ~1e-10), in which case it is recomputed from the data.
//
// Observables (every record; groups chosen at construction, laid out in this order):
//   product_singular_values : min(d_0, d_N) values, descending
//   product_ranks           : 3 values: numerical rank, effective rank, stable rank of P
//   layer_ranks             : N values, numerical rank of each W_i
//   balancedness            : N - 1 values, ||W_{j+1}^T W_{j+1} - W_j W_j^T||_F for j = 1..N-1
//   subspace_dims           : N - 1 values, dim S_k = rank [W_k, W_{k+1}^T] for k = 1..N-1
//   optimum_distance        : 1 value, ||P - P*||_F (NaN when no optimum was given)
#pragma once
#include <cstdint>
#include <vector>

#include "checks.hpp"
#include "decompositions.hpp"
#include "kernel.hpp"

namespace trajcore {

class DeepLinearNetworkKernel {
public:
    enum Group : unsigned {
        product_singular_values = 1u,
        product_ranks = 2u,
        layer_ranks = 4u,
        balancedness = 8u,
        subspace_dims = 16u,
        optimum_distance = 32u,
    };

    struct Workspace {
        std::vector<double> prefix;           // A_1 ... A_N, (d_i x d_0) each
        std::vector<double> q0, q1;           // backward buffers of the moment path
        std::vector<double> product_sxx;      // P Sxx
        std::vector<double> weights, weight_scale;  // effective weights, DropConnect scale
        std::vector<double> acts, masks, g0, g1, inputs, labels;  // data path
        std::vector<double> sample_sxx, sample_syx;                // moments of a (noisy) sample
        std::vector<int64_t> index, permutation;
        std::vector<double> svd_work, sv, u, v, concat, gram, residual;
        double loss_scale = 0.0;    // <P Sxx, P> + 2 |<P, Syx>| + ||Y||^2 of the last moment loss
        bool clean_moments = false;  // prefix holds the noise-free products of the last loss_and_grad x
    };

    // widths (N + 1); X_rows (n x d_0) and Y_rows (n x d_N) hold the samples as rows;
    // optimum (d_N x d_0) or empty.
    DeepLinearNetworkKernel(std::vector<int64_t> widths, int64_t n, std::vector<double> X_rows,
                            std::vector<double> Y_rows, int64_t batch_size, linalg::RankTolerance tolerance,
                            unsigned groups, std::vector<double> optimum);

    static constexpr Capabilities capabilities =
        Capabilities{}
            .with_observe_after_gradient()
            .with_post_step()
            .with_sampled_gradient()
            .with_model_noise(noise_kinds(NoiseKind::singular_value_imputation, NoiseKind::weight_noise,
                                          NoiseKind::dropconnect, NoiseKind::dropout, NoiseKind::input_noise,
                                          NoiseKind::label_noise));

    int64_t state_size() const { return state_size_; }
    int64_t n_observables() const { return n_observables_; }
    Workspace workspace() const;
    double loss_and_grad(const double* x, double* g, Workspace& ws, const StepContext& ctx) const;
    // gradient_loss: the loss loss_and_grad just returned at the same x (NaN otherwise); reused with its
    // products when that step was noise-free.
    double observe(const double* x, double* out, Workspace& ws, double gradient_loss) const;
    void post_step(double* x, Workspace& ws, const StepContext& ctx) const;

    // Exact loss and full-batch gradient, no noise (the moment path).
    double exact_loss_and_grad(const double* x, double* g, Workspace& ws) const;
    // P = W_N ... W_1 into out (d_N x d_0).
    void product(const double* x, double* out, Workspace& ws) const;
    int64_t layers() const { return static_cast<int64_t>(widths_.size()) - 1; }

private:
    // Second moments the loss depends on: L = 1/2 (<P Sxx, P> - 2 <P, Syx> + yy).
    struct Moments {
        const double* sxx;  // (d_0 x d_0)
        const double* syx;  // (d_N x d_0)
        double yy;
    };
    Moments full_moments() const { return {sxx_.data(), syx_.data(), yy_}; }
    double moment_loss_and_grad(const double* w, double* g, Workspace& ws, const Moments& m) const;
    double data_loss_and_grad(const double* w, double* g, Workspace& ws, const StepContext& ctx) const;
    // Fills ws.prefix with A_1..A_N; returns a pointer to P = A_N.
    const double* prefix_products(const double* w, Workspace& ws) const;
    double moment_loss(const double* P, Workspace& ws, const Moments& m) const;
    // 1/2 ||P X - Y||^2 from the data, O(n d_0 d_N): used when the moment form cancels too much.
    double data_loss(const double* P, Workspace& ws) const;

    std::vector<int64_t> widths_, offsets_, prefix_offsets_, act_offsets_;
    int64_t n_, batch_, state_size_, n_observables_;
    std::vector<double> X_, Y_, sxx_, syx_, optimum_;
    double yy_ = 0.0;
    linalg::RankTolerance tolerance_;
    unsigned groups_;
};

}  // namespace trajcore
