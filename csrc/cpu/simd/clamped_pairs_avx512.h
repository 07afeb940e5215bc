// CornerFetch for AVX-512: the masked path's corners (edges of the image, NaN lanes) read as
// neighbouring pairs, as clamped_pairs_avx2.h reads them for AVX2 (see there for why the
// values are the masked gathers' values, bit for bit), 16 lanes and k-register masks.
//
// Each lane reads the 2x2 block at a clamped cell, (pr, pc) = (clamp(r0, 0, H - 2),
// clamp(c0, 0, W - 2)), which always lies inside the image; blends move the corners that
// are inside into place, and every corner outside the image (or in a lane without taps) is
// set to +0. Images of one row or one column keep the gathers.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "affine_row_kernels.h"
#include "pair_loads_avx512.h"
#include "vec_avx512.h"

namespace stn {
namespace cpu {
namespace simd {

template <>
struct CornerFetch<Avx512> : CornerGather<Avx512> {
  bool pairs;  // the image has 2+ rows and 2+ columns
  int32_t width;
  __mmask16 east_from_west, west_from_east;      // lanes with c0 = -1 / c0 = W - 1
  __mmask16 south_from_north, north_from_south;  // lanes with r0 = -1 / r0 = H - 1
  alignas(64) int32_t cell[16];                  // pr * W + pc of each lane

  void prepare(const Corners<Avx512>& k, const AffineRow& row) {
    CornerGather<Avx512>::prepare(k, row);
    pairs = row.in_width >= 2 && row.in_height >= 2;
    if (!pairs) return;
    width = int32_t(row.in_width);
    // k.column and k.line are 0 in lanes without taps, and otherwise within the tap range
    // (-3 .. size + 2), so every clamp below lands inside the image.
    const __m512i column = _mm512_min_epi32(_mm512_max_epi32(k.column, _mm512_setzero_si512()),
                                            _mm512_set1_epi32(int32_t(row.in_width - 2)));
    const __m512i line = _mm512_min_epi32(_mm512_max_epi32(k.line, _mm512_setzero_si512()),
                                          _mm512_set1_epi32(int32_t(row.in_height - 2)));
    east_from_west = _mm512_cmpgt_epi32_mask(column, k.column);
    west_from_east = _mm512_cmpgt_epi32_mask(k.column, column);
    south_from_north = _mm512_cmpgt_epi32_mask(line, k.line);
    north_from_south = _mm512_cmpgt_epi32_mask(k.line, line);
    _mm512_store_si512(cell, Avx512::mul_add(line, width, column));
  }

  void values(const float* plane, __m512 corner[4]) const {
    if (!pairs) {
      CornerGather<Avx512>::values(plane, corner);
      return;
    }
    __m512 block[4];  // the clamped cell's NW, NE, SW, SE
    PairLoads<Avx512>::corners(plane, cell, width, block);
    // Columns first, then rows, as clamped_pairs_avx2.h.
    const __m512 north_west = _mm512_mask_blend_ps(west_from_east, block[0], block[1]);
    const __m512 north_east = _mm512_mask_blend_ps(east_from_west, block[1], block[0]);
    const __m512 south_west = _mm512_mask_blend_ps(west_from_east, block[2], block[3]);
    const __m512 south_east = _mm512_mask_blend_ps(east_from_west, block[3], block[2]);
    corner[0] = _mm512_maskz_mov_ps(inside[0], _mm512_mask_blend_ps(north_from_south, north_west, south_west));
    corner[1] = _mm512_maskz_mov_ps(inside[1], _mm512_mask_blend_ps(north_from_south, north_east, south_east));
    corner[2] = _mm512_maskz_mov_ps(inside[2], _mm512_mask_blend_ps(south_from_north, south_west, north_west));
    corner[3] = _mm512_maskz_mov_ps(inside[3], _mm512_mask_blend_ps(south_from_north, south_east, north_east));
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
