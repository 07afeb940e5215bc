// The three per-point operations of the sampler, written once over a tap list (taps.h):
//   gather_point      forward:  out[c]        = sum_k weight_k * in[c, tap_k]
//   grid_grad_point   backward: d loss/d grid = sum_c sum_k d weight_k * in[c, tap_k] * gout[c]
//   scatter_point     backward: grad_in[c, tap_k] += weight_k * gout[c]
// Only the scatter differs between devices: the CPU adds directly into the rows its thread
// owns, the GPU uses atomicAdd or a sorted reduction. That difference is the Add functor.
//
// Layout: `in` points at one image (C, H, W) with channel stride in_plane = H * W;
// `out` / `grad_out` point at one output pixel of (C, Ho, Wo), channel stride out_plane.
#pragma once

#include "taps.h"

namespace stn {

template <typename T, int K, bool G>
STN_HD void gather_point(const Taps<T, K, G>& taps, const T* in, index_t channels, index_t in_plane,
                         T* out, index_t out_plane) {
  if (taps.count == K) {  // every tap inside the image, the usual case: a fixed-length loop
    for (index_t c = 0; c < channels; ++c) {
      const T* in_c = in + c * in_plane;
      T value = 0;
      for (int k = 0; k < K; ++k) value += taps.weight[k] * in_c[taps.offset[k]];
      out[c * out_plane] = value;
    }
    return;
  }
  for (index_t c = 0; c < channels; ++c) {
    const T* in_c = in + c * in_plane;
    T value = 0;
    for (int k = 0; k < taps.count; ++k) value += taps.weight[k] * in_c[taps.offset[k]];
    out[c * out_plane] = value;
  }
}

// Writes d loss / d grid_x and d loss / d grid_y for the point.
template <typename T, int K>
STN_HD void grid_grad_point(const Taps<T, K, true>& taps, const T* grad_out, index_t out_plane,
                            const T* in, index_t channels, index_t in_plane, T* grad_x,
                            T* grad_y) {
  T gx = 0, gy = 0;
  if (taps.count > 0) {
    for (index_t c = 0; c < channels; ++c) {
      const T g = grad_out[c * out_plane];
      const T* in_c = in + c * in_plane;
      for (int k = 0; k < taps.count; ++k) {
        const T v = in_c[taps.offset[k]] * g;
        gx += taps.weight_dx[k] * v;
        gy += taps.weight_dy[k] * v;
      }
    }
  }
  *grad_x = gx * taps.dx_dgrid;
  *grad_y = gy * taps.dy_dgrid;
}

// Weights without derivatives (nearest) are piecewise constant: the grid gradient is exactly
// zero, even where an input or grad_output value is Inf or NaN (0 * Inf would be NaN).
template <typename T, int K>
STN_HD void grid_grad_point(const Taps<T, K, false>&, const T*, index_t, const T*, index_t, index_t,
                            T* grad_x, T* grad_y) {
  *grad_x = 0;
  *grad_y = 0;
}

// Adds this point's share of grad_input, for taps whose row lies in [row_begin, row_end).
// Contributions reach each input pixel in tap order, then channel order; a caller that walks
// output pixels in raster order therefore sums every pixel in one fixed order.
template <typename T, int K, bool G, typename Add>
STN_HD void scatter_point(const Taps<T, K, G>& taps, const T* grad_out, index_t out_plane,
                          index_t channels, T* grad_in, index_t in_plane, index_t row_begin,
                          index_t row_end, const Add& add) {
  for (int k = 0; k < taps.count; ++k) {
    if (taps.row[k] < row_begin || taps.row[k] >= row_end) continue;
    T* dst = grad_in + taps.offset[k];
    for (index_t c = 0; c < channels; ++c) add(dst + c * in_plane, taps.weight[k] * grad_out[c * out_plane]);
  }
}

}  // namespace stn

namespace stn {

// Accumulation for a destination only one thread writes (the CPU's row bands, host emulation).
struct PlainAdd {
  template <typename T>
  STN_HD void operator()(T* destination, T value) const {
    *destination += value;
  }
};

}  // namespace stn
