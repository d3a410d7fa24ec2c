// A fixed number of doubles with element-wise arithmetic, in plain C++17: the portable build's stand-in
// for the GCC vector types of the generic kernels (same lanes, same operations in the same order, so the
// portable and the vector-extension generic variants compute the same bits when the compiler does not
// contract a * b + c into a fused multiply-add).
#pragma once

namespace trajcore::kernels {

template <int N>
struct Lanes {
    double lane[N];

    double operator[](int i) const { return lane[i]; }
    double& operator[](int i) { return lane[i]; }

    Lanes& operator+=(const Lanes& b) {
        for (int i = 0; i < N; ++i) lane[i] += b.lane[i];
        return *this;
    }
    Lanes& operator-=(const Lanes& b) {
        for (int i = 0; i < N; ++i) lane[i] -= b.lane[i];
        return *this;
    }
    friend Lanes operator+(Lanes a, const Lanes& b) { return a += b; }
    friend Lanes operator-(Lanes a, const Lanes& b) { return a -= b; }
    friend Lanes operator*(Lanes a, const Lanes& b) {
        for (int i = 0; i < N; ++i) a.lane[i] *= b.lane[i];
        return a;
    }
    // A scalar operand stands for a vector with that value in every lane (as for GCC vectors).
    friend Lanes operator*(double s, Lanes a) {
        for (int i = 0; i < N; ++i) a.lane[i] = s * a.lane[i];
        return a;
    }
    friend Lanes operator*(Lanes a, double s) {
        for (int i = 0; i < N; ++i) a.lane[i] = a.lane[i] * s;
        return a;
    }
    friend Lanes operator-(double s, Lanes a) {
        for (int i = 0; i < N; ++i) a.lane[i] = s - a.lane[i];
        return a;
    }
};

}  // namespace trajcore::kernels
