// The AVX2 row kernels. Compiled with -mavx2 -ffp-contract=off (CMakeLists.txt) and called
// only when the CPU has AVX2 (simd_dispatch.cpp).
#include "channels_last_avx2.h"
#include "clamped_pairs_avx2.h"
#include "interior_row_kernels.h"
#include "pair_loads_avx2.h"
#include "theta_partials_avx2.h"
#include "vec_avx2.h"

namespace stn {
namespace cpu {
namespace simd {

const RowKernels* avx2_kernels() {
  using Kernels = InteriorRowKernels<Avx2>;
  static const RowKernels kernels{"AVX2", &Kernels::forward, &Kernels::grid_grad, &Kernels::corners_row,
                                  &ChannelsLastAvx2::to_channels_last, &ChannelsLastAvx2::forward, true,
                                  &ThetaPartialsAvx2::rows};
  return &kernels;
}

}  // namespace simd
}  // namespace cpu
}  // namespace stn
