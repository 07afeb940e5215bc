// The executor's vectorized paths (simd_paths.h): eligibility, the per-row job of the affine
// map, and the loops around the row kernels. Plain C++ (no ISA flags): the kernels it calls
// were compiled per ISA and chosen at run time.
#include "simd_paths.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu_executor.h"
#include "simd/affine_rows.h"

namespace stn {
namespace cpu {
namespace {

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
                           shape_.out_width, shape_.in_height, shape_.in_width,
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

// The output of a call in work items for the row kernels: image n, a strip of at most
// `strip_width` columns, a run of rows walked top to bottom. A thread then reads the input
// rows one output row leaves for the next (a rotated row crosses many input rows: in a strip
// they stay in cache), and a wide image's strips still give every thread work. There are
// about kItemsPerThread items per thread, so that dynamic hand-out evens out the load. Every
// output element is written by one item, whatever the split: results do not depend on it.
class OutputTiles {
 public:
  static constexpr index_t kStripWidth = 128;
  static constexpr index_t kItemsPerThread = 4;

  struct Tile {
    index_t n, column_begin, column_end, row_begin, row_end;
  };

  OutputTiles(index_t batch, index_t out_height, index_t out_width, index_t strip_width)
      : batch_(batch), out_height_(out_height), out_width_(out_width),
        pixels_(batch * out_height * out_width) {
    strip_width_ = std::max<index_t>(1, std::min(strip_width, out_width));
    strips_ = (out_width + strip_width_ - 1) / strip_width_;
    const index_t wanted = kItemsPerThread * get_num_threads();
    const index_t runs = std::min(out_height, std::max<index_t>(1, (wanted + batch * strips_ - 1) / (batch * strips_)));
    run_rows_ = (out_height + runs - 1) / runs;
    runs_ = (out_height + run_rows_ - 1) / run_rows_;
  }

  index_t count() const { return batch_ * strips_ * runs_; }

  // parallel_for's threshold: a call of a few dozen pixels stays on the calling thread.
  index_t min_items_to_split() const { return pixels_ >= kMinItemsToSplit ? 2 : count() + 1; }

  Tile tile(index_t item) const {
    const index_t run = item % runs_, strip = (item / runs_) % strips_, n = item / (runs_ * strips_);
    const index_t column_begin = strip * strip_width_, row_begin = run * run_rows_;
    return Tile{n, column_begin, std::min(out_width_, column_begin + strip_width_), row_begin,
                std::min(out_height_, row_begin + run_rows_)};
  }

 private:
  index_t batch_, out_height_, out_width_, pixels_;
  index_t strip_width_, strips_, run_rows_, runs_;
};

// How many pixels ahead scatter_row asks for the lines it will add to.
constexpr index_t kScatterAhead = 24;

// The running sums of one 2x2 cell of a grad_input plane, held in registers while
// consecutive output pixels add to it. Every element still receives the same additions in
// the same order as adding in memory, so results are bit-identical. When the window moves
// to a neighbouring cell, the corners the two cells share pass from register to register:
// written back and read again at once they would wait on the store (a read that straddles
// two stores cannot be forwarded from them).
class HeldCell {
 public:
  HeldCell(float* plane, index_t width) : plane_(plane), width_(width) {}

  // Holds the cell whose north-west corner is plane[base].
  void move_to(index_t base) {
    if (held_ && base == cell_) return;
    const index_t w = width_;
    if (!held_) {
      load(base, kAll);
    } else if (base == cell_ + 1) {  // right: the east corners become the west ones
      store(kWest);
      corner_[kNorthWest] = corner_[kNorthEast], corner_[kSouthWest] = corner_[kSouthEast];
      load(base, kEast);
    } else if (base == cell_ + w) {  // down: the south corners become the north ones
      store(kNorth);
      corner_[kNorthWest] = corner_[kSouthWest], corner_[kNorthEast] = corner_[kSouthEast];
      load(base, kSouth);
    } else if (base == cell_ + w + 1) {  // down and right: south-east becomes north-west
      store(kAll & ~(1 << kSouthEast));
      corner_[kNorthWest] = corner_[kSouthEast];
      load(base, kAll & ~(1 << kNorthWest));
    } else if (base == cell_ + w - 1) {  // down and left: south-west becomes north-east
      store(kAll & ~(1 << kSouthWest));
      corner_[kNorthEast] = corner_[kSouthWest];
      load(base, kAll & ~(1 << kNorthEast));
    } else {
      store(kAll);
      load(base, kAll);
    }
    held_ = true;
    cell_ = base;
  }

