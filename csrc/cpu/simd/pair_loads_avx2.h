// PairLoads for AVX2 (interior_row_kernels.h): a pixel's NW and NE corners are neighbours in
// memory, and so are its SW and SE corners, so for interior pixels (all four corners inside
// the image) each pair is read with one 8-byte load and the pairs are split into corner
// vectors with in-lane shuffles. An AVX2 gather costs 12-17 cycles for 8 elements on the
// CPUs measured (AMD Zen 3), and the kernel needs four per vector; the pair loads and
// shuffles cost about a third of that.
#pragma once

#include "interior_row_kernels.h"
#include "vec_avx2.h"

namespace stn {
namespace cpu {
namespace simd {

template <>
struct PairLoads<Avx2> {
  // NW, NE, SW, SE of the 8 lanes whose NW corners sit at plane + north_west[lane]; the
  // south corners are one image row (`width` floats) further.
  static void corners(const float* plane, const int32_t* north_west, int32_t width, __m256 corner[4]) {
    split_pairs(plane, north_west, corner[0], corner[1]);
    split_pairs(plane + width, north_west, corner[2], corner[3]);
  }

  // The pairs (at[offset[p]], at[offset[p] + 1]) of the 8 lanes p, as a vector of the first
  // elements and a vector of the second ones, lanes in order.
  static void split_pairs(const float* at, const int32_t* offset, __m256& first, __m256& second) {
    // a holds the pairs of lanes 0, 1 | 4, 5 and b those of lanes 2, 3 | 6, 7, so that one
    // in-lane shuffle of a and b puts the lanes back in order 0..7.
    const __m256 a = _mm256_insertf128_ps(_mm256_castps128_ps256(two_pairs(at, offset[0], offset[1])),
                                          two_pairs(at, offset[4], offset[5]), 1);
    const __m256 b = _mm256_insertf128_ps(_mm256_castps128_ps256(two_pairs(at, offset[2], offset[3])),
                                          two_pairs(at, offset[6], offset[7]), 1);
    first = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    second = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
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
