// Shared definitions for every stn kernel, host or device.
//
// STN_HD marks a function that both the CPU loops (gcc) and the CUDA kernels (nvcc)
// call. Every piece of per-pixel maths lives in such functions, in this folder, once.
#pragma once

#include <cstdint>
#include <math.h>

#if defined(__CUDACC__)
#define STN_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define STN_HD __attribute__((always_inline)) inline  // per-pixel helpers: always inline
#else
#define STN_HD inline
#endif

namespace stn {

// Every offset into a tensor is 64-bit: an (N,C,H,W) tensor may exceed 2^31 elements.
using index_t = int64_t;

// Values are the integers the Python layer passes; keep them in step with python/stn/_validate.py.
enum class Interp : int { Bilinear = 0, Nearest = 1, Bicubic = 2 };
enum class Padding : int { Zeros = 0, Border = 1, Reflection = 2 };

// Thin overloads over the C maths library: the C names exist on host and device alike,
// whereas std:: versions are host-only under nvcc.
STN_HD float fmod_of(float x, float y) { return fmodf(x, y); }
STN_HD double fmod_of(double x, double y) { return fmod(x, y); }

// True for finite x; false for NaN and +-Inf. (x - x is NaN exactly for those.)
template <typename T>
STN_HD bool is_finite(T x) {
  return (x - x) == T(0);
}

template <typename T>
STN_HD bool is_infinite(T x) {
  return x == x && !is_finite(x);
}

// floor(x) as an integer, for finite |x| < 2^62 (callers range-check first). A truncating
// conversion and a compare: no libm call on CPUs without SSE4.1, same result as floor.
template <typename T>
STN_HD index_t floor_to_index(T x) {
  const index_t truncated = index_t(x);
  return T(truncated) > x ? truncated - 1 : truncated;
}

// x rounded to the nearest integer, ties to even (as nearbyint in the default rounding mode,
// which PyTorch's nearest mode uses). x - floor(x) is exact, so the tie test is too.
template <typename T>
STN_HD index_t round_half_even_to_index(T x) {
  index_t rounded = floor_to_index(x);
  const T fraction = x - T(rounded);
  if (fraction > T(0.5) || (fraction == T(0.5) && (rounded & 1) != 0)) ++rounded;
  return rounded;
}

}  // namespace stn

namespace stn {

// Shapes of one sampling call: input (N, C, H, W) -> output (N, C, Ho, Wo).
struct SamplerShape {
  index_t batch, channels, in_height, in_width, out_height, out_width;
  STN_HD index_t in_plane() const { return in_height * in_width; }
  STN_HD index_t out_plane() const { return out_height * out_width; }
  STN_HD index_t out_pixels() const { return batch * out_height * out_width; }
};

struct SamplerOptions {
  Interp mode;
  Padding padding;
  bool align_corners;
};

}  // namespace stn