  void add(const simd::RowCorners& corners, index_t wo, float value) {
    for (int k = 0; k < 4; ++k) corner_[k] += corners.weight[k][wo] * value;
  }

  // Writes the sums back; nothing is held after.
  void release() {
    if (held_) store(kAll);
    held_ = false;
  }

 private:
  enum { kNorthWest, kNorthEast, kSouthWest, kSouthEast };
  static constexpr int kAll = 15, kWest = 1 << kNorthWest | 1 << kSouthWest, kEast = kAll & ~kWest,
                       kNorth = 1 << kNorthWest | 1 << kNorthEast, kSouth = kAll & ~kNorth;

  index_t offset(int k) const { return (k & 1) + (k >> 1) * width_; }
  void store(int which) {
    for (int k = 0; k < 4; ++k)
      if (which & (1 << k)) plane_[cell_ + offset(k)] = corner_[k];
  }
  void load(index_t base, int which) {
    for (int k = 0; k < 4; ++k)
      if (which & (1 << k)) corner_[k] = plane_[base + offset(k)];
  }

  float* plane_;
  index_t width_;
  bool held_ = false;
  index_t cell_ = 0;
  float corner_[4] = {0, 0, 0, 0};  // NW, NE, SW, SE
};

// One channel of a run of output pixels (whole rows, in raster order):
// plane[corner] += weight * g[wo], pixel by pixel, through HeldCell. Pixels with a corner
// outside the image or band go straight to memory.
void scatter_row(const simd::RowCorners& corners, index_t count, index_t width, const float* g,
                 float* plane) {
  HeldCell held(plane, width);
  for (index_t wo = 0; wo < count; ++wo) {
    // The corners kScatterAhead pixels on: the cells of a rotated row lie on a diagonal of
    // the image, where the hardware prefetchers do not follow.
    if (wo + kScatterAhead < count && corners.inside[wo + kScatterAhead] != 0) {
      const float* ahead = plane + corners.base[wo + kScatterAhead];
      __builtin_prefetch(ahead, 1);
      __builtin_prefetch(ahead + width, 1);
    }
    const int32_t bits = corners.inside[wo];
    if (bits == 0) continue;
    const index_t base = corners.base[wo];
    const float value = g[wo];
    if (bits != 15) {
      held.release();
      if (bits & 1) plane[base] += corners.weight[0][wo] * value;
      if (bits & 2) plane[base + 1] += corners.weight[1][wo] * value;
      if (bits & 4) plane[base + width] += corners.weight[2][wo] * value;
      if (bits & 8) plane[base + width + 1] += corners.weight[3][wo] * value;
      continue;
    }
    held.move_to(base);
    held.add(corners, wo, value);
  }
  held.release();
}

// Output pixels whose corners the scatter prepares at a time (24 bytes each).
constexpr index_t kScatterBlockPixels = 1024;

}  // namespace

bool simd_launch_pixels(index_t batch, index_t out_height, index_t out_width,
                        const ForwardPixel<float, Interp::Bilinear, AffineCoords<float>>& body) {
  const AffineRows rows(body.coords, body.shape, body.options);
  if (rows.kernels() == nullptr) return false;
  const OutputTiles tiles(batch, out_height, out_width, OutputTiles::kStripWidth);
  parallel_for(tiles.count(), [&](index_t item) {
    const OutputTiles::Tile tile = tiles.tile(item);
    for (index_t ho = tile.row_begin; ho < tile.row_end; ++ho) {
      simd::AffineRow row = rows.row(tile.n, ho);
      row.x_base += tile.column_begin;
      row.out_width = tile.column_end - tile.column_begin;
      rows.kernels()->forward(row, rows.image(body.input, tile.n),
                              body.output + rows.out_row(tile.n, ho) + tile.column_begin, body.shape.out_plane());
    }
  }, tiles.min_items_to_split());
  return true;
}

// CoefficientGradRow: the grid gradient of each row from the kernels, then the same double
// accumulation in the same order (AffineCoords::accumulate over the base grid). Rows stay
// whole, so that order is the generic body's.
bool simd_launch(index_t row_count, const CoefficientGradRow<float, Interp::Bilinear, AffineCoords<float>>& body) {
  const AffineRows rows(body.coords, body.shape, body.options);
  if (rows.kernels() == nullptr) return false;
  const index_t out_height = body.shape.out_height, out_width = body.shape.out_width;
  const OutputTiles tiles(row_count / out_height, out_height, out_width, out_width);
  parallel_for(tiles.count(), [&](index_t item) {
    thread_local std::vector<float> grad_x, grad_y;  // the row's grid gradient, reused
    grad_x.resize(size_t(out_width));
    grad_y.resize(size_t(out_width));
    const OutputTiles::Tile tile = tiles.tile(item);
    for (index_t ho = tile.row_begin; ho < tile.row_end; ++ho) {
      const index_t n = tile.n;
      rows.kernels()->grid_grad(rows.row(n, ho), rows.image(body.input, n),
                                body.grad_output + rows.out_row(n, ho), body.shape.out_plane(),
                                grad_x.data(), grad_y.data());
      double partial[6] = {};
      const float y_base = body.coords.base.y(ho);
      for (index_t wo = 0; wo < out_width; ++wo)
        accumulate_theta_grad(partial, grad_x[size_t(wo)], grad_y[size_t(wo)], rows.x_base()[wo], y_base);
      const index_t row_item = n * out_height + ho;
      for (int i = 0; i < 6; ++i) body.row_partials[row_item * 6 + i] = partial[i];
    }
  }, tiles.min_items_to_split());
  return true;
}

// scatter_point over the row's corners, channel by channel: each grad_input element still
// receives its contributions in raster order of the output pixels (a pixel's four corners
// are four different elements), as the generic body adds them.
bool simd_scatter_grad_input(const AffineCoords<float>& coords, const float* grad_output,
                             const SamplerShape& shape, const SamplerOptions& options,
                             float* grad_input) {
  const AffineRows rows(coords, shape, options);
  if (rows.kernels() == nullptr) return false;
  const index_t width = shape.in_width, out_width = shape.out_width;
  // Corners are computed for a block of output rows, then each channel scatters the whole
  // block: the input lines one channel's block touches stay in L1, where a row-by-row sweep
  // through every channel would evict them (64 channels of one row already exceed L1).
  const index_t block_rows = std::max<index_t>(1, kScatterBlockPixels / out_width);
  for_each_band(shape, grad_input, [&](index_t n, index_t row_begin, index_t row_end) {
    const size_t block_size = static_cast<size_t>(block_rows * out_width);
    std::vector<int32_t> base(block_size), inside(block_size);
    std::vector<float> weights(4 * block_size);
    float* image = grad_input + n * shape.channels * shape.in_plane();
    for (index_t first = 0; first < shape.out_height; first += block_rows) {
      const index_t rows_here = std::min(block_rows, shape.out_height - first);
      for (index_t r = 0; r < rows_here; ++r) {
        const index_t at = r * out_width;
        const simd::RowCorners row_corners{
            base.data() + at,
            {weights.data() + at, weights.data() + block_size + at, weights.data() + 2 * block_size + at,
             weights.data() + 3 * block_size + at},
            inside.data() + at};
        rows.kernels()->corners(rows.row(n, first + r), row_begin, row_end, row_corners);
      }
      const simd::RowCorners block{base.data(),
                                   {weights.data(), weights.data() + block_size, weights.data() + 2 * block_size,
                                    weights.data() + 3 * block_size},
                                   inside.data()};
      // The block's rows are consecutive in grad_output too: one raster run of pixels.
      const float* grad_block = grad_output + rows.out_row(n, first);
      for (index_t c = 0; c < shape.channels; ++c)
        scatter_row(block, rows_here * out_width, width, grad_block + c * shape.out_plane(),
                    image + c * shape.in_plane());
    }
  });
  return true;
}

}  // namespace cpu
}  // namespace stn
