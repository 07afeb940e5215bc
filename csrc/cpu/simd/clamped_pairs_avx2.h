// CornerFetch for AVX2: the masked path's corners (edges of the image, NaN lanes) read as
// neighbouring pairs, like the interior ones, instead of four gathers (12-17 cycles each on
// the AMD Zen 3 measured).
//
// Each lane reads the 2x2 block at a clamped cell, (pr, pc) = (clamp(r0, 0, H - 2),
// clamp(c0, 0, W - 2)), which always lies inside the image. Where the cell was clamped by
// one, the block still holds the corners that are inside: c0 = -1 has its NE corner in the
// block's west column, c0 = W - 1 its NW corner in the east column, and likewise for rows;
// a blend moves them into place. Every corner outside the image (or in a lane without taps)
// is then set to +0, as the masked gather gives. So the values are the gathers' values, bit
// for bit. Images of one row or one column keep the gathers.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "affine_row_kernels.h"
#include "pair_loads_avx2.h"
#include "vec_avx2.h"

namespace stn {
namespace cpu {
namespace simd {

template <>
struct CornerFetch<Avx2> : CornerGather<Avx2> {
  bool pairs;                           // the image has 2+ rows and 2+ columns
  int32_t width;
  __m256 east_from_west, west_from_east;    // lanes with c0 = -1 / c0 = W - 1
  __m256 south_from_north, north_from_south;  // lanes with r0 = -1 / r0 = H - 1
  alignas(32) int32_t cell[8];          // pr * W + pc of each lane

  void prepare(const Corners<Avx2>& k, const AffineRow& row) {
    CornerGather<Avx2>::prepare(k, row);
    pairs = row.in_width >= 2 && row.in_height >= 2;
    if (!pairs) return;
    width = int32_t(row.in_width);
    // k.column and k.line are 0 in lanes without taps, and otherwise within the tap range
    // (-3 .. size + 2), so every clamp below lands inside the image.
    const __m256i column = _mm256_min_epi32(_mm256_max_epi32(k.column, _mm256_setzero_si256()),
                                            _mm256_set1_epi32(int32_t(row.in_width - 2)));
    const __m256i line = _mm256_min_epi32(_mm256_max_epi32(k.line, _mm256_setzero_si256()),
                                          _mm256_set1_epi32(int32_t(row.in_height - 2)));
    east_from_west = _mm256_castsi256_ps(_mm256_cmpgt_epi32(column, k.column));
    west_from_east = _mm256_castsi256_ps(_mm256_cmpgt_epi32(k.column, column));
    south_from_north = _mm256_castsi256_ps(_mm256_cmpgt_epi32(line, k.line));
    north_from_south = _mm256_castsi256_ps(_mm256_cmpgt_epi32(k.line, line));
    Avx2::store_int(cell, Avx2::mul_add(line, width, column), Avx2::first(8));
  }

  void values(const float* plane, __m256 corner[4]) const {
    if (!pairs) {
      CornerGather<Avx2>::values(plane, corner);
      return;
    }
    __m256 block[4];  // the clamped cell's NW, NE, SW, SE
    PairLoads<Avx2>::corners(plane, cell, width, block);
    // Columns first, then rows: see the top of this file.
    __m256 north_west = _mm256_blendv_ps(block[0], block[1], west_from_east);
    __m256 north_east = _mm256_blendv_ps(block[1], block[0], east_from_west);
    __m256 south_west = _mm256_blendv_ps(block[2], block[3], west_from_east);
    __m256 south_east = _mm256_blendv_ps(block[3], block[2], east_from_west);
    corner[0] = _mm256_blendv_ps(north_west, south_west, north_from_south);
    corner[1] = _mm256_blendv_ps(north_east, south_east, north_from_south);
    corner[2] = _mm256_blendv_ps(south_west, north_west, south_from_north);
    corner[3] = _mm256_blendv_ps(south_east, north_east, south_from_north);
    for (int c = 0; c < 4; ++c) corner[c] = _mm256_and_ps(corner[c], inside[c]);
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
