// grad_input of the affine map and of grid_sample's grid with float32 bilinear sampling
// (simd_paths.h): the taps of each output pixel from the row kernels' corners_row, then a
// scatter that adds weight * grad_output to the four corners. Plain C++ (no ISA flags).
//
// Exactness: scatter_point (stn/point_ops.h) adds each pixel's contributions to grad_input in
// raster order of the output pixels, so every element receives its additions in that order;
// so does everything here, which therefore gives the generic body's bits.
//
// Speed: the additions to one element form a dependent chain, and consecutive output pixels
// usually add to the same 2x2 cell. So the cell's four sums are held in registers (HeldCell),
// and several channels are scattered side by side as the lanes of one vector: each
// lane performs exactly the scalar operations of its channel, and the chains of the lanes
// advance together. The lanes need the channels of an element next to each other, so an
// image with more than one channel is scattered into a per-thread buffer with that layout,
// (C / L, H, W, L), and copied into grad_input's planes at the end: L = 4 here, or the row
// kernels' wider lanes (8 with AVX2, 16 with AVX-512) for images of more than 4 channels.
// The loops are lane_scatter.h's.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "affine_row_job.h"
#include "cache_size.h"
#include "cpu_executor.h"
#include "lane_scatter.h"
#include "simd_paths.h"

