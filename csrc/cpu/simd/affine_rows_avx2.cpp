// The AVX2 row kernels. Compiled with -mavx2 -ffp-contract=off (CMakeLists.txt) and called
// only when the CPU has AVX2 (simd_dispatch.cpp).
#include "../lane_scatter.h"
#include "channels_last.h"
#include "channels_last_avx2.h"
#include "clamped_pairs.h"
#include "interior_row_kernels.h"
#include "pair_loads_avx2.h"
#include "theta_partials_avx2.h"
#include "vec_avx2.h"

namespace stn {
namespace cpu {
namespace simd {

// The masked path reads clamped pairs (clamped_pairs.h).
template <>
struct CornerFetch<Avx2> : ClampedPairs<Avx2> {};

using Scatter8 = scatter::LaneKernels<scatter::Lanes8, scatter::LevelTranspose<Avx2, scatter::Lanes8>>;

const RowKernels* avx2_kernels() {
  using Kernels = InteriorRowKernels<Avx2>;
  static const RowKernels kernels{"AVX2",
                                  &Kernels::forward,
                                  &Kernels::grid_grad,
                                  &Kernels::corners_row,
                                  &ChannelsLastAvx2::to_channels_last,
                                  &ChannelsLast<Avx2>::forward,
                                  ChannelsLast<Avx2>::kBlock,
                                  true,
                                  &ThetaPartialsAvx2::rows,
                                  {Scatter8::L, &Scatter8::scatter, &Scatter8::to_planes},
                                  &Kernels::Masked::grid_points,
                                  &Kernels::grid_grad_corners};
  return &kernels;
}

}  // namespace simd
}  // namespace cpu
}  // namespace stn
