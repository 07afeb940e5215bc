// PairSplit for AVX-512 (interior_row_kernels.h PairLoads): the 8-byte pairs of 16 lanes
// read by two 64-bit gathers, then split into two vectors by two permutes.
//
// Why gathers here and not in the AVX2 kernels: assembling 16 pairs from 8-byte loads takes
// about 14 shuffle-port operations per row of corners (a merge per two pairs, an insert per
// four), the kernels' bottleneck; a gather of 8 pairs takes its loads and hardly any shuffles.
// Measured on an Intel Xeon (AVX-512, 2 threads), against the loads: forward 0.77x the time
// (seed, cluttered MNIST) to 0.87-0.89x (deep maps, one large image), backward 0.89-0.98x.
// A gather of 32-bit elements, twice the loads for the same corners, was 0-25% slower than
// the loads. AMD Zen 3's AVX2 gathers are slow (pair_loads_avx2.h), and on AMD Zen 4 these
// kernels lose to the AVX2 ones, which the dispatch prefers there (simd_dispatch.cpp); 16
// lanes assembled from 8-byte loads as the AVX2 split does beat these gathers there (0.75x
// the seed's forward time) but not the AVX2 kernels.
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
    // Pair p = (at[offset[p]], at[offset[p] + 1]) is one double's bits: lanes 0-7's pairs
    // in a, lanes 8-15's in b, each pair's first float in the even position.
    const __m512i index = _mm512_loadu_si512(offset);
    const __m512 a = _mm512_castpd_ps(_mm512_i32gather_pd(_mm512_castsi512_si256(index), at, sizeof(float)));
    const __m512 b = _mm512_castpd_ps(_mm512_i32gather_pd(_mm512_extracti64x4_epi64(index, 1), at, sizeof(float)));
    // Even floats of a then of b, and the odd ones: lanes 0..15 in order.
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    first = _mm512_permutex2var_ps(a, even, b);
    second = _mm512_permutex2var_ps(a, odd, b);
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
