// The forward for images of many channels, from a channels-last copy of the image: the AVX2
// and AVX-512 kernels (V = Avx2, Avx512), each instantiated only in its own translation unit.
//
// InteriorRowKernels reads each channel's corners for L pixels at a time (L = V::kLanes, 8 or
// 16), whatever the channel count. With the image laid out channels last, (H, W, cL) with cL
// = C rounded up to L (channels_last_avx2.h writes it), a corner of one pixel in L channels
// is one plain load, so L pixels in L channels cost 4L loads, 4L weight broadcasts and one
// L x L transpose back to pixels as lanes. Measured on AMD Zen 3 with the image in cache, L =
// 8: 1.2-1.5x (16-64 channels) to 1.9x (8 channels) fewer cycles per sample than the
// plane-by-plane kernel, the copy included; on an Intel Xeon, L = 16 took 0.86x the L = 8
// kernel's time on 32-channel maps.
//
// Exactness: each lane of acc[p] is one channel of pixel p, computed as weighted_sum computes
// it (((0 + w0 * NW) + w1 * NE) + w2 * SW) + w3 * SE, from the same taps (Interior, or the
// masked path's Corners with a corner outside the image reading 0), and a lane out of reach
// gives +0 (keep_inside), so the results are the generic bodies' bits.
#pragma once

#include <cstdint>

#include "interior_row_kernels.h"

namespace stn {
namespace cpu {
namespace simd {

template <class V>
struct ChannelsLast {
  using Kernels = InteriorRowKernels<V>;
  using F = typename V::F;
  static constexpr int kBlock = V::kLanes;  // channels per vector, and pixels per block

  // The weighted sum of 4 corners of pixel p in kBlock channels, as weighted_sum adds;
  // weight[c][p] is corner c's weight of pixel p.
  static F weighted_sum(const float (*weight)[kBlock], int p, const F corner[4]) {
    F value = V::zero();
    for (int c = 0; c < 4; ++c) value = V::add(value, V::mul(V::set(weight[c][p]), corner[c]));
    return value;
  }

  // Kernels' masked forward from the copy: the vector of pixels from wo, whose interior test
  // failed (coordinates in `failed`), pixel by pixel, a corner outside the image reading 0 as
  // the gathers of the masked path do.
  static void forward_masked(const AffineRow& row, const typename Kernels::RowConstants& r,
                             const typename Kernels::Interior& failed, const float* image, int64_t cl,
                             int64_t channels, float* output, int64_t out_plane, int64_t wo) {
    const typename V::M tail = V::first(row.out_width - wo);
    const Corners<V> m = Kernels::masked_corners(row, r, failed, tail, 0, row.in_height);
    alignas(64) int32_t base[kBlock];
    alignas(64) float weight[4][kBlock];
    int inside[4];  // bit p: the corner of pixel p lies inside the image
    V::store_int(base, m.base, V::first(kBlock));
    for (int c = 0; c < 4; ++c) {
      inside[c] = V::bits(m.inside[c]);
      V::store(weight[c], m.weight[c], V::first(kBlock));
    }
    const int64_t shift[4] = {0, cl, row.in_width * cl, (row.in_width + 1) * cl};
    for (int64_t block = 0; block < cl; block += kBlock) {
      F acc[kBlock];
      for (int p = 0; p < kBlock; ++p) {
        // The north-west corner may lie outside the image (offset -1 at the top left): only
        // the corners inside it form an address.
        const int64_t north_west = int64_t(base[p]) * cl + block;
        F corner[4];
        for (int c = 0; c < 4; ++c)
          corner[c] = (inside[c] >> p) & 1 ? V::loadu(image + (north_west + shift[c])) : V::zero();
        acc[p] = weighted_sum(weight, p, corner);
      }
      V::transpose(acc);  // acc[j]: channel block + j of the pixels
      const int64_t here = channels - block < kBlock ? channels - block : kBlock;
      for (int j = 0; j < here; ++j) V::store(output + (block + j) * out_plane + wo, acc[j], tail);
    }
  }

  // Kernels::forward of the row, the interior vectors read from `image`, the (H, W, cl)
  // channels-last copy of `input`.
  static void forward(const AffineRow& row, const float* image, int64_t cl, ConstPlanes input, float* output,
                      int64_t out_plane) {
    const typename Kernels::RowConstants r(row);
    const int64_t south = row.in_width * cl;  // one input row down, in the copy
    typename Kernels::Interior k[Kernels::kChunkVectors];
    int64_t at[Kernels::kChunkVectors];
    for (int64_t first = 0; first < row.out_width; first += Kernels::kChunkVectors * V::kLanes) {
      const int count = Kernels::interior_chunk(row, r, first, k, at, [&](int64_t wo, const auto& failed) {
        forward_masked(row, r, failed, image, cl, input.channels, output, out_plane, wo);
      });
      // Channel blocks outermost: each output plane is then written 16 vectors in a row.
      for (int64_t block = 0; block < cl; block += kBlock) {
        const int64_t here = input.channels - block < kBlock ? input.channels - block : kBlock;
        for (int v = 0; v < count; ++v) {
          // Corner c's weight of pixel p is weight[c][p], read from where interior_chunk
          // stored it a while ago (a lane loaded right after its vector's store would wait
          // for the store to complete).
          const float(*weight)[kBlock] = reinterpret_cast<const float(*)[kBlock]>(k[v].weight);
          F acc[kBlock];
          for (int p = 0; p < kBlock; ++p) {
            const float* at_nw = image + int64_t(k[v].north_west[p]) * cl + block;
            const F corner[4] = {V::loadu(at_nw), V::loadu(at_nw + cl), V::loadu(at_nw + south),
                                 V::loadu(at_nw + south + cl)};
            acc[p] = weighted_sum(weight, p, corner);
          }
          V::transpose(acc);  // acc[j]: channel block + j of the pixels
          for (int j = 0; j < here; ++j)
            Kernels::store_and_prefetch_below(output + (block + j) * out_plane + at[v],
                                              Kernels::keep_inside(k[v], acc[j]), k[v].lanes, r);
        }
      }
    }
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
