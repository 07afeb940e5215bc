// Row kernels that read the interior of each row without masks (the AVX2 and AVX-512
// kernels). Same results, bit for bit, as AffineRowKernels and
// so as the generic bodies: the same IEEE operations in the same order.
//
// A vector of pixels is *interior* when every lane's pixel coordinates satisfy
// 0 <= x < W - 1 and 0 <= y < H - 1 (0 < x and 0 < y with border padding, whose clamp at 0
// zeroes d pixel / d grid): then c0 = floor(x), c0 + 1 are columns of the image and r0,
// r0 + 1 rows, so nothing needs masking, padding or clamping (the border clamp is the
// identity there), and PairLoads reads the corners as neighbouring pairs. With zero padding
// a vector is still taken as interior when each of its other lanes is *out of reach*, none
// of its corners in the image (x < -1, x >= W, y < -1, y >= H, or NaN): such a lane samples
// only padding, so its value and its gradients are +0, as the generic bodies give them; it
// reads the image's first cell instead, and its results are replaced by +0. In a typical
// warp most vectors are interior; the rest (a lane on the image's one-pixel rim, border
// padding) go through AffineRowKernels' masked corners, one vector at a time.
//
// The last vector of a row may be partial (a tail). Its lanes past the row's end take base
// grid x = 0, a point in the middle of the row (and y = 0 in a flat run of rows; the point
// (0, 0), the image's centre, with a grid), and count
// in the interior test like the others, so that their corner reads stay inside the image;
// their results are never stored.
#pragma once

#include <immintrin.h>

#include <cmath>

#include "affine_row_kernels.h"

namespace stn {
namespace cpu {
namespace simd {

// Splits pairs of neighbouring floats into two vectors; specialized per vector type
// (pair_loads_avx2.h, pair_loads_avx512.h):
//   static void split(const float* at, const int32_t* offset, F& first, F& second)
// gives at[offset[p]] in lane p of `first` and at[offset[p] + 1] in lane p of `second`.
template <class V>
struct PairSplit;

// (at[i], at[i + 1], at[j], at[j + 1]): two pairs in one 128-bit register, the piece the
// AVX2 PairSplit assembles. A template over the level, so that only the translation unit of
// the level that uses it compiles it.
template <class V>
__m128 two_pairs(const float* at, int32_t i, int32_t j) {
  const __m128 low = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(at + i)));
  return _mm_loadh_pi(low, reinterpret_cast<const __m64*>(at + j));
}

// The corners of interior pixels: a pixel's NW and NE corners are neighbours in memory, and
// so are its SW and SE corners, so each pair is read with one 8-byte load and the pairs are
// split into corner vectors (PairSplit).
template <class V>
struct PairLoads {
  // NW, NE, SW, SE of the lanes whose NW corners sit at plane + north_west[lane]; the south
  // corners are one image row (`width` floats) further.
  static void corners(const float* plane, const int32_t* north_west, int32_t width, typename V::F corner[4]) {
    PairSplit<V>::split(plane, north_west, corner[0], corner[1]);
    PairSplit<V>::split(plane + width, north_west, corner[2], corner[3]);
  }
};

template <class V>
struct InteriorRowKernels {
  using F = typename V::F;
  using M = typename V::M;
  using Masked = AffineRowKernels<V>;

  // A row's constants, broadcast once: the compiler cannot keep loads through `row` out of
  // the loops, since the output stores might alias it.
  struct RowConstants {
    // theta[0], theta[1] * y_base, theta[2]; theta[3], theta[4] * y_base, theta[5]. In a flat
    // run (flat), [1] holds theta[1] and theta[4], to multiply by each pixel's y_base.
    F theta_x[3], theta_y[3];
    bool flat;
    bool grid;                 // points from AffineRow::grid: no theta, no input prefetch ahead
    F scale_x[3], scale_y[3];  // coords.h unnormalize as ((g + 1) * a - b) * c (see unnormalize_row)
    F d_x, d_y;                // d pixel / d grid
    F low_x, low_y, high_x, high_y;  // interior: low < x < high, low < y < high
    bool allow_out_of_reach;         // zero padding and a first cell to read (see the top)
    F reach_low_x, reach_x;          // within reach: -1 <= x < W and
    F reach_low_y, reach_y;          // -1 <= y < H (or the band's rows: see band_rows)
    int32_t width;
    bool stream_output;        // AffineRow::stream_output
    int64_t ahead;             // where a corner of this row lies kPrefetchRows rows later, minus
                               // where it lies here: an offset into the plane (0 for a grid)
    int64_t out_ahead;         // an output pixel kOutputPrefetchRows rows down, minus this one

    explicit RowConstants(const AffineRow& row)
        : flat(row.y_base_at != nullptr), grid(row.grid != nullptr), width(int32_t(row.in_width)),
          stream_output(row.stream_output), out_ahead(kOutputPrefetchRows * row.out_stride) {
      unnormalize_row(row.in_width, row.align_corners, scale_x, &d_x);
      unnormalize_row(row.in_height, row.align_corners, scale_y, &d_y);
      // x >= 0 is x > -(the smallest denormal): no float lies between the two but -0.
      const F low = V::set(row.border ? 0.0f : -1e-45f);
      low_x = low_y = low;
      high_x = V::set(float(row.in_width - 1));  // 0 for one column: nothing is interior
      high_y = V::set(float(row.in_height - 1));
      allow_out_of_reach = !row.border && row.in_width >= 2 && row.in_height >= 2;
      reach_low_x = reach_low_y = V::set(-1.0f);
      reach_x = V::set(float(row.in_width));
      reach_y = V::set(float(row.in_height));
      ahead = 0;
      if (grid) return;  // no theta: the points come from the grid
      const float* t = row.theta;
      const float y_base = flat ? 1.0f : row.y_base;
      theta_x[0] = V::set(t[0]), theta_x[1] = V::set(t[1] * y_base), theta_x[2] = V::set(t[2]);
      theta_y[0] = V::set(t[3]), theta_y[1] = V::set(t[4] * y_base), theta_y[2] = V::set(t[5]);
      // One output row down moves a sample by theta's y column times the base grid's step,
      // in normalized units; *(size / 2) in pixels (near enough with align_corners).
      const double rows = double(kPrefetchRows) * row.y_step;
      const double dx = rows * t[1] * double(row.in_width) / 2, dy = rows * t[4] * double(row.in_height) / 2;
      ahead = std::isfinite(dx) && std::isfinite(dy) && std::fabs(dx) < 1e6 && std::fabs(dy) < 1e6
                  ? int64_t(std::floor(dy + 0.5)) * row.in_width + int64_t(std::floor(dx + 0.5))
                  : 0;
    }

