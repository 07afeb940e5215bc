// One thread's work in each kernel, as a functor over a flat thread index.
//
// The CUDA kernels (csrc/cuda) call these from a grid-stride loop; the CPU path (csrc/cpu)
// calls them from OpenMP loops; the emulated launch (csrc/cpu/emulate_device.cpp) calls
// them from a plain loop over the kernel's index space so tests can run the device code here.
// Index spaces: "pixel" = n * Ho * Wo + ho * Wo + wo (bodies with `at`, see FlatPixels),
// "row" = n * Ho + ho, and one index per theta or per contribution slot.
#pragma once

#include "point_maps.h"
#include "point_ops.h"

namespace stn {

// Splits a pixel index into (n, ho, wo).
STN_HD void split_pixel(index_t pixel, index_t out_height, index_t out_width, index_t* n,
                        index_t* ho, index_t* wo) {
  *wo = pixel % out_width;
  const index_t row = pixel / out_width;
  *ho = row % out_height;
  *n = row / out_height;
}

// A pixel body has `at(n, ho, wo, pixel)`, pixel being the flat index n * Ho * Wo + ho * Wo + wo.
// FlatPixels adapts one to a flat thread index (the GPU launch); the CPU walks rows instead
// and calls `at` directly, with no division per pixel.
template <typename Body>
struct FlatPixels {
  Body body;
  index_t out_height, out_width;
  STN_HD void operator()(index_t pixel) const {
    index_t n, ho, wo;
    split_pixel(pixel, out_height, out_width, &n, &ho, &wo);
    body.at(n, ho, wo, pixel);
  }
};

// The taps of output pixel (n, ho, wo), and the offset of that pixel in (N, C, Ho, Wo).
template <typename T, Interp Mode, typename Coords, typename TapList>
STN_HD void pixel_taps(const Coords& coords, const SamplerShape& shape, const SamplerOptions& options,
                       index_t n, index_t ho, index_t wo, index_t* out_offset, TapList* taps) {
  T gx, gy;
  coords.at(n, ho, wo, &gx, &gy);
  TapCollector<Mode>::run(gx, gy, shape.in_height, shape.in_width, options.padding,
                          options.align_corners, taps);
  *out_offset = n * shape.channels * shape.out_plane() + ho * shape.out_width + wo;
}

// output (N, C, Ho, Wo) from input (N, C, H, W), one output pixel, every channel.
template <typename T, Interp Mode, typename Coords>
struct ForwardPixel {
  Coords coords;
  const T* input;
  T* output;
  SamplerShape shape;
  SamplerOptions options;

  STN_HD void at(index_t n, index_t ho, index_t wo, index_t /*pixel*/) const {
    index_t out_offset;
    TapsFor<T, Mode, false> taps;
    pixel_taps<T, Mode>(coords, shape, options, n, ho, wo, &out_offset, &taps);
    gather_point(taps, input + n * shape.channels * shape.in_plane(), shape.channels,
                 shape.in_plane(), output + out_offset, shape.out_plane());
  }
};

// grad_grid (N, Ho, Wo, 2) for one pixel of the grid path.
template <typename T, Interp Mode>
struct GridGradPixel {
  GridCoords<T> coords;
  const T* grad_output;  // (N, C, Ho, Wo)
  const T* input;        // (N, C, H, W)
  T* grad_grid;          // (N, Ho, Wo, 2)
  SamplerShape shape;
  SamplerOptions options;

  STN_HD void at(index_t n, index_t ho, index_t wo, index_t pixel) const {
    index_t out_offset;
    TapsFor<T, Mode, true> taps;
    pixel_taps<T, Mode>(coords, shape, options, n, ho, wo, &out_offset, &taps);
    grid_grad_point(taps, grad_output + out_offset, shape.out_plane(),
                    input + n * shape.channels * shape.in_plane(), shape.channels, shape.in_plane(),
                    &grad_grid[pixel * 2], &grad_grid[pixel * 2 + 1]);
  }
};

// grad_input (N, C, H, W) += one pixel's contributions, restricted to input rows
// [row_begin, row_end). Add is the device's accumulation: atomicAdd on the GPU.
template <typename T, Interp Mode, typename Coords, typename Add>
struct ScatterPixel {
  Coords coords;
  const T* grad_output;  // (N, C, Ho, Wo)
  T* grad_input;         // (N, C, H, W), zeroed beforehand
  SamplerShape shape;
  SamplerOptions options;
  index_t row_begin, row_end;
  Add add;

