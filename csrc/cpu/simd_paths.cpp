// The executor's vectorized paths (simd_paths.h) for the forward and the theta gradient: the
// loops around the row kernels (the grad_input scatter is in simd_scatter.cpp). Plain C++
// (no ISA flags): the kernels it calls were compiled per ISA and chosen at run time.
#include "simd_paths.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "affine_row_job.h"
#include "cache_size.h"
#include "cpu_executor.h"

namespace stn {
namespace cpu {
namespace {

// The output of a call in work items for the row kernels: image n, a strip of at most
// `strip_width` columns, a run of rows walked top to bottom. A thread then reads the input
// rows one output row leaves for the next (a rotated row crosses many input rows: in a strip
// they stay in cache), and a wide image's strips still give every thread work. There are
// about kItemsPerThread items per thread, so that the threads, helping with each other's
// items (parallel_for), even out the load. Every output element is written by one item,
// whatever the split: results do not depend on it.
class OutputTiles {
 public:
  static constexpr index_t kItemsPerThread = 4;

  // Columns per strip for images of `channels` channels. Each row of a strip sets up its
  // constants once, so wider strips cost less per pixel; but a strip's rows must leave their
  // input lines, in every channel, in cache for the next. Measured on the Intel Xeon (2 MiB
  // L2), 256 columns against 128: 0.94-0.96x the forward time with 3 channels (the seed's
  // batch, 1024 x 1024 and 2048 x 2048 images), 0.86-0.91x for the grid path, 0.90x with 16
  // channels of 512 x 512; 1.02-1.05x slower with 32-64 channels.
  static index_t strip_width(index_t channels) { return channels <= 16 ? 256 : 128; }

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

