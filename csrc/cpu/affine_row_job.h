// The affine map of one call as the vectorized row kernels (simd/affine_rows.h) see it:
// eligibility, and each output row's simd::AffineRow. Shared by the forward and theta-gradient
// launches (simd_paths.cpp) and the grad_input scatter (simd_scatter.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "../stn/kernel_bodies.h"
#include "simd/affine_rows.h"

namespace stn {
namespace cpu {

// The row kernels in use, for a float32 call of this shape and these options; nullptr when
// the call does not qualify (another mode or padding, sizes beyond the kernels' offsets, or
// no SIMD level in use).
inline const simd::RowKernels* row_kernels_for(const SamplerShape& shape, const SamplerOptions& options) {
  const bool padding_ok = options.padding == Padding::Zeros ||
                          (options.padding == Padding::Border && shape.in_height > 1 && shape.in_width > 1);
  // Offsets are int32 (corners reach r * W + c + W + 1, r up to H + 2) and image sides must
  // be exact floats; the kernels' compares rely on both.
  const index_t kMaxSide = index_t(1) << 24;
  const bool sizes_ok = shape.in_height < kMaxSide && shape.in_width < kMaxSide &&
                        (shape.in_height + 4) * (shape.in_width + 4) < index_t(INT32_MAX);
  if (options.mode != Interp::Bilinear || !padding_ok || !sizes_ok) return nullptr;
  return simd::row_kernels();
}

// Image n of a (N, C, H, W) input, as the row kernels read it.
inline simd::ConstPlanes image_planes(const float* input, const SamplerShape& shape, index_t n) {
  return simd::ConstPlanes{input + n * shape.channels * shape.in_plane(), shape.channels, shape.in_plane()};
}

// The affine map of one call, row by row, or none (kernels == nullptr) when the call does
// not qualify for the row kernels.
class AffineRows {
 public:
  AffineRows(const AffineCoords<float>& coords, const SamplerShape& shape, const SamplerOptions& options)
      : coords_(coords), shape_(shape), options_(options) {
    kernels_ = row_kernels_for(shape, options);
    if (kernels_ == nullptr) return;
    stream_output_ = size_t(shape.batch * shape.channels * shape.out_plane()) * sizeof(float) >= kStreamOutputBytes;
    x_base_.resize(size_t(shape.out_width));
    for (index_t wo = 0; wo < shape.out_width; ++wo) x_base_[size_t(wo)] = coords.base.x(wo);
    if (kernels_->flat_rows && shape.out_width < kFlatBelowWidth && shape.out_plane() <= kFlatMaxPixels) {
      // The base grid of every pixel of an output plane, row after row.
      x_flat_.resize(size_t(shape.out_plane()));
      y_flat_.resize(size_t(shape.out_plane()));
      for (index_t ho = 0; ho < shape.out_height; ++ho) {
        const float y = coords.base.y(ho);
        for (index_t wo = 0; wo < shape.out_width; ++wo) {
          x_flat_[size_t(ho * shape.out_width + wo)] = x_base_[size_t(wo)];
          y_flat_[size_t(ho * shape.out_width + wo)] = y;
        }
      }
    }
  }

  // Rows narrower than this go to the kernels as flat runs (flat()).
  static constexpr index_t kFlatBelowWidth = 64;

  const simd::RowKernels* kernels() const { return kernels_; }
  index_t out_width() const { return shape_.out_width; }
  const float* x_base() const { return x_base_.data(); }

  // Whether rows are handed to the kernels as flat runs (flat_run) rather than one by one.
  // Short rows are: a row of 28 pixels is three vectors and a half-empty fourth, and the
  // set-up of a row costs as much as its vectors.
  bool flat() const { return !x_flat_.empty(); }

  // Rows [ho_begin, ho_end) of image n as one row of pixels (simd::AffineRow's flat run);
  // only when flat().
  simd::AffineRow flat_run(index_t n, index_t ho_begin, index_t ho_end) const {
    simd::AffineRow run = row(n, ho_begin);
    const index_t first = ho_begin * shape_.out_width;
    run.x_base = x_flat_.data() + first;
    run.y_base_at = y_flat_.data() + first;
    run.out_width = (ho_end - ho_begin) * shape_.out_width;
    return run;
  }

