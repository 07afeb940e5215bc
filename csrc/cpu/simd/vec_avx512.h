// AVX-512 vector operations for affine_row_kernels.h: 16 float lanes, masks in k-registers.
// Include only from a translation unit compiled with -mavx512f.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace stn {
namespace cpu {
namespace simd {

struct Avx512 {
  static constexpr int kLanes = 16;
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;

  // The first min(n, 16) lanes (none for n <= 0).
  static M first(int64_t n) { return n >= kLanes ? M(0xFFFF) : n <= 0 ? M(0) : M((1u << unsigned(n)) - 1u); }
  static M both(M a, M b) { return M(a & b); }
  static M either(M a, M b) { return M(a | b); }
  static M neither(M a, M b) { return M(~(a | b)); }
  static bool full(M m) { return m == M(0xFFFF); }

  static F set(float x) { return _mm512_set1_ps(x); }
  static F zero() { return _mm512_setzero_ps(); }
  static F loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, F v) { _mm512_storeu_ps(p, v); }
  static void stream(float* p, F v) { _mm512_stream_ps(p, v); }  // p 64-byte aligned; fence after
  static int bits(M m) { return m; }  // bit p: lane p of m
  static F load(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }  // 0 where !m
  static void store(float* p, F v, M m) { _mm512_mask_storeu_ps(p, m, v); }

  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F neg(F a) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN))); }
  static F floor(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }

  // Ordered comparisons: false wherever a lane is NaN.
  static M lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M le(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static M gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M ge(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static F select(M m, F if_set, F otherwise) { return _mm512_mask_blend_ps(m, otherwise, if_set); }
  static F zero_unless(M m, F a) { return _mm512_maskz_mov_ps(m, a); }

  // Integer lanes: exact conversions of integral floats, and offsets r * w + c.
  static I to_int(F integral) { return _mm512_cvttps_epi32(integral); }
  static I mul_add(I r, int32_t w, I c) { return _mm512_add_epi32(_mm512_mullo_epi32(r, _mm512_set1_epi32(w)), c); }
  static I bit_if(M m, int32_t bit) { return _mm512_maskz_mov_epi32(m, _mm512_set1_epi32(bit)); }
  static I int_unless(M m, I a) { return _mm512_maskz_mov_epi32(m, a); }  // 0 where !m
  static I or_int(I a, I b) { return _mm512_or_si512(a, b); }
  static I plus(I a, int32_t k) { return _mm512_add_epi32(a, _mm512_set1_epi32(k)); }
  static I clamp_int(I a, int32_t low, int32_t high) {
    return _mm512_min_epi32(_mm512_max_epi32(a, _mm512_set1_epi32(low)), _mm512_set1_epi32(high));
  }
  static M gt_int(I a, I b) { return _mm512_cmpgt_epi32_mask(a, b); }
  static I load_int(const int32_t* p) { return _mm512_loadu_si512(p); }
  static void store_int(int32_t* p, I v, M m) { _mm512_mask_storeu_epi32(p, m, v); }

  // The first min(n, 16) (x, y) pairs from p as a vector of x and one of y, 0 in the other
  // lanes (reading nothing there).
  static void load_pairs(const float* p, int64_t n, F* x, F* y) {
    const F a = load(p, first(2 * n)), b = load(p + kLanes, first(2 * n - kLanes));
    const I even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    *x = _mm512_permutex2var_ps(a, even, b);
    *y = _mm512_permutex2var_ps(a, _mm512_add_epi32(even, _mm512_set1_epi32(1)), b);
  }

  // load_pairs' inverse: (x[i], y[i]) pairs for i < min(n, 16) to p (writing nothing else).
  static void store_pairs(float* p, int64_t n, F x, F y) {
    const I low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const I high = _mm512_add_epi32(low, _mm512_set1_epi32(8));
    store(p, _mm512_permutex2var_ps(x, low, y), first(2 * n));
    store(p + kLanes, _mm512_permutex2var_ps(x, high, y), first(2 * n - kLanes));
  }

  // (v[0][i], v[1][i], v[2][i], v[3][i]) for i < min(n, 16) to p + 4 * i (writing nothing else).
  static void store_quads(float* p, int64_t n, const F v[4]) {
    const F low01 = _mm512_unpacklo_ps(v[0], v[1]), high01 = _mm512_unpackhi_ps(v[0], v[1]);
    const F low23 = _mm512_unpacklo_ps(v[2], v[3]), high23 = _mm512_unpackhi_ps(v[2], v[3]);
    // quad[j], 128-bit block q: the quad of lane 4q + j
    const F quad[4] = {_mm512_shuffle_ps(low01, low23, _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm512_shuffle_ps(low01, low23, _MM_SHUFFLE(3, 2, 3, 2)),
                       _mm512_shuffle_ps(high01, high23, _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm512_shuffle_ps(high01, high23, _MM_SHUFFLE(3, 2, 3, 2))};
    const F blocks01_of01 = _mm512_shuffle_f32x4(quad[0], quad[1], _MM_SHUFFLE(1, 0, 1, 0));  // lanes 0 4 1 5
    const F blocks01_of23 = _mm512_shuffle_f32x4(quad[2], quad[3], _MM_SHUFFLE(1, 0, 1, 0));  // lanes 2 6 3 7
    const F blocks23_of01 = _mm512_shuffle_f32x4(quad[0], quad[1], _MM_SHUFFLE(3, 2, 3, 2));  // lanes 8 12 9 13
    const F blocks23_of23 = _mm512_shuffle_f32x4(quad[2], quad[3], _MM_SHUFFLE(3, 2, 3, 2));  // lanes 10 14 11 15
    const F out[4] = {_mm512_shuffle_f32x4(blocks01_of01, blocks01_of23, _MM_SHUFFLE(2, 0, 2, 0)),   // lanes 0-3
                      _mm512_shuffle_f32x4(blocks01_of01, blocks01_of23, _MM_SHUFFLE(3, 1, 3, 1)),   // 4-7
                      _mm512_shuffle_f32x4(blocks23_of01, blocks23_of23, _MM_SHUFFLE(2, 0, 2, 0)),   // 8-11
                      _mm512_shuffle_f32x4(blocks23_of01, blocks23_of23, _MM_SHUFFLE(3, 1, 3, 1))};  // 12-15
    if (n >= kLanes) {  // a whole vector: plain stores, with no mask to compute and test
      for (int k = 0; k < 4; ++k) storeu(p + k * kLanes, out[k]);
      return;
    }
    for (int k = 0; k < 4; ++k) store(p + k * kLanes, out[k], first(4 * n - k * kLanes));
  }

  // base[offset] in lanes of m, 0 elsewhere (those lanes read no memory).
  static F gather(const float* base, I offset, M m) {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, offset, base, 4);
  }

  // In place: element j of rows[i] moves to element i of rows[j].
  static void transpose(F rows[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {  // 128-bit block q: rows i, i + 1 at columns 4q .. 4q + 3
      t[i] = _mm512_unpacklo_ps(rows[i], rows[i + 1]);      // 4q, 4q + 1
      t[i + 1] = _mm512_unpackhi_ps(rows[i], rows[i + 1]);  // 4q + 2, 4q + 3
    }
    for (int i = 0; i < 16; i += 4) {  // u[i + j], block q: column 4q + j of rows i .. i + 3
      u[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
      u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
      u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
      u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int j = 0; j < 4; ++j) {  // column 4q + j: block q of u[j], u[4 + j], u[8 + j], u[12 + j]
      const __m512 blocks02_top = _mm512_shuffle_f32x4(u[j], u[4 + j], _MM_SHUFFLE(2, 0, 2, 0));
      const __m512 blocks13_top = _mm512_shuffle_f32x4(u[j], u[4 + j], _MM_SHUFFLE(3, 1, 3, 1));
      const __m512 blocks02_low = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], _MM_SHUFFLE(2, 0, 2, 0));
      const __m512 blocks13_low = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], _MM_SHUFFLE(3, 1, 3, 1));
      rows[j] = _mm512_shuffle_f32x4(blocks02_top, blocks02_low, _MM_SHUFFLE(2, 0, 2, 0));
      rows[4 + j] = _mm512_shuffle_f32x4(blocks13_top, blocks13_low, _MM_SHUFFLE(2, 0, 2, 0));
      rows[8 + j] = _mm512_shuffle_f32x4(blocks02_top, blocks02_low, _MM_SHUFFLE(3, 1, 3, 1));
      rows[12 + j] = _mm512_shuffle_f32x4(blocks13_top, blocks13_low, _MM_SHUFFLE(3, 1, 3, 1));
    }
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
