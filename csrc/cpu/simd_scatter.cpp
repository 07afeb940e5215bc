// grad_input of the affine map with float32 bilinear sampling (simd_paths.h): the taps of each
// output pixel from the row kernels' corners_row, then a scatter that adds
// weight * grad_output to the four corners. Plain C++ (no ISA flags).
//
// Exactness: scatter_point (stn/point_ops.h) adds each pixel's contributions to grad_input in
// raster order of the output pixels, so every element receives its additions in that order;
// so does everything here, which therefore gives the generic body's bits.
//
// Speed: the additions to one element form a dependent chain, and consecutive output pixels
// usually add to the same 2x2 cell. So the cell's four sums are held in registers (HeldCell),
// and several channels are scattered side by side as the lanes of one vector (Lanes): each
// lane performs exactly the scalar operations of its channel, and the chains of the lanes
// advance together. The lanes need the channels of an element next to each other, so an
// image with more than one channel is scattered into a per-thread buffer with that layout,
// (C / kLanes, H, W, kLanes), and copied into grad_input's planes at the end.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "affine_row_job.h"
#include "cpu_executor.h"
#include "simd_paths.h"

namespace stn {
namespace cpu {
namespace {

// kLanes channels of one grad_input element (GCC/Clang vector extension: element-wise IEEE
// operations, SSE on x86-64, NEON on aarch64).
constexpr int kLanes = 4;
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));

// Element j of row i of `rows` becomes element i of row j of `columns`: kLanes channels of
// kLanes consecutive elements, exchanged between the plane layout and the lane layout.
inline void transpose_lanes(const Lanes rows[kLanes], Lanes columns[kLanes]) {
  for (int j = 0; j < kLanes; ++j) columns[j] = Lanes{rows[0][j], rows[1][j], rows[2][j], rows[3][j]};
}

// Lanes from floats in memory, and back (any alignment).
inline Lanes load_lanes(const float* at) {
  Lanes value;
  std::memcpy(&value, at, sizeof(Lanes));
  return value;
}
inline void store_lanes(float* at, Lanes value) { std::memcpy(at, &value, sizeof(Lanes)); }

// grad_output's pixels [0, count) of channels c0 .. c0 + lanes as Lanes (lanes past `lanes`
// zero): g[i][k] = channel c0 + k at pixel i.
void planes_to_lanes(const float* grad_block, index_t plane, index_t c0, index_t lanes, index_t count, Lanes* g) {
  index_t i = 0;
  if (lanes == kLanes) {  // kLanes pixels of the kLanes channels at a time
    for (; i + kLanes <= count; i += kLanes) {
      Lanes rows[kLanes];
      for (int k = 0; k < kLanes; ++k) rows[k] = load_lanes(grad_block + (c0 + k) * plane + i);
      transpose_lanes(rows, g + i);
    }
  }
  for (; i < count; ++i) {
    Lanes value = {};
    for (index_t k = 0; k < lanes; ++k) value[k] = grad_block[(c0 + k) * plane + i];
    g[i] = value;
  }
}

// The inverse: sums[i][k] -> planes[(c0 + k) * plane + i] for i in [0, count), k < lanes.
void lanes_to_planes(const Lanes* sums, index_t lanes, index_t count, float* planes, index_t plane) {
  index_t i = 0;
  if (lanes == kLanes) {
    for (; i + kLanes <= count; i += kLanes) {
      Lanes columns[kLanes];
      transpose_lanes(sums + i, columns);
      for (int k = 0; k < kLanes; ++k) store_lanes(planes + k * plane + i, columns[k]);
    }
  }
  for (; i < count; ++i)
    for (index_t k = 0; k < lanes; ++k) planes[k * plane + i] = sums[i][k];
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
  const double step = std::hypot(step_x, step_y);
  return step < kHoldBelowStep;
}

// How many pixels ahead the scatter asks for the lines it will add to.
constexpr index_t kScatterAhead = 24;

// The scatter's lines ahead are not asked for when its band (of all channels) is at most
// this large: zeroed just before, they are in cache, and the prefetches would cost a fifth
// of the scatter's time (measured on a 60 x 60 image).
constexpr size_t kCachedBandBytes = size_t(32) << 10;

// Output pixels whose corners the scatter prepares at a time (24 bytes each).
constexpr index_t kScatterBlockPixels = 1024;

// Most bytes of lane buffer a thread keeps between calls.
constexpr size_t kKeptLaneBytes = size_t(32) << 20;

// The running sums of one 2x2 cell of a grad_input plane (T = float) or lane buffer
// (T = Lanes), held in registers while consecutive output pixels add to it. Every element
// still receives the same additions in the same order as adding in memory. When the window
// moves to a neighbouring cell, the corners the two cells share pass from register to
// register: written back and read again at once they would wait on the store. Elements are
// addressed by image offset r * W + c; plane[offset - origin] holds element offset.
template <typename T>
class HeldCell {
 public:
  HeldCell(T* plane, index_t width, index_t origin) : plane_(plane), width_(width), origin_(origin) {}