    // The interior and the reach of a band of input rows [row_begin, row_end) (a scatter's,
    // RowCorners): a pixel is interior when its corners' rows r0, r0 + 1 both lie in the band,
    // row_begin <= y < row_end - 1 (0 < y where the band starts the image, with border
    // padding), and within reach when either does, row_begin - 1 <= y < row_end; x as before.
    // A lane out of reach then has no corner in the band, as the masked corners give it.
    void band_rows(int64_t row_begin, int64_t row_end) {
      if (row_begin > 0) low_y = V::set(std::nextafter(float(row_begin), -INFINITY));  // y >= row_begin
      high_y = V::set(float(row_end - 1));
      reach_low_y = V::set(float(row_begin) - 1.0f);
      reach_y = V::set(float(row_end));
    }

    // coords.h unnormalize: align_corners ((g + 1) * 0.5) * (size - 1), else
    // ((g + 1) * size - 1) * 0.5, both as ((g + 1) * a - b) * c (subtracting 0 changes no
    // float, -0 and NaN included).
    static void unnormalize_row(int64_t size, bool align_corners, F scale[3], F* d_pixel) {
      if (align_corners) {
        scale[0] = V::set(0.5f), scale[1] = V::zero(), scale[2] = V::set(float(size - 1));
        *d_pixel = V::set(float(size - 1) / 2);
      } else {
        scale[0] = V::set(float(size)), scale[1] = V::set(1.0f), scale[2] = V::set(0.5f);
        *d_pixel = V::set(float(size) / 2);
      }
    }
  };

  // Rows of a rotated warp run diagonally through the input, where the hardware prefetchers
  // do not follow, and a warp of images in main memory waits on each new line. The interior
  // loops ask for the lines this many output rows ahead will read.
  static constexpr int kPrefetchRows = 4;

  // Many channels make many output planes, each written a row (a few lines) at a time: more
  // store streams than the hardware prefetchers track, so each line's read for ownership
  // would stall the stores. The forward asks for the lines this many rows down, for writing.
  static constexpr int kOutputPrefetchRows = 2;

  // Asks for the output line kOutputPrefetchRows rows below `at`, for writing.
  [[gnu::always_inline]] static void prefetch_below(const float* at, const RowConstants& r) {
    // An integer address: past the last row it lies outside the output, where a prefetch is
    // harmless but a pointer would not be.
    const uintptr_t below = reinterpret_cast<uintptr_t>(at) + uintptr_t(r.out_ahead) * sizeof(float);
    __builtin_prefetch(reinterpret_cast<const void*>(below), 1);
  }

  // Stores the lanes of `value` in `lanes` at `at` and asks for the line kOutputPrefetchRows
  // rows down.
  [[gnu::always_inline]] static void store_and_prefetch_below(float* at, F value, M lanes, const RowConstants& r) {
    prefetch_below(at, r);
    V::store(at, value, lanes);
  }

  // The taps of an interior vector.
  struct Interior {
    F weight[4];                         // NW, NE, SW, SE
    F tx, ty;                            // position inside the 2x2 cell
    M lanes;                             // the lanes within the row
    bool all_inside;                     // no lane out of reach
    M inside;                            // the lanes not out of reach
    alignas(64) int32_t north_west[16];  // r0 * W + c0 of each lane
    // With a grid: r0 * W + c0 of each lane's pixel kPrefetchRows rows ahead, where the grid
    // has it (ahead_known).
    bool ahead_known;
    alignas(64) int32_t north_west_ahead[16];
    F x, y;  // the pixels' unnormalized coordinates in the input, unpadded (pixels())
  };

  // The lines of the corners of the first and last lanes of each 8, kPrefetchRows rows later:
  // with the lanes between them, they span the few input rows those lanes' corners lie in.
  // (A rotated row may climb five or six input rows across 16 lanes, and the rows between
  // the ends' corners would go unasked: the AVX-512 forward on the seed's batch took 1.5x
  // the AVX2 one's time with one pair of ends per 16 lanes, the same with one per 8.)
  //
  // Always inlined, as is store_and_prefetch_below: GCC 12 takes a function whose only effect
  // is prefetching for one without effects, and deletes its calls where it did not inline it
  // first (the AVX-512 kernels lost every input prefetch so, and ran the seed's forward at
  // twice the AVX2 kernels' time).
  [[gnu::always_inline]] static void prefetch_ahead(const float* plane, const Interior& k, const RowConstants& r) {
    // An affine row's corners ahead are its own shifted by r.ahead; a grid's are read from it.
    if (r.grid && !k.ahead_known) return;
    const int32_t* corner = r.grid ? k.north_west_ahead : k.north_west;
    const int64_t shift = r.grid ? 0 : r.ahead;
    prefetch_corners(reinterpret_cast<uintptr_t>(plane) + uintptr_t(shift) * sizeof(float), corner, r);
  }

  // The lines of the corners of the first and last lanes of each 8 whose NW corners lie
  // `corner` floats from the address `at`: integer addresses, since the lines ahead may lie
  // outside the plane (past the last row), where a prefetch is harmless but a pointer would not be.
  [[gnu::always_inline]] static void prefetch_corners(uintptr_t at, const int32_t* corner, const RowConstants& r) {
    const uintptr_t south = uintptr_t(r.width) * sizeof(float);
    for (int lane = 0; lane < V::kLanes; lane += 8) {
      const uintptr_t first = at + uintptr_t(corner[lane]) * sizeof(float);
      const uintptr_t last = at + uintptr_t(corner[lane + 7]) * sizeof(float);
      __builtin_prefetch(reinterpret_cast<const void*>(first));
      __builtin_prefetch(reinterpret_cast<const void*>(first + south));
      __builtin_prefetch(reinterpret_cast<const void*>(last));
      __builtin_prefetch(reinterpret_cast<const void*>(last + south));
    }
  }

  static F pixel(F g, const F scale[3]) {
    return V::mul(V::sub(V::mul(V::add(g, V::set(1.0f)), scale[0]), scale[1]), scale[2]);
  }

