// Interpolation taps: for one sample point, the input pixels it reads, their weights, and
// the derivatives of those weights with respect to the point's pixel coordinates.
//
// Every mode (bilinear, nearest, bicubic) reduces to such a list, so forward, grad_grid and
// grad_input are one loop each (point_ops.h), whatever the mode. Only taps inside the image
// are listed: zeros padding drops the others, border and reflection map them inside first.
#pragma once

#include "coords.h"

namespace stn {

template <Interp Mode> struct TapCapacity;
template <> struct TapCapacity<Interp::Bilinear> { static constexpr int value = 4; };
template <> struct TapCapacity<Interp::Nearest> { static constexpr int value = 1; };
template <> struct TapCapacity<Interp::Bicubic> { static constexpr int value = 16; };

// WithGrad = false (forward, grad_input) skips the weight derivatives.
template <typename T, int Capacity, bool WithGrad = true>
struct Taps {
  int count;
  index_t offset[Capacity];  // row * W + col inside one (H, W) plane
  index_t row[Capacity];     // kept so a CPU thread can tell whether it owns the tap's row
  T weight[Capacity];
  T weight_dx[Capacity];     // d weight / d x, x the pixel column coordinate
  T weight_dy[Capacity];     // d weight / d y
  T dx_dgrid;                // d x / d grid_x: unnormalize and padding, chained
  T dy_dgrid;