  // Holds the cell whose north-west corner is element `base`.
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

  void add(const simd::RowCorners& corners, index_t wo, T value) {
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

  T& at(index_t element) { return plane_[element - origin_]; }
  index_t offset(int k) const { return (k & 1) + (k >> 1) * width_; }
  void store(int which) {
    for (int k = 0; k < 4; ++k)
      if (which & (1 << k)) at(cell_ + offset(k)) = corner_[k];
  }
  void load(index_t base, int which) {
    for (int k = 0; k < 4; ++k)
      if (which & (1 << k)) corner_[k] = at(base + offset(k));
  }

  T* plane_;
  index_t width_, origin_;
  bool held_ = false;
  index_t cell_ = 0;
  T corner_[4] = {};  // NW, NE, SW, SE
};

// A run of output pixels (whole rows, in raster order) into one plane (or lane buffer):
// plane[corner - origin] += weight * g[wo], pixel by pixel. With `hold`, the cell of pixels
// whose corners are all inside the image and band is held in registers (HeldCell); the other
// pixels, and all of them without `hold`, add their corners straight to memory.
template <typename T>
void scatter_run(const simd::RowCorners& corners, index_t count, index_t width, index_t origin, const T* g,
                 T* plane, bool hold, bool prefetch) {
  HeldCell<T> held(plane, width, origin);
  for (index_t wo = 0; wo < count; ++wo) {
    // The cells of a rotated row lie on a diagonal of the image, where the hardware
    // prefetchers do not follow.
    if (prefetch && wo + kScatterAhead < count && corners.inside[wo + kScatterAhead] != 0) {
      const T* ahead = plane + (corners.base[wo + kScatterAhead] - origin);
      __builtin_prefetch(ahead, 1);
      __builtin_prefetch(ahead + width, 1);
    }
    const int32_t bits = corners.inside[wo];
    if (bits == 0) continue;
    const index_t base = corners.base[wo] - origin;
    if (bits != 15 || !hold) {
      held.release();
      const T value = g[wo];
      if (bits & 1) plane[base] += corners.weight[0][wo] * value;
      if (bits & 2) plane[base + 1] += corners.weight[1][wo] * value;
      if (bits & 4) plane[base + width] += corners.weight[2][wo] * value;
      if (bits & 8) plane[base + width + 1] += corners.weight[3][wo] * value;
      continue;
    }
    held.move_to(corners.base[wo]);
    held.add(corners, wo, g[wo]);
  }
  held.release();
}

// Per-thread buffers of the scatter, reused from call to call.
struct ScatterBuffers {
  std::vector<int32_t> base, inside;  // (block pixels)
  std::vector<float> weights;         // (4, block pixels)
  std::vector<Lanes> lanes;           // (C / kLanes, band rows, W): the band of the image
  std::vector<Lanes> g;               // (block pixels): grad_output of kLanes channels

