// im2col and col2im (see im2col.h): OpenMP over column rows (im2col) and image planes
// (col2im); each work item writes only its own outputs.
#include "im2col.h"

#include <algorithm>
#include <cstring>

#include "cpu_executor.h"

namespace stn {
namespace cpu {
namespace {

// The outputs o in [begin, end) whose tap o * stride - pad + offset lands inside [0, size).
struct Inside {
  index_t begin, end;
};

// Smallest o >= 0 with o * stride >= value (value may be negative).
index_t first_at_least(index_t value, index_t stride) {
  return value <= 0 ? 0 : (value + stride - 1) / stride;
}

Inside inside(index_t offset, index_t stride, index_t pad, index_t size, index_t outputs) {
  // o * stride - pad + offset >= 0  and  o * stride - pad + offset < size
  const index_t begin = std::min(first_at_least(pad - offset, stride), outputs);
  const index_t end = std::min(first_at_least(size + pad - offset, stride), outputs);
  return Inside{begin, std::max(begin, end)};
}

// Work items below this many elements are not worth waking a second thread for.
constexpr index_t kMinElementsPerSplit = 4096;

}  // namespace

template <typename T>
void im2col(const T* image, const ConvGeometry& g, T* columns) {
  const index_t kernel_area = g.kernel_h * g.kernel_w;
  const index_t out_plane = g.out_height * g.out_width;
  const index_t row_length = g.images * out_plane;
  const index_t rows = g.channels * kernel_area;
  parallel_for(rows, [&](index_t row) {
    const index_t c = row / kernel_area, i = row % kernel_area / g.kernel_w, j = row % g.kernel_w;
    const index_t h_offset = i * g.dilation_h - g.pad_h, w_offset = j * g.dilation_w - g.pad_w;
    // Image column of output ox: ox * stride_w + w_offset, inside the image for ox in xs.
    const Inside ys = inside(i * g.dilation_h, g.stride_h, g.pad_h, g.height, g.out_height);
    const Inside xs = inside(j * g.dilation_w, g.stride_w, g.pad_w, g.width, g.out_width);
    T* out = columns + row * row_length;
    for (index_t n = 0; n < g.images; ++n) {
      const T* plane = image + (n * g.channels + c) * g.height * g.width;
      for (index_t oy = 0; oy < g.out_height; ++oy, out += g.out_width) {
        if (oy < ys.begin || oy >= ys.end) {
          std::fill(out, out + g.out_width, T(0));
          continue;
        }
        const T* source = plane + (oy * g.stride_h + h_offset) * g.width;
        std::fill(out, out + xs.begin, T(0));
        if (g.stride_w == 1 && xs.end > xs.begin) {
          std::memcpy(out + xs.begin, source + xs.begin + w_offset,
                      sizeof(T) * size_t(xs.end - xs.begin));
        } else {
          for (index_t ox = xs.begin; ox < xs.end; ++ox) out[ox] = source[ox * g.stride_w + w_offset];
        }
        std::fill(out + xs.end, out + g.out_width, T(0));
      }
    }
  }, std::max<index_t>(2, kMinElementsPerSplit / std::max<index_t>(row_length, 1)));
}

template <typename T>
void col2im(const T* columns, const ConvGeometry& g, T* image) {
  const index_t out_plane = g.out_height * g.out_width;
  const index_t row_length = g.images * out_plane;
  const index_t plane_size = g.height * g.width;
  parallel_for(g.images * g.channels, [&](index_t item) {
    const index_t n = item / g.channels, c = item % g.channels;
    T* plane = image + item * plane_size;
    std::fill(plane, plane + plane_size, T(0));
    for (index_t i = 0; i < g.kernel_h; ++i) {
      const index_t h_offset = i * g.dilation_h - g.pad_h;
      const Inside ys = inside(i * g.dilation_h, g.stride_h, g.pad_h, g.height, g.out_height);
      for (index_t j = 0; j < g.kernel_w; ++j) {
        const index_t w_offset = j * g.dilation_w - g.pad_w;
        const Inside xs = inside(j * g.dilation_w, g.stride_w, g.pad_w, g.width, g.out_width);
        const index_t row = (c * g.kernel_h + i) * g.kernel_w + j;
        const T* taps = columns + row * row_length + n * out_plane;
        for (index_t oy = ys.begin; oy < ys.end; ++oy) {
          T* target = plane + (oy * g.stride_h + h_offset) * g.width;
          const T* tap_row = taps + oy * g.out_width;
          if (g.stride_w == 1) {
            for (index_t ox = xs.begin; ox < xs.end; ++ox) target[ox + w_offset] += tap_row[ox];
          } else {
            for (index_t ox = xs.begin; ox < xs.end; ++ox)
              target[ox * g.stride_w + w_offset] += tap_row[ox];
          }
        }
      }
    }
  }, std::max<index_t>(2, kMinElementsPerSplit / std::max<index_t>(plane_size * g.kernel_h * g.kernel_w, 1)));
}

#define STN_INSTANTIATE_IM2COL(T)                                      \
  template void im2col<T>(const T*, const ConvGeometry&, T*);          \
  template void col2im<T>(const T*, const ConvGeometry&, T*);
STN_INSTANTIATE_IM2COL(float)
STN_INSTANTIATE_IM2COL(double)

}  // namespace cpu
}  // namespace stn
