// The scatter's inner loops (simd_scatter.cpp), written once over the type T that holds one
// grad_input element: float (one channel, added straight into its plane), or a GCC vector of
// L floats holding L channels of the element side by side in a lane buffer, (groups, band
// elements, L). Each lane performs exactly the scalar operations of its channel.
//
// Included by the generic scatter (T = float, and 4 lanes) and by the AVX2 and AVX-512
// translation units (8 and 16 lanes), each instantiating only its own types: no function is compiled twice, under
// two instruction sets, for the linker to choose between.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "simd/affine_rows.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace stn {
namespace cpu {
namespace scatter {

// L channels of one element (GCC/Clang vector extension: element-wise IEEE operations).
typedef float Lanes4 __attribute__((vector_size(4 * sizeof(float))));
typedef float Lanes8 __attribute__((vector_size(8 * sizeof(float))));
typedef float Lanes16 __attribute__((vector_size(16 * sizeof(float))));

template <typename T>
constexpr int64_t kLanesOf = int64_t(sizeof(T) / sizeof(float));

// How many pixels ahead the scatter asks for the lines it will add to.
constexpr int64_t kScatterAhead = 24;

// The running sums of one 2x2 cell of a grad_input plane (T = float) or lane buffer
// (T = lanes), held in registers while consecutive output pixels add to it. Every element
// still receives the same additions in the same order as adding in memory. When the window
// moves to a neighbouring cell, the corners the two cells share pass from register to
// register: written back and read again at once they would wait on the store. Elements are
// addressed by image offset r * W + c; plane[offset - origin] holds element offset.
template <typename T>
class HeldCell {
 public:
  HeldCell(T* plane, int64_t width, int64_t origin) : plane_(plane), width_(width), origin_(origin) {}

