// The AVX-512 row kernels. Compiled with -mavx512f -ffp-contract=off (CMakeLists.txt) and
// called only when the CPU has AVX-512F (simd_dispatch.cpp).
//
// The channels-last forward and the theta sums are the AVX2 level's (every AVX-512 CPU has
// AVX2), taken from its table at run time: including their headers here would compile a
// second, AVX-512 copy of the same inline functions, and the linker may keep either copy for
// both callers.
#include "interior_row_kernels.h"
#include "pair_loads_avx512.h"
#include "vec_avx512.h"
#include "clamped_pairs_avx512.h"

namespace stn {
namespace cpu {
namespace simd {

const RowKernels* avx512_kernels() {
  using Kernels = InteriorRowKernels<Avx512>;
  static const RowKernels kernels = [] {
    const RowKernels* avx2 = avx2_kernels();
    return RowKernels{"AVX-512", &Kernels::forward, &Kernels::grid_grad, &Kernels::corners_row,
                      avx2->to_channels_last, avx2->forward_channels_last, true, avx2->theta_partials};
  }();
  return &kernels;
}

}  // namespace simd
}  // namespace cpu
}  // namespace stn
