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
      __m128 gx[4], gy[4];
      columns(grad_x + wo, width, gx);
      columns(grad_y + wo, width, gy);
      for (int j = 0; j < 4; ++j) add_pixel(sum, gx[j], gy[j], x_base[wo + j], y);
    }
    for (; wo < width; ++wo) {
      const __m128 gx = _mm_setr_ps(grad_x[wo], grad_x[width + wo], grad_x[2 * width + wo], grad_x[3 * width + wo]);
      const __m128 gy = _mm_setr_ps(grad_y[wo], grad_y[width + wo], grad_y[2 * width + wo], grad_y[3 * width + wo]);
      add_pixel(sum, gx, gy, x_base[wo], y);
    }
    alignas(32) double lanes[6][4];
    for (int i = 0; i < 6; ++i) _mm256_store_pd(lanes[i], sum[i]);
    for (int k = 0; k < kRows; ++k)
      for (int i = 0; i < 6; ++i) partials[k * 6 + i] = lanes[i][k];
  }

  // column[j] = (at[j], at[stride + j], at[2 * stride + j], at[3 * stride + j]).
  static void columns(const float* at, int64_t stride, __m128 column[4]) {
    column[0] = _mm_loadu_ps(at);
    column[1] = _mm_loadu_ps(at + stride);
    column[2] = _mm_loadu_ps(at + 2 * stride);
    column[3] = _mm_loadu_ps(at + 3 * stride);
    _MM_TRANSPOSE4_PS(column[0], column[1], column[2], column[3]);
  }

  // sum[0] += gx * x, sum[1] += gx * y, sum[2] += gx, and likewise gy into sum[3..5].
  static void add_pixel(__m256d sum[6], __m128 grad_x, __m128 grad_y, float x_base, __m256d y) {
    const __m256d gx = _mm256_cvtps_pd(grad_x), gy = _mm256_cvtps_pd(grad_y);
    const __m256d x = _mm256_set1_pd(double(x_base));
    sum[0] = _mm256_add_pd(sum[0], _mm256_mul_pd(gx, x));
    sum[1] = _mm256_add_pd(sum[1], _mm256_mul_pd(gx, y));
    sum[2] = _mm256_add_pd(sum[2], gx);
    sum[3] = _mm256_add_pd(sum[3], _mm256_mul_pd(gy, x));
    sum[4] = _mm256_add_pd(sum[4], _mm256_mul_pd(gy, y));
    sum[5] = _mm256_add_pd(sum[5], gy);
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
