// Entry points of the compiled core, one namespace per backend, all with the same signatures:
//   stn::cpu       OpenMP loops on host memory (csrc/cpu/ops.cpp)
//   stn::emulated  the CUDA launch sequence run by a host loop, for tests (csrc/cpu/emulate_device.cpp)
//   stn::cuda      CUDA kernels on device memory (csrc/cuda/ops.cu), when built with CUDA
// Arrays are contiguous. Shapes: params (N, P) per image, or one set (P) shared by the batch
// when `shared` (P = family.params, see families.h); coefficients (images, family.coefficients());
// grid (N, Ho, Wo, 2); input (N, C, H, W); output (N, C, Ho, Wo). grad_input may be null;
// grad_params has params' shape. `deterministic` selects the sorted, atomic-free grad_input on
// the GPU; the CPU is always deterministic. tps_solution must live on the backend's device.
#pragma once

#include <cstdint>

#include "common.h"
#include "families.h"

#define STN_DECLARE_OPS                                                                           \
  template <typename T>                                                                           \
  void transform_coefficients(const T* params, const FamilySpec<T>& family, index_t images,       \
                              T* coefficients);                                                   \
  template <typename T>                                                                           \
  void transform_grid(const T* params, const FamilySpec<T>& family, bool shared, index_t batch,   \
                      index_t height, index_t width, bool align_corners, T* grid);                \
  template <typename T>                                                                           \
  void transform_grid_backward(const T* grad_grid, const T* params, const FamilySpec<T>& family,  \
                               bool shared, index_t batch, index_t height, index_t width,         \
                               bool align_corners, T* grad_params);                               \
  template <typename T>                                                                           \
  void grid_sample_forward(const T* input, const T* grid, const SamplerShape& shape,              \
                           const SamplerOptions& options, T* output);                             \
  template <typename T>                                                                           \
  void grid_sample_backward(const T* grad_output, const T* input, const T* grid,                  \
                            const SamplerShape& shape, const SamplerOptions& options,             \
                            bool deterministic, T* grad_input, T* grad_grid);                     \
  template <typename T>                                                                           \
  void spatial_transform_forward(const T* input, const T* params, const FamilySpec<T>& family,    \
                                 bool shared, const SamplerShape& shape,                          \
                                 const SamplerOptions& options, T* output);                       \
  template <typename T>                                                                           \
  void spatial_transform_backward(const T* grad_output, const T* input, const T* params,          \
                                  const FamilySpec<T>& family, bool shared,                       \
                                  const SamplerShape& shape, const SamplerOptions& options,       \
                                  bool deterministic, T* grad_input, T* grad_params);

namespace stn {
namespace cpu {
STN_DECLARE_OPS
void set_num_threads(int threads);
int get_num_threads();
}  // namespace cpu
namespace emulated {
STN_DECLARE_OPS
}  // namespace emulated
namespace cuda {
STN_DECLARE_OPS
int device_count();  // 0 when there is no driver or no GPU
void set_stream(std::uintptr_t stream);  // a cudaStream_t; this thread's calls run on it
}  // namespace cuda
}  // namespace stn
