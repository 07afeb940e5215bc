// CornerFetch for AVX-512: the corners of 16 neighbouring output pixels usually lie in a few
// input rows and a few dozen columns (an affine map moves them along a line), and a gather
// costs about as much per element as two permutes cost per register on the CPUs measured.
// So when the pixels' corners fit in a window of at most kMaxWindowRows rows and 32 columns,
// each window row is read with two (masked) loads and the corners are picked out with
// permutes; otherwise the corners are gathered. Both give the same values: the input value
// at a corner inside the image, 0 at one outside.
#pragma once

#include "affine_row_kernels.h"
#include "vec_avx512.h"

namespace stn {
namespace cpu {
namespace simd {

template <>
struct CornerFetch<Avx512> : CornerGather<Avx512> {
  static constexpr int kMaxWindowRows = 12;  // beyond it, gathering is as cheap
  static constexpr int kWindowColumns = 32;  // two registers

  int rows;               // window rows, or -1 to gather; 0 when no pixel has a corner
  bool narrow;            // the window is at most 16 columns wide: one register per row
  int64_t first_offset;   // offset of the window's top-left element (may be outside the image)
  int64_t width;
  __m512i index0, index1; // c0 - first column, c0 + 1 - first column: positions in the window
  __mmask16 load_low, load_high;  // window columns inside the image
  __mmask16 top[kMaxWindowRows], bottom[kMaxWindowRows];  // lanes whose r0 / r0 + 1 is the row

  void prepare(const Corners<Avx512>& k, const AffineRow& row) {
    CornerGather<Avx512>::prepare(k, row);
    rows = -1;
    narrow = false;
    first_offset = 0;
    if (k.valid == 0) {
      rows = 0;
      return;
    }
    // Along an output row an affine map moves the point on a line, and every step from the
    // base grid to floor() is monotone, so r0 and c0 are monotone across the lanes: their
    // extremes over the valid lanes sit at the first and last valid lane.
    alignas(64) int32_t lines[16], columns[16];
    _mm512_store_si512(lines, k.line);
    _mm512_store_si512(columns, k.column);
    const unsigned valid = k.valid;
    const int first = __builtin_ctz(valid), last = 31 - __builtin_clz(valid);
    const int32_t first_row = lines[first] < lines[last] ? lines[first] : lines[last];
    const int32_t last_row = (lines[first] < lines[last] ? lines[last] : lines[first]) + 1;
    const int32_t first_column = columns[first] < columns[last] ? columns[first] : columns[last];
    const int32_t last_column = (columns[first] < columns[last] ? columns[last] : columns[first]) + 1;
    if (last_row - first_row + 1 > kMaxWindowRows || last_column - first_column + 1 > kWindowColumns)
      return;  // gather
    width = row.in_width;
    // Window rows outside the image stay unread (their corners are 0).
    int count = 0;
    __mmask16 above = 0;  // no lane has r0 == first_row - 1
    for (int32_t r = first_row; r <= last_row; ++r) {
      const __mmask16 here = __mmask16(k.valid & _mm512_cmpeq_epi32_mask(k.line, _mm512_set1_epi32(r)));
      if (r >= 0 && r < row.in_height) {
        top[count] = here;     // r0 == r: the row holds their NW and NE corners
        bottom[count] = above; // r0 == r - 1: their SW and SE corners
        if (count == 0) first_offset = int64_t(r) * width + first_column;
        ++count;
      }
      above = here;
    }
    rows = count;
    narrow = last_column - first_column + 1 <= 16;
    const __m512i shift = _mm512_set1_epi32(first_column);
    index0 = _mm512_sub_epi32(k.column, shift);
    index1 = _mm512_add_epi32(index0, _mm512_set1_epi32(1));
    // Column first_column + i is inside the image for i in [-first_column, width - first_column).
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i column_low = _mm512_add_epi32(lane, shift);
    const __m512i column_high = _mm512_add_epi32(column_low, _mm512_set1_epi32(16));
    const __m512i limit = _mm512_set1_epi32(int32_t(row.in_width));
    load_low = __mmask16(_mm512_cmpge_epi32_mask(column_low, _mm512_setzero_si512()) &
                         _mm512_cmplt_epi32_mask(column_low, limit));
    load_high = __mmask16(_mm512_cmpge_epi32_mask(column_high, _mm512_setzero_si512()) &
                          _mm512_cmplt_epi32_mask(column_high, limit));
  }

  void values(const float* plane, __m512 corner[4]) const {
    if (rows < 0) {
      CornerGather<Avx512>::values(plane, corner);
      return;
    }
    for (int c = 0; c < 4; ++c) corner[c] = _mm512_setzero_ps();
    if (narrow) {
      for (int j = 0; j < rows; ++j) {
        const __m512 line = _mm512_maskz_loadu_ps(load_low, plane + (first_offset + int64_t(j) * width));
        pick(j, _mm512_permutexvar_ps(index0, line), _mm512_permutexvar_ps(index1, line), corner);
      }
      return;
    }
    for (int j = 0; j < rows; ++j) {
      // Masked loads read only the window's columns inside the image (the rest are 0).
      const float* window_row = plane + (first_offset + int64_t(j) * width);
      const __m512 low = _mm512_maskz_loadu_ps(load_low, window_row);
      const __m512 high = _mm512_maskz_loadu_ps(load_high, window_row + 16);
      pick(j, _mm512_permutex2var_ps(low, index0, high), _mm512_permutex2var_ps(low, index1, high), corner);
    }
  }

  // Window row j's values at each lane's column and the next: the NW and NE corners of the
  // lanes whose r0 is this row, the SW and SE corners of those whose r0 + 1 is.
  void pick(int j, __m512 at_column, __m512 at_next, __m512 corner[4]) const {
    corner[0] = _mm512_mask_mov_ps(corner[0], top[j], at_column);
    corner[1] = _mm512_mask_mov_ps(corner[1], top[j], at_next);
    corner[2] = _mm512_mask_mov_ps(corner[2], bottom[j], at_column);
    corner[3] = _mm512_mask_mov_ps(corner[3], bottom[j], at_next);
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
