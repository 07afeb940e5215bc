// The AVX2 row kernels. Compiled with -mavx2 -ffp-contract=off (CMakeLists.txt) and called
// only when the CPU has AVX2 (simd_dispatch.cpp).
#include "interior_row_kernels.h"
#include "pair_loads_avx2.h"
#include "vec_avx2.h"

namespace stn {
namespace cpu {
namespace simd {

const RowKernels* avx2_kernels() { return InteriorRowKernels<Avx2>::table("AVX2"); }

}  // namespace simd
}  // namespace cpu
}  // namespace stn
