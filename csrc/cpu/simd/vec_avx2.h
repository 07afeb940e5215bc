// AVX2 vector operations for affine_row_kernels.h: 8 float lanes, masks as all-ones lanes.
// Include only from a translation unit compiled with -mavx2.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace stn {
namespace cpu {
namespace simd {

struct Avx2 {
  static constexpr int kLanes = 8;
  using F = __m256;
  using I = __m256i;
  using M = __m256;  // every bit of a lane set, or none

  static M first(int64_t n) {
    const int32_t count = n >= kLanes ? kLanes : int32_t(n);
    return _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
  }
  static M both(M a, M b) { return _mm256_and_ps(a, b); }
  static M either(M a, M b) { return _mm256_or_ps(a, b); }
  static M neither(M a, M b) { return _mm256_xor_ps(_mm256_or_ps(a, b), _mm256_castsi256_ps(_mm256_set1_epi32(-1))); }

  static F set(float x) { return _mm256_set1_ps(x); }
  static F zero() { return _mm256_setzero_ps(); }
  static F loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, F v) { _mm256_storeu_ps(p, v); }
  static void stream(float* p, F v) { _mm256_stream_ps(p, v); }  // p 32-byte aligned; fence after
  static int bits(M m) { return _mm256_movemask_ps(m); }  // bit p: lane p of m
  // Whole vectors (every lane set) take plain loads and stores: AMD's masked moves are
  // microcoded, a masked store costing several times a plain one.
  static bool full(M m) { return _mm256_movemask_ps(m) == 0xFF; }
  static F load(const float* p, M m) {
    return full(m) ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, _mm256_castps_si256(m));
  }
  static void store(float* p, F v, M m) {
    if (full(m))
      _mm256_storeu_ps(p, v);
    else
      _mm256_maskstore_ps(p, _mm256_castps_si256(m), v);
  }

  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F neg(F a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  static F floor(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }

  // Ordered comparisons: false wherever a lane is NaN.
  static M lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M le(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static M gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M ge(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static F select(M m, F if_set, F otherwise) { return _mm256_blendv_ps(otherwise, if_set, m); }
  static F zero_unless(M m, F a) { return _mm256_and_ps(m, a); }

  static I to_int(F integral) { return _mm256_cvttps_epi32(integral); }
  static I mul_add(I r, int32_t w, I c) { return _mm256_add_epi32(_mm256_mullo_epi32(r, _mm256_set1_epi32(w)), c); }
  static I bit_if(M m, int32_t bit) { return _mm256_and_si256(_mm256_castps_si256(m), _mm256_set1_epi32(bit)); }
  static I int_unless(M m, I a) { return _mm256_and_si256(_mm256_castps_si256(m), a); }  // 0 where !m
  static I or_int(I a, I b) { return _mm256_or_si256(a, b); }
  static I plus(I a, int32_t k) { return _mm256_add_epi32(a, _mm256_set1_epi32(k)); }
  static I clamp_int(I a, int32_t low, int32_t high) {
    return _mm256_min_epi32(_mm256_max_epi32(a, _mm256_set1_epi32(low)), _mm256_set1_epi32(high));
  }
  static M gt_int(I a, I b) { return _mm256_castsi256_ps(_mm256_cmpgt_epi32(a, b)); }
  static I load_int(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store_int(int32_t* p, I v, M m) {
    if (full(m))
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
    else
      _mm256_maskstore_epi32(p, _mm256_castps_si256(m), v);
  }

  // The first min(n, 8) (x, y) pairs from p as a vector of x and one of y, 0 in the other
  // lanes (reading nothing there).
  static void load_pairs(const float* p, int64_t n, F* x, F* y) {
    const F a = load(p, first(2 * n)), b = load(p + kLanes, first(2 * n - kLanes));
    // shuffle_ps leaves pairs of lanes in the order 0 1 4 5 | 2 3 6 7; the 64-bit permute
    // puts them back.
    const __m256d even = _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
    const __m256d odd = _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
    *x = _mm256_castpd_ps(_mm256_permute4x64_pd(even, _MM_SHUFFLE(3, 1, 2, 0)));
    *y = _mm256_castpd_ps(_mm256_permute4x64_pd(odd, _MM_SHUFFLE(3, 1, 2, 0)));
  }

  // load_pairs' inverse: (x[i], y[i]) pairs for i < min(n, 8) to p (writing nothing else).
  static void store_pairs(float* p, int64_t n, F x, F y) {
    const F low = _mm256_unpacklo_ps(x, y), high = _mm256_unpackhi_ps(x, y);  // pairs 0 1 4 5 | 2 3 6 7
    store(p, _mm256_permute2f128_ps(low, high, 0x20), first(2 * n));
    store(p + kLanes, _mm256_permute2f128_ps(low, high, 0x31), first(2 * n - kLanes));
  }

  // (v[0][i], v[1][i], v[2][i], v[3][i]) for i < min(n, 8) to p + 4 * i (writing nothing else).
  static void store_quads(float* p, int64_t n, const F v[4]) {
    const F low01 = _mm256_unpacklo_ps(v[0], v[1]), high01 = _mm256_unpackhi_ps(v[0], v[1]);
    const F low23 = _mm256_unpacklo_ps(v[2], v[3]), high23 = _mm256_unpackhi_ps(v[2], v[3]);
    // quad[i]: lane i's quad in its low half, lane 4 + i's in its high half
    const F quad[4] = {_mm256_shuffle_ps(low01, low23, _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm256_shuffle_ps(low01, low23, _MM_SHUFFLE(3, 2, 3, 2)),
                       _mm256_shuffle_ps(high01, high23, _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm256_shuffle_ps(high01, high23, _MM_SHUFFLE(3, 2, 3, 2))};
    const F out[4] = {_mm256_permute2f128_ps(quad[0], quad[1], 0x20), _mm256_permute2f128_ps(quad[2], quad[3], 0x20),
                      _mm256_permute2f128_ps(quad[0], quad[1], 0x31), _mm256_permute2f128_ps(quad[2], quad[3], 0x31)};
    if (n >= kLanes) {  // a whole vector: plain stores, with no mask to compute and test
      for (int k = 0; k < 4; ++k) storeu(p + k * kLanes, out[k]);
      return;
    }
    for (int k = 0; k < 4; ++k) store(p + k * kLanes, out[k], first(4 * n - k * kLanes));  // lanes 2k, 2k + 1
  }

  static F gather(const float* base, I offset, M m) {
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, offset, m, 4);
  }

  // In place: element j of rows[i] moves to element i of rows[j].
  static void transpose(F rows[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(rows[i], rows[i + 1]);      // r_i0 r_j0 r_i1 r_j1 | r_i4 r_j4 r_i5 r_j5
      t[i + 1] = _mm256_unpackhi_ps(rows[i], rows[i + 1]);  // r_i2 r_j2 r_i3 r_j3 | r_i6 r_j6 r_i7 r_j7
    }
    for (int i = 0; i < 8; i += 4) {
      u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));      // column 0 (4)
      u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));  // column 1 (5)
      u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));  // column 2 (6)
      u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));  // column 3 (7)
    }
    for (int i = 0; i < 4; ++i) {
      rows[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);      // columns 0..3: low halves
      rows[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);  // columns 4..7: high halves
    }
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
