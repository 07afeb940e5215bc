// The AVX-512 row kernels. Compiled with -mavx512f -ffp-contract=off (CMakeLists.txt) and
// called only when the CPU has AVX-512F (simd_dispatch.cpp).
#include "affine_row_kernels.h"
#include "vec_avx512.h"
#include "window_fetch_avx512.h"

namespace stn {
namespace cpu {
namespace simd {

const RowKernels* avx512_kernels() { return AffineRowKernels<Avx512>::table("AVX-512"); }

}  // namespace simd
}  // namespace cpu
}  // namespace stn
