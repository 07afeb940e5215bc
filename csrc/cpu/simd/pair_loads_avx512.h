// PairSplit for AVX-512 (interior_row_kernels.h PairLoads): the 8-byte pairs of 16 lanes
// split into two vectors with in-block shuffles.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "interior_row_kernels.h"
#include "vec_avx512.h"

namespace stn {
namespace cpu {
namespace simd {

template <>
struct PairSplit<Avx512> {
  static void split(const float* at, const int32_t* offset, __m512& first, __m512& second) {
    // 128-bit block q of a holds the pairs of lanes 4q, 4q + 1 and that of b those of lanes
    // 4q + 2, 4q + 3, so that one in-block shuffle of a and b puts the lanes back in order.
    const __m512 a = four_blocks(at, offset, 0);
    const __m512 b = four_blocks(at, offset, 2);
    first = _mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    second = _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  }

  // Blocks q = 0..3: the pairs of lanes 4q + lane, 4q + lane + 1.
  static __m512 four_blocks(const float* at, const int32_t* offset, int lane) {
    __m512 v = _mm512_castps128_ps512(two_pairs<Avx512>(at, offset[lane], offset[lane + 1]));
    v = _mm512_insertf32x4(v, two_pairs<Avx512>(at, offset[lane + 4], offset[lane + 5]), 1);
    v = _mm512_insertf32x4(v, two_pairs<Avx512>(at, offset[lane + 8], offset[lane + 9]), 2);
    return _mm512_insertf32x4(v, two_pairs<Avx512>(at, offset[lane + 12], offset[lane + 13]), 3);
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
