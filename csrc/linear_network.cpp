#include "linear_network.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "decompositions.hpp"
#include "linalg.hpp"

namespace trajcore {

using linalg::gemm_nn;
using linalg::gemm_nt;
using linalg::gemm_tn;
using linalg::jacobi_svd;
using linalg::RankTolerance;
using linalg::sequential_dot;

DeepLinearNetworkKernel::DeepLinearNetworkKernel(std::vector<int64_t> widths, int64_t n, std::vector<double> X_rows,
                                                 std::vector<double> Y_rows, int64_t batch_size,
                                                 RankTolerance tolerance, unsigned groups,
                                                 std::vector<double> optimum)
    : widths_(std::move(widths)), n_(n), batch_(batch_size), X_(std::move(X_rows)), Y_(std::move(Y_rows)),
      optimum_(std::move(optimum)), tolerance_(tolerance), groups_(groups) {
    require(widths_.size() >= 2, "widths: need at least two entries (d_0, d_1)");
    for (int64_t d : widths_) require(d > 0, "widths: every width must be positive");
    require(n_ > 0, "X: need at least one sample");
    require(batch_ > 0 && batch_ <= n_, "batch_size: must lie in [1, n]");
    require(std::isfinite(tolerance_.rtol) && tolerance_.rtol >= 0.0, "rank_rtol: must be finite and >= 0");
    require(std::isfinite(tolerance_.atol) && tolerance_.atol >= 0.0, "rank_atol: must be finite and >= 0");
    require(groups_ < 64u, "observables: unknown group bits");
    const int64_t N = layers(), d0 = widths_.front(), dN = widths_.back();
    require(static_cast<int64_t>(X_.size()) == checked_size(n_, d0, "X"), "X: expected n x d_0 values");
    require(static_cast<int64_t>(Y_.size()) == checked_size(n_, dN, "Y"), "Y: expected n x d_N values");
    require(optimum_.empty() || static_cast<int64_t>(optimum_.size()) == dN * d0, "optimum: expected d_N x d_0 values");
    offsets_.assign(static_cast<size_t>(N + 1), 0);
    prefix_offsets_.assign(static_cast<size_t>(N + 1), 0);
    act_offsets_.assign(static_cast<size_t>(N + 2), 0);
    for (int64_t i = 1; i <= N; ++i) {
        offsets_[i] = offsets_[i - 1] + checked_size(widths_[i], widths_[i - 1], "layer");
        prefix_offsets_[i] = prefix_offsets_[i - 1] + checked_size(widths_[i], d0, "prefix");
    }
    for (int64_t i = 0; i <= N; ++i) act_offsets_[i + 1] = act_offsets_[i] + checked_size(batch_, widths_[i], "acts");
    state_size_ = offsets_[N];
    // Sufficient statistics of the full batch: O(n (d_0 + d_N) d_0) once.
    sxx_.assign(static_cast<size_t>(d0 * d0), 0.0);
    syx_.assign(static_cast<size_t>(dN * d0), 0.0);
    gemm_tn(d0, d0, n_, 1.0, X_.data(), d0, X_.data(), d0, 0.0, sxx_.data(), d0);
    gemm_tn(dN, d0, n_, 1.0, Y_.data(), dN, X_.data(), d0, 0.0, syx_.data(), d0);
    yy_ = sequential_dot(n_ * dN, Y_.data(), Y_.data());
    n_observables_ = 0;
    if (groups_ & product_singular_values) n_observables_ += std::min(d0, dN);
    if (groups_ & product_ranks) n_observables_ += 3;
    if (groups_ & layer_ranks) n_observables_ += N;
    if (groups_ & balancedness) n_observables_ += N - 1;
    if (groups_ & subspace_dims) n_observables_ += N - 1;
    if (groups_ & optimum_distance) n_observables_ += 1;
}

DeepLinearNetworkKernel::Workspace DeepLinearNetworkKernel::workspace() const {
    Workspace ws;
    const int64_t d0 = widths_.front(), dmax = *std::max_element(widths_.begin(), widths_.end());
    ws.prefix.resize(static_cast<size_t>(prefix_offsets_.back()));
    ws.q0.resize(static_cast<size_t>(dmax * d0));
    ws.q1.resize(static_cast<size_t>(dmax * d0));
    ws.product_sxx.resize(static_cast<size_t>(widths_.back() * d0));
    return ws;
}

const double* DeepLinearNetworkKernel::prefix_products(const double* w, Workspace& ws) const {
    const int64_t N = layers(), d0 = widths_.front();
    double* A = ws.prefix.data();
    std::copy(w, w + offsets_[1], A);
    for (int64_t i = 2; i <= N; ++i)
        gemm_nn(widths_[i], d0, widths_[i - 1], 1.0, w + offsets_[i - 1], widths_[i - 1], A + prefix_offsets_[i - 2],
                d0, 0.0, A + prefix_offsets_[i - 1], d0);
    return A + prefix_offsets_[N - 1];
}

// 1/2 (<P Sxx, P> - 2 <P, Syx> + ||Y||^2); leaves P Sxx in ws.product_sxx.
double DeepLinearNetworkKernel::moment_loss(const double* P, Workspace& ws, const Moments& m) const {
    const int64_t d0 = widths_.front(), dN = widths_.back();
    gemm_nn(dN, d0, d0, 1.0, P, d0, m.sxx, d0, 0.0, ws.product_sxx.data(), d0);
    const double quad = sequential_dot(dN * d0, ws.product_sxx.data(), P);
    const double cross = sequential_dot(dN * d0, P, m.syx);
    ws.loss_scale = quad + 2.0 * std::fabs(cross) + m.yy;
    return std::max(0.0, 0.5 * (quad - 2.0 * cross + m.yy));
}

double DeepLinearNetworkKernel::data_loss(const double* P, Workspace& ws) const {
    const int64_t d0 = widths_.front(), dN = widths_.back();
    ws.residual.resize(static_cast<size_t>(n_ * dN));
    std::copy(Y_.begin(), Y_.end(), ws.residual.begin());
    gemm_nt(n_, dN, d0, 1.0, X_.data(), d0, P, d0, -1.0, ws.residual.data(), dN);  // X P^T - Y
    return 0.5 * sequential_dot(n_ * dN, ws.residual.data(), ws.residual.data());
}

void DeepLinearNetworkKernel::product(const double* x, double* out, Workspace& ws) const {
    const double* P = prefix_products(x, ws);
    std::copy(P, P + widths_.back() * widths_.front(), out);
}

double DeepLinearNetworkKernel::moment_loss_and_grad(const double* w, double* g, Workspace& ws,
                                                     const Moments& m) const {
    const int64_t N = layers(), d0 = widths_.front(), dN = widths_.back();
    const double* P = prefix_products(w, ws);
    const double loss = moment_loss(P, ws, m);
    double* Q = ws.q0.data();
    double* Qnext = ws.q1.data();
    for (int64_t t = 0; t < dN * d0; ++t) Q[t] = ws.product_sxx[t] - m.syx[t];  // E = P Sxx - Syx
    for (int64_t i = N; i >= 1; --i) {
        const int64_t di = widths_[i], dp = widths_[i - 1];
        double* gi = g + offsets_[i - 1];
        if (i == 1) {
            std::copy(Q, Q + di * d0, gi);  // A_0 = I
        } else {
            gemm_nt(di, dp, d0, 1.0, Q, d0, ws.prefix.data() + prefix_offsets_[i - 2], d0, 0.0, gi, dp);
            gemm_tn(dp, d0, di, 1.0, w + offsets_[i - 1], dp, Q, d0, 0.0, Qnext, d0);  // W_i^T Q_i
            std::swap(Q, Qnext);
        }
    }
    return loss;
}

double DeepLinearNetworkKernel::exact_loss_and_grad(const double* x, double* g, Workspace& ws) const {
    return moment_loss_and_grad(x, g, ws, full_moments());
}

double DeepLinearNetworkKernel::data_loss_and_grad(const double* w, double* g, Workspace& ws,
                                                   const StepContext& ctx) const {
    const int64_t N = layers(), d0 = widths_.front(), dN = widths_.back(), b = batch_;
    const std::vector<NoiseTerm>& noise = *ctx.noise;
    ws.acts.resize(static_cast<size_t>(act_offsets_.back()));
    ws.index.resize(static_cast<size_t>(b));
    // Minibatch: the first b entries of a partial Fisher-Yates shuffle driven by stream 0.
    if (b < n_) {
        std::vector<int64_t>& perm = ws.permutation;
        perm.resize(static_cast<size_t>(n_));
        std::iota(perm.begin(), perm.end(), 0);
        RandomStream rng(ctx.seed, ctx.trajectory, static_cast<uint64_t>(ctx.step), 0u);
        for (int64_t j = 0; j < b; ++j) {
            int64_t r = j + static_cast<int64_t>(rng.uniform() * static_cast<double>(n_ - j));
            r = std::min(r, n_ - 1);
            std::swap(perm[j], perm[r]);
            ws.index[j] = perm[j];
        }
    } else {
        std::iota(ws.index.begin(), ws.index.end(), 0);
    }
    double* H0 = ws.acts.data();
    ws.labels.resize(static_cast<size_t>(b * dN));
    for (int64_t j = 0; j < b; ++j) {
        const int64_t src = ws.index[j];
        std::copy(X_.data() + src * d0, X_.data() + (src + 1) * d0, H0 + j * d0);
        std::copy(Y_.data() + src * dN, Y_.data() + (src + 1) * dN, ws.labels.data() + j * dN);
    }
    bool dropout = false;
    for (size_t term_index = 0; term_index < noise.size(); ++term_index) {
        const NoiseTerm& term = noise[term_index];
        if (term.kind == NoiseKind::dropout) dropout = dropout || term.probability > 0.0;
        if (term.kind != NoiseKind::input_noise && term.kind != NoiseKind::label_noise) continue;
        const double s = term.scale_at(ctx.step);
        if (s == 0.0) continue;
        RandomStream rng = noise_stream(ctx.seed, ctx.trajectory, ctx.step, term_index);
        double* target = term.kind == NoiseKind::input_noise ? H0 : ws.labels.data();
        const int64_t count = term.kind == NoiseKind::input_noise ? b * d0 : b * dN;
        for (int64_t t = 0; t < count; ++t) target[t] += s * rng.normal();
    }
    const double scale = static_cast<double>(n_) / static_cast<double>(b);
    if (!dropout) {
        // No per-sample masks: the sample's own moments, scaled by n / b, feed the moment path.
        ws.sample_sxx.resize(static_cast<size_t>(d0 * d0));
        ws.sample_syx.resize(static_cast<size_t>(dN * d0));
        gemm_tn(d0, d0, b, scale, H0, d0, H0, d0, 0.0, ws.sample_sxx.data(), d0);
        gemm_tn(dN, d0, b, scale, ws.labels.data(), dN, H0, d0, 0.0, ws.sample_syx.data(), d0);
        const double yy = scale * sequential_dot(b * dN, ws.labels.data(), ws.labels.data());
        return moment_loss_and_grad(w, g, ws, Moments{ws.sample_sxx.data(), ws.sample_syx.data(), yy});
    }
    // Unit dropout on the hidden layers 1..N-1: mask entries 0 or 1 / (1 - p), one per sample and unit.
    ws.masks.assign(static_cast<size_t>(act_offsets_.back()), 1.0);
    for (size_t term_index = 0; term_index < noise.size(); ++term_index) {
        const NoiseTerm& term = noise[term_index];
        if (term.kind != NoiseKind::dropout || term.probability == 0.0) continue;
        RandomStream rng = noise_stream(ctx.seed, ctx.trajectory, ctx.step, term_index);
        const double keep_scale = 1.0 / (1.0 - term.probability);
        for (int64_t i = 1; i < N; ++i)
            for (int64_t t = act_offsets_[i]; t < act_offsets_[i + 1]; ++t)
                ws.masks[t] *= rng.uniform() < term.probability ? 0.0 : keep_scale;
    }
    for (int64_t i = 1; i <= N; ++i) {
        const int64_t di = widths_[i], dp = widths_[i - 1];
        double* Hi = ws.acts.data() + act_offsets_[i];
        gemm_nt(b, di, dp, 1.0, ws.acts.data() + act_offsets_[i - 1], dp, w + offsets_[i - 1], dp, 0.0, Hi, di);
        if (i < N)
            for (int64_t t = 0; t < b * di; ++t) Hi[t] *= ws.masks[act_offsets_[i] + t];
    }
    // Residual and backward pass, the gradient scaled by n / b.
    const int64_t dmax = *std::max_element(widths_.begin(), widths_.end());
    ws.g0.resize(static_cast<size_t>(b * dmax));
    ws.g1.resize(static_cast<size_t>(b * dmax));
    double* G = ws.g0.data();
    double* Gnext = ws.g1.data();
    const double* HN = ws.acts.data() + act_offsets_[N];
    double sum_sq = 0.0;
    for (int64_t t = 0; t < b * dN; ++t) {
        const double r = HN[t] - ws.labels[t];
        sum_sq += r * r;
        G[t] = scale * r;
    }
    for (int64_t i = N; i >= 1; --i) {
        const int64_t di = widths_[i], dp = widths_[i - 1];
        gemm_tn(di, dp, b, 1.0, G, di, ws.acts.data() + act_offsets_[i - 1], dp, 0.0, g + offsets_[i - 1], dp);
        if (i > 1) {
            gemm_nn(b, dp, di, 1.0, G, di, w + offsets_[i - 1], dp, 0.0, Gnext, dp);
            for (int64_t t = 0; t < b * dp; ++t) Gnext[t] *= ws.masks[act_offsets_[i - 1] + t];
            std::swap(G, Gnext);
        }
    }
    return 0.5 * scale * sum_sq;
}

double DeepLinearNetworkKernel::loss_and_grad(const double* x, double* g, Workspace& ws,
                                              const StepContext& ctx) const {
    const std::vector<NoiseTerm>& noise = *ctx.noise;
    bool weight_noise = false, dropconnect = false, data_path = batch_ < n_;
    for (const NoiseTerm& term : noise) {
        weight_noise = weight_noise || term.kind == NoiseKind::weight_noise || term.kind == NoiseKind::dropconnect;
        dropconnect = dropconnect || term.kind == NoiseKind::dropconnect;
        data_path = data_path || term.kind == NoiseKind::dropout || term.kind == NoiseKind::input_noise ||
                    term.kind == NoiseKind::label_noise;
    }
    const double* w = x;
    if (weight_noise) {
        // Effective weights W~, built by the terms in order; the gradient flows back through the masks.
        ws.weights.assign(x, x + state_size_);
        if (dropconnect) ws.weight_scale.assign(static_cast<size_t>(state_size_), 1.0);
        for (size_t term_index = 0; term_index < noise.size(); ++term_index) {
            const NoiseTerm& term = noise[term_index];
            if (term.kind == NoiseKind::weight_noise) {
                const double s = term.scale_at(ctx.step);
                if (s == 0.0) continue;
                RandomStream rng = noise_stream(ctx.seed, ctx.trajectory, ctx.step, term_index);
                for (int64_t t = 0; t < state_size_; ++t) ws.weights[t] += s * rng.normal();
            } else if (term.kind == NoiseKind::dropconnect && term.probability > 0.0) {
                RandomStream rng = noise_stream(ctx.seed, ctx.trajectory, ctx.step, term_index);
                const double keep_scale = 1.0 / (1.0 - term.probability);
                for (int64_t t = 0; t < state_size_; ++t) {
                    const double m = rng.uniform() < term.probability ? 0.0 : keep_scale;
                    ws.weights[t] *= m;
                    ws.weight_scale[t] *= m;
                }
            }
        }
        w = ws.weights.data();
    }
    ws.clean_moments = false;
    const double loss =
        data_path ? data_loss_and_grad(w, g, ws, ctx) : moment_loss_and_grad(w, g, ws, full_moments());
    ws.clean_moments = !data_path && !weight_noise;
    if (dropconnect)
        for (int64_t t = 0; t < state_size_; ++t) g[t] *= ws.weight_scale[t];
    return loss;
}

double DeepLinearNetworkKernel::observe(const double* x, double* out, Workspace& ws, double gradient_loss) const {
    const int64_t N = layers(), d0 = widths_.front(), dN = widths_.back();
    const bool reuse = std::isfinite(gradient_loss) && ws.clean_moments;
    const double* P = reuse ? ws.prefix.data() + prefix_offsets_[N - 1] : prefix_products(x, ws);
    double loss = reuse ? gradient_loss : moment_loss(P, ws, full_moments());
    if (loss < 1e-6 * ws.loss_scale) loss = data_loss(P, ws);
    ws.clean_moments = false;
    int64_t o = 0;
    const int64_t k = std::min(d0, dN);
    if (groups_ & (product_singular_values | product_ranks)) {
        ws.sv.resize(static_cast<size_t>(std::max<int64_t>(k, 1)));
        jacobi_svd(dN, d0, P, ws.sv.data(), nullptr, nullptr, ws.svd_work);
    }
    if (groups_ & product_singular_values)
        for (int64_t i = 0; i < k; ++i) out[o++] = ws.sv[i];
    if (groups_ & product_ranks) {
        const double* s = ws.sv.data();
        double total = 0.0, total_sq = 0.0;
        for (int64_t i = 0; i < k; ++i) {
            total += s[i];
            total_sq += s[i] * s[i];
        }
        double entropy = 0.0;
        for (int64_t i = 0; i < k; ++i)
            if (s[i] > 0.0 && total > 0.0) {
                const double pk = s[i] / total;
                entropy -= pk * std::log(pk);
            }
        out[o++] = static_cast<double>(tolerance_.rank(s, k, dN, d0));
        out[o++] = total > 0.0 ? std::exp(entropy) : 0.0;
        out[o++] = s[0] > 0.0 ? total_sq / (s[0] * s[0]) : 0.0;
    }
    if (groups_ & layer_ranks) {
        for (int64_t i = 1; i <= N; ++i) {
            const int64_t di = widths_[i], dp = widths_[i - 1], ki = std::min(di, dp);
            ws.sv.resize(static_cast<size_t>(std::max(ki, k)));
            jacobi_svd(di, dp, x + offsets_[i - 1], ws.sv.data(), nullptr, nullptr, ws.svd_work);
            out[o++] = static_cast<double>(tolerance_.rank(ws.sv.data(), ki, di, dp));
        }
    }
    if (groups_ & balancedness) {
        for (int64_t j = 1; j < N; ++j) {
            const int64_t dj = widths_[j], dnext = widths_[j + 1], dprev = widths_[j - 1];
            ws.gram.resize(static_cast<size_t>(dj * dj));
            const double* Wj = x + offsets_[j - 1];
            const double* Wnext = x + offsets_[j];
            gemm_tn(dj, dj, dnext, 1.0, Wnext, dj, Wnext, dj, 0.0, ws.gram.data(), dj);
            gemm_nt(dj, dj, dprev, -1.0, Wj, dprev, Wj, dprev, 1.0, ws.gram.data(), dj);
            out[o++] = std::sqrt(sequential_dot(dj * dj, ws.gram.data(), ws.gram.data()));
        }
    }
    if (groups_ & subspace_dims) {
        for (int64_t j = 1; j < N; ++j) {
            // S_j = col(W_j) + row(W_{j+1}) = col [W_j, W_{j+1}^T]  (d_j x (d_{j-1} + d_{j+1})).
            const int64_t dj = widths_[j], dnext = widths_[j + 1], dprev = widths_[j - 1], c = dprev + dnext;
            ws.concat.resize(static_cast<size_t>(dj * c));
            const double* Wj = x + offsets_[j - 1];
            const double* Wnext = x + offsets_[j];
            for (int64_t r = 0; r < dj; ++r) {
                std::copy(Wj + r * dprev, Wj + (r + 1) * dprev, ws.concat.data() + r * c);
                for (int64_t t = 0; t < dnext; ++t) ws.concat[r * c + dprev + t] = Wnext[t * dj + r];
            }
            const int64_t kj = std::min(dj, c);
            ws.sv.resize(static_cast<size_t>(std::max(kj, k)));
            jacobi_svd(dj, c, ws.concat.data(), ws.sv.data(), nullptr, nullptr, ws.svd_work);
            out[o++] = static_cast<double>(tolerance_.rank(ws.sv.data(), kj, dj, c));
        }
    }
    if (groups_ & optimum_distance) {
        if (optimum_.empty()) {
            out[o++] = std::numeric_limits<double>::quiet_NaN();
        } else {
            double d2 = 0.0;
            for (int64_t t = 0; t < dN * d0; ++t) d2 += (P[t] - optimum_[t]) * (P[t] - optimum_[t]);
            out[o++] = std::sqrt(d2);
        }
    }
    return loss;
}

void DeepLinearNetworkKernel::post_step(double* x, Workspace& ws, const StepContext& ctx) const {
    const std::vector<NoiseTerm>& noise = *ctx.noise;
    const int64_t N = layers();
    for (size_t term_index = 0; term_index < noise.size(); ++term_index) {
        const NoiseTerm& term = noise[term_index];
        if (term.kind != NoiseKind::singular_value_imputation) continue;
        RandomStream rng = noise_stream(ctx.seed, ctx.trajectory, ctx.step, term_index);
        RankTolerance rule = tolerance_;
        if (term.threshold > 0.0) rule.atol = term.threshold;
        for (int64_t i = 1; i <= N; ++i) {
            const int64_t di = widths_[i], dp = widths_[i - 1], ki = std::min(di, dp);
            double* W = x + offsets_[i - 1];
            ws.sv.resize(static_cast<size_t>(ki));
            // The rank test needs values only (QR-preconditioned, cheap); vectors only for deficient layers.
            jacobi_svd(di, dp, W, ws.sv.data(), nullptr, nullptr, ws.svd_work);
            if (rule.rank(ws.sv.data(), ki, di, dp) >= ki) continue;
            ws.u.resize(static_cast<size_t>(di * ki));
            ws.v.resize(static_cast<size_t>(dp * ki));
            jacobi_svd(di, dp, W, ws.sv.data(), ws.u.data(), ws.v.data(), ws.svd_work);
            const int64_t r = rule.rank(ws.sv.data(), ki, di, dp);
            if (r >= ki) continue;
            // Paper B's rule: s_{r+1} <- a fresh draw; if |draw| < s_r, s_{r+1} <- s_r + jitter.
            double value = term.scale * rng.normal();
            const double jitter = term.jitter * rng.normal();
            if (r > 0 && std::fabs(value) < ws.sv[r - 1]) value = ws.sv[r - 1] + jitter;
            const double delta = value - ws.sv[r];
            for (int64_t a = 0; a < di; ++a) {
                const double ua = delta * ws.u[a * ki + r];
                for (int64_t c = 0; c < dp; ++c) W[a * dp + c] += ua * ws.v[c * ki + r];
            }
        }
    }
}

}  // namespace trajcore