  simd::RowCorners corners(index_t at, size_t block) {
    return simd::RowCorners{base.data() + at,
                            {weights.data() + at, weights.data() + block + at, weights.data() + 2 * block + at,
                             weights.data() + 3 * block + at},
                            inside.data() + at};
  }
};

}  // namespace

// scatter_point over the row's corners. One work item per (image, band of input rows): the
// corners of a block of output rows, then every channel of the block.
bool simd_scatter_grad_input(const AffineCoords<float>& coords, const float* grad_output,
                             const SamplerShape& shape, const SamplerOptions& options,
                             float* grad_input) {
  const AffineRows rows(coords, shape, options);
  if (rows.kernels() == nullptr) return false;
  const index_t width = shape.in_width, out_width = shape.out_width, channels = shape.channels;
  const index_t in_plane = shape.in_plane(), out_plane = shape.out_plane();
  const index_t groups = (channels + kLanes - 1) / kLanes;
  const bool by_lanes = channels > 1;  // one channel: straight into the plane
  // Corners are computed for a block of output rows, then each channel (group) scatters the
  // whole block while the input lines it touches are in cache.
  const index_t block_rows = std::max<index_t>(1, kScatterBlockPixels / out_width);
  const size_t block = size_t(block_rows * out_width);
  for_each_band(shape, grad_input, [&](index_t n, index_t row_begin, index_t row_end) {
    thread_local ScatterBuffers buffers;
    buffers.base.resize(block);
    buffers.inside.resize(block);
    buffers.weights.resize(4 * block);
    const index_t band = (row_end - row_begin) * width;  // elements of one channel's band
    const index_t origin = row_begin * width;
    if (by_lanes) {
      buffers.lanes.assign(size_t(groups * band), Lanes{});
      buffers.g.resize(block);
    }
    const bool hold = hold_cells(coords, shape, n);
    // A small band was zeroed (or its lane buffer assigned) just now and is still in L1.
    const bool prefetch = size_t(band * (by_lanes ? groups * kLanes : 1)) * sizeof(float) > kCachedBandBytes;
    float* image = grad_input + n * channels * in_plane;
    const float* grad_image = grad_output + n * channels * out_plane;
    for (index_t first = 0; first < shape.out_height; first += block_rows) {
      const index_t rows_here = std::min(block_rows, shape.out_height - first);
      if (rows.flat())
        rows.kernels()->corners(rows.flat_run(n, first, first + rows_here), row_begin, row_end, buffers.corners(0, block));
      else
        for (index_t r = 0; r < rows_here; ++r)
          rows.kernels()->corners(rows.row(n, first + r), row_begin, row_end, buffers.corners(r * out_width, block));
      const simd::RowCorners corners = buffers.corners(0, block);
      // The block's rows are consecutive in grad_output too: one raster run of pixels.
      const index_t count = rows_here * out_width;
      const float* grad_block = grad_image + first * out_width;
      if (!by_lanes) {
        scatter_run<float>(corners, count, width, 0, grad_block, image, hold, prefetch);
        continue;
      }
      for (index_t group = 0; group < groups; ++group) {
        const index_t c0 = group * kLanes, lanes = std::min<index_t>(kLanes, channels - c0);
        Lanes* g = buffers.g.data();
        planes_to_lanes(grad_block, out_plane, c0, lanes, count, g);
        scatter_run<Lanes>(corners, count, width, origin, g, buffers.lanes.data() + group * band, hold, prefetch);
      }
    }
    if (!by_lanes) return;
    // (groups, band, kLanes) -> the band's rows of each of the C planes.
    for (index_t group = 0; group < groups; ++group) {
      const index_t c0 = group * kLanes, lanes = std::min<index_t>(kLanes, channels - c0);
      lanes_to_planes(buffers.lanes.data() + group * band, lanes, band, image + c0 * in_plane + origin, in_plane);
    }
    // The lane buffer is the size of the band's grad_input: keep it for the next call only
    // while small, so one huge image does not pin its memory to a thread for good.
    if (buffers.lanes.capacity() * sizeof(Lanes) > kKeptLaneBytes) std::vector<Lanes>().swap(buffers.lanes);
  }, /*zero_bands=*/!by_lanes);
  return true;
}

}  // namespace cpu
}  // namespace stn
