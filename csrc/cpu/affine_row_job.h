// The affine map of one call as the vectorized row kernels (simd/affine_rows.h) see it:
// eligibility, and each output row's simd::AffineRow. Shared by the forward and theta-gradient
// launches (simd_paths.cpp) and the grad_input scatter (simd_scatter.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "../stn/kernel_bodies.h"
#include "simd/affine_rows.h"

namespace stn {
namespace cpu {

// The affine map of one call, row by row, or none (kernels == nullptr) when the call does
// not qualify for the row kernels.
class AffineRows {
 public:
  AffineRows(const AffineCoords<float>& coords, const SamplerShape& shape, const SamplerOptions& options)
      : coords_(coords), shape_(shape), options_(options) {
    const bool padding_ok = options.padding == Padding::Zeros ||
                            (options.padding == Padding::Border && shape.in_height > 1 && shape.in_width > 1);
    // Offsets are int32 (corners reach r * W + c + W + 1, r up to H + 2) and image sides must
    // be exact floats; the kernels' compares rely on both.
    const index_t kMaxSide = index_t(1) << 24;
    const bool sizes_ok = shape.in_height < kMaxSide && shape.in_width < kMaxSide &&
                          (shape.in_height + 4) * (shape.in_width + 4) < index_t(INT32_MAX);
    if (options.mode != Interp::Bilinear || !padding_ok || !sizes_ok) return;
    kernels_ = simd::row_kernels();
    if (kernels_ == nullptr) return;
    x_base_.resize(size_t(shape.out_width));
    for (index_t wo = 0; wo < shape.out_width; ++wo) x_base_[size_t(wo)] = coords.base.x(wo);
  }

  const simd::RowKernels* kernels() const { return kernels_; }
  const float* x_base() const { return x_base_.data(); }

  simd::AffineRow row(index_t n, index_t ho) const {
    const float y_base = coords_.base.y(ho);
    const float y_step = shape_.out_height > 1 ? coords_.base.y(1) - coords_.base.y(0) : 0.0f;
    return simd::AffineRow{coords_.theta + n * coords_.theta_stride, x_base_.data(), y_base, y_step,
                           shape_.out_width, shape_.out_width, shape_.in_height, shape_.in_width,
                           options_.padding == Padding::Border, options_.align_corners};
  }

  // Image n of a (N, C, H, W) input.
  simd::ConstPlanes image(const float* input, index_t n) const {
    return simd::ConstPlanes{input + n * shape_.channels * shape_.in_plane(), shape_.channels, shape_.in_plane()};
  }

  // Offset of row (n, ho) in channel 0 of an (N, C, Ho, Wo) array.
  index_t out_row(index_t n, index_t ho) const {
    return n * shape_.channels * shape_.out_plane() + ho * shape_.out_width;
  }

 private:
  AffineCoords<float> coords_;
  SamplerShape shape_;
  SamplerOptions options_;
  const simd::RowKernels* kernels_ = nullptr;
  std::vector<float> x_base_;
};

}  // namespace cpu
}  // namespace stn
