// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
//
// Every draw is a pure function of (seed, trajectory, step, stream, index), so a result does not
// depend on the thread that computes it, the order trajectories run in, or how a batch is split.
#pragma once
#include <cmath>
#include <cstdint>

namespace trajcore {

class RandomStream {
public:
    // stream separates independent uses within one step (gradient noise, dropout masks, ...).
    RandomStream(uint64_t seed, uint64_t trajectory, uint64_t step, uint32_t stream)
        : key0_(static_cast<uint32_t>(seed)), key1_(static_cast<uint32_t>(seed >> 32)),
          c1_(static_cast<uint32_t>(step)),
          c2_(static_cast<uint32_t>((step >> 32) & 0xFFFFu) | (stream << 16)),
          c3_(static_cast<uint32_t>(trajectory)) {}

    uint32_t next_u32() {
        if (used_ == 4) refill();
        return block_[used_++];
    }

    // Uniform in the open interval (0, 1), 53 random bits.
    double uniform() {
        uint64_t hi = next_u32() >> 5, lo = next_u32() >> 6;  // 27 + 26 bits
        return (static_cast<double>((hi << 26) | lo) + 0.5) * (1.0 / 9007199254740992.0);
    }

    // Standard normal (Box-Muller; the second value of each pair is kept for the next call).
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u1 = uniform(), u2 = uniform();
        double radius = std::sqrt(-2.0 * std::log(u1));
        double angle = 6.283185307179586476925286766559 * u2;
        spare_ = radius * std::sin(angle);
        has_spare_ = true;
        return radius * std::cos(angle);
    }

private:
    void refill() {
        uint32_t c0 = counter_++, c1 = c1_, c2 = c2_, c3 = c3_;
        uint32_t k0 = key0_, k1 = key1_;
        for (int round = 0; round < 10; ++round) {
            uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
            uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
            uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
            uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
            c0 = n0;
            c1 = static_cast<uint32_t>(p1);
            c2 = n2;
            c3 = static_cast<uint32_t>(p0);
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        block_[0] = c0;
        block_[1] = c1;
        block_[2] = c2;
        block_[3] = c3;
        used_ = 0;
    }

    uint32_t key0_, key1_, c1_, c2_, c3_;
    uint32_t counter_ = 0;
    uint32_t block_[4] = {0, 0, 0, 0};
    int used_ = 4;
    bool has_spare_ = false;
    double spare_ = 0.0;
};

}  // namespace trajcore
