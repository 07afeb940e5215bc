// The AVX-512 row kernels. Compiled with -mavx512f -ffp-contract=off (CMakeLists.txt) and
// called only when the CPU has AVX-512F (simd_dispatch.cpp).
//
// The channels-last copy and the theta sums are the AVX2 level's (every AVX-512 CPU has
// AVX2), taken from its table at run time: including their headers here would compile a
// second, AVX-512 copy of the same inline functions, and the linker may keep either copy for
// both callers.
#include "../lane_scatter.h"
#include "channels_last.h"
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
    __m512 block[16];
    for (int i = 0; i < 16; ++i) block[i] = __m512(rows[i]);
    Avx512::transpose(block);
    for (int i = 0; i < 16; ++i) columns[i] = scatter::Lanes16(block[i]);
  }
};

using Scatter16 = scatter::LaneKernels<scatter::Lanes16, Transpose16>;

}  // namespace

const RowKernels* avx512_kernels() {
  using Kernels = InteriorRowKernels<Avx512>;
  static const RowKernels kernels = [] {
    const RowKernels* avx2 = avx2_kernels();
    return RowKernels{"AVX-512", &Kernels::forward, &Kernels::grid_grad, &Kernels::corners_row,
                      avx2->to_channels_last, &ChannelsLast<Avx512>::forward, ChannelsLast<Avx512>::kBlock, true,
                      avx2->theta_partials,
                      LaneScatter{Scatter16::L, &Scatter16::scatter, &Scatter16::to_planes},
                      &Kernels::Masked::grid_points,
                      &Kernels::grid_grad_corners};
  }();
  return &kernels;
}

}  // namespace simd
}  // namespace cpu
}  // namespace stn
