// Coordinate maths: normalized grid coordinates -> pixel coordinates, padding, and the
// affine base grid. Each step returns its local derivative through an out-parameter, so
// forward and backward share one formula.
//
// Conventions (identical to torch.nn.functional.grid_sample / affine_grid):
//   * grid[..., 0] is x (the column, along W), grid[..., 1] is y (the row, along H);
//   * normalized -1 / +1 are the centres of the corner pixels when align_corners is true,
//     and the outer edges of the corner pixels when it is false.
#pragma once

#include "common.h"

namespace stn {

// Any sample point with a pixel coordinate outside (-kTapMargin, size - 1 + kTapMargin) has
// all of its interpolation taps (at most floor(x) - 1 .. floor(x) + 2) outside the image.
// Such points, together with NaN ones, are dropped before any index is formed, so NaN, Inf
// and 1e30 never reach an integer conversion.
constexpr int kTapMargin = 3;

template <typename T>
STN_HD bool within_tap_range(T x, index_t size) {
  return x > T(-kTapMargin) && x < T(size - 1 + kTapMargin);  // false for NaN
}

// Normalized g in [-1, 1] -> pixel coordinate. d_pixel = d(pixel)/d(g).
template <typename T>
STN_HD T unnormalize(T g, index_t size, bool align_corners, T* d_pixel) {
  if (align_corners) {
    *d_pixel = T(size - 1) / 2;
    return ((g + 1) / 2) * T(size - 1);
  }
  *d_pixel = T(size) / 2;
  return ((g + 1) * T(size) - 1) / 2;
}

// Clamp a pixel coordinate to [0, size - 1]. +-Inf clamp to the edges; NaN stays NaN.
template <typename T>
STN_HD T clip_to_image(T x, index_t size, T* d_clip) {
  const T last = T(size - 1);
  if (x <= T(0)) {
    *d_clip = 0;
    return T(0);
  }
  if (x >= last) {
    *d_clip = 0;
    return last;
  }
  *d_clip = 1;
  return x;
}

// Mirror x into [low, high]: the signal is reflected at both ends, period 2 (high - low).
template <typename T>
STN_HD T reflect_into(T x, T low, T high, T* d_reflect) {
  const T span = high - low;
  if (span <= T(0)) {  // a single pixel with align_corners: every point is that pixel
    *d_reflect = 0;
    return x == x ? low : x;  // but NaN stays NaN, and so reads 0
  }
  // The mirror image is periodic with period 2 span. fmod is exact, so first bring x within
  // one period of 0: even a point 1e30 pixels away then lands on the right side of the mirror
  // (neither x - low nor a quotient's parity would survive rounding at that size).
  const T period = 2 * span;
  T sign = 1;
  T distance = fmod_of(x, period) - low;
  if (distance < T(0)) {
    sign = -1;
    distance = -distance;
  }
  // Position within one period, [0, 2 span): the first half runs forwards from low, the
  // second backwards from high.
  const T in_period = fmod_of(distance, period);
  if (in_period < span) {
    *d_reflect = sign;
    return low + in_period;
  }
  *d_reflect = -sign;
  return high - (in_period - span);
}

// Apply border or reflection padding to a pixel coordinate (zeros padding leaves it as is).
// Reflection of +-Inf is undefined, so an infinite coordinate is clamped to the edge it points at.
template <typename T>
STN_HD T pad_coordinate(T x, index_t size, Padding padding, bool align_corners, T* d_pad) {
  if (padding == Padding::Border) return clip_to_image(x, size, d_pad);
  if (padding == Padding::Reflection) {
    if (!is_infinite(x)) {
      T d_reflect, d_clip;
      const T reflected = align_corners ? reflect_into(x, T(0), T(size - 1), &d_reflect)
                                        : reflect_into(x, T(-0.5), T(size) - T(0.5), &d_reflect);
      const T clipped = clip_to_image(reflected, size, &d_clip);
      *d_pad = d_reflect * d_clip;
      return clipped;
    }
    return clip_to_image(x, size, d_pad);
  }
  *d_pad = 1;
  return x;
}

// Border and reflection padding read +-Inf at the edge it points at. Deciding this on the
// normalized value, before unnormalize, keeps it right on a single-pixel axis too, where
// unnormalize multiplies by 0 and Inf * 0 would be NaN.
template <typename T>
STN_HD bool infinite_to_edge(T g, index_t size, Padding padding, T* pixel, T* d_pixel) {
  if (padding == Padding::Zeros || !is_infinite(g)) return false;
  *pixel = g > T(0) ? T(size - 1) : T(0);
  *d_pixel = 0;
  return true;
}

// Normalized grid coordinate -> padded pixel coordinate, with d(pixel)/d(g).
template <typename T>
STN_HD T source_index(T g, index_t size, Padding padding, bool align_corners, T* d_pixel) {
  T edge;
  if (infinite_to_edge(g, size, padding, &edge, d_pixel)) return edge;
  T d_unnormalize, d_pad;
  const T x = unnormalize(g, size, align_corners, &d_unnormalize);
  const T padded = pad_coordinate(x, size, padding, align_corners, &d_pad);
  *d_pixel = d_unnormalize * d_pad;
  return padded;
}

// The normalized coordinate of output pixel i along an axis of `size` pixels; this is the
// base grid of affine_grid (torch's linspace(-1, 1, size), shrunk by (size-1)/size when
// align_corners is false). A single pixel sits at 0.
template <typename T>
STN_HD T base_coordinate(index_t i, index_t size, bool align_corners) {
  if (size <= 1) return T(0);
  if (align_corners) return T(-1) + T(2) * T(i) / T(size - 1);
  return (T(2) * T(i) + T(1)) / T(size) - T(1);
}

// theta is one row-major 2x3 matrix; (x_base, y_base, 1) -> (grid_x, grid_y).
template <typename T>
STN_HD void affine_point(const T* theta, T x_base, T y_base, T* grid_x, T* grid_y) {
  *grid_x = theta[0] * x_base + theta[1] * y_base + theta[2];
  *grid_y = theta[3] * x_base + theta[4] * y_base + theta[5];
}

// d loss / d theta += (d loss / d grid point) * (x_base, y_base, 1), accumulated in double.
template <typename T>
STN_HD void accumulate_theta_grad(double* grad_theta6, T grad_x, T grad_y, T x_base, T y_base) {
  grad_theta6[0] += double(grad_x) * double(x_base);
  grad_theta6[1] += double(grad_x) * double(y_base);
  grad_theta6[2] += double(grad_x);
  grad_theta6[3] += double(grad_y) * double(x_base);
  grad_theta6[4] += double(grad_y) * double(y_base);
  grad_theta6[5] += double(grad_y);
}

}  // namespace stn