  // Holds the cell whose north-west corner is element `base`.
  void move_to(int64_t base) {
    if (held_ && base == cell_) return;
    const int64_t w = width_;
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

  void add(const simd::RowCorners& corners, int64_t wo, T value) {
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

  T& at(int64_t element) { return plane_[element - origin_]; }
  int64_t offset(int k) const { return (k & 1) + (k >> 1) * width_; }
  void store(int which) {
    for (int k = 0; k < 4; ++k)
      if (which & (1 << k)) at(cell_ + offset(k)) = corner_[k];
  }
  void load(int64_t base, int which) {
    for (int k = 0; k < 4; ++k)
      if (which & (1 << k)) corner_[k] = at(base + offset(k));
  }

  T* plane_;
  int64_t width_, origin_;
  bool held_ = false;
  int64_t cell_ = 0;
  T corner_[4] = {};  // NW, NE, SW, SE
};

// Adds pixel wo's weighted value to the corners of its cell flagged in `bits` (1 NW, 2 NE, 4 SW,
// 8 SE), in that order; `base` is the north-west corner's index into `plane`.
template <typename T>
inline void add_corners(const simd::RowCorners& corners, int64_t wo, int32_t bits, int64_t base, int64_t width,
                        T value, T* plane) {
  if (bits == 15) {  // most pixels: all four corners, no test per corner
    plane[base] += corners.weight[0][wo] * value;
    plane[base + 1] += corners.weight[1][wo] * value;
    plane[base + width] += corners.weight[2][wo] * value;
    plane[base + width + 1] += corners.weight[3][wo] * value;
    return;
  }
  if (bits & 1) plane[base] += corners.weight[0][wo] * value;
  if (bits & 2) plane[base + 1] += corners.weight[1][wo] * value;
  if (bits & 4) plane[base + width] += corners.weight[2][wo] * value;
  if (bits & 8) plane[base + width + 1] += corners.weight[3][wo] * value;
}

#if defined(__SSE__)
// One channel's run without a held cell (scatter_run), on x86: a pixel whose four corners are
// inside writes its north pair (NW, NE) and its south pair (SW, SE) with one 8-byte store
// each, where add_corners has four stores. Its weights come from the four weight rows of 4
// pixels at a time, transposed in registers, and multiply its grad_output as one vector. The
// corners are still read one float at a time: an 8-byte read that overlaps an earlier pair's
// store by half (the next pixel one column on, in most rows) cannot take its value from that
// store and waits for it to reach the cache, while a 4-byte read within it can (reading pairs
// took 1.5-2x add_corners' time at steps of 1-1.2 input pixels per output pixel). Each lane
// does add_corners' scalar operations, plane[e] + weight * value, and the pixels keep their
// order: the same bits. Measured on the AMD Zen 4: the loop alone against add_corners' (one
// thread, corners in cache) 0.72x the time at cluttered MNIST's step (1.9 input pixels per
// output pixel), 0.76x at 1.5, 0.82-0.87x at 1-1.2, 0.94x at 0.5; in the backward (A/B in
// alternating calls), cluttered MNIST 0.92-0.95x on 1 thread and its forward and backward
// 0.955-0.97x on 2, 64 x 1 x 128 x 128 0.95x, 16 x 1 x 512 x 512 0.97x. prefetch_ahead(wo)
// is scatter_run's. Takes whole groups of 4 pixels and returns the first pixel it left, for
// scatter_run's own loop to finish the run.
template <typename PrefetchAhead>
int64_t scatter_pairs(const simd::RowCorners& corners, int64_t count, int64_t width, int64_t origin, const float* g,
                      float* plane, const PrefetchAhead& prefetch_ahead) {
  const auto add_pixel = [&](int64_t wo, __m128 weights, __m128 value) {
    const int32_t bits = corners.inside[wo];
    if (bits == 0) return;
    if (bits != 15) {
      add_corners(corners, wo, bits, corners.base[wo] - origin, width, g[wo], plane);
      return;
    }
    float* north = plane + (corners.base[wo] - origin);
    float* south = north + width;
    const __m128 products = _mm_mul_ps(weights, value);  // NW, NE, SW, SE
    const __m128 north_sums = _mm_add_ps(_mm_unpacklo_ps(_mm_load_ss(north), _mm_load_ss(north + 1)), products);
    const __m128 south_sums = _mm_add_ps(_mm_unpacklo_ps(_mm_load_ss(south), _mm_load_ss(south + 1)),
                                         _mm_movehl_ps(products, products));
    // Pairs of floats are stored through __m64, which the intrinsics' headers declare may_alias.
    _mm_storel_pi(reinterpret_cast<__m64*>(north), north_sums);
    _mm_storel_pi(reinterpret_cast<__m64*>(south), south_sums);
  };
  int64_t wo = 0;
  for (; wo + 4 <= count; wo += 4) {
    __m128 w0 = _mm_loadu_ps(corners.weight[0] + wo), w1 = _mm_loadu_ps(corners.weight[1] + wo);
    __m128 w2 = _mm_loadu_ps(corners.weight[2] + wo), w3 = _mm_loadu_ps(corners.weight[3] + wo);
    _MM_TRANSPOSE4_PS(w0, w1, w2, w3);  // now w<i> holds pixel wo + i's four weights
    const __m128 values = _mm_loadu_ps(g + wo);
    prefetch_ahead(wo);
    add_pixel(wo, w0, _mm_shuffle_ps(values, values, _MM_SHUFFLE(0, 0, 0, 0)));
    prefetch_ahead(wo + 1);
    add_pixel(wo + 1, w1, _mm_shuffle_ps(values, values, _MM_SHUFFLE(1, 1, 1, 1)));
    prefetch_ahead(wo + 2);
    add_pixel(wo + 2, w2, _mm_shuffle_ps(values, values, _MM_SHUFFLE(2, 2, 2, 2)));
    prefetch_ahead(wo + 3);
    add_pixel(wo + 3, w3, _mm_shuffle_ps(values, values, _MM_SHUFFLE(3, 3, 3, 3)));
  }
  return wo;
}
#endif

// One channel's run without a held cell, its corners carrying products (RowCorners::products)
// in place of weights: plane[corner - origin] += products[4 * wo + k], pixel after pixel, the
// additions add_corners makes (each product is its weight * g). On x86 a pixel whose four
// corners are inside adds its north and south pairs as scatter_pairs does, and 4 such pixels
// in a row take one test, not one each. The weights' transposes and the multiplies are gone
// from the loop: the grid gradient's kernel formed the products while it had the weights in
// registers. Measured on the AMD Zen 4 (AVX2), against scatter_pairs: the scatter's perf
// samples per cluttered-MNIST backward 0.78x, the backward's 0.92x; its time, A/B in
// alternating calls, 0.96-0.98x on 1 thread and 0.99-1.02x on 2 (there the threads wait on
// memory more); 0.97x with 16 x 1 x 512 x 512 and 4 x 1 x 1024 x 1024, 1.01x with
// 64 x 1 x 128 x 128. prefetch_ahead(wo) is scatter_run's.
template <typename PrefetchAhead>
void scatter_products(const simd::RowCorners& corners, int64_t count, int64_t width, int64_t origin, float* plane,
                      const PrefetchAhead& prefetch_ahead) {
  const auto add_pixel = [&](int64_t wo, int32_t bits) {
    const float* products = corners.products + 4 * wo;
    float* north = plane + (corners.base[wo] - origin);
    float* south = north + width;
#if defined(__SSE__)
    if (bits == 15) {
      const __m128 both = _mm_loadu_ps(products);  // NW, NE, SW, SE
      const __m128 north_sums = _mm_add_ps(_mm_unpacklo_ps(_mm_load_ss(north), _mm_load_ss(north + 1)), both);
      const __m128 south_sums = _mm_add_ps(_mm_unpacklo_ps(_mm_load_ss(south), _mm_load_ss(south + 1)),
                                           _mm_movehl_ps(both, both));
      // Pairs of floats are stored through __m64, which the intrinsics' headers declare may_alias.
      _mm_storel_pi(reinterpret_cast<__m64*>(north), north_sums);
      _mm_storel_pi(reinterpret_cast<__m64*>(south), south_sums);
      return;
    }
#endif
    if (bits & 1) north[0] += products[0];
    if (bits & 2) north[1] += products[1];
    if (bits & 4) south[0] += products[2];
    if (bits & 8) south[1] += products[3];
  };
  int64_t wo = 0;
#if defined(__SSE2__)
  for (; wo + 4 <= count; wo += 4) {
    const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(corners.inside + wo));
    const bool all_inside = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(bits, _mm_set1_epi32(15)))) == 15;
    for (int64_t i = wo; i < wo + 4; ++i) {
      prefetch_ahead(i);
      if (all_inside) {
        add_pixel(i, 15);
      } else if (const int32_t pixel_bits = corners.inside[i]) {
        add_pixel(i, pixel_bits);
      }
    }
  }
#endif
  for (; wo < count; ++wo) {
    prefetch_ahead(wo);
    if (const int32_t bits = corners.inside[wo]) add_pixel(wo, bits);
  }
}

// A run of output pixels (whole rows, in raster order) into one plane (or lane buffer):
// plane[corner - origin] += weight * g[wo], pixel by pixel. With `hold`, the cell of pixels
// whose corners are all inside the image and band is held in registers (HeldCell); the other
// pixels, and all of them without `hold`, add their corners straight to memory. Corners with
// products (one channel, never with `hold`) go to scatter_products, which ignores g.
template <typename T>
void scatter_run(const simd::RowCorners& corners_in, int64_t count, int64_t width, int64_t origin, const T* g,
                 T* plane, bool hold, bool prefetch) {
  // The corners' pointers in a local copy: read through the reference, each would be read
  // again after every addition to the plane, which the compiler cannot prove leaves them.
  const simd::RowCorners corners = corners_in;
  // The cells of a rotated row lie on a diagonal of the image, where the hardware
  // prefetchers do not follow.
  const auto prefetch_ahead = [&](int64_t wo) {
    if (prefetch && wo + kScatterAhead < count && corners.inside[wo + kScatterAhead] != 0) {
      const T* ahead = plane + (corners.base[wo + kScatterAhead] - origin);
      __builtin_prefetch(ahead, 1);
      __builtin_prefetch(ahead + width, 1);
    }
  };
  if constexpr (std::is_same<T, float>::value) {
    if (corners.products != nullptr) {  // set only where no cell is held
      scatter_products(corners, count, width, origin, plane, prefetch_ahead);
      return;
    }
  }
  if (!hold) {  // its own loop: without the held cell's state, nothing spills
    int64_t first = 0;  // the pixels before it are done
#if defined(__SSE__)
    if constexpr (std::is_same<T, float>::value) first = scatter_pairs(corners, count, width, origin, g, plane,
                                                                       prefetch_ahead);
#endif
    for (int64_t wo = first; wo < count; ++wo) {
      prefetch_ahead(wo);
      const int32_t bits = corners.inside[wo];
      if (bits != 0) add_corners(corners, wo, bits, corners.base[wo] - origin, width, g[wo], plane);
    }
    return;
  }
  HeldCell<T> held(plane, width, origin);
  for (int64_t wo = 0; wo < count; ++wo) {
    prefetch_ahead(wo);
    const int32_t bits = corners.inside[wo];
    if (bits == 0) continue;
    if (bits != 15) {
      held.release();
      add_corners(corners, wo, bits, corners.base[wo] - origin, width, g[wo], plane);
      continue;
    }
    held.move_to(corners.base[wo]);
    held.add(corners, wo, g[wo]);
  }
  held.release();
}

// L channels of one element from floats in memory, and back (any alignment).
template <typename T>
T load_lanes(const float* at) {
  T value;
  std::memcpy(&value, at, sizeof(T));
  return value;
}
template <typename T>
void store_lanes(float* at, T value) {
  std::memcpy(at, &value, sizeof(T));
}

// LaneKernels' Transpose from a level's in-place V::transpose (vec_avx2.h, vec_avx512.h),
// for lanes T of the level's width; only that level's translation unit instantiates it.
template <class V, typename T>
struct LevelTranspose {
  static_assert(kLanesOf<T> == V::kLanes, "lanes of the level's width");
  static void run(const T rows[V::kLanes], T columns[V::kLanes]) {
    typename V::F block[V::kLanes];
    for (int i = 0; i < V::kLanes; ++i) block[i] = (typename V::F)rows[i];
    V::transpose(block);
    for (int i = 0; i < V::kLanes; ++i) columns[i] = (T)block[i];
  }
};

// The lane scatter of one level: T the lane vector, Transpose::run(T rows[L], T columns[L])
// moving element j of rows[i] to element i of columns[j] (L channels of L consecutive
// elements, exchanged between the plane layout and the lane layout). Its functions have
// the types of simd::LaneScatter's.
template <typename T, typename Transpose>
struct LaneKernels {
  static constexpr int64_t L = kLanesOf<T>;