  simd::AffineRow row(index_t n, index_t ho) const {
    const float y_base = coords_.base.y(ho);
    const float y_step = shape_.out_height > 1 ? coords_.base.y(1) - coords_.base.y(0) : 0.0f;
    simd::AffineRow row{coords_.theta + n * coords_.theta_stride, x_base_.data(), y_base, y_step,
                        shape_.out_width, shape_.out_width, shape_.in_height, shape_.in_width,
                        options_.padding == Padding::Border, options_.align_corners};
    row.stream_output = stream_output_;
    return row;
  }

  // Calls whose output (all images and channels) takes at least this many bytes write it with
  // non-temporal stores where they can (simd::AffineRow::stream_output): a write that skips
  // reading each line first, and leaves the caches to the input. Measured on the AMD Zen 4
  // (AVX2, 2 threads), against plain stores: 0.83-0.95x the forward time on one 3 x 1024 x 1024
  // image (12 MiB of output, which a 32 MiB L3 might have kept), 0.89-0.91x with the caches
  // flushed before each call, 0.87-0.88x on 8 x 64 x 128 x 128 maps (32 MiB).
  static constexpr size_t kStreamOutputBytes = size_t(8) << 20;

  // Output columns [first, second) of row (n, ho): outside them no sample of the row has a
  // corner in input rows [row_begin, row_end), so a band of those rows can skip them. The
  // row's sample rows are linear in the column; they are taken in double, with a margin far
  // above the float rounding of the kernels' own. The whole row where no bound holds (border
  // padding, whose clamp moves samples, or a non-finite map).
  std::pair<index_t, index_t> band_columns(index_t n, index_t ho, index_t row_begin, index_t row_end) const {
    const index_t width = shape_.out_width;
    if (options_.padding != Padding::Zeros || width < 2) return {0, width};
    const float* t = coords_.theta + n * coords_.theta_stride;
    const double y_base = double(coords_.base.y(ho));
    const auto sample_row = [&](index_t wo) {
      const double g = double(t[3]) * double(coords_.base.x(wo)) + double(t[4]) * y_base + double(t[5]);
      double d_pixel;
      return unnormalize<double>(g, shape_.in_height, options_.align_corners, &d_pixel);
    };
    const double first = sample_row(0), last = sample_row(width - 1);
    const double magnitude = (std::fabs(t[3]) + std::fabs(t[4]) + std::fabs(t[5]) + 2.0) * double(shape_.in_height);
    const double margin = 2.0 + magnitude * 0x1p-16;
    if (!std::isfinite(first) || !std::isfinite(last) || !std::isfinite(margin)) return {0, width};
    // A sample has a corner in the band when row_begin - 1 <= y < row_end.
    const double low = double(row_begin - 1) - margin, high = double(row_end) + margin;
    const double slope = (last - first) / double(width - 1);
    if (slope == 0.0) {  // the row runs along the band's rows: all of it or none
      const bool reaches = first >= low && first <= high;
      return {0, reaches ? width : 0};
    }
    double enter = (low - first) / slope, leave = (high - first) / slope;  // columns where y meets low, high
    if (enter > leave) std::swap(enter, leave);
    const double begin = std::max(0.0, std::floor(enter) - 1.0), end = std::min(double(width), std::ceil(leave) + 2.0);
    if (!(begin < end)) return {0, 0};
    return {index_t(begin), index_t(end)};
  }

  // Image n of a (N, C, H, W) input.
  simd::ConstPlanes image(const float* input, index_t n) const { return image_planes(input, shape_, n); }

  // Offset of row (n, ho) in channel 0 of an (N, C, Ho, Wo) array.
  index_t out_row(index_t n, index_t ho) const {
    return n * shape_.channels * shape_.out_plane() + ho * shape_.out_width;
  }

 private:
  AffineCoords<float> coords_;
  SamplerShape shape_;
  SamplerOptions options_;
  // Flat runs in planes of at most this (x_flat_ and y_flat_ then take at most 512 KiB).
  static constexpr index_t kFlatMaxPixels = index_t(1) << 16;

  const simd::RowKernels* kernels_ = nullptr;
  bool stream_output_ = false;
  std::vector<float> x_base_;
  std::vector<float> x_flat_, y_flat_;  // (out_height * out_width) when flat()
};

}  // namespace cpu
}  // namespace stn