namespace stn {
namespace cpu {
namespace {

// STN_PICK4(a, b, i, j, k, l): floats i, j, k, l of the 8 of a and b (0-3 from a, 4-7 from
// b), by the compiler's own shuffle, one instruction or two on x86 and ARM alike.
#if defined(__clang__)
#define STN_PICK4(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else
typedef int Pick4 __attribute__((vector_size(4 * sizeof(int))));
#define STN_PICK4(a, b, i, j, k, l) __builtin_shuffle(a, b, Pick4{i, j, k, l})
#endif

// lane_scatter.h's transpose of 4 channels of 4 elements, in two rounds of shuffles. (Written
// element by element, it compiled to each column assembled from scalars: the seed's backward,
// 3 channels, took 1.03x this time.)
struct Transpose4 {
  static void run(const scatter::Lanes4 rows[4], scatter::Lanes4 columns[4]) {
    const scatter::Lanes4 low01 = STN_PICK4(rows[0], rows[1], 0, 4, 1, 5);   // r0[0] r1[0] r0[1] r1[1]
    const scatter::Lanes4 high01 = STN_PICK4(rows[0], rows[1], 2, 6, 3, 7);  // r0[2] r1[2] r0[3] r1[3]
    const scatter::Lanes4 low23 = STN_PICK4(rows[2], rows[3], 0, 4, 1, 5);
    const scatter::Lanes4 high23 = STN_PICK4(rows[2], rows[3], 2, 6, 3, 7);
    columns[0] = STN_PICK4(low01, low23, 0, 1, 4, 5);  // r0[0] r1[0] r2[0] r3[0]
    columns[1] = STN_PICK4(low01, low23, 2, 3, 6, 7);
    columns[2] = STN_PICK4(high01, high23, 0, 1, 4, 5);
    columns[3] = STN_PICK4(high01, high23, 2, 3, 6, 7);
  }
};
#undef STN_PICK4

// The lanes of any level: 4 channels side by side.
using Scatter4 = scatter::LaneKernels<scatter::Lanes4, Transpose4>;
constexpr simd::LaneScatter kScatter4{Scatter4::L, &Scatter4::scatter, &Scatter4::to_planes};

// The lanes for images of `channels` channels: 4, or the row kernels' wider lanes beyond 4.
const simd::LaneScatter& lane_kernels_for(const simd::RowKernels* kernels, index_t channels) {
  return channels > kScatter4.lanes && kernels->wide_scatter.lanes > 0 ? kernels->wide_scatter : kScatter4;
}

// The bytes an image's scatter adds to: its lane buffer (channels rounded up to whole lanes),
// or its one plane.
size_t scatter_image_bytes(const simd::RowKernels* kernels, const SamplerShape& shape) {
  const index_t lanes = shape.channels > 1 ? lane_kernels_for(kernels, shape.channels).lanes : 1;
  const index_t padded = (shape.channels + lanes - 1) / lanes * lanes;
  return size_t(padded * shape.in_plane()) * sizeof(float);
}

// Holding a cell pays only where many consecutive pixels add to the same cell, i.e. when the
// map magnifies: below this step between neighbouring output pixels (in input pixels). At
// ordinary scales the cell changes every pixel or two, and the bookkeeping costs more than
// the store-to-load waits it saves (measured: 5-16% slower at scales 0.5-1, 5% faster at
// 0.05, one channel). Both ways give every element the same additions in the same order.
constexpr double kHoldBelowStep = 0.125;

// Whether image n's scatter holds cells: the step along an output row, in input pixels, from
// theta's x column (NaN or Inf theta: no).
bool hold_cells(const AffineCoords<float>& coords, const SamplerShape& shape, index_t n) {
  const float* theta = coords.theta + n * coords.theta_stride;
  const double step_x = double(theta[0]) * double(shape.in_width) / double(shape.out_width);
  const double step_y = double(theta[3]) * double(shape.in_height) / double(shape.out_width);
  // The step's length below kHoldBelowStep, compared squared (std::hypot took 7% of a
  // backward of 256 tiny images); NaN compares false, and squares that overflow give +Inf.
  return step_x * step_x + step_y * step_y < kHoldBelowStep * kHoldBelowStep;
}

// The scatter's lines ahead are not asked for when its band (of all channels) is at most
// this large: zeroed just before, they are in cache, and the prefetches would cost a fifth
// of the scatter's time (measured on a 60 x 60 image).
constexpr size_t kCachedBandBytes = size_t(32) << 10;

// Output pixels whose corners the scatter prepares at a time (24 bytes each).
constexpr index_t kScatterBlockPixels = 1024;

// Most bytes of lane buffer a thread keeps between calls.
constexpr size_t kKeptLaneBytes = size_t(32) << 20;

// An image of one channel is scattered straight into grad_input's plane, zeroed just before
// (for_each_band). An earlier round scattered a call's one-channel images, where grad_input
// took 1 MiB or more in planes of at most 256 KiB, into a per-thread buffer instead, copied out
// with non-temporal stores (measured then at 0.92-0.95x cluttered MNIST's forward and
// backward, A/B between two loaded copies of the module, a method this round found biased by
// up to 10% either way). Measured again with both paths in one module, switched at run time
// between alternating calls (AMD Zen 4, AVX2, 2 threads), the plane was the faster: cluttered
// MNIST's backward 0.88-0.91x the time, its forward and backward 0.915-0.96x (0.855x with 128
// images, 0.95x with 512), 64 x 1 x 128 x 128 0.98-0.99x, with 14.7 and 29 MB of grad_input
// the same within the noise. The copy-out's stores had stalled the core on memory (about
// 0.55 us of 4.6 per 60 x 60 image on one thread), and they left grad_input out of the cache,
// where a recycled output array (buffer_cache.h) otherwise stays between calls.

// Memory for lanes, aligned for the widest vector: the lane loops read it through their
// own vector type only.
struct alignas(64) LaneStorage {
  float values[16];
};

// floats rounded up to whole LaneStorage blocks, in `storage`; the first `floats` zeroed
// when `zero`.
float* lane_floats(std::vector<LaneStorage>& storage, size_t floats, bool zero) {
  storage.resize((floats + 15) / 16);
  float* at = storage.data()->values;
  if (zero) std::memset(at, 0, floats * sizeof(float));
  return at;
}

// Per-thread buffers of the scatter, reused from call to call.
struct ScatterBuffers {
  std::vector<int32_t> base, inside;  // (block pixels)
  std::vector<float> weights;         // (4, block pixels)
  std::vector<LaneStorage> lanes;     // (C / L, band rows, W, L): the band of the image
  std::vector<LaneStorage> g;         // (block pixels, L): grad_output of L channels
  std::vector<float> grad_x, grad_y;  // (block pixels): the fused backward's grid gradient
  std::vector<float> y_base;          // (block rows): its base grid y
  // The current image's corners carry products (RowCorners::products) in place of weights.
  bool with_products = false;
  std::vector<float> products;  // (block pixels, 4)

