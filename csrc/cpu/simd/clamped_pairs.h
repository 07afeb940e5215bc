// CornerFetch for the levels with PairLoads (pair_loads_avx2.h, pair_loads_avx512.h): the
// masked path's corners (edges of the image, NaN lanes) read as neighbouring pairs, like the
// interior ones, instead of four gathers (12-17 cycles each for 8 lanes on the AMD Zen 3
// measured).
//
// Each lane reads the 2x2 block at a clamped cell, (pr, pc) = (clamp(r0, 0, H - 2),
// clamp(c0, 0, W - 2)), which always lies inside the image. Where the cell was clamped by
// one, the block still holds the corners that are inside: c0 = -1 has its NE corner in the
// block's west column, c0 = W - 1 its NW corner in the east column, and likewise for rows;
// a blend moves them into place. Every corner outside the image (or in a lane without taps)
// is then set to +0, as the masked gather gives. So the values are the gathers' values, bit
// for bit. Images of one row or one column keep the gathers.
//
// Include after the level's PairLoads; a level opts in with
//   template <> struct CornerFetch<V> : ClampedPairs<V> {};
#pragma once

#include <cstdint>

#include "affine_row_kernels.h"
#include "interior_row_kernels.h"

namespace stn {
namespace cpu {
namespace simd {

template <class V>
struct ClampedPairs : CornerGather<V> {
  using F = typename V::F;
  using I = typename V::I;
  using M = typename V::M;

  bool pairs;  // the image has 2+ rows and 2+ columns
  int32_t width;
  M east_from_west, west_from_east;      // lanes with c0 = -1 / c0 = W - 1
  M south_from_north, north_from_south;  // lanes with r0 = -1 / r0 = H - 1
  alignas(64) int32_t cell[16];          // pr * W + pc of each lane

  void prepare(const Corners<V>& k, const AffineRow& row) {
    CornerGather<V>::prepare(k, row);
    pairs = row.in_width >= 2 && row.in_height >= 2;
    if (!pairs) return;
    width = int32_t(row.in_width);
    // k.column and k.line are 0 in lanes without taps, and otherwise within the tap range
    // (-3 .. size + 2), so every clamp below lands inside the image.
    const I column = V::clamp_int(k.column, 0, int32_t(row.in_width - 2));
    const I line = V::clamp_int(k.line, 0, int32_t(row.in_height - 2));
    east_from_west = V::gt_int(column, k.column);
    west_from_east = V::gt_int(k.column, column);
    south_from_north = V::gt_int(line, k.line);
    north_from_south = V::gt_int(k.line, line);
    V::store_int(cell, V::mul_add(line, width, column), V::first(V::kLanes));
  }

  void values(const float* plane, F corner[4]) const {
    if (!pairs) {
      CornerGather<V>::values(plane, corner);
      return;
    }
    F block[4];  // the clamped cell's NW, NE, SW, SE
    PairLoads<V>::corners(plane, cell, width, block);
    // Columns first, then rows: see the top of this file.
    const F north_west = V::select(west_from_east, block[1], block[0]);
    const F north_east = V::select(east_from_west, block[0], block[1]);
    const F south_west = V::select(west_from_east, block[3], block[2]);
    const F south_east = V::select(east_from_west, block[2], block[3]);
    corner[0] = V::select(north_from_south, south_west, north_west);
    corner[1] = V::select(north_from_south, south_east, north_east);
    corner[2] = V::select(south_from_north, north_west, south_west);
    corner[3] = V::select(south_from_north, north_east, south_east);
    for (int c = 0; c < 4; ++c) corner[c] = V::zero_unless(this->inside[c], corner[c]);
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
