// PairLoads for AVX-512 (interior_row_kernels.h): as pair_loads_avx2.h, 16 lanes. A pixel's
// NW and NE corners are neighbours in memory, and so are its SW and SE corners, so for
// interior pixels each pair is read with one 8-byte load and the pairs are split into corner
// vectors with in-lane shuffles.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "interior_row_kernels.h"
#include "vec_avx512.h"

namespace stn {
namespace cpu {
namespace simd {

template <>
struct PairLoads<Avx512> {
  // NW, NE, SW, SE of the 16 lanes whose NW corners sit at plane + north_west[lane]; the
  // south corners are one image row (`width` floats) further.
  static void corners(const float* plane, const int32_t* north_west, int32_t width, __m512 corner[4]) {
    split_pairs(plane, north_west, corner[0], corner[1]);
    split_pairs(plane + width, north_west, corner[2], corner[3]);
  }

  // The pairs (at[offset[p]], at[offset[p] + 1]) of the 16 lanes p, as a vector of the first
  // elements and a vector of the second ones, lanes in order.
  static void split_pairs(const float* at, const int32_t* offset, __m512& first, __m512& second) {
    // 128-bit block q of a holds the pairs of lanes 4q, 4q + 1 and that of b those of lanes
    // 4q + 2, 4q + 3, so that one in-block shuffle of a and b puts the lanes back in order.
    const __m512 a = four_blocks(at, offset, 0);
    const __m512 b = four_blocks(at, offset, 2);
    first = _mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    second = _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  }

  // Blocks q = 0..3: the pairs of lanes 4q + lane, 4q + lane + 1.
  static __m512 four_blocks(const float* at, const int32_t* offset, int lane) {
    __m512 v = _mm512_castps128_ps512(two_pairs(at, offset[lane], offset[lane + 1]));
    v = _mm512_insertf32x4(v, two_pairs(at, offset[lane + 4], offset[lane + 5]), 1);
    v = _mm512_insertf32x4(v, two_pairs(at, offset[lane + 8], offset[lane + 9]), 2);
    return _mm512_insertf32x4(v, two_pairs(at, offset[lane + 12], offset[lane + 13]), 3);
  }

  // (at[i], at[i + 1], at[j], at[j + 1]).
  static __m128 two_pairs(const float* at, int32_t i, int32_t j) {
    const __m128 low = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(at + i)));
    return _mm_loadh_pi(low, reinterpret_cast<const __m64*>(at + j));
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
