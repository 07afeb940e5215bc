// The AVX-512 forward for images of many channels, from a channels-last copy of the image,
// and the 16 x 16 transpose it shares with the AVX-512 scatter. Included only by
// affine_rows_avx512.cpp.
//
// As channels_last_avx2.h, 16 channels and 16 pixels at a time: with the image laid out
// (H, W, c16), c16 = C rounded up to 16 (the AVX2 level's to_channels_last writes it), a
// corner of one pixel in 16 channels is one plain load, so 16 pixels in 16 channels cost 64
// loads, 64 weight broadcasts and one 16 x 16 transpose back to pixels as lanes; the
// AVX2 kernel took twice the instructions per sample.
//
// Exactness: each lane of acc[p] is one channel of pixel p, computed as weighted_sum computes
// it (((0 + w0 * NW) + w1 * NE) + w2 * SW) + w3 * SE, from the same taps (Interior, or the
// masked path's Corners with a corner outside the image reading 0), and a lane out of reach
// gives +0 (keep_inside), so the results are the generic bodies' bits.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "interior_row_kernels.h"
#include "vec_avx512.h"

namespace stn {
namespace cpu {
namespace simd {

// Element j of rows[i] to element i of columns[j], for 16 rows of 16 floats.
inline void transpose16x16(const __m512 rows[16], __m512 columns[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {  // 128-bit block q: rows i, i + 1 at columns 4q .. 4q + 3
    t[i] = _mm512_unpacklo_ps(rows[i], rows[i + 1]);      // 4q, 4q + 1
    t[i + 1] = _mm512_unpackhi_ps(rows[i], rows[i + 1]);  // 4q + 2, 4q + 3
  }
  for (int i = 0; i < 16; i += 4) {  // u[i + j], block q: column 4q + j of rows i .. i + 3
    u[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int j = 0; j < 4; ++j) {  // column 4q + j: block q of u[j], u[4 + j], u[8 + j], u[12 + j]
    const __m512 blocks02_top = _mm512_shuffle_f32x4(u[j], u[4 + j], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 blocks13_top = _mm512_shuffle_f32x4(u[j], u[4 + j], _MM_SHUFFLE(3, 1, 3, 1));
    const __m512 blocks02_low = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 blocks13_low = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], _MM_SHUFFLE(3, 1, 3, 1));
    columns[j] = _mm512_shuffle_f32x4(blocks02_top, blocks02_low, _MM_SHUFFLE(2, 0, 2, 0));
    columns[4 + j] = _mm512_shuffle_f32x4(blocks13_top, blocks13_low, _MM_SHUFFLE(2, 0, 2, 0));
    columns[8 + j] = _mm512_shuffle_f32x4(blocks02_top, blocks02_low, _MM_SHUFFLE(3, 1, 3, 1));
    columns[12 + j] = _mm512_shuffle_f32x4(blocks13_top, blocks13_low, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

struct ChannelsLastAvx512 {
  using Kernels = InteriorRowKernels<Avx512>;
  static constexpr int kBlock = 16;  // channels per vector, and pixels

  // The weighted sum of 4 corners of pixel p in 16 channels, as weighted_sum adds; weight[c][p]
  // is corner c's weight of pixel p.
  static __m512 weighted_sum(const float (*weight)[16], int p, const __m512 corner[4]) {
    __m512 value = _mm512_setzero_ps();
    for (int c = 0; c < 4; ++c) value = _mm512_add_ps(value, _mm512_mul_ps(_mm512_set1_ps(weight[c][p]), corner[c]));
    return value;
  }

  // Kernels::forward_masked from the copy: the vector of pixels from wo, pixel by pixel, a
  // corner outside the image reading 0 as the gathers of the masked path do.
  static void forward_masked(const AffineRow& row, const float* image, int64_t c16, int64_t channels, float* output,
                             int64_t out_plane, int64_t wo) {
    const __mmask16 tail = Avx512::first(row.out_width - wo);
    const Corners<Avx512> m = Kernels::Masked::corners(row, wo, tail, 0, row.in_height);
    alignas(64) int32_t base[16];
    alignas(64) float weight[4][16];
    _mm512_store_si512(base, m.base);
    for (int c = 0; c < 4; ++c) _mm512_store_ps(weight[c], m.weight[c]);
    const int64_t shift[4] = {0, c16, row.in_width * c16, (row.in_width + 1) * c16};
    for (int64_t block = 0; block < c16; block += kBlock) {
      __m512 acc[16];
      for (int p = 0; p < 16; ++p) {
        // The north-west corner may lie outside the image (offset -1 at the top left): only
        // the corners inside it form an address.
        const int64_t north_west = int64_t(base[p]) * c16 + block;
        __m512 corner[4];
        for (int c = 0; c < 4; ++c)
          corner[c] = (m.inside[c] >> p) & 1 ? _mm512_loadu_ps(image + (north_west + shift[c])) : _mm512_setzero_ps();
        acc[p] = weighted_sum(weight, p, corner);
      }
      __m512 columns[16];
      transpose16x16(acc, columns);
      const int64_t here = channels - block < kBlock ? channels - block : kBlock;
      for (int j = 0; j < here; ++j) Avx512::store(output + (block + j) * out_plane + wo, columns[j], tail);
    }
  }

  // Kernels::forward of the row, the interior vectors read from `image`, the (H, W, c16)
  // channels-last copy of `input`.
  static void forward(const AffineRow& row, const float* image, int64_t c16, ConstPlanes input, float* output,
                      int64_t out_plane) {
    const Kernels::RowConstants r(row);
    const int64_t south = row.in_width * c16;  // one input row down, in the copy
    Kernels::Interior k[Kernels::kChunkVectors];
    int64_t at[Kernels::kChunkVectors];
    for (int64_t first = 0; first < row.out_width; first += Kernels::kChunkVectors * Avx512::kLanes) {
      const int count = Kernels::interior_chunk(row, r, first, k, at, [&](int64_t wo) {
        forward_masked(row, image, c16, input.channels, output, out_plane, wo);
      });
      // Channel blocks outermost: each output plane is then written 16 vectors in a row.
      for (int64_t block = 0; block < c16; block += kBlock) {
        const int64_t here = input.channels - block < kBlock ? input.channels - block : kBlock;
        for (int v = 0; v < count; ++v) {
          // Corner c's weight of pixel p is weight[c][p], read from where interior_chunk
          // stored it (a lane loaded right after its vector's store would wait for the store).
          const float(*weight)[16] = reinterpret_cast<const float(*)[16]>(k[v].weight);
          __m512 acc[16];
          for (int p = 0; p < 16; ++p) {
            const float* at_nw = image + int64_t(k[v].north_west[p]) * c16 + block;
            const __m512 corner[4] = {_mm512_loadu_ps(at_nw), _mm512_loadu_ps(at_nw + c16),
                                      _mm512_loadu_ps(at_nw + south), _mm512_loadu_ps(at_nw + south + c16)};
            acc[p] = weighted_sum(weight, p, corner);
          }
          __m512 columns[16];
          transpose16x16(acc, columns);  // columns[j]: channel block + j of the 16 pixels
          for (int j = 0; j < here; ++j)
            Kernels::store_and_prefetch_below(output + (block + j) * out_plane + at[v],
                                              Kernels::keep_inside(k[v], columns[j]), k[v].lanes, r);
        }
      }
    }
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
