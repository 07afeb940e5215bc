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

  // (C, H * W) planes -> (H * W, c8) pixels; channels C..c8 of each pixel are zero. Channels
  // 8 at a time, each block across every pixel: 8 planes read from start to end, streams the
  // hardware prefetchers follow, while the copy (at most 1 MiB, simd_paths.cpp) stays in L2.
  // Reading the block's planes 1 KiB at a time, a tile of 32 KiB of the copy for all blocks
  // in turn, took 1.01-1.18x the forward time (AMD Zen 4, 2 threads; 32 x 32 x 64 x 64: 1.13x).
  static void to_channels_last(ConstPlanes input, int64_t pixels, float* out, int64_t c8) {
    const int64_t whole = pixels / kBlock * kBlock;
    for (int64_t block = 0; block < c8; block += kBlock) {
      const int64_t here = input.channels - block < kBlock ? input.channels - block : kBlock;
      const float* planes = here > 0 ? input.data + block * input.plane : input.data;  // (unread past C)
      for (int64_t p = 0; p < whole; p += kBlock) {
        __m256 v[8];
        for (int j = 0; j < kBlock; ++j)
          v[j] = j < here ? _mm256_loadu_ps(planes + j * input.plane + p) : _mm256_setzero_ps();
        Avx2::transpose(v);
        for (int i = 0; i < kBlock; ++i) _mm256_storeu_ps(out + (p + i) * c8 + block, v[i]);
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