  // Whether the 8 (16) pixels from wo (those past the row's end at base grid x = 0) are
  // interior; if so, their taps in *k, computed as AffineRowKernels::corners computes them.
  // Either way, their coordinates in k->x and k->y (for masked_corners).
  // kWhole: the caller knows the vector lies wholly within the row (no lanes past its end).
  template <bool kWhole = false>
  static bool interior(const RowConstants& r, const AffineRow& row, int64_t wo, Interior* k) {
    const M lanes = kWhole ? V::first(V::kLanes) : V::first(row.out_width - wo);
    F x, y;
    pixels<kWhole>(r, row, wo, lanes, &x, &y);
    k->x = x, k->y = y;
    const M inside = interior_lanes(r, x, y);
    k->all_inside = V::full(inside);
    if (!k->all_inside) {
      if (!r.allow_out_of_reach) return false;
      const M reach = reach_lanes(r, x, y);
      if (!V::full(V::either(inside, V::neither(reach, reach)))) return false;  // a lane on the rim
    }
    k->inside = inside;
    k->lanes = lanes;
    typename V::I north_west;
    taps(r, x, y, &k->tx, &k->ty, k->weight, &north_west);
    // Lanes out of reach read the first cell: their floors may be any int (NaN, 1e30).
    V::store_int(k->north_west, V::int_unless(inside, north_west), V::first(V::kLanes));
    if (r.grid) grid_ahead(r, row, wo, k);
    return true;
  }

  // The pixel coordinates (x, y) of the 8 (16) pixels from wo, `lanes` those within the row
  // (kWhole: all of them); past the row's end, those of base grid x = 0 (grid point (0, 0)).
  template <bool kWhole>
  [[gnu::always_inline]] static void pixels(const RowConstants& r, const AffineRow& row, int64_t wo, M lanes, F* x,
                                            F* y) {
    F grid_x, grid_y;
    if (r.grid) {
      V::load_pairs(row.grid + 2 * wo, row.out_width - wo, &grid_x, &grid_y);  // (0, 0) past the end
    } else {
      // 0 in the lanes past the end
      const F base = kWhole ? V::loadu(row.x_base + wo) : V::load(row.x_base + wo, lanes);
      F y_term_x = r.theta_x[1], y_term_y = r.theta_y[1];  // theta[1] * y, theta[4] * y
      if (r.flat) {
        const F y_base = kWhole ? V::loadu(row.y_base_at + wo) : V::load(row.y_base_at + wo, lanes);
        y_term_x = V::mul(y_term_x, y_base);
        y_term_y = V::mul(y_term_y, y_base);
      }
      // coords.h affine_point: theta[0] * x + theta[1] * y + theta[2], left to right.
      grid_x = V::add(V::add(V::mul(r.theta_x[0], base), y_term_x), r.theta_x[2]);
      grid_y = V::add(V::add(V::mul(r.theta_y[0], base), y_term_y), r.theta_y[2]);
    }
    *x = pixel(grid_x, r.scale_x);
    *y = pixel(grid_y, r.scale_y);
  }

  // The lanes whose pixel (x, y) is within reach: a corner in the image (see the top).
  [[gnu::always_inline]] static M reach_lanes(const RowConstants& r, F x, F y) {
    return V::both(V::both(V::ge(x, r.reach_low_x), V::lt(x, r.reach_x)),
                   V::both(V::ge(y, r.reach_low_y), V::lt(y, r.reach_y)));
  }

  // The lanes whose pixel (x, y) is interior (see the top). Ordered compares: false for NaN.
  [[gnu::always_inline]] static M interior_lanes(const RowConstants& r, F x, F y) {
    return V::both(V::both(V::gt(x, r.low_x), V::lt(x, r.high_x)), V::both(V::gt(y, r.low_y), V::lt(y, r.high_y)));
  }

  // The taps of interior pixels (x, y): their positions in their cells, the weights of the
  // cells' NW, NE, SW, SE corners, and the NW corners' offsets r0 * W + c0.
  [[gnu::always_inline]] static void taps(const RowConstants& r, F x, F y, F* tx, F* ty, F weight[4],
                                          typename V::I* north_west) {
    const F column = V::floor(x), line = V::floor(y);
    *tx = V::sub(x, column);
    *ty = V::sub(y, line);
    *north_west = V::mul_add(V::to_int(line), r.width, V::to_int(column));
    const F one = V::set(1.0f);
    const F left = V::sub(one, *tx), up = V::sub(one, *ty);
    weight[0] = V::mul(left, up);
    weight[1] = V::mul(*tx, up);
    weight[2] = V::mul(left, *ty);
    weight[3] = V::mul(*tx, *ty);
  }

  // Which vectors of the chunk of kChunkVectors whole vectors from pixel `first` of an affine
  // row are *plain*, every lane interior: bit v for vector v. Most vectors of a warp are, and
  // forward_plain then takes them without the checks a vector may need. Their taps go to
  // k[v].weight and k[v].north_west (all forward_plain reads), computed as interior computes
  // them, but with no branch per vector and no other field stored; for a vector that is not
  // plain, they are of use only in its lanes within reach (chunk_interior). Measured on the
  // AMD Zen 4 (AVX2, 2 threads), against interior_chunk's taps: 0.95x the forward time on one
  // 3 x 1024 x 1024 image, 0.97x rotated by 45 degrees (64% of its chunks plain), the same
  // (1.00x) zoomed out 1.6x (30% plain).
  // kGradient: the gradient's fields too, k[v].tx, k[v].ty and k[v].lanes, and in *out_of_reach
  // the vectors none of whose lanes is within reach (zero padding only; otherwise none).
  template <bool kGradient = false>
  static uint32_t plain_taps(const AffineRow& row, const RowConstants& r, int64_t first, Interior* k,
                             uint32_t* out_of_reach = nullptr) {
    const M all_lanes = V::first(V::kLanes);
    uint32_t plain = 0;
    if constexpr (kGradient) *out_of_reach = 0;
    for (int v = 0; v < kChunkVectors; ++v) {
      F x, y, tx, ty;
      pixels<true>(r, row, first + v * V::kLanes, all_lanes, &x, &y);
      plain |= uint32_t(V::full(interior_lanes(r, x, y))) << v;
      if constexpr (kGradient) {
        const M reach = reach_lanes(r, x, y);
        *out_of_reach |= uint32_t(r.allow_out_of_reach && V::full(V::neither(reach, reach))) << v;
      }
      typename V::I north_west;
      taps(r, x, y, &tx, &ty, k[v].weight, &north_west);
      V::store_int(k[v].north_west, north_west, all_lanes);
      if constexpr (kGradient) k[v].tx = tx, k[v].ty = ty, k[v].lanes = all_lanes;
      // A chunk of few plain vectors usually shows it early (lanes on the image's rim, in its
      // padding); it then goes to interior_chunk, having computed two of its taps twice.
      // (Deciding after 4 vectors took 1.04x the forward time of cluttered MNIST zoomed out
      // 3x, where most vectors sample only padding.)
      if (!kGradient && v == 1 && plain == 0) return 0;
    }
    return plain;
  }