  // Sizes the buffers for blocks of `block` pixels, products among them or not.
  void prepare(size_t block, bool products_wanted) {
    base.resize(block);
    inside.resize(block);
    with_products = products_wanted;
    if (with_products) {
      products.resize(4 * block);
    } else {
      weights.resize(4 * block);
    }
  }

  simd::RowCorners corners(index_t at, size_t block) {
    if (with_products) return simd::RowCorners{base.data() + at, {}, inside.data() + at, products.data() + 4 * at};
    return simd::RowCorners{base.data() + at,
                            {weights.data() + at, weights.data() + block + at, weights.data() + 2 * block + at,
                             weights.data() + 3 * block + at},
                            inside.data() + at};
  }
};

// Where the corners come from: an affine map's rows (AffineRows), or grid_sample's grid.
// corners(n, first, count, ...) fills the buffers with the corners of output rows [first,
// first + count) of image n, pixel after pixel, and returns the span [begin, end) of those
// pixels outside which none has a tap in the band (all of them unless said otherwise).
using PixelSpan = std::pair<index_t, index_t>;
class AffineCorners {
 public:
  AffineCorners(const AffineCoords<float>& coords, const SamplerShape& shape, const SamplerOptions& options)
      : coords_(coords), shape_(shape), rows_(coords, shape, options) {}
  // Whether corners() can give one channel's products (RowCorners::products) on request.
  static constexpr bool kGivesProducts = false;
  // Called once every output row of image n has passed through corners() (an item of the
  // whole image).
  void image_done(index_t /*n*/) const {}
  const simd::RowKernels* kernels() const { return rows_.kernels(); }
  const AffineRows& rows() const { return rows_; }
  bool hold(index_t n) const { return hold_cells(coords_, shape_, n); }
  PixelSpan corners(index_t n, index_t first, index_t count, index_t row_begin, index_t row_end,
                    ScatterBuffers& buffers, size_t block) const {
    const index_t width = shape_.out_width;
    if (rows_.flat()) {
      kernels()->corners(rows_.flat_run(n, first, first + count), row_begin, row_end, buffers.corners(0, block));
      return {0, count * width};
    }
    if (row_begin == 0 && row_end == shape_.in_height) {  // the whole image
      for (index_t r = 0; r < count; ++r)
        kernels()->corners(rows_.row(n, first + r), row_begin, row_end, buffers.corners(r * width, block));
      return {0, count * width};
    }
    // A band of part of the image (N < threads): only the columns of each row that may reach
    // it (a rotated image's rows mostly cross every band). The large image's backward, in
    // two bands: 0.91x the time.
    PixelSpan span{count * width, 0};
    for (index_t r = 0; r < count; ++r) {
      const simd::RowCorners out = buffers.corners(r * width, block);
      const PixelSpan columns = rows_.band_columns(n, first + r, row_begin, row_end);
      std::fill(out.inside, out.inside + columns.first, 0);
      std::fill(out.inside + std::max(columns.first, columns.second), out.inside + width, 0);
      if (columns.second <= columns.first) continue;
      simd::AffineRow row = rows_.row(n, first + r);
      row.x_base += columns.first;
      row.out_width = columns.second - columns.first;
      kernels()->corners(row, row_begin, row_end, buffers.corners(r * width + columns.first, block));
      span.first = std::min(span.first, r * width + columns.first);
      span.second = r * width + columns.second;
    }
    return span.first < span.second ? span : PixelSpan{0, 0};
  }

