// PairSplit for AVX2 (interior_row_kernels.h PairLoads): the 8-byte pairs of 8 lanes split
// into two vectors with in-lane shuffles. An AVX2 gather costs 12-17 cycles for 8 elements
// on the CPUs measured (AMD Zen 3), and the kernel needs four per vector; the pair loads and
// shuffles cost about a third of that. Two 64-bit gathers of four pairs each, split by the same
// two shuffles, took 1.4x the pair loads' forward time on an AMD Zen 4.
#pragma once

#include "interior_row_kernels.h"
#include "vec_avx2.h"

namespace stn {
namespace cpu {
namespace simd {

template <>
struct PairSplit<Avx2> {
  static void split(const float* at, const int32_t* offset, __m256& first, __m256& second) {
    // a holds the pairs of lanes 0, 1 | 4, 5 and b those of lanes 2, 3 | 6, 7, so that one
    // in-lane shuffle of a and b puts the lanes back in order 0..7.
    const __m256 a = _mm256_insertf128_ps(_mm256_castps128_ps256(two_pairs<Avx2>(at, offset[0], offset[1])),
                                          two_pairs<Avx2>(at, offset[4], offset[5]), 1);
    const __m256 b = _mm256_insertf128_ps(_mm256_castps128_ps256(two_pairs<Avx2>(at, offset[2], offset[3])),
                                          two_pairs<Avx2>(at, offset[6], offset[7]), 1);
    first = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    second = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