  // AffineRowKernels::corners of the vector k that interior() or plain_taps found not interior,
  // from its coordinates k.x and k.y, not computed again; `lanes` those within the row, in input
  // rows [row_begin, row_end). Measured on the AMD Zen 4 (AVX2, 2 threads, A/B in alternating
  // calls), against the masked corners computed from the start (after the vector's coordinates
  // had been computed for its interior test, or twice, by plain_taps and interior()): cluttered
  // MNIST's forward 0.95-0.98x the time, its backward 0.93-0.95x, its forward and backward
  // 0.95-0.96x; zoomed out 3x, the backward 0.94-1.00x and the forward the same; 32 x 32 x
  // 64 x 64 backward 0.96x, 8 x 64 x 128 x 128 0.97x, the seed's batch the same.
  static typename Masked::Corners masked_corners(const AffineRow& row, const RowConstants& r, const Interior& k,
                                                 M lanes, int64_t row_begin, int64_t row_end) {
    return Masked::corners_unnormalized(row, k.x, k.y, lanes, r.d_x, r.d_y, row_begin, row_end);
  }

  // Whether the vector from wo of a chunk, not plain (plain_taps: its taps in *k), is still
  // interior, each lane interior or out of reach (see the top); if so, completes *k as
  // interior() gives it, its lanes out of reach reading the first cell. Either way, its
  // coordinates in k->x and k->y. (plain_taps storing every vector's coordinates instead of
  // computing them again here took 1.01-1.04x the forward time on the seed's batch.)
  static bool chunk_interior(const AffineRow& row, const RowConstants& r, int64_t wo, Interior* k) {
    pixels<true>(r, row, wo, V::first(V::kLanes), &k->x, &k->y);
    if (!r.allow_out_of_reach) return false;
    const M inside = interior_lanes(r, k->x, k->y), reach = reach_lanes(r, k->x, k->y);
    if (!V::full(V::either(inside, V::neither(reach, reach)))) return false;  // a lane on the rim
    const M all_lanes = V::first(V::kLanes);
    k->all_inside = false;
    k->inside = inside;
    k->lanes = all_lanes;
    V::store_int(k->north_west, V::int_unless(inside, V::load_int(k->north_west)), all_lanes);
    return true;
  }

  // Interior::north_west_ahead of the vector from wo: the cells of the pixels kPrefetchRows
  // output rows further on, from their grid points (floor of any float, NaN and huge ones
  // too, converts to some int32: only a prefetch address, harmless wherever it points).
  static void grid_ahead(const RowConstants& r, const AffineRow& row, int64_t wo, Interior* k) {
    const int64_t ahead = wo + kPrefetchRows * row.out_stride;
    k->ahead_known = ahead + V::kLanes <= row.grid_pixels;
    if (!k->ahead_known) return;
    F grid_x, grid_y;
    V::load_pairs(row.grid + 2 * ahead, V::kLanes, &grid_x, &grid_y);
    const F column = V::floor(pixel(grid_x, r.scale_x)), line = V::floor(pixel(grid_y, r.scale_y));
    V::store_int(k->north_west_ahead, V::mul_add(V::to_int(line), r.width, V::to_int(column)), V::first(V::kLanes));
  }

  // The interior vectors of a row are taken kChunkVectors at a time: their taps are computed
  // once, then each channel in turn is swept across them. A channel's lines are then read by
  // neighbouring vectors while they are still in L1. With channels innermost, a vector read
  // its corners in every channel before the next vector reused them, and where planes and
  // rows lie a multiple of 4 KiB apart (a 1024-wide image: every row and every plane of a
  // column maps to the same L1 set) those lines evicted each other first. Measured on an AMD
  // Zen 4 (2 threads, AVX2 kernels), against channels innermost: 0.62x the forward time on one
  // 3 x 1024 x 1024 image, 0.92x on the seed's batch, 0.88x on 8 x 64 x 128 x 128 maps.
  static constexpr int kChunkVectors = 16;
  static constexpr uint32_t kAllPlain = (uint32_t(1) << kChunkVectors) - 1;  // plain_taps: every vector

  // The vectors of the chunk of kChunkVectors from pixel `first`: the interior ones' taps go
  // to k[0..count) and their first pixels to at[0..count); count is returned. The others are
  // handed to masked(wo, k) at once, k holding their coordinates (interior()).
  // A chunk that ends within the row takes interior<true>: no lane mask to compute and no masked
  // loads of the base grid (0.97x the forward time on one 3 x 1024 x 1024 image, AMD Zen 4).
  template <typename OnMasked>
  static int interior_chunk(const AffineRow& row, const RowConstants& r, int64_t first, Interior* k,
                            int64_t* at, const OnMasked& masked) {
    if (whole_chunk(row, first))
      return interior_vectors<true>(row, r, first, kChunkVectors, k, at, masked);
    const int64_t vectors = (row.out_width - first + V::kLanes - 1) / V::kLanes;
    return interior_vectors<false>(row, r, first, int(vectors), k, at, masked);
  }

  // Whether the chunk from pixel `first` is kChunkVectors whole vectors, ending within the row.
  static bool whole_chunk(const AffineRow& row, int64_t first) {
    return first + kChunkVectors * V::kLanes <= row.out_width;
  }

  // interior_chunk over `vectors` vectors from pixel `first`.
  template <bool kWhole, typename OnMasked>
  static int interior_vectors(const AffineRow& row, const RowConstants& r, int64_t first, int vectors, Interior* k,
                              int64_t* at, const OnMasked& masked) {
    int count = 0;
    for (int v = 0; v < vectors; ++v) {
      const int64_t wo = first + v * V::kLanes;
      if (interior<kWhole>(r, row, wo, &k[count])) {
        at[count++] = wo;
        continue;
      }
      masked(wo, k[count]);
    }
    return count;
  }