  STN_HD void at(index_t n, index_t ho, index_t wo, index_t /*pixel*/) const {
    index_t out_offset;
    TapsFor<T, Mode, false> taps;
    pixel_taps<T, Mode>(coords, shape, options, n, ho, wo, &out_offset, &taps);
    scatter_point(taps, grad_output + out_offset, shape.out_plane(), shape.channels,
                  grad_input + n * shape.channels * shape.in_plane(), shape.in_plane(), row_begin,
                  row_end, add);
  }
};

// Per-image coefficients of the point map from the family's parameters (families.h).
// One thread per image; params (thetas, family.params), coefficients (thetas, count).
template <typename T>
struct ParamsToCoefficients {
  FamilySpec<T> family;
  const T* params;
  T* coefficients;
  STN_HD void operator()(index_t image) const {
    params_to_coefficients(family, params + image * family.params,
                           coefficients + image * family.coefficients());
  }
};

// Fused backward: d loss / d coefficients summed over one output row, in double, without a
// per-pixel grid-gradient array. row_partials is (N * Ho, coords.count()).
template <typename T, Interp Mode, typename Coords>
struct CoefficientGradRow {
  Coords coords;
  const T* grad_output;  // (N, C, Ho, Wo)
  const T* input;        // (N, C, H, W)
  double* row_partials;
  SamplerShape shape;
  SamplerOptions options;

  STN_HD void operator()(index_t row) const {
    double partial[Coords::kCapacity] = {};
    const index_t n = row / shape.out_height, ho = row % shape.out_height;
    for (index_t wo = 0; wo < shape.out_width; ++wo) {
      index_t out_offset;
      TapsFor<T, Mode, true> taps;
      pixel_taps<T, Mode>(coords, shape, options, n, ho, wo, &out_offset, &taps);
      T grad_x, grad_y;
      grid_grad_point(taps, grad_output + out_offset, shape.out_plane(),
                      input + n * shape.channels * shape.in_plane(), shape.channels,
                      shape.in_plane(), &grad_x, &grad_y);
      coords.accumulate(partial, n, ho, wo, grad_x, grad_y);
    }
    const int count = coords.count();
    for (int i = 0; i < count; ++i) row_partials[row * count + i] = partial[i];
  }
};

// The grid generator: grid (N, H, W, 2) from a point map, one pixel.
template <typename T, typename Coords>
struct MapGridPixel {
  Coords coords;
  T* grid;
  STN_HD void at(index_t n, index_t h, index_t w, index_t pixel) const {
    coords.at(n, h, w, &grid[pixel * 2], &grid[pixel * 2 + 1]);
  }
};

// Its backward: d loss / d coefficients summed over one grid row; row_partials (N * H, count).
template <typename T, typename Coords>
struct MapGridGradRow {
  Coords coords;
  const T* grad_grid;  // (N, H, W, 2)
  index_t height, width;
  double* row_partials;

  STN_HD void operator()(index_t row) const {
    double partial[Coords::kCapacity] = {};
    const index_t n = row / height, h = row % height;
    const T* g = grad_grid + row * width * 2;
    for (index_t w = 0; w < width; ++w) coords.accumulate(partial, n, h, w, g[2 * w], g[2 * w + 1]);
    const int count = coords.count();
    for (int i = 0; i < count; ++i) row_partials[row * count + i] = partial[i];
  }
};

// grad_params from row partials: one thread per image, summing its rows in order, then the
// family's chain rule. With shared params (one thread), every row of every image adds in.
template <typename T, int Capacity>
struct ReduceToParams {
  const double* row_partials;  // (rows_per_image * images, family.coefficients())
  index_t rows_per_image;
  FamilySpec<T> family;
  const T* params;             // (images, family.params)
  T* grad_params;              // (images, family.params)

