// Caffe's Pooling layer on the CPU: MAX and AVE over (N * C) planes of (H, W).
//
// Windows: output (oh, ow) covers rows oh * stride_h - pad_h ... + kernel_h - 1 (columns
// alike); cells outside the image are padding. MAX keeps the first strictly greater value in
// window order (row-major kernel offsets), starting from -FLT_MAX, so NaN and -Inf never win
// and an all-padding window gives -FLT_MAX with argmax -1. AVE divides the sum of the cells
// inside the image by the window size clipped to the padded image (Caffe's pool_size), and
// gives 0 for a window with no cell inside the image.
#pragma once

#include <cstdint>

#include "common.h"

namespace stn {

struct PoolShape {
  index_t planes;  // N * C
  index_t height, width, out_height, out_width;
  index_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

namespace cpu {
// argmax (planes, out_height, out_width) receives the kernel offset i * kernel_w + j, or -1.
template <typename T>
void max_pool_forward(const T* input, const PoolShape& shape, T* output, int32_t* argmax);
template <typename T>
void max_pool_backward(const T* grad_output, const int32_t* argmax, const PoolShape& shape,
                       T* grad_input);
template <typename T>
void ave_pool_forward(const T* input, const PoolShape& shape, T* output);
template <typename T>
void ave_pool_backward(const T* grad_output, const PoolShape& shape, T* grad_input);
}  // namespace cpu

}  // namespace stn
