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

using Scatter16 = scatter::LaneKernels<scatter::Lanes16, scatter::LevelTranspose<Avx512, scatter::Lanes16>>;

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
