// Vectorized row kernels for the hot case of the fused transformer: an affine point map,
// bilinear sampling, float32, zeros or border padding. Each kernel handles one output row
// (n, ho), 8 (AVX2) or 16 (AVX-512) output pixels per step, and is chosen at run time from
// what the CPU supports (simd_dispatch.cpp); everything else runs the generic per-pixel
// bodies (stn/kernel_bodies.h).
//
// The kernels compute exactly what the generic bodies compute over stn/taps.h and
// stn/coords.h: the same IEEE operations in the same order, compiled without FMA
// contraction, with skipped taps contributing an exact +0. Results are therefore bit-identical
// to the generic path (tests/test_simd.py checks every level against it). The scalar maths
// stays the one definition; this is its vector transcription, and must change with it.
//
// This header is plain data and declarations: the per-ISA translation units include it with
// their own compiler flags, so it must not define inline functions shared with generic code.
#pragma once

#include <cstdint>

namespace stn {
namespace cpu {
namespace simd {

// One output row of the affine map: output pixel wo samples the input at
// (x, y) = theta @ (x_base[wo], y_base, 1) in normalized coordinates (x = column, y = row,
// [-1, 1] spanning the image as coords.h describes for align_corners).
//
// Or a run of whole rows taken as one flat row of pixels (AffineRows::flat_run), where the
// rows are short: pixel wo then samples theta @ (x_base[wo], y_base_at[wo], 1), and out_width
// counts the run's pixels. Only kernels with RowKernels::flat_rows accept such a run.
struct AffineRow {
  const float* theta;   // 6 entries, row-major 2x3
  const float* x_base;  // (out_width): base grid x of each output column
  float y_base;         // base grid y of this row (unused when y_base_at is set)
  float y_step;         // base grid y of the next row minus y_base (to prefetch rows ahead)
  int64_t out_width;
  int64_t out_stride;   // floats from an output pixel to the one below it (to prefetch rows ahead)
  int64_t in_height, in_width;
  bool border;          // border padding; zeros padding otherwise
  bool align_corners;
  const float* y_base_at = nullptr;  // (out_width): base grid y of each pixel of a flat run
  // Or each pixel's own point, as grid_sample takes it: grid[2 * wo] = x, grid[2 * wo + 1] = y,
  // in normalized coordinates. Then theta, x_base, y_base, y_step and y_base_at are unused.
  const float* grid = nullptr;
  // Points readable from grid on (out_width or more): the kernels read the points of pixels
  // a few output rows (out_stride pixels each) ahead, to prefetch their input lines.
  int64_t grid_pixels = 0;
  // The forward may write whole 64-byte lines of output with non-temporal stores: the call's
  // output is too large to stay in cache for its reader (AffineRows::kStreamOutputBytes).
  bool stream_output = false;
  // Whether the forward, with stream_output, fences the non-temporal stores when it returns
  // (they are weakly ordered, and another thread may read the output next). A caller that runs
  // several rows in turn on one thread clears it on all but the last.
  bool fence_streams = true;
};

// One image's planes: (channels, plane) floats, channel stride `plane`.
struct ConstPlanes {
  const float* data;
  int64_t channels, plane;
};

// Row buffers of the four bilinear corners of every output pixel, for the scatter:
// base[wo] = r0 * W + c0 is the north-west corner (NE = base + 1, SW = base + W,
// SE = base + W + 1), weight[k][wo] its weight, and bit k of inside[wo] is set when corner k
// (NW, NE, SW, SE) is inside the image and in input rows [row_begin, row_end).
//
// products, where set (only for GridGradCornersFn on a one-channel image): in place of the
// weights, products[4 * wo + k] = weight[k][wo] * grad_output[wo], the very products the
// scatter forms, computed while the weights are in registers; weight is then not written.
struct RowCorners {
  int32_t* base;
  float* weight[4];
  int32_t* inside;
  float* products = nullptr;
};

// output: the row's first pixel in channel 0 of (C, Ho, Wo), channel stride out_plane.
using ForwardRowFn = void (*)(const AffineRow& row, ConstPlanes input, float* output,
                              int64_t out_plane);
// d loss / d (grid_x, grid_y) of each pixel of the row, into grad_x / grad_y (out_width).
// grad_output: the row's first pixel in channel 0, channel stride out_plane.
using GridGradRowFn = void (*)(const AffineRow& row, ConstPlanes input, const float* grad_output,
                               int64_t out_plane, float* grad_x, float* grad_y);
using CornersRowFn = void (*)(const AffineRow& row, int64_t row_begin, int64_t row_end,
                              const RowCorners& corners);
// GridGradRowFn, and the row's corners as CornersRowFn gives them for rows [0, in_height).
using GridGradCornersFn = void (*)(const AffineRow& row, ConstPlanes input, const float* grad_output,
                                   int64_t out_plane, float* grad_x, float* grad_y, const RowCorners& corners);
// An image's (C, H * W) planes as (H * W, c8) pixels, c8 = C rounded up to a multiple of 8
// (RowKernels::channels_last_block), channels C..c8 zero: the layout forward_channels_last
// reads.
using ToChannelsLastFn = void (*)(ConstPlanes input, int64_t pixels, float* out, int64_t c8);
// ForwardRowFn, reading interior pixels from `image`, the channels-last copy of `input`.
using ForwardChannelsLastFn = void (*)(const AffineRow& row, const float* image, int64_t c8, ConstPlanes input,
                                       float* output, int64_t out_plane);

// The six sums of coords.h accumulate_theta_grad for each of `rows` rows of grid gradient:
// row r holds grad_x[r * width + wo] and grad_y[r * width + wo] at base grid
// (x_base[wo], y_base[r]); each sum starts at +0 and runs over wo in order, in double, as
// AffineCoords::accumulate adds, into partials[r * 6 + i].
using ThetaPartialsFn = void (*)(const float* grad_x, const float* grad_y, const float* x_base,
                                 const float* y_base, int64_t width, int64_t rows, double* partials);

// The scatter of grad_input with L channels side by side (simd_scatter.cpp, lane_scatter.h):
// grad_output's pixels [0, count) of `lanes` <= L channels, planes out_plane floats apart from
// grad_block, go to `g` (count * L floats, scratch) as lanes, then add weight * g to the four
// corners of each pixel in `band`, the lane buffer of their group: (band elements, L) floats,
// element r * W + c at (r * W + c - origin) * L.
using ScatterLanesFn = void (*)(const RowCorners& corners, int64_t count, int64_t width, int64_t origin,
                                const float* grad_block, int64_t out_plane, int64_t lanes, float* g, float* band,
                                bool hold, bool prefetch);
// band (count elements, L) -> `lanes` planes, `plane` floats apart, elements [0, count).
using LanesToPlanesFn = void (*)(const float* band, int64_t lanes, int64_t count, float* planes, int64_t plane);

struct LaneScatter {
  int64_t lanes;  // L; 0 where the level has none
  ScatterLanesFn scatter;
  LanesToPlanesFn to_planes;
};

// affine_grid: grid[2 * wo], grid[2 * wo + 1] = the point (x, y) of each pixel of the row
// (or flat run), as coords.h affine_point computes it.
using GridPointsFn = void (*)(const AffineRow& row, float* grid);

struct RowKernels {
  const char* name;  // "AVX-512", "AVX2"
  ForwardRowFn forward;
  GridGradRowFn grid_grad;
  CornersRowFn corners;
  // For images of many channels; nullptr where the level has none (then `forward` serves).
  ToChannelsLastFn to_channels_last;
  ForwardChannelsLastFn forward_channels_last;
  int64_t channels_last_block;  // the copy's channels are a multiple of this (8 or 16)
  // forward, grid_grad and corners accept flat runs of rows (AffineRow::y_base_at).
  bool flat_rows;
  ThetaPartialsFn theta_partials;
  // For images of more than 4 channels (fewer take the generic scatter's 4 lanes).
  LaneScatter wide_scatter;
  GridPointsFn grid_points;
  GridGradCornersFn grid_grad_corners;
};

// The kernels in use, or nullptr when none applies (no SIMD level on this CPU or build, or
// switched off). The default is the fastest level the CPU supports (the widest, except AVX2
// on AMD Zen 4: simd_dispatch.cpp); the environment variable
// STN_SIMD=avx512|avx2|off at start-up, or set_level(), chooses another.
const RowKernels* row_kernels();

// Selects a level by name ("best", "avx512", "avx2", "off"); false if this CPU or build
// lacks it (the setting is then unchanged). level_name() is "off" when none is in use.
bool set_level(const char* name);
const char* level_name();

// The per-ISA tables (nullptr where not compiled in).
const RowKernels* avx512_kernels();
const RowKernels* avx2_kernels();

}  // namespace simd
}  // namespace cpu
}  // namespace stn