  // point_ops.h gather_point, every channel: a chunk of vectors at a time, channels outermost.
  static void forward(const AffineRow& row, ConstPlanes input, float* output, int64_t out_plane) {
    const RowConstants r(row);
    Interior k[kChunkVectors];
    int64_t at[kChunkVectors];
    for (int64_t first = 0; first < row.out_width; first += kChunkVectors * V::kLanes) {
      if (!r.grid && whole_chunk(row, first)) {
        const uint32_t plain = plain_taps(row, r, first, k);
        if (plain == kAllPlain) {
          forward_plain<true>(r, k, plain, input, output + first, out_plane);
          continue;
        }
        if (plain != 0) {  // the others' taps, the plain vectors, then the others' reads
          OtherTaps others;
          other_taps(row, r, k, plain, first, &others);
          forward_plain<false>(r, k, plain, input, output + first, out_plane);
          forward_others(r, k, others, input, output + first, out_plane);
          continue;
        }
      }
      const int count = interior_chunk(row, r, first, k, at, [&](int64_t wo, const Interior& failed) {
        const M tail = V::first(row.out_width - wo);
        forward_corners(row, masked_corners(row, r, failed, tail, 0, row.in_height), tail, input, output + wo,
                        out_plane);
      });
      for (int64_t channel = 0; channel < input.channels; ++channel) {
        const float* plane = input.data + channel * input.plane;
        for (int v = 0; v < count; ++v) {
          prefetch_ahead(plane, k[v], r);
          F corner[4];
          PairLoads<V>::corners(plane, k[v].north_west, r.width, corner);
          store_and_prefetch_below(output + channel * out_plane + at[v],
                                   keep_inside(k[v], weighted_sum(k[v].weight, corner)), k[v].lanes, r);
        }
      }
    }
    // Non-temporal stores are weakly ordered: fenced before another thread may read them, after
    // the caller's last row (AffineRow::fence_streams). A fence after every row had stalled the
    // next row's stores until the last row's streamed lines had drained: measured on the AMD
    // Zen 4 (AVX2, A/B in alternating calls), a fence per work item instead took 0.92x the
    // forward time on one 3 x 1024 x 1024 image with one thread, 0.95x with two (and on
    // 3 x 2048 x 2048), 0.99x on the seed's batch.
    if (row.stream_output && row.fence_streams) _mm_sfence();
  }

  // forward of the plain vectors (bits of `plain`, kAll: every one) of a chunk (plain_taps)
  // whose first pixel is output[0] in channel 0: the same taps, reads and sums as forward's
  // loop, less its per-vector checks (grid or affine, lanes out of reach, a partial vector),
  // with an output prefetch per line, not per vector. Measured on the AMD Zen 4 (AVX2, 2
  // threads), against forward's loop: 0.93x the time on one 3 x 1024 x 1024 image, 0.97x on
  // the seed's batch. Taking the plain vectors of chunks that also hold others this way
  // (before, all of such a chunk went through forward's loop): 0.95-0.96x the forward time of
  // cluttered MNIST (its rows of 28 pixels cross the image's rim in most chunks), 0.96x with
  // 32 x 32 x 64 x 64, 0.95-0.99x on one 3 x 1024 x 1024 image, 1.00x zoomed out 1.6x or 3x
  // (A/B in alternating calls, 2 threads). With r.stream_output, a channel of
  // a wholly plain chunk that starts on a 64-byte line (its kChunkVectors vectors then fill
  // whole lines) is written with non-temporal stores.
  template <bool kAll>
  static void forward_plain(const RowConstants& r, const Interior* k, uint32_t plain, ConstPlanes input,
                            float* output, int64_t out_plane) {
    for (int64_t channel = 0; channel < input.channels; ++channel) {
      const float* plane = input.data + channel * input.plane;
      float* out = output + channel * out_plane;
      if constexpr (kAll) {
        if (r.stream_output && reinterpret_cast<uintptr_t>(out) % (kLineFloats * sizeof(float)) == 0) {
          plain_channel<true, true>(r, k, plain, plane, out);
          continue;
        }
      }
      plain_channel<false, kAll>(r, k, plain, plane, out);
    }
  }

  // One channel of the plain vectors of a chunk, into out[0 .. kChunkVectors * kLanes): with
  // non-temporal stores (kStream; every vector plain and `out` on a line, so that the chunk
  // fills whole lines), or with plain stores and a prefetch of each output line
  // kOutputPrefetchRows rows down.
  template <bool kStream, bool kAll>
  [[gnu::always_inline]] static void plain_channel(const RowConstants& r, const Interior* k, uint32_t plain,
                                                   const float* plane, float* out) {
    static_assert(kChunkVectors * V::kLanes % kLineFloats == 0, "a chunk fills whole lines");
    static_assert(kAll || !kStream, "streams write whole lines");
    const uintptr_t ahead = reinterpret_cast<uintptr_t>(plane) + uintptr_t(r.ahead) * sizeof(float);
    for (int v = 0; v < kChunkVectors; ++v) {
      if (!kAll && !(plain >> v & 1)) continue;
      prefetch_corners(ahead, k[v].north_west, r);
      F corner[4];
      PairLoads<V>::corners(plane, k[v].north_west, r.width, corner);
      const F value = weighted_sum(k[v].weight, corner);
      float* at = out + v * V::kLanes;
      if constexpr (kStream) {
        V::stream(at, value);
      } else {
        if (v * V::kLanes % kLineFloats == 0) prefetch_below(at, r);
        V::storeu(at, value);
      }
    }
  }

  // The taps of the vectors of a chunk that are not plain, for the forward (other_taps).
  struct OtherTaps {
    uint32_t others;    // bit v: vector v is not plain
    uint32_t interior;  // bit v: vector v is interior (chunk_interior; its taps in k[v])
    struct {            // the others: their weights and their corners' fetch
      F weight[4];
      CornerFetch<V> fetch;
    } masked[kChunkVectors];
  };

  // The taps of the vectors of a chunk from pixel `first` that are not plain (plain_taps: bits
  // not in `plain`, their taps in k), as forward's loop takes them: interior (completed in
  // k), or through the masked corners (into *taps). The taps come well before the reads
  // (forward_others): reads right after the taps waited on the stores of the cells' offsets.
  // Measured on the AMD Zen 4 (AVX2, 2 threads, A/B in alternating calls), against each vector
  // on its own, taps then reads, after the plain vectors: cluttered MNIST's forward 0.95-1.02x
  // the time (median of five runs 0.975x), zoomed out 3x 0.99x, one 3 x 1024 x 1024 image
  // 0.95x, the seed's batch 0.94x. (Its gradient's counterpart measured 0.98-1.01x: not kept.)
  static void other_taps(const AffineRow& row, const RowConstants& r, Interior* k, uint32_t plain, int64_t first,
                         OtherTaps* taps) {
    const M all_lanes = V::first(V::kLanes);
    taps->others = ~plain & kAllPlain;
    taps->interior = 0;
    for (int v = 0; v < kChunkVectors; ++v) {
      if (!(taps->others >> v & 1)) continue;
      if (chunk_interior(row, r, first + v * V::kLanes, &k[v])) {
        taps->interior |= uint32_t(1) << v;
        continue;
      }
      const typename Masked::Corners m = masked_corners(row, r, k[v], all_lanes, 0, row.in_height);
      for (int c = 0; c < 4; ++c) taps->masked[v].weight[c] = m.weight[c];
      taps->masked[v].fetch.prepare(m, row);
    }
  }