  // parallel_for's items per hand-out (items_per_handout) for images of `channels` channels.
  index_t chunk(index_t channels) const {
    return items_per_handout(count(), channels * std::max<index_t>(1, pixels_ / count()));
  }

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

// The forward from channels-last copies (simd::RowKernels::forward_channels_last): worth
// its copy of the image when the image has many channels and is not much larger than the
// output it makes. Each thread copies a group of channels of an image at a time, and keeps
// its copy's memory for the next: at most kChannelsLastMostChannels channels, whose copy fits
// in half a core's L2 cache, or failing that one block of the kernels' (8 or 16 channels)
// that fits in the whole L2. Larger planes take the plane-by-plane kernels.
//
// Measured on the AMD Zen 4 (1 MiB L2, AVX2, 2 threads, A/B in alternating calls), against
// a copy of all channels while it took at most 1 MiB and the plane kernels beyond: 0.79x the
// forward time with 32 x 32 x 64 x 64 (groups of 16 channels), 0.89x with 128 x 32 x 64 x 64
// and 32 x 24 x 64 x 64, 0.79x with 64 x 64 x 32 x 32, 0.93x with 8 x 16 x 128 x 128 (groups
// of 8), 0.81x with 8 x 128 x 64 x 64 (before: the plane kernels), 0.83-0.96x with 8 x 64 x
// 128 x 128 (groups of 8; before, the plane kernels; groups of 16, a 1 MiB copy, 1.05x the
// groups of 8). With one thread, 0.86-0.96x. With the AVX-512 kernels there (blocks of 16
// channels), groups of 16 took 0.85x with 32 x 32 x 64 x 64 and, at 1 MiB, 0.66x the plane
// kernels' time with 8 x 64 x 128 x 128. Earlier, all channels in one copy against the plane
// kernels with 4 MiB images (8 x 64 x 128 x 128): 1.5x the time with AVX2, 1.2x with AVX-512.
constexpr index_t kChannelsLastMinChannels = 8;
constexpr index_t kChannelsLastMostChannels = 16;

// The copy's channels: C rounded up to the kernels' block.
index_t channels_last_width(const simd::RowKernels* kernels, index_t channels) {
  const index_t block = kernels->channels_last_block;
  return (channels + block - 1) / block * block;
}

// Channels per channels-last copy (a multiple of the kernels' block), 0 where not one block's
// copy fits in the L2.
index_t channels_last_group(const simd::RowKernels* kernels, const SamplerShape& shape) {
  const index_t block = kernels->channels_last_block;
  const size_t plane_bytes = std::max<size_t>(1, size_t(shape.in_plane()) * sizeof(float));
  const size_t l2_bytes = l2_cache_bytes();
  index_t group = std::min(kChannelsLastMostChannels, index_t(l2_bytes / 2 / plane_bytes)) / block * block;
  if (group == 0 && size_t(block) * plane_bytes <= l2_bytes) group = block;
  return std::min(group, channels_last_width(kernels, shape.channels));
}

bool use_channels_last(const simd::RowKernels* kernels, const SamplerShape& shape, index_t batch) {
  if (kernels->forward_channels_last == nullptr || shape.channels < kChannelsLastMinChannels) return false;
  return batch >= get_num_threads() && shape.in_plane() <= 2 * shape.out_plane() &&
         channels_last_group(kernels, shape) > 0;
}

// One work item per image's group of channels: its channels-last copy, then its rows.
void launch_channels_last(const AffineRows& rows, index_t batch,
                          const ForwardPixel<float, Interp::Bilinear, AffineCoords<float>>& body) {
  const SamplerShape& shape = body.shape;
  const simd::RowKernels* kernels = rows.kernels();
  const index_t group = channels_last_group(kernels, shape);
  const index_t groups = (shape.channels + group - 1) / group;
  const bool split = batch * shape.out_plane() >= kMinItemsToSplit;
  parallel_for(batch * groups, [&](index_t item) {
    const index_t n = item / groups, c0 = (item % groups) * group;
    const simd::ConstPlanes whole = rows.image(body.input, n);
    const simd::ConstPlanes image{whole.data + c0 * whole.plane, std::min(group, shape.channels - c0), whole.plane};
    const index_t padded = channels_last_width(kernels, image.channels);
    thread_local std::vector<float> copy;  // (H, W, padded), reused
    copy.resize(size_t(padded * shape.in_plane()));
    kernels->to_channels_last(image, shape.in_plane(), copy.data(), padded);
    float* output = body.output + c0 * shape.out_plane();
    for (index_t ho = 0; ho < shape.out_height; ++ho)
      kernels->forward_channels_last(rows.row(n, ho), copy.data(), padded, image, output + rows.out_row(n, ho),
                                     shape.out_plane());
  }, split ? 2 : batch * groups + 1);
}

// A small image is read from main memory in a scattered order (a rotated row crosses its
// rows), one line after another as the kernel misses; asked for all at once, its lines
// arrive together. Larger images rely on the kernels' prefetch of the rows ahead.
constexpr size_t kWholeImagePrefetchBytes = size_t(64) << 10;

void prefetch_small_image(simd::ConstPlanes image) {
  const size_t bytes = size_t(image.channels * image.plane) * sizeof(float);
  if (bytes > kWholeImagePrefetchBytes) return;
  const char* at = reinterpret_cast<const char*>(image.data);
  for (size_t line = 0; line < bytes; line += 64) __builtin_prefetch(at + line);
}

// Work items go out in order, so the item that starts image n + kPrefetchImagesAhead comes
// soon after the one that starts image n. Asking for that image's lines then too, they arrive
// before its item starts. Measured on the AMD Zen 4 (2 threads), the forward of cluttered
// MNIST (256 x 1 x 60 x 60) right after OpenCV's warp of it took 0.84x the time (0.445 against
// 0.530 ms), the same (0.98-1.01x) back to back, after torch's backward, or after 10 ms idle.
constexpr index_t kPrefetchImagesAhead = 4;

// prefetch_small_image of the tile's image and, when the tile starts it, of the image
// kPrefetchImagesAhead further on (if any).
void prefetch_small_images(const float* input, const SamplerShape& shape, const OutputTiles::Tile& tile) {
  prefetch_small_image(image_planes(input, shape, tile.n));
  if (tile.row_begin == 0 && tile.column_begin == 0 && tile.n + kPrefetchImagesAhead < shape.batch)
    prefetch_small_image(image_planes(input, shape, tile.n + kPrefetchImagesAhead));
}

}  // namespace

namespace {

// The affine map's runs over the work items of `tiles`: on_tile(tile) as each item starts,
// then on_run(n, pixel, row) for each run of pixels of image n's output plane from `pixel`
// on (a row of a strip, or a flat run of the tile's rows), `row` its AffineRow.
template <typename OnTile, typename OnRun>
void for_each_affine_run(const AffineRows& rows, const OutputTiles& tiles, index_t channels, const OnTile& on_tile,
                         const OnRun& on_run) {
  parallel_for(tiles.count(), [&](index_t item) {
    const OutputTiles::Tile tile = tiles.tile(item);
    on_tile(tile);
    const index_t out_width = rows.out_width();
    if (rows.flat()) {
      on_run(tile.n, tile.row_begin * out_width, rows.flat_run(tile.n, tile.row_begin, tile.row_end));
      return;
    }
    for (index_t ho = tile.row_begin; ho < tile.row_end; ++ho) {
      simd::AffineRow row = rows.row(tile.n, ho);
      row.x_base += tile.column_begin;
      row.out_width = tile.column_end - tile.column_begin;
      row.fence_streams = ho + 1 == tile.row_end;  // once per item: its rows run in turn
      on_run(tile.n, ho * out_width + tile.column_begin, row);
    }
  }, tiles.min_items_to_split(), tiles.chunk(channels));
}

}  // namespace

bool simd_launch_pixels(index_t batch, index_t out_height, index_t out_width,
                        const ForwardPixel<float, Interp::Bilinear, AffineCoords<float>>& body) {
  const AffineRows rows(body.coords, body.shape, body.options);
  if (rows.kernels() == nullptr) return false;
  if (use_channels_last(rows.kernels(), body.shape, batch)) {
    launch_channels_last(rows, batch, body);
    return true;
  }
  const index_t channels = body.shape.channels, out_plane = body.shape.out_plane();
  const OutputTiles tiles(batch, out_height, out_width,
                          rows.flat() ? out_width : OutputTiles::strip_width(body.shape.channels));
  for_each_affine_run(
      rows, tiles, channels, [&](const OutputTiles::Tile& tile) { prefetch_small_images(body.input, body.shape, tile); },
      [&](index_t n, index_t pixel, const simd::AffineRow& row) {
        rows.kernels()->forward(row, rows.image(body.input, n), body.output + n * channels * out_plane + pixel,
                                out_plane);
      });
  return true;
}

// affine_grid: the kernels' points, run by run, over the forward's work items.
bool simd_launch_pixels(index_t batch, index_t out_height, index_t out_width,
                        const MapGridPixel<float, AffineCoords<float>>& body) {
  // The rows of the map need no image: one of 1 x 1 pixel stands in for the sampler's.
  const SamplerShape shape{batch, 1, 1, 1, out_height, out_width};
  const AffineRows rows(body.coords, shape, SamplerOptions{Interp::Bilinear, Padding::Zeros, body.coords.base.align_corners});
  if (rows.kernels() == nullptr) return false;
  const OutputTiles tiles(batch, out_height, out_width, rows.flat() ? out_width : OutputTiles::strip_width(1));
  for_each_affine_run(
      rows, tiles, 1, [](const OutputTiles::Tile&) {},
      [&](index_t n, index_t pixel, const simd::AffineRow& row) {
        rows.kernels()->grid_points(row, body.grid + (n * shape.out_plane() + pixel) * 2);
      });
  return true;
}

namespace {

// grid_sample on the row kernels: each pixel's point is read from the grid (AffineRow::grid),
// over the same work items as the affine forward; short rows go as runs of whole rows.
// fn(n, pixel, count, row) for each run: pixels [pixel, pixel + count) of image n's output
// plane, and the AffineRow of their points.
template <typename Fn>
void for_each_grid_run(const GridCoords<float>& coords, const float* input, const SamplerShape& shape,
                       const SamplerOptions& options, const Fn& fn) {
  const index_t out_width = shape.out_width;
  const bool flat = out_width < AffineRows::kFlatBelowWidth;
  const OutputTiles tiles(shape.batch, shape.out_height, out_width,
                          flat ? out_width : OutputTiles::strip_width(shape.channels));
  const auto run = [&](index_t n, index_t pixel, index_t count) {
    simd::AffineRow row{nullptr, nullptr, 0.0f, 0.0f, count, out_width, shape.in_height, shape.in_width,
                        options.padding == Padding::Border, options.align_corners};
    row.grid = coords.grid + (n * shape.out_plane() + pixel) * 2;
    row.grid_pixels = shape.out_plane() - pixel;  // to the end of image n's grid
    fn(n, pixel, count, row);
  };
  parallel_for(tiles.count(), [&](index_t item) {
    const OutputTiles::Tile tile = tiles.tile(item);
    prefetch_small_images(input, shape, tile);
    if (flat) {
      run(tile.n, tile.row_begin * out_width, (tile.row_end - tile.row_begin) * out_width);
      return;
    }
    for (index_t ho = tile.row_begin; ho < tile.row_end; ++ho)
      run(tile.n, ho * out_width + tile.column_begin, tile.column_end - tile.column_begin);
  }, tiles.min_items_to_split(), tiles.chunk(shape.channels));
}

}  // namespace

bool simd_launch_pixels(index_t, index_t, index_t, const ForwardPixel<float, Interp::Bilinear, GridCoords<float>>& body) {
  const simd::RowKernels* kernels = row_kernels_for(body.shape, body.options);
  if (kernels == nullptr) return false;
  const SamplerShape& shape = body.shape;
  for_each_grid_run(body.coords, body.input, shape, body.options, [&](index_t n, index_t pixel, index_t, const simd::AffineRow& row) {
    kernels->forward(row, image_planes(body.input, shape, n), body.output + n * shape.channels * shape.out_plane() + pixel,
                     shape.out_plane());
  });
  return true;
}

// grad_grid: the kernels' d loss / d grid of a run, interleaved into (x, y) pairs.
bool simd_launch_pixels(index_t, index_t, index_t, const GridGradPixel<float, Interp::Bilinear>& body) {
  const simd::RowKernels* kernels = row_kernels_for(body.shape, body.options);
  if (kernels == nullptr) return false;
  const SamplerShape& shape = body.shape;
  for_each_grid_run(body.coords, body.input, shape, body.options, [&](index_t n, index_t pixel, index_t count, const simd::AffineRow& row) {
    thread_local std::vector<float> grad_x, grad_y;
    grad_x.resize(size_t(count));
    grad_y.resize(size_t(count));
    kernels->grid_grad(row, image_planes(body.input, shape, n), body.grad_output + n * shape.channels * shape.out_plane() + pixel,
                       shape.out_plane(), grad_x.data(), grad_y.data());
    float* grad_grid = body.grad_grid + (n * shape.out_plane() + pixel) * 2;
    for (index_t i = 0; i < count; ++i) {
      grad_grid[2 * i] = grad_x[size_t(i)];
      grad_grid[2 * i + 1] = grad_y[size_t(i)];
    }
  });
  return true;
}

// CoefficientGradRow: the grid gradient of rows from the kernels, then the same double
// accumulation in the same order (AffineCoords::accumulate over the base grid, a sum per
// row: the kernels' theta_partials). Rows stay whole, so that order is the generic body's.
// Rows go to theta_partials kThetaRows at a time (a flat run's tile: all at once).
constexpr index_t kThetaRows = 8;

bool simd_launch(index_t row_count, const CoefficientGradRow<float, Interp::Bilinear, AffineCoords<float>>& body) {
  const AffineRows rows(body.coords, body.shape, body.options);
  if (rows.kernels() == nullptr) return false;
  const index_t out_height = body.shape.out_height, out_width = body.shape.out_width;
  const OutputTiles tiles(row_count / out_height, out_height, out_width, out_width);
  parallel_for(tiles.count(), [&](index_t item) {
    // The grid gradient of a group of rows and their base grid y, reused.
    thread_local std::vector<float> grad_x, grad_y, y_base;
    const OutputTiles::Tile tile = tiles.tile(item);
    const index_t n = tile.n;
    const index_t group = rows.flat() ? tile.row_end - tile.row_begin : kThetaRows;
    grad_x.resize(size_t(group * out_width));
    grad_y.resize(size_t(group * out_width));
    y_base.resize(size_t(group));
    prefetch_small_images(body.input, body.shape, tile);
    for (index_t first = tile.row_begin; first < tile.row_end; first += group) {
      const index_t count = std::min(group, tile.row_end - first);
      if (rows.flat()) {
        rows.kernels()->grid_grad(rows.flat_run(n, first, first + count), rows.image(body.input, n),
                                  body.grad_output + rows.out_row(n, first), body.shape.out_plane(),
                                  grad_x.data(), grad_y.data());
      } else {
        for (index_t r = 0; r < count; ++r)
          rows.kernels()->grid_grad(rows.row(n, first + r), rows.image(body.input, n),
                                    body.grad_output + rows.out_row(n, first + r), body.shape.out_plane(),
                                    grad_x.data() + r * out_width, grad_y.data() + r * out_width);
      }
      for (index_t r = 0; r < count; ++r) y_base[size_t(r)] = body.coords.base.y(first + r);
      rows.kernels()->theta_partials(grad_x.data(), grad_y.data(), rows.x_base(), y_base.data(), out_width, count,
                                     body.row_partials + (n * out_height + first) * 6);
    }
  }, tiles.min_items_to_split(), tiles.chunk(body.shape.channels));
  return true;
}

// affine_grid's backward: each row's grad_grid split into its x and y parts, then the
// kernels' theta sums (theta_partials), kThetaRows rows at a time: MapGridGradRow's double
// accumulation, in its order.
bool simd_launch(index_t row_count, const MapGridGradRow<float, AffineCoords<float>>& body) {
  const simd::RowKernels* kernels = simd::row_kernels();
  if (kernels == nullptr) return false;
  const index_t height = body.height, width = body.width;
  std::vector<float> x_base(static_cast<size_t>(width));
  for (index_t w = 0; w < width; ++w) x_base[size_t(w)] = body.coords.base.x(w);
  const index_t groups = (row_count + kThetaRows - 1) / kThetaRows;
  parallel_for(groups, [&](index_t group) {
    thread_local std::vector<float> grad_x, grad_y, y_base;
    grad_x.resize(size_t(kThetaRows * width));
    grad_y.resize(size_t(kThetaRows * width));
    y_base.resize(size_t(kThetaRows));
    const index_t first = group * kThetaRows, count = std::min(kThetaRows, row_count - first);
    const float* grad_grid = body.grad_grid + first * width * 2;  // rows (n, h) in order
    for (index_t i = 0; i < count * width; ++i) {
      grad_x[size_t(i)] = grad_grid[2 * i];
      grad_y[size_t(i)] = grad_grid[2 * i + 1];
    }
    for (index_t r = 0; r < count; ++r) y_base[size_t(r)] = body.coords.base.y((first + r) % height);
    kernels->theta_partials(grad_x.data(), grad_y.data(), x_base.data(), y_base.data(), width, count,
                            body.row_partials + first * 6);
  }, row_count * width >= kMinItemsToSplit ? 2 : groups + 1);  // a small grid stays on this thread
  return true;
}

}  // namespace cpu
}  // namespace stn
