// The channels-last copy of an image for the forward of channels_last.h: (C, H * W) planes
// to (H * W, cL) pixels with AVX2 8 x 8 transposes. The AVX-512 level takes it from the AVX2
// level's table (every AVX-512 CPU has AVX2), with cL a multiple of 16.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "affine_rows.h"
#include "vec_avx2.h"

namespace stn {
namespace cpu {
namespace simd {

struct ChannelsLastAvx2 {
  static constexpr int kBlock = 8;  // channels per transpose

  // (C, H * W) planes -> (H * W, c8) pixels; channels C..c8 of each pixel are zero. A tile of
  // pixels at a time (32 KiB of the copy, which stays in cache), its channels 8 at a time:
  // reading 8 planes at once, not all of them, whose lines at the same offset would compete
  // for the same cache sets.
  static void to_channels_last(ConstPlanes input, int64_t pixels, float* out, int64_t c8) {
    const int64_t whole = pixels / kBlock * kBlock;
    const int64_t tile = (8192 / c8 + kBlock - 1) / kBlock * kBlock;
    for (int64_t first = 0; first < whole; first += tile) {
      const int64_t end = first + tile < whole ? first + tile : whole;
      for (int64_t block = 0; block < c8; block += kBlock) {
        const int64_t here = input.channels - block < kBlock ? input.channels - block : kBlock;
        const float* planes = here > 0 ? input.data + block * input.plane : input.data;  // (unread past C)
        for (int64_t p = first; p < end; p += kBlock) {
          __m256 v[8];
          for (int j = 0; j < kBlock; ++j)
            v[j] = j < here ? _mm256_loadu_ps(planes + j * input.plane + p) : _mm256_setzero_ps();
          Avx2::transpose(v);
          for (int i = 0; i < kBlock; ++i) _mm256_storeu_ps(out + (p + i) * c8 + block, v[i]);
        }
      }
    }
    for (int64_t p = whole; p < pixels; ++p)
      for (int64_t channel = 0; channel < c8; ++channel)
        out[p * c8 + channel] = channel < input.channels ? input.data[channel * input.plane + p] : 0.0f;
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