  // forward of the vectors other_taps took, every channel, into output[0 ..) of channel 0 (the
  // chunk's first pixel).
  static void forward_others(const RowConstants& r, const Interior* k, const OtherTaps& taps, ConstPlanes input,
                             float* output, int64_t out_plane) {
    const M all_lanes = V::first(V::kLanes);
    for (int64_t channel = 0; channel < input.channels; ++channel) {
      const float* plane = input.data + channel * input.plane;
      float* out = output + channel * out_plane;
      for (int v = 0; v < kChunkVectors; ++v) {
        if (!(taps.others >> v & 1)) continue;
        F corner[4];
        if (taps.interior >> v & 1) {
          prefetch_ahead(plane, k[v], r);
          PairLoads<V>::corners(plane, k[v].north_west, r.width, corner);
          store_and_prefetch_below(out + v * V::kLanes, keep_inside(k[v], weighted_sum(k[v].weight, corner)),
                                   all_lanes, r);
          continue;
        }
        taps.masked[v].fetch.values(plane, corner);
        V::storeu(out + v * V::kLanes, weighted_sum(taps.masked[v].weight, corner));
      }
    }
  }

  static constexpr int kLineFloats = 64 / sizeof(float);

  // forward of the pixels with the masked corners m, the lanes `tail`, every channel, into
  // output[0 ..) of channel 0.
  static void forward_corners(const AffineRow& row, const typename Masked::Corners& m, M tail, ConstPlanes input,
                              float* output, int64_t out_plane) {
    CornerFetch<V> fetch;
    fetch.prepare(m, row);
    for (int64_t channel = 0; channel < input.channels; ++channel) {
      F corner[4];
      fetch.values(input.data + channel * input.plane, corner);
      V::store(output + channel * out_plane, weighted_sum(m.weight, corner), tail);
    }
  }

  // `value` of the vector's lanes, +0 in its lanes out of reach.
  static F keep_inside(const Interior& k, F value) { return k.all_inside ? value : V::zero_unless(k.inside, value); }

  // ((0 + w0 * c0) + w1 * c1) + ..., as point_ops.h gather_point adds.
  static F weighted_sum(const F weight[4], const F corner[4]) {
    F value = V::zero();
    for (int c = 0; c < 4; ++c) value = V::add(value, V::mul(weight[c], corner[c]));
    return value;
  }

  // point_ops.h grid_grad_point: d loss / d grid of each pixel, summed over channels, then
  // over corners, in that order; a vector at a time, channels innermost.
  static void grid_grad(const AffineRow& row, ConstPlanes input, const float* grad_output,
                        int64_t out_plane, float* grad_x, float* grad_y) {
    grid_grad_and_corners(row, input, grad_output, out_plane, grad_x, grad_y, nullptr);
  }

  // grid_grad, and the corners of every pixel as corners_row gives them for a band of the
  // whole image (affine_rows.h GridGradCornersFn): the taps it computes anyway.
  static void grid_grad_corners(const AffineRow& row, ConstPlanes input, const float* grad_output,
                                int64_t out_plane, float* grad_x, float* grad_y, const RowCorners& corners) {
    grid_grad_and_corners(row, input, grad_output, out_plane, grad_x, grad_y, &corners);
  }

  // The gradient's chunks sweep this many channels at a time across their vectors, each
  // vector summing its channels in order. Unlike the forward, one channel at a time did not
  // pay here (measured on the AMD Zen 4: the same time or up to 1.07x slower).
  static constexpr int kChannelBlock = 8;

  // How many vectors ahead the gradient asks for each channel's grad_output: a chunk's worth,
  // so that a line read from memory arrives before its vector is reached. Measured on the AMD
  // Zen 4 (AVX2, 2 threads, A/B in alternating calls), against 2 vectors ahead: 0.84-0.89x
  // the backward time with 32 x 32 x 64 x 64, 0.88-0.91x with the seed's batch, 0.90x with 8
  // x 64 x 128 x 128, 0.95-0.97x with one 3 x 1024 x 1024 image, 0.98x with cluttered MNIST.
  // 8 vectors ahead measured the same as 16 within the noise, 32 no better.
  static constexpr int kGradOutputAhead = kChunkVectors;

  // grid_grad, and into *corners (when given) the pixels' corners.
  static void grid_grad_and_corners(const AffineRow& row, ConstPlanes input, const float* grad_output,
                                    int64_t out_plane, float* grad_x, float* grad_y, const RowCorners* corners) {
    const RowConstants r(row);
    if (input.channels == 1) {
      grid_grad_one_channel(row, r, input, grad_output, out_plane, grad_x, grad_y, corners);
      return;
    }
    Interior k[kChunkVectors];
    int64_t at[kChunkVectors];
    F sum_x[kChunkVectors], sum_y[kChunkVectors];
    // As forward, kChannelBlock channels at a time; each vector still sums its channels in order.
    for (int64_t first = 0; first < row.out_width; first += kChunkVectors * V::kLanes) {
      const int count = interior_chunk(row, r, first, k, at, [&](int64_t wo, const Interior& failed) {
        const M tail = V::first(row.out_width - wo);
        grid_grad_at_corners(row, masked_corners(row, r, failed, tail, 0, row.in_height), tail, input, grad_output,
                             out_plane, grad_x, grad_y, wo, corners);
      });
      if (corners != nullptr)
        for (int v = 0; v < count; ++v) interior_corners(k[v], at[v], *corners);
      for (int v = 0; v < count; ++v) sum_x[v] = sum_y[v] = V::zero();
      for (int64_t block = 0; block < input.channels; block += kChannelBlock) {
        const int64_t block_end = block + kChannelBlock < input.channels ? block + kChannelBlock : input.channels;
        for (int v = 0; v < count; ++v) {
          F weight_dx[4], weight_dy[4];
          Masked::weight_slopes(k[v].tx, k[v].ty, weight_dx, weight_dy);
          for (int64_t channel = block; channel < block_end; ++channel)
            add_channel(k[v], r, input.data + channel * input.plane, grad_output + channel * out_plane + at[v],
                        weight_dx, weight_dy, &sum_x[v], &sum_y[v]);
        }
      }
      for (int v = 0; v < count; ++v) {
        V::store(grad_x + at[v], keep_inside(k[v], V::mul(sum_x[v], r.d_x)), k[v].lanes);
        V::store(grad_y + at[v], keep_inside(k[v], V::mul(sum_y[v], r.d_y)), k[v].lanes);
      }
    }
  }

