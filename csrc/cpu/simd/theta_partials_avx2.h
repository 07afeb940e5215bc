// ThetaPartialsFn (affine_rows.h) for AVX2: the theta gradient's six sums of four rows at a
// time, one row per lane of a vector of doubles. Each lane performs exactly the scalar
// operations of AffineRowKernels::theta_partials in the same order (products and sums in
// double, no FMA: this header compiles with -ffp-contract=off), so the sums are bit for bit
// the same; the four rows' dependent chains of additions advance together instead of one
// after another.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "affine_row_kernels.h"
#include "vec_avx2.h"

namespace stn {
namespace cpu {
namespace simd {

struct ThetaPartialsAvx2 {
  static constexpr int kRows = 4;

  static void rows(const float* grad_x, const float* grad_y, const float* x_base, const float* y_base,
                   int64_t width, int64_t rows, double* partials) {
    int64_t r = 0;
    for (; r + kRows <= rows; r += kRows)
      four_rows(grad_x + r * width, grad_y + r * width, x_base, y_base + r, width, partials + r * 6);
    AffineRowKernels<Avx2>::theta_partials(grad_x + r * width, grad_y + r * width, x_base, y_base + r, width,
                                           rows - r, partials + r * 6);
  }

  // Rows 0..3 of the arrays (row stride `width`); lane k of every vector is row k.
  static void four_rows(const float* grad_x, const float* grad_y, const float* x_base, const float* y_base,
                        int64_t width, double* partials) {
    const __m256d y = _mm256_cvtps_pd(_mm_loadu_ps(y_base));
    __m256d sum[6];
    for (int i = 0; i < 6; ++i) sum[i] = _mm256_setzero_pd();
    int64_t wo = 0;
    for (; wo + 4 <= width; wo += 4) {  // four columns: a 4x4 transpose turns rows into lanes
      // grad_x's four columns, then grad_y's: each sum still takes the columns in order, and
      // fewer registers are live (with both transposes live, sums went to the stack, and
      // their chains waited on store and reload). With store_rows: this function's perf
      // samples per cluttered-MNIST backward 0.83x (1.5% of the backward; Zen 4, 2 threads).
      __m128 g[4];
      columns(grad_x + wo, width, g);
      for (int j = 0; j < 4; ++j) add_column(sum, g[j], x_base[wo + j], y);
      columns(grad_y + wo, width, g);
      for (int j = 0; j < 4; ++j) add_column(sum + 3, g[j], x_base[wo + j], y);
    }
    for (; wo < width; ++wo) {
      const __m128 gx = _mm_setr_ps(grad_x[wo], grad_x[width + wo], grad_x[2 * width + wo], grad_x[3 * width + wo]);
      const __m128 gy = _mm_setr_ps(grad_y[wo], grad_y[width + wo], grad_y[2 * width + wo], grad_y[3 * width + wo]);
      add_pixel(sum, gx, gy, x_base[wo], y);
    }
    store_rows(sum, partials);
  }

  // partials[k * 6 + i] = sum[i][k]: the 6 x 4 sums transposed in registers. (Stored as
  // vectors and read back as doubles, the reads waited on the stores.)
  static void store_rows(const __m256d sum[6], double* partials) {
    const __m256d low01 = _mm256_unpacklo_pd(sum[0], sum[1]);   // s0[0] s1[0] s0[2] s1[2]
    const __m256d high01 = _mm256_unpackhi_pd(sum[0], sum[1]);  // s0[1] s1[1] s0[3] s1[3]
    const __m256d low23 = _mm256_unpacklo_pd(sum[2], sum[3]);
    const __m256d high23 = _mm256_unpackhi_pd(sum[2], sum[3]);
    const __m256d low45 = _mm256_unpacklo_pd(sum[4], sum[5]);   // s4[0] s5[0] s4[2] s5[2]
    const __m256d high45 = _mm256_unpackhi_pd(sum[4], sum[5]);  // s4[1] s5[1] s4[3] s5[3]
    _mm256_storeu_pd(partials, _mm256_permute2f128_pd(low01, low23, 0x20));  // row 0: s0..s3
    _mm_storeu_pd(partials + 4, _mm256_castpd256_pd128(low45));              // row 0: s4, s5
    _mm256_storeu_pd(partials + 6, _mm256_permute2f128_pd(high01, high23, 0x20));
    _mm_storeu_pd(partials + 10, _mm256_castpd256_pd128(high45));
    _mm256_storeu_pd(partials + 12, _mm256_permute2f128_pd(low01, low23, 0x31));
    _mm_storeu_pd(partials + 16, _mm256_extractf128_pd(low45, 1));
    _mm256_storeu_pd(partials + 18, _mm256_permute2f128_pd(high01, high23, 0x31));
    _mm_storeu_pd(partials + 22, _mm256_extractf128_pd(high45, 1));
  }

  // column[j] = (at[j], at[stride + j], at[2 * stride + j], at[3 * stride + j]).
  static void columns(const float* at, int64_t stride, __m128 column[4]) {
    column[0] = _mm_loadu_ps(at);
    column[1] = _mm_loadu_ps(at + stride);
    column[2] = _mm_loadu_ps(at + 2 * stride);
    column[3] = _mm_loadu_ps(at + 3 * stride);
    _MM_TRANSPOSE4_PS(column[0], column[1], column[2], column[3]);
  }

  // sum[0] += g * x, sum[1] += g * y, sum[2] += g: one column of grad_x (sum) or of grad_y
  // (sum + 3).
  static void add_column(__m256d sum[3], __m128 column, float x_base, __m256d y) {
    const __m256d g = _mm256_cvtps_pd(column);
    const __m256d x = _mm256_set1_pd(double(x_base));
    sum[0] = _mm256_add_pd(sum[0], _mm256_mul_pd(g, x));
    sum[1] = _mm256_add_pd(sum[1], _mm256_mul_pd(g, y));
    sum[2] = _mm256_add_pd(sum[2], g);
  }

  // add_column of grad_x's and grad_y's column at one pixel.
  static void add_pixel(__m256d sum[6], __m128 grad_x, __m128 grad_y, float x_base, __m256d y) {
    add_column(sum, grad_x, x_base, y);
    add_column(sum + 3, grad_y, x_base, y);
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
