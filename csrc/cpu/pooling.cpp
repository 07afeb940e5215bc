// Caffe's MAX and AVE pooling (see stn/pooling.h), one plane per work item: planes are
// independent, so results are identical for any thread count.
#include "../stn/pooling.h"

#include <algorithm>
#include <cfloat>
#include <cstring>
#include <vector>

#include "cpu_executor.h"

namespace stn {
namespace cpu {
namespace {

// The rows (or columns) of window o inside the image: [begin, end), and the window's start.
struct Span {
  index_t start, begin, end;
};

Span window(index_t o, index_t stride, index_t pad, index_t kernel, index_t size) {
  const index_t start = o * stride - pad;
  return Span{start, std::max<index_t>(start, 0), std::min(start + kernel, size)};
}

// Caffe's divisor: the window clipped to the padded image, not to the image.
index_t clipped_size(index_t o, index_t stride, index_t pad, index_t kernel, index_t size) {
  const index_t start = o * stride - pad;
  return std::min(start + kernel, size + pad) - start;
}

// The common 2x2 window lying wholly inside the image, unrolled; the same rule as the
// general loop below (first strict maximum over -FLT_MAX in window order), the same results.
template <typename T>
inline void max_of_2x2(const T* top_left, index_t width, T& best_out, int32_t& offset_out) {
  const T values[4] = {top_left[0], top_left[1], top_left[width], top_left[width + 1]};
  T best = T(-FLT_MAX);
  for (const T value : values) best = value > best ? value : best;
  int32_t offset = -1;
  if (best > T(-FLT_MAX))
    for (int32_t k = 3; k >= 0; --k) {
      const int32_t hit = -int32_t(values[k] == best);  // ~0 where equal (a mask: no branch)
      offset = (k & hit) | (offset & ~hit);
    }
  best_out = best;
  offset_out = offset;
}

}  // namespace

template <typename T>
void max_pool_forward(const T* input, const PoolShape& s, T* output, int32_t* argmax) {
  const index_t out_plane = s.out_height * s.out_width;
  parallel_for(s.planes, [&](index_t p) {
    const T* in = input + p * s.height * s.width;
    for (index_t oh = 0; oh < s.out_height; ++oh) {
      const Span rows = window(oh, s.stride_h, s.pad_h, s.kernel_h, s.height);
      for (index_t ow = 0; ow < s.out_width; ++ow) {
        const Span cols = window(ow, s.stride_w, s.pad_w, s.kernel_w, s.width);
        if (s.kernel_h == 2 && s.kernel_w == 2 && rows.end - rows.begin == 2 &&
            cols.end - cols.begin == 2 && rows.begin == rows.start && cols.begin == cols.start) {
          max_of_2x2(in + rows.start * s.width + cols.start, s.width,
                     output[p * out_plane + oh * s.out_width + ow],
                     argmax[p * out_plane + oh * s.out_width + ow]);
          continue;
        }
        T best = T(-FLT_MAX);
        // Two passes with no data-dependent branch: the maximum, then its first position.
        // The first strictly greater value in window order is the first occurrence of the
        // maximum, so this is the one-pass rule; on noisy activations the one-pass branch
        // ("is this a new maximum?") is a coin toss the predictor loses, 2x the time here.
        for (index_t r = rows.begin; r < rows.end; ++r)
          for (index_t c = cols.begin; c < cols.end; ++c) {
            const T value = in[r * s.width + c];
            best = value > best ? value : best;
          }
        int32_t best_offset = -1;  // nothing beat -FLT_MAX: Caffe keeps it, with no argmax
        if (best > T(-FLT_MAX)) {
          for (index_t r = rows.end - 1; r >= rows.begin; --r)
            for (index_t c = cols.end - 1; c >= cols.begin; --c) {
              const int32_t offset = int32_t((r - rows.start) * s.kernel_w + (c - cols.start));
              // A mask, not ?: which GCC turns back into a branch.
              const int32_t hit = -int32_t(in[r * s.width + c] == best);  // ~0 where equal
              best_offset = (offset & hit) | (best_offset & ~hit);
            }
        }
        output[p * out_plane + oh * s.out_width + ow] = best;
        argmax[p * out_plane + oh * s.out_width + ow] = best_offset;
      }
    }
  }, 2);
}

template <typename T>
void max_pool_backward(const T* grad_output, const int32_t* argmax, const PoolShape& shape,
                       T* grad_input) {
  const PoolShape s = shape;  // a local copy: the loop then keeps the sizes in registers
  const index_t out_plane = s.out_height * s.out_width;
  // (row, column) of each kernel offset as a look-up, not a 64-bit division per output.
  std::vector<index_t> row_of(size_t(s.kernel_h * s.kernel_w)), col_of(row_of.size());
  for (index_t k = 0; k < s.kernel_h * s.kernel_w; ++k)
    row_of[size_t(k)] = k / s.kernel_w, col_of[size_t(k)] = k % s.kernel_w;
  parallel_for(s.planes, [&](index_t p) {
    T* grad = grad_input + p * s.height * s.width;
    std::memset(grad, 0, sizeof(T) * size_t(s.height * s.width));
    const int32_t* offsets = argmax + p * out_plane;
    const T* grads = grad_output + p * out_plane;
    for (index_t oh = 0; oh < s.out_height; ++oh)
      for (index_t ow = 0; ow < s.out_width; ++ow) {
        const int32_t k = offsets[oh * s.out_width + ow];
        if (k < 0) continue;
        const index_t r = oh * s.stride_h - s.pad_h + row_of[size_t(k)];
        const index_t c = ow * s.stride_w - s.pad_w + col_of[size_t(k)];
        grad[r * s.width + c] += grads[oh * s.out_width + ow];
      }
  }, 2);
}

template <typename T>
void ave_pool_forward(const T* input, const PoolShape& s, T* output) {
  const index_t out_plane = s.out_height * s.out_width;
  parallel_for(s.planes, [&](index_t p) {
    const T* in = input + p * s.height * s.width;
    for (index_t oh = 0; oh < s.out_height; ++oh) {
      const Span rows = window(oh, s.stride_h, s.pad_h, s.kernel_h, s.height);
      const index_t size_h = clipped_size(oh, s.stride_h, s.pad_h, s.kernel_h, s.height);
      for (index_t ow = 0; ow < s.out_width; ++ow) {
        const Span cols = window(ow, s.stride_w, s.pad_w, s.kernel_w, s.width);
        T sum = 0;
        for (index_t r = rows.begin; r < rows.end; ++r)
          for (index_t c = cols.begin; c < cols.end; ++c) sum += in[r * s.width + c];
        const bool inside = rows.begin < rows.end && cols.begin < cols.end;
        const index_t size = size_h * clipped_size(ow, s.stride_w, s.pad_w, s.kernel_w, s.width);
        output[p * out_plane + oh * s.out_width + ow] = inside ? sum / T(size) : T(0);
      }
    }
  }, 2);
}

template <typename T>
void ave_pool_backward(const T* grad_output, const PoolShape& s, T* grad_input) {
  const index_t out_plane = s.out_height * s.out_width;
  parallel_for(s.planes, [&](index_t p) {
    T* grad = grad_input + p * s.height * s.width;
    std::memset(grad, 0, sizeof(T) * size_t(s.height * s.width));
    for (index_t oh = 0; oh < s.out_height; ++oh) {
      const Span rows = window(oh, s.stride_h, s.pad_h, s.kernel_h, s.height);
      const index_t size_h = clipped_size(oh, s.stride_h, s.pad_h, s.kernel_h, s.height);
      for (index_t ow = 0; ow < s.out_width; ++ow) {
        const Span cols = window(ow, s.stride_w, s.pad_w, s.kernel_w, s.width);
        if (rows.begin >= rows.end || cols.begin >= cols.end) continue;
        const index_t size = size_h * clipped_size(ow, s.stride_w, s.pad_w, s.kernel_w, s.width);
        const T share = grad_output[p * out_plane + oh * s.out_width + ow] / T(size);
        for (index_t r = rows.begin; r < rows.end; ++r)
          for (index_t c = cols.begin; c < cols.end; ++c) grad[r * s.width + c] += share;
      }
    }
  }, 2);
}

#define STN_INSTANTIATE_POOLING(T)                                                              \
  template void max_pool_forward<T>(const T*, const PoolShape&, T*, int32_t*);                  \
  template void max_pool_backward<T>(const T*, const int32_t*, const PoolShape&, T*);           \
  template void ave_pool_forward<T>(const T*, const PoolShape&, T*);                            \
  template void ave_pool_backward<T>(const T*, const PoolShape&, T*);
STN_INSTANTIATE_POOLING(float)
STN_INSTANTIATE_POOLING(double)

}  // namespace cpu
}  // namespace stn