  // One channel's terms of an interior vector's grid gradient: its corners in `plane` (asked
  // for kPrefetchRows rows ahead) times grad_output at g_at, times the weights' slopes, added
  // to the sums corner by corner (none is skipped).
  [[gnu::always_inline]] static void add_channel(const Interior& k, const RowConstants& r, const float* plane,
                                                 const float* g_at, const F weight_dx[4], const F weight_dy[4],
                                                 F* sum_x, F* sum_y) {
    prefetch_ahead(plane, k, r);
    F corner[4];
    PairLoads<V>::corners(plane, k.north_west, r.width, corner);
    // One stream per channel, more than the hardware prefetchers follow: ask for this
    // channel's grad_output kGradOutputAhead vectors on (an integer address: it may lie past
    // the end of grad_output).
    __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(g_at) +
                                                     kGradOutputAhead * V::kLanes * sizeof(float)));
    const F g = V::load(g_at, k.lanes);
    for (int c = 0; c < 4; ++c) {
      const F product = V::mul(corner[c], g);
      *sum_x = V::add(*sum_x, V::mul(weight_dx[c], product));
      *sum_y = V::add(*sum_y, V::mul(weight_dy[c], product));
    }
  }

  // grid_grad_and_corners of one channel. An affine row's whole chunks first take their taps
  // as the forward does (plain_taps): a plain vector then goes through its gradient without
  // checks or masks, one out of reach only stores zeros, and any other goes on its own, as
  // every vector of a grid's row or of a chunk's tail does (grid_grad_vector). Same sums in
  // the same order, so bit-identical. Measured on the AMD Zen 4 (AVX2, A/B in alternating
  // calls), against a vector at a time throughout: backward 0.86x the time at the
  // cluttered-MNIST shape on 1 thread (0.97-0.99x on 2, where the threads share the memory's
  // bandwidth), 0.79x zoomed out 3x, 0.92-0.96x at 64x1x128x128, 0.96x at 16x1x512x512,
  // 0.91-0.97x at 4x1x1024x1024. (A vector at a time had beaten the channels' chunked loop
  // below: 0.91x at the cluttered-MNIST shape on 1 thread, 0.89x at 64x1x128x128.)
  static void grid_grad_one_channel(const AffineRow& row, const RowConstants& r, ConstPlanes input,
                                    const float* grad_output, int64_t out_plane, float* grad_x, float* grad_y,
                                    const RowCorners* corners) {
    const auto vector = [&](int64_t wo) {
      grid_grad_vector(row, r, input, grad_output, out_plane, grad_x, grad_y, corners, wo);
    };
    int64_t first = 0;
    if (!r.grid) {
      Interior k[kChunkVectors];
      for (; whole_chunk(row, first); first += kChunkVectors * V::kLanes) {
        uint32_t out_of_reach;
        const uint32_t plain = plain_taps<true>(row, r, first, k, &out_of_reach);
        for (int v = 0; v < kChunkVectors; ++v) {
          const int64_t wo = first + v * V::kLanes;
          if (plain >> v & 1) {
            grid_grad_plain_vector(r, k[v], input, grad_output, grad_x, grad_y, corners, wo);
          } else if (out_of_reach >> v & 1) {
            grid_grad_out_of_reach(grad_x, grad_y, corners, wo);
          } else {
            grid_grad_chunk_vector(row, r, &k[v], input, grad_output, out_plane, grad_x, grad_y, corners, wo);
          }
        }
      }
    }
    for (int64_t wo = first; wo < row.out_width; wo += V::kLanes) vector(wo);
  }

  // grid_grad_one_channel of the vector from wo.
  [[gnu::always_inline]] static void grid_grad_vector(const AffineRow& row, const RowConstants& r, ConstPlanes input,
                                                      const float* grad_output, int64_t out_plane, float* grad_x,
                                                      float* grad_y, const RowCorners* corners, int64_t wo) {
    Interior k;
    const bool interior_vector = wo + V::kLanes <= row.out_width ? interior<true>(r, row, wo, &k)
                                                                  : interior<false>(r, row, wo, &k);
    if (!interior_vector) {
      const M tail = V::first(row.out_width - wo);
      grid_grad_at_corners(row, masked_corners(row, r, k, tail, 0, row.in_height), tail, input, grad_output,
                           out_plane, grad_x, grad_y, wo, corners);
      return;
    }
    grid_grad_interior(r, k, input, grad_output, grad_x, grad_y, corners, wo, row.out_width - wo);
  }

  // grid_grad_one_channel of a vector of a chunk from wo that is not plain (plain_taps<true>:
  // its taps in *k), as grid_grad_vector takes it: interior, or through the masked corners.
  static void grid_grad_chunk_vector(const AffineRow& row, const RowConstants& r, Interior* k, ConstPlanes input,
                                     const float* grad_output, int64_t out_plane, float* grad_x, float* grad_y,
                                     const RowCorners* corners, int64_t wo) {
    if (chunk_interior(row, r, wo, k)) {
      grid_grad_interior(r, *k, input, grad_output, grad_x, grad_y, corners, wo, V::kLanes);
      return;
    }
    const M all_lanes = V::first(V::kLanes);
    grid_grad_at_corners(row, masked_corners(row, r, *k, all_lanes, 0, row.in_height), all_lanes, input, grad_output,
                         out_plane, grad_x, grad_y, wo, corners);
  }

  // grid_grad_one_channel of the interior vector k (interior()) from wo, `count` lanes of it
  // within the row.
  [[gnu::always_inline]] static void grid_grad_interior(const RowConstants& r, const Interior& k, ConstPlanes input,
                                                        const float* grad_output, float* grad_x, float* grad_y,
                                                        const RowCorners* corners, int64_t wo, int64_t count) {
    if (corners != nullptr && corners->products != nullptr) {
      interior_corner_products(k, wo, count, V::load(grad_output + wo, k.lanes), *corners);
    } else if (corners != nullptr) {
      interior_corners(k, wo, *corners);
    }
    F weight_dx[4], weight_dy[4];
    Masked::weight_slopes(k.tx, k.ty, weight_dx, weight_dy);
    F sum_x = V::zero(), sum_y = V::zero();
    add_channel(k, r, input.data, grad_output + wo, weight_dx, weight_dy, &sum_x, &sum_y);
    V::store(grad_x + wo, keep_inside(k, V::mul(sum_x, r.d_x)), k.lanes);
    V::store(grad_y + wo, keep_inside(k, V::mul(sum_y, r.d_y)), k.lanes);
  }

  // grid_grad_vector of a vector from wo none of whose lanes is within reach: +0 gradients,
  // and no corner inside (the weights or products are never read).
  static void grid_grad_out_of_reach(float* grad_x, float* grad_y, const RowCorners* corners, int64_t wo) {
    V::storeu(grad_x + wo, V::zero());
    V::storeu(grad_y + wo, V::zero());
    if (corners == nullptr) return;
    const M all_lanes = V::first(V::kLanes);
    V::store_int(corners->base + wo, V::bit_if(all_lanes, 0), all_lanes);
    V::store_int(corners->inside + wo, V::bit_if(all_lanes, 0), all_lanes);
  }

  // grid_grad_vector of a plain vector (plain_taps<true>: k holds its taps) from wo: every
  // lane interior, so no checks and no masks.
  [[gnu::always_inline]] static void grid_grad_plain_vector(const RowConstants& r, const Interior& k,
                                                            ConstPlanes input, const float* grad_output,
                                                            float* grad_x, float* grad_y, const RowCorners* corners,
                                                            int64_t wo) {
    if (corners != nullptr) {
      const M all_lanes = V::first(V::kLanes);
      V::store_int(corners->base + wo, V::load_int(k.north_west), all_lanes);
      V::store_int(corners->inside + wo, V::bit_if(all_lanes, 15), all_lanes);
      if (corners->products != nullptr) {
        Masked::store_products(k.weight, V::loadu(grad_output + wo), V::kLanes, corners->products + 4 * wo);
      } else {
        for (int c = 0; c < 4; ++c) V::storeu(corners->weight[c] + wo, k.weight[c]);
      }
    }
    F weight_dx[4], weight_dy[4];
    Masked::weight_slopes(k.tx, k.ty, weight_dx, weight_dy);
    F sum_x = V::zero(), sum_y = V::zero();
    add_channel(k, r, input.data, grad_output + wo, weight_dx, weight_dy, &sum_x, &sum_y);
    V::storeu(grad_x + wo, V::mul(sum_x, r.d_x));
    V::storeu(grad_y + wo, V::mul(sum_y, r.d_y));
  }

  // Masked::corners_row, interior vectors taken the short way: every corner inside the band
  // (bits 15) or, in the lanes out of reach, none (bits 0), the same base and weights. A band
  // of part of an image (N < threads) too, its interior and reach limited to the band's rows
  // (RowConstants::band_rows): measured on the AMD Zen 4 (AVX2, 2 threads, A/B in alternating
  // calls) against masked corners for every vector of such a band, 0.81-0.91x the backward
  // time of one 3 x 1024 x 1024 image, 0.93x of 3 x 512 x 512, 0.97x for grid_sample's
  // backward, whose bands compute every vector of every row.
  static void corners_row(const AffineRow& row, int64_t row_begin, int64_t row_end, const RowCorners& out) {
    RowConstants r(row);
    if (row_begin != 0 || row_end != row.in_height) r.band_rows(row_begin, row_end);
    for (int64_t wo = 0; wo < row.out_width; wo += V::kLanes) {
      Interior k;
      if (!interior(r, row, wo, &k)) {
        const M tail = V::first(row.out_width - wo);
        Masked::store_corners(masked_corners(row, r, k, tail, row_begin, row_end), wo, tail, out);
        continue;
      }
      interior_corners(k, wo, out);
    }
  }

  // The corners of the interior vector from wo: every one inside (bits 15), none in the lanes
  // out of reach (bits 0).
  static void interior_corners(const Interior& k, int64_t wo, const RowCorners& out) {
    interior_cells(k, wo, out);
    for (int c = 0; c < 4; ++c) V::store(out.weight[c] + wo, k.weight[c], k.lanes);
  }

  // interior_corners with, in place of the weights, the weights times the `count` lanes of
  // grad_output g (one channel) in out.products (RowCorners::products).
  static void interior_corner_products(const Interior& k, int64_t wo, int64_t count, F g, const RowCorners& out) {
    interior_cells(k, wo, out);
    Masked::store_products(k.weight, g, count, out.products + 4 * wo);
  }

  // RowCorners' base and inside of the interior vector from wo.
  static void interior_cells(const Interior& k, int64_t wo, const RowCorners& out) {
    V::store_int(out.base + wo, V::load_int(k.north_west), k.lanes);
    V::store_int(out.inside + wo, V::bit_if(k.inside, 15), k.lanes);
  }

  // grid_grad of the vector of pixels from wo with the masked corners m, `tail` its lanes
  // within the row.
  static void grid_grad_at_corners(const AffineRow& row, const typename Masked::Corners& m, M tail,
                                   ConstPlanes input, const float* grad_output, int64_t out_plane, float* grad_x,
                                   float* grad_y, int64_t wo, const RowCorners* corners) {
    if (corners != nullptr && corners->products != nullptr) {  // one channel (RowCorners::products)
      Masked::store_corner_products(m, wo, tail, row.out_width - wo, V::load(grad_output + wo, tail), *corners);
    } else if (corners != nullptr) {
      Masked::store_corners(m, wo, tail, *corners);
    }
    CornerFetch<V> fetch;
    fetch.prepare(m, row);
    F weight_dx[4], weight_dy[4];
    Masked::weight_slopes(m.tx, m.ty, weight_dx, weight_dy);
    F sum_x = V::zero(), sum_y = V::zero();
    for (int64_t channel = 0; channel < input.channels; ++channel) {
      F corner[4];
      fetch.values(input.data + channel * input.plane, corner);
      const F g = V::load(grad_output + channel * out_plane + wo, tail);
      for (int c = 0; c < 4; ++c) {
        // in * g, exactly 0 for a skipped corner even where g is Inf or NaN.
        const F product = V::zero_unless(m.inside[c], V::mul(corner[c], g));
        sum_x = V::add(sum_x, V::mul(weight_dx[c], product));
        sum_y = V::add(sum_y, V::mul(weight_dy[c], product));
      }
    }
    V::store(grad_x + wo, V::mul(sum_x, m.dx_dgrid), tail);
    V::store(grad_y + wo, V::mul(sum_y, m.dy_dgrid), tail);
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