  // grad_output's pixels [0, count) of `lanes` channels (planes `plane` floats apart, from
  // grad_block) as lanes, lanes past `lanes` zero: g[i][k] = channel k at pixel i.
  static void planes_to_lanes(const float* grad_block, int64_t plane, int64_t lanes, int64_t count, T* g) {
    int64_t i = 0;
    for (; i + L <= count; i += L) {  // L pixels of the channels at a time (0 past `lanes`)
      T rows[L];
      for (int64_t k = 0; k < L; ++k) rows[k] = k < lanes ? load_lanes<T>(grad_block + k * plane + i) : T{};
      Transpose::run(rows, g + i);
    }
    for (; i < count; ++i) {
      T value = {};
      for (int64_t k = 0; k < lanes; ++k) value[k] = grad_block[k * plane + i];
      g[i] = value;
    }
  }

  // simd::ScatterLanesFn: one group of channels over a block of output pixels.
  static void scatter(const simd::RowCorners& corners, int64_t count, int64_t width, int64_t origin,
                      const float* grad_block, int64_t out_plane, int64_t lanes, float* g, float* band, bool hold,
                      bool prefetch) {
    T* g_lanes = reinterpret_cast<T*>(g);
    planes_to_lanes(grad_block, out_plane, lanes, count, g_lanes);
    scatter_run<T>(corners, count, width, origin, g_lanes, reinterpret_cast<T*>(band), hold, prefetch);
  }

  // simd::LanesToPlanesFn: band[i][k] -> planes[k * plane + i] for i in [0, count), k < lanes.
  static void to_planes(const float* band, int64_t lanes, int64_t count, float* planes, int64_t plane) {
    const T* sums = reinterpret_cast<const T*>(band);
    int64_t i = 0;
    for (; i + L <= count; i += L) {
      T columns[L];
      Transpose::run(sums + i, columns);
      for (int64_t k = 0; k < lanes; ++k) store_lanes<T>(planes + k * plane + i, columns[k]);
    }
    for (; i < count; ++i)
      for (int64_t k = 0; k < lanes; ++k) planes[k * plane + i] = sums[i][k];
  }
};

}  // namespace scatter
}  // namespace cpu
}  // namespace stn