 private:
  AffineCoords<float> coords_;
  SamplerShape shape_;
  AffineRows rows_;
};

// AffineCorners that computes the theta gradient's row sums on the way, for the fused
// backward (simd_paths.h): the grid-gradient kernel also gives the corners the scatter
// needs, and theta_partials sums the grid gradient's rows, as simd_launch does for
// CoefficientGradRow. Each output row must pass once: only where each image is one band.
class AffineCornersWithTheta : public AffineCorners {
 public:
  using Reduce = ReduceToParams<float, AffineCoords<float>::kCapacity>;
  AffineCornersWithTheta(const CoefficientGradRow<float, Interp::Bilinear, AffineCoords<float>>& body,
                         const Reduce* reduce)
      : AffineCorners(body.coords, body.shape, body.options), body_(body), reduce_(reduce) {}
  // The grid-gradient kernel has each pixel's grad_output at hand with its weights.
  static constexpr bool kGivesProducts = true;

  // Image n's theta partials are all written: their sum (reduce_), on this thread, while they
  // are in its cache. In a loop of its own after the pass, each image's partials were read by
  // whichever thread took it, half of them from the other core's cache. Measured on the AMD
  // Zen 4 host (AVX2, 2 threads, A/B in alternating calls), cluttered MNIST's forward and
  // backward: 0.88-0.92x the time where the copy probe read 33-40 GB/s (the cores far apart,
  // cpu_executor.h items_per_handout), 0.98-1.01x where it read 27-28 GB/s.
  void image_done(index_t n) const {
    if (reduce_ != nullptr) (*reduce_)(n);
  }

  PixelSpan corners(index_t n, index_t first, index_t count, index_t /*row_begin*/, index_t /*row_end*/,
                    ScatterBuffers& buffers, size_t block) const {
    std::vector<float>& grad_x = buffers.grad_x;
    std::vector<float>& grad_y = buffers.grad_y;
    std::vector<float>& y_base = buffers.y_base;
    grad_x.resize(block);
    grad_y.resize(block);
    y_base.resize(size_t(count));
    const index_t out_width = body_.shape.out_width, out_plane = body_.shape.out_plane();
    const simd::ConstPlanes image = rows().image(body_.input, n);
    const float* grad_output = body_.grad_output + rows().out_row(n, first);
    if (rows().flat()) {
      kernels()->grid_grad_corners(rows().flat_run(n, first, first + count), image, grad_output, out_plane,
                                   grad_x.data(), grad_y.data(), buffers.corners(0, block));
    } else {
      for (index_t r = 0; r < count; ++r)
        kernels()->grid_grad_corners(rows().row(n, first + r), image, grad_output + r * out_width, out_plane,
                                     grad_x.data() + r * out_width, grad_y.data() + r * out_width,
                                     buffers.corners(r * out_width, block));
    }
    for (index_t r = 0; r < count; ++r) y_base[size_t(r)] = body_.coords.base.y(first + r);
    kernels()->theta_partials(grad_x.data(), grad_y.data(), rows().x_base(), y_base.data(), out_width, count,
                              body_.row_partials + (n * body_.shape.out_height + first) * 6);
    return {0, count * out_width};
  }

 private:
  const CoefficientGradRow<float, Interp::Bilinear, AffineCoords<float>>& body_;
  const Reduce* reduce_;  // or null
};

class GridCorners {
 public:
  GridCorners(const GridCoords<float>& coords, const SamplerShape& shape, const SamplerOptions& options)
      : coords_(coords), shape_(shape), options_(options), kernels_(row_kernels_for(shape, options)) {}
  const simd::RowKernels* kernels() const { return kernels_; }
  bool hold(index_t) const { return false; }  // a grid may jump anywhere: add to memory
  static constexpr bool kGivesProducts = false;
  void image_done(index_t) const {}
  PixelSpan corners(index_t n, index_t first, index_t count, index_t row_begin, index_t row_end,
                    ScatterBuffers& buffers, size_t block) const {
    // The block's rows as one run of pixels, each with its own point.
    const index_t pixel = first * shape_.out_width;
    simd::AffineRow run{nullptr, nullptr, 0.0f, 0.0f, count * shape_.out_width, shape_.out_width,
                        shape_.in_height, shape_.in_width, options_.padding == Padding::Border,
                        options_.align_corners};
    run.grid = coords_.grid + (n * shape_.out_plane() + pixel) * 2;
    run.grid_pixels = run.out_width;  // no prefetching ahead: the scatter prefetches its own
    kernels()->corners(run, row_begin, row_end, buffers.corners(0, block));
    return {0, run.out_width};
  }

