// im2col / col2im for the Convolution layer (python/stn/layers/vision.py), on the CPU.
//
// image is (N, C, H, W). columns is (C * kernel_h * kernel_w, N * out_height * out_width):
// row (c * kernel_h + i) * kernel_w + j, column (n * out_height + oy) * out_width + ox holds
// image[n, c, oy * stride_h - pad_h + i * dilation_h, ox * stride_w - pad_w + j * dilation_w],
// or 0 where that falls in the padding. Rows are in weight order, so one GEMM with the
// (num_output, C * kernel_h * kernel_w) weights convolves the whole batch; the rows of a
// group are one contiguous block.
//
// col2im is the adjoint: image[n, c, h, w] = sum of every column entry that im2col read from
// (n, c, h, w). Each (n, c) plane is owned by one work item, which adds its taps in kernel
// order (i, then j) starting from 0, so no two threads touch one element and the sums are the
// same for any thread count.
#pragma once

#include "../stn/common.h"

namespace stn {

struct ConvGeometry {
  index_t images, channels, height, width;
  index_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  index_t out_height, out_width;
};

namespace cpu {
template <typename T>
void im2col(const T* image, const ConvGeometry& geometry, T* columns);
template <typename T>
void col2im(const T* columns, const ConvGeometry& geometry, T* image);
}  // namespace cpu

}  // namespace stn