  STN_HD void add(index_t r, index_t c, index_t width, T w, T w_dx, T w_dy) {
    offset[count] = r * width + c;
    row[count] = r;
    weight[count] = w;
    if (WithGrad) {
      weight_dx[count] = w_dx;
      weight_dy[count] = w_dy;
    }
    ++count;
  }
};

STN_HD bool inside_image(index_t r, index_t c, index_t height, index_t width) {
  return r >= 0 && r < height && c >= 0 && c < width;
}

// Bilinear and nearest sample the padded point: its pixel coordinates (x, y), with their
// derivatives stored in taps. False, with no taps, for NaN and for a point with no tap inside.
template <typename T, typename TapList>
STN_HD bool padded_point(T grid_x, T grid_y, index_t height, index_t width, Padding padding,
                         bool align_corners, TapList* taps, T* x, T* y) {
  taps->count = 0;
  *x = source_index(grid_x, width, padding, align_corners, &taps->dx_dgrid);
  *y = source_index(grid_y, height, padding, align_corners, &taps->dy_dgrid);
  return within_tap_range(*x, width) && within_tap_range(*y, height);
}

// Bilinear: the four pixels around (x, y), weighted by the area of the opposite rectangle.
template <typename T, typename TapList>
STN_HD void bilinear_taps(T grid_x, T grid_y, index_t height, index_t width, Padding padding,
                          bool align_corners, TapList* taps) {
  T x, y;
  if (!padded_point(grid_x, grid_y, height, width, padding, align_corners, taps, &x, &y)) return;
  const index_t c0 = floor_to_index(x), r0 = floor_to_index(y);
  const T tx = x - T(c0), ty = y - T(r0);  // fractional position inside the 2x2 cell
  // (row, col, weight, d weight/dx, d weight/dy) for the north-west, north-east,
  // south-west and south-east corners, in that order.
  if (inside_image(r0, c0, height, width))
    taps->add(r0, c0, width, (1 - tx) * (1 - ty), -(1 - ty), -(1 - tx));
  if (inside_image(r0, c0 + 1, height, width))
    taps->add(r0, c0 + 1, width, tx * (1 - ty), 1 - ty, -tx);
  if (inside_image(r0 + 1, c0, height, width))
    taps->add(r0 + 1, c0, width, (1 - tx) * ty, -ty, 1 - tx);
  if (inside_image(r0 + 1, c0 + 1, height, width))
    taps->add(r0 + 1, c0 + 1, width, tx * ty, ty, tx);
}

// Nearest: the pixel whose centre is closest, ties to even (as nearbyint). Weight 1, so the
// grid gradient is zero.
template <typename T, typename TapList>
STN_HD void nearest_taps(T grid_x, T grid_y, index_t height, index_t width, Padding padding,
                         bool align_corners, TapList* taps) {
  T x, y;
  if (!padded_point(grid_x, grid_y, height, width, padding, align_corners, taps, &x, &y)) return;
  const index_t c = round_half_even_to_index(x), r = round_half_even_to_index(y);
  if (inside_image(r, c, height, width)) taps->add(r, c, width, T(1), T(0), T(0));
}

// Keys' cubic convolution kernel with A = -0.75 (as PyTorch and OpenCV), evaluated at the four
// taps floor(x) - 1 .. floor(x) + 2 for fractional offset t, with d/dt of each coefficient.
template <typename T>
STN_HD void cubic_coefficients(T t, T coeff[4], T d_coeff[4]) {
  const T A = T(-0.75);
  // near(s) for |s| <= 1, far(s) for 1 < |s| < 2, and their derivatives.
  auto near = [A](T s) { return ((A + 2) * s - (A + 3)) * s * s + 1; };
  auto far = [A](T s) { return ((A * s - 5 * A) * s + 8 * A) * s - 4 * A; };
  auto d_near = [A](T s) { return (3 * (A + 2) * s - 2 * (A + 3)) * s; };
  auto d_far = [A](T s) { return (3 * A * s - 10 * A) * s + 8 * A; };
  coeff[0] = far(t + 1);
  coeff[1] = near(t);
  coeff[2] = near(1 - t);
  coeff[3] = far(2 - t);
  d_coeff[0] = d_far(t + 1);
  d_coeff[1] = d_near(t);
  d_coeff[2] = -d_near(1 - t);
  d_coeff[3] = -d_far(2 - t);
}

// Bicubic pads each tap, not the sample point (PyTorch's rule): a tap outside the image is
// dropped (zeros) or mapped inside by border / reflection padding of its integer position.
// Integer arithmetic, so the result is inside [0, size) however large size is (a float
// size - 1 may round up to size beyond 2^24).
STN_HD bool pad_tap(index_t* index, index_t size, Padding padding, bool align_corners) {
  const index_t i = *index;
  if (padding == Padding::Zeros) return i >= 0 && i < size;
  if (padding == Padding::Border) {
    *index = i < 0 ? 0 : (i >= size ? size - 1 : i);
    return true;
  }
  // Reflection is periodic: about pixel centres 0 and size - 1 (period 2 (size - 1)) with
  // align_corners, about the outer edges -0.5 and size - 0.5 (period 2 size) without.
  const index_t period = align_corners ? 2 * (size - 1) : 2 * size;
  if (period == 0) {
    *index = 0;
    return true;
  }
  index_t m = i % period;
  if (m < 0) m += period;
  *index = m < size ? m : (align_corners ? period - m : period - 1 - m);
  return true;
}

// Before bicubic forms tap indices from a far-away point, bring it near the image without
// changing what it reads: reflection is periodic in whole pixels, so subtract whole periods
// (fmod is exact and keeps the fraction); under border every tap of a point beyond the
// margin reads the edge pixel, so clamp it to the margin (where it reads the same) and give
// it zero gradient, as the clamp of bilinear's border padding does.
template <typename T>
STN_HD T bicubic_near_image(T x, index_t size, Padding padding, bool align_corners, T* d_pixel) {
  if (is_infinite(x)) {  // a finite grid value whose pixel coordinate overflowed
    *d_pixel = 0;
    return x > T(0) ? T(size - 1) : T(0);
  }
  if (padding == Padding::Reflection) {
    const index_t period = align_corners ? 2 * (size - 1) : 2 * size;
    return period > 0 ? fmod_of(x, T(period)) : T(0);
  }
  if (x < T(-kTapMargin)) {
    *d_pixel = 0;
    return T(-kTapMargin);
  }
  if (x > T(size - 1 + kTapMargin)) {
    *d_pixel = 0;
    return T(size - 1 + kTapMargin);
  }
  return x;
}

template <typename T, typename TapList>
STN_HD void bicubic_taps(T grid_x, T grid_y, index_t height, index_t width, Padding padding,
                         bool align_corners, TapList* taps) {
  taps->count = 0;
  // Bicubic unnormalizes without padding the point; padding applies to each tap below.
  T x, y;
  if (!infinite_to_edge(grid_x, width, padding, &x, &taps->dx_dgrid))
    x = unnormalize(grid_x, width, align_corners, &taps->dx_dgrid);
  if (!infinite_to_edge(grid_y, height, padding, &y, &taps->dy_dgrid))
    y = unnormalize(grid_y, height, align_corners, &taps->dy_dgrid);
  if (x != x || y != y) return;  // NaN: no tap
  if (padding == Padding::Zeros) {
    if (!within_tap_range(x, width) || !within_tap_range(y, height)) return;
  } else {
    x = bicubic_near_image(x, width, padding, align_corners, &taps->dx_dgrid);
    y = bicubic_near_image(y, height, padding, align_corners, &taps->dy_dgrid);
  }
  const index_t c0 = floor_to_index(x), r0 = floor_to_index(y);
  T cx[4], dcx[4], cy[4], dcy[4];
  cubic_coefficients(x - T(c0), cx, dcx);
  cubic_coefficients(y - T(r0), cy, dcy);
  for (int i = 0; i < 4; ++i) {
    index_t r = r0 - 1 + i;
    if (!pad_tap(&r, height, padding, align_corners)) continue;
    for (int j = 0; j < 4; ++j) {
      index_t c = c0 - 1 + j;
      if (!pad_tap(&c, width, padding, align_corners)) continue;
      taps->add(r, c, width, cy[i] * cx[j], cy[i] * dcx[j], dcy[i] * cx[j]);
    }
  }
}

// The tap list type of a mode, and the collector that fills it. Nearest weights are
// constant, so its lists never carry derivatives (grid_grad_point then writes exact zeros).
template <typename T, Interp Mode, bool WithGrad>
using TapsFor = Taps<T, TapCapacity<Mode>::value, WithGrad && Mode != Interp::Nearest>;

template <Interp Mode>
struct TapCollector;
template <>
struct TapCollector<Interp::Bilinear> {
  template <typename T, typename TapList>
  STN_HD static void run(T gx, T gy, index_t h, index_t w, Padding p, bool a, TapList* t) {
    bilinear_taps(gx, gy, h, w, p, a, t);
  }
};
template <>
struct TapCollector<Interp::Nearest> {
  template <typename T, typename TapList>
  STN_HD static void run(T gx, T gy, index_t h, index_t w, Padding p, bool a, TapList* t) {
    nearest_taps(gx, gy, h, w, p, a, t);
  }
};
template <>
struct TapCollector<Interp::Bicubic> {
  template <typename T, typename TapList>
  STN_HD static void run(T gx, T gy, index_t h, index_t w, Padding p, bool a, TapList* t) {
    bicubic_taps(gx, gy, h, w, p, a, t);
  }
};

}  // namespace stn