 private:
  GridCoords<float> coords_;
  SamplerShape shape_;
  SamplerOptions options_;
  const simd::RowKernels* kernels_;
};

// scatter_point over the corners. One work item per (image, band of input rows; for_each_band
// cuts the bands for `threads`): the corners of a block of output rows, then every channel of
// the block.
template <typename Corners>
bool scatter_grad_input(const Corners& source, const float* grad_output, const SamplerShape& shape,
                        float* grad_input, index_t threads = get_num_threads()) {
  if (source.kernels() == nullptr) return false;
  const index_t width = shape.in_width, out_width = shape.out_width, channels = shape.channels;
  const index_t in_plane = shape.in_plane(), out_plane = shape.out_plane();
  const simd::LaneScatter& lane_kernels = lane_kernels_for(source.kernels(), channels);
  const index_t lanes_per_group = lane_kernels.lanes;
  const index_t groups = (channels + lanes_per_group - 1) / lanes_per_group;
  const bool by_lanes = channels > 1;  // one channel: straight into the plane
  // Corners are computed for a block of output rows, then each channel (group) scatters the
  // whole block while the input lines it touches are in cache.
  const index_t block_rows = std::max<index_t>(1, kScatterBlockPixels / out_width);
  const size_t block = size_t(block_rows * out_width);
  for_each_band(shape, grad_input, [&](index_t n, index_t row_begin, index_t row_end) {
    thread_local ScatterBuffers buffers;
    const bool hold = source.hold(n);
    buffers.prepare(block, /*products_wanted=*/Corners::kGivesProducts && !by_lanes && !hold);
    const index_t band = (row_end - row_begin) * width;  // elements of one channel's band
    const index_t origin = row_begin * width;
    const size_t group_floats = size_t(band * lanes_per_group);
    float* lane_band = nullptr;
    float* g = nullptr;
    if (by_lanes) {
      lane_band = lane_floats(buffers.lanes, size_t(groups) * group_floats, /*zero=*/true);
      g = lane_floats(buffers.g, block * size_t(lanes_per_group), /*zero=*/false);
    }
    // A small band was zeroed (or its lane buffer assigned) just now and is still in L1.
    const bool prefetch = size_t(band * (by_lanes ? groups * lanes_per_group : 1)) * sizeof(float) > kCachedBandBytes;
    float* image = grad_input + n * channels * in_plane;
    const float* grad_image = grad_output + n * channels * out_plane;
    for (index_t first = 0; first < shape.out_height; first += block_rows) {
      const index_t rows_here = std::min(block_rows, shape.out_height - first);
      const PixelSpan span = source.corners(n, first, rows_here, row_begin, row_end, buffers, block);
      const simd::RowCorners corners = buffers.corners(span.first, block);
      // The block's rows are consecutive in grad_output too: one raster run of pixels.
      const index_t count = span.second - span.first;
      if (count == 0) continue;
      const float* grad_block = grad_image + first * out_width + span.first;
      if (!by_lanes) {
        scatter::scatter_run<float>(corners, count, width, 0, grad_block, image, hold, prefetch);
        continue;
      }
      for (index_t group = 0; group < groups; ++group) {
        const index_t c0 = group * lanes_per_group, lanes = std::min(lanes_per_group, channels - c0);
        lane_kernels.scatter(corners, count, width, origin, grad_block + c0 * out_plane, out_plane, lanes, g,
                             lane_band + size_t(group) * group_floats, hold, prefetch);
      }
    }
    if (row_begin == 0 && row_end == shape.in_height) source.image_done(n);
    if (!by_lanes) return;
    // (groups, band, L) -> the band's rows of each of the C planes.
    for (index_t group = 0; group < groups; ++group) {
      const index_t c0 = group * lanes_per_group, lanes = std::min(lanes_per_group, channels - c0);
      lane_kernels.to_planes(lane_band + size_t(group) * group_floats, lanes, band, image + c0 * in_plane + origin,
                             in_plane);
    }
    // The lane buffer is the size of the band's grad_input: keep it for the next call only
    // while small, so one huge image does not pin its memory to a thread for good.
    if (buffers.lanes.capacity() * sizeof(LaneStorage) > kKeptLaneBytes) std::vector<LaneStorage>().swap(buffers.lanes);
  }, /*zero_bands=*/!by_lanes, threads);
  return true;
}

}  // namespace

bool simd_scatter_grad_input(const AffineCoords<float>& coords, const float* grad_output,
                             const SamplerShape& shape, const SamplerOptions& options, float* grad_input) {
  return scatter_grad_input(AffineCorners(coords, shape, options), grad_output, shape, grad_input);
}

bool simd_fused_backward(index_t /*rows*/, const CoefficientGradRow<float, Interp::Bilinear, AffineCoords<float>>& body,
                         float* grad_input, const ReduceToParams<float, AffineCoords<float>::kCapacity>* reduce) {
  // With fewer images than threads, images are split into bands of input rows, and each
  // band passes over every output row: the theta sums would be taken once per band.
  // The thread count is read once: a set_num_threads call from another thread during this one
  // must not cut the images into bands after this test, whose items would leave an image's
  // theta partials unsummed (image_done).
  const index_t threads = get_num_threads();
  if (body.shape.batch < threads) return false;
  const simd::RowKernels* kernels = row_kernels_for(body.shape, body.options);
  if (kernels == nullptr) return false;
  // The one pass reads each block's input and grad_output for the grid gradient while its
  // scatter adds to the image's lane buffer: both stay in cache only while that buffer fits
  // in a core's L2. Beyond, a grid-gradient pass and then a scatter pass are faster. Two
  // passes against one, backward alone, A/B in alternating calls on the AMD Zen 4 (1 MiB L2,
  // AVX2 kernels, 2 threads):
  //   buffers over 1 MiB: 0.81x the time with 8 x 64 x 128 x 128 (4 MiB buffers), 0.84x with
  //     8 x 3 x 512 x 512, 0.87x with 4 x 16 x 256 x 256, 0.92x with 4 x 1 x 1024 x 1024;
  //     0.92-0.96x with 2 MiB (8 x 32 x 128 x 128, 16 x 8 x 256 x 256, 8 x 3 x 362 x 362);
  //   at 1 MiB: 1.09x with 16 x 16 x 128 x 128, 1.13x with 8 x 3 x 256 x 256, 0.95x with
  //     4 x 64 x 64 x 64;
  //   below: 1.08x with the seed's batch (64 x 3 x 227 x 227), 1.04x with 32 x 32 x 64 x 64,
  //     1.03x with cluttered MNIST.
  // Earlier, on an Intel Xeon (2 MiB L2) with the AVX-512 kernels and older scatter loops,
  // one pass took 0.81-0.91x the time of two with 32 channels of 64 x 64, 0.89-0.94x with
  // 8-16 channels or one channel of 100 x 100, and 0.87x with 8 x 3 x 512 x 512 (4 MiB
  // buffers, two passes now there: not re-measured); the deep maps' even.
  if (scatter_image_bytes(kernels, body.shape) > l2_cache_bytes()) return false;
  return scatter_grad_input(AffineCornersWithTheta(body, reduce), body.grad_output, body.shape, grad_input, threads);
}

bool simd_scatter_grad_input(const GridCoords<float>& coords, const float* grad_output,
                             const SamplerShape& shape, const SamplerOptions& options, float* grad_input) {
  return scatter_grad_input(GridCorners(coords, shape, options), grad_output, shape, grad_input);
}

}  // namespace cpu
}  // namespace stn