  // At least 8 slots, the most any fixed-size family reads or writes: coefficient_grad_to_params
  // picks its case at run time, and where GCC inlines this it warns of the projective case
  // reading and writing past smaller arrays.
  static constexpr int kSlots = Capacity < 8 ? 8 : Capacity;

  STN_HD void operator()(index_t image) const {
    const int count = family.coefficients();
    double total[kSlots] = {};
    const double* p = row_partials + image * rows_per_image * count;
    for (index_t r = 0; r < rows_per_image; ++r)
      for (int i = 0; i < count; ++i) total[i] += p[r * count + i];
    double grad[kSlots];  // a family never has more params than coefficients
    coefficient_grad_to_params(family, params + image * family.params, total, grad);
    // A NaN is written as the one quiet NaN: which of two NaN operands an addition passes on
    // (and so the sign of the result) depends on the operand order the compiler picks, and
    // two builds of these sums need not agree bit for bit otherwise.
    for (int i = 0; i < family.params; ++i)
      grad_params[image * family.params + i] = grad[i] != grad[i] ? T(NAN) : T(grad[i]);
  }
};

// Deterministic GPU grad_input, step 1: every (pixel, tap) slot records its destination
// (n * H * W + offset, or kNoDestination) and weight. Slot = pixel * Capacity + k.
constexpr index_t kNoDestination = INT64_MAX;

template <typename T, Interp Mode, typename Coords>
struct CollectContributions {
  Coords coords;
  SamplerShape shape;
  SamplerOptions options;
  index_t* destination;  // (pixels * Capacity)
  index_t* slot;         // (pixels * Capacity), the identity; sorted alongside destination
  T* weight;             // (pixels * Capacity)

  STN_HD void at(index_t n, index_t ho, index_t wo, index_t pixel) const {
    constexpr int kCapacity = TapCapacity<Mode>::value;
    index_t out_offset;
    TapsFor<T, Mode, false> taps;
    pixel_taps<T, Mode>(coords, shape, options, n, ho, wo, &out_offset, &taps);
    for (int k = 0; k < kCapacity; ++k) {
      const index_t s = pixel * kCapacity + k;
      slot[s] = s;
      destination[s] = k < taps.count ? n * shape.in_plane() + taps.offset[k] : kNoDestination;
      weight[s] = k < taps.count ? taps.weight[k] : T(0);
    }
  }
};

// Step 3, after a stable sort of (destination, slot) by destination: the thread at the start
// of each run of equal destinations sums that run, channel by channel, in slot order — the
// same order a sequential raster scan adds them in, whatever the thread schedule.
template <typename T, Interp Mode>
struct ReduceContributions {
  const index_t* destination;  // sorted
  const index_t* slot;         // permuted alongside
  const T* weight;             // by slot
  const T* grad_output;        // (N, C, Ho, Wo)
  T* grad_input;               // (N, C, H, W)
  SamplerShape shape;
  index_t count;

  STN_HD void operator()(index_t i) const {
    const index_t dest = destination[i];
    if (dest == kNoDestination || (i > 0 && destination[i - 1] == dest)) return;
    constexpr int kCapacity = TapCapacity<Mode>::value;
    const index_t n = dest / shape.in_plane(), offset = dest % shape.in_plane();
    index_t end = i;
    while (end < count && destination[end] == dest) ++end;
    for (index_t c = 0; c < shape.channels; ++c) {
      T sum = 0;
      for (index_t j = i; j < end; ++j) {
        const index_t pixel = slot[j] / kCapacity;  // n * Ho * Wo + ho * Wo + wo
        const index_t in_image = pixel % shape.out_plane();
        sum += weight[slot[j]] *
               grad_output[(n * shape.channels + c) * shape.out_plane() + in_image];
      }
      grad_input[(n * shape.channels + c) * shape.in_plane() + offset] = sum;
    }
  }
};

}  // namespace stn
