// The AVX-512 row kernels. Compiled with -mavx512f -ffp-contract=off (CMakeLists.txt) and
// called only when the CPU has AVX-512F (simd_dispatch.cpp).
//
// The channels-last forward and the theta sums are the AVX2 level's (every AVX-512 CPU has
// AVX2), taken from its table at run time: including their headers here would compile a
// second, AVX-512 copy of the same inline functions, and the linker may keep either copy for
// both callers.
#include "../lane_scatter.h"
#include "clamped_pairs.h"
#include "interior_row_kernels.h"
#include "pair_loads_avx512.h"
#include "vec_avx512.h"

namespace stn {
namespace cpu {
namespace simd {

// The masked path reads clamped pairs (clamped_pairs.h).
template <>
struct CornerFetch<Avx512> : ClampedPairs<Avx512> {};

namespace {

// lane_scatter.h's transpose of 16 channels of 16 elements.
struct Transpose16 {
  static void run(const scatter::Lanes16 rows[16], scatter::Lanes16 columns[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {  // 128-bit block q: rows i, i + 1 at columns 4q .. 4q + 3
      t[i] = _mm512_unpacklo_ps(__m512(rows[i]), __m512(rows[i + 1]));      // 4q, 4q + 1
      t[i + 1] = _mm512_unpackhi_ps(__m512(rows[i]), __m512(rows[i + 1]));  // 4q + 2, 4q + 3
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
      columns[j] = scatter::Lanes16(_mm512_shuffle_f32x4(blocks02_top, blocks02_low, _MM_SHUFFLE(2, 0, 2, 0)));
      columns[4 + j] = scatter::Lanes16(_mm512_shuffle_f32x4(blocks13_top, blocks13_low, _MM_SHUFFLE(2, 0, 2, 0)));
      columns[8 + j] = scatter::Lanes16(_mm512_shuffle_f32x4(blocks02_top, blocks02_low, _MM_SHUFFLE(3, 1, 3, 1)));
      columns[12 + j] = scatter::Lanes16(_mm512_shuffle_f32x4(blocks13_top, blocks13_low, _MM_SHUFFLE(3, 1, 3, 1)));
    }
  }
};

using Scatter16 = scatter::LaneKernels<scatter::Lanes16, Transpose16>;

}  // namespace

const RowKernels* avx512_kernels() {
  using Kernels = InteriorRowKernels<Avx512>;
  static const RowKernels kernels = [] {
    const RowKernels* avx2 = avx2_kernels();
    return RowKernels{"AVX-512", &Kernels::forward, &Kernels::grid_grad, &Kernels::corners_row,
                      avx2->to_channels_last, avx2->forward_channels_last, true, avx2->theta_partials,
                      LaneScatter{Scatter16::L, &Scatter16::scatter, &Scatter16::to_planes},
                      &Kernels::Masked::grid_points,
                      &Kernels::grid_grad_corners};
  }();
  return &kernels;
}

}  // namespace simd
}  // namespace cpu
}  // namespace stn
