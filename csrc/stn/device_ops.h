// The launch sequence of every device operation, written once over an executor:
//   Exec::launch(count, body)      runs body(i) for i in [0, count) (a CUDA kernel, or a loop)
//   exec.launch_pixels(N, Ho, Wo, body)  runs body.at(n, ho, wo, pixel) for every output pixel
//   Exec::buffer<U>(count)         scratch memory on the device, uninitialized, freed at scope exit
//   Exec::zero(ptr, count)         fills with zeros
//   Exec::sort_by_destination(...) stable sort of (destination, slot) pairs by destination
//   Exec::AtomicAdd                atomic accumulation functor
//   exec.finish()                  waits for the work and reports its errors
//   exec.scatter_grad_input(...)   grad_input: device executors forward to scatter_grad_input
//                                  below; the CPU executor owns row bands instead (cpu/)
// csrc/cuda/ops.cu instantiates it with the CUDA executor; csrc/cpu/emulate_device.cpp with a
// host executor, so the tests run this very sequence and these very bodies without a GPU.
// All pointers are device pointers to contiguous arrays.
#pragma once

#include <type_traits>

#include "dispatch.h"
#include "kernel_bodies.h"

namespace stn {
namespace device_ops {

// Per-image coefficients of the family's point map: (images, family.coefficients()).
template <typename Exec, typename T>
auto point_map_coefficients(Exec& exec, const FamilySpec<T>& family, const T* params, index_t images) {
  auto coefficients = exec.template buffer<T>(images * family.coefficients());
  exec.launch(images, ParamsToCoefficients<T>{family, params, coefficients.data()});
  return coefficients;
}

template <typename Coords>
using CoordsType = std::decay_t<Coords>;

// An executor may run the coefficient-gradient rows and the grad_input scatter of the fused
// backward in one pass (the CPU's row kernels, cpu_executor.h, found by argument-dependent
// lookup); true when it did. Otherwise they run one after the other. `reduce` (or null) is
// the per-image sum of the rows' partials: when given and the pass ran, the pass has also run
// (*reduce)(n) for every image n, each once that image's rows were done.
template <typename Exec, typename Body, typename T, typename Reduce>
bool backward_in_one_pass(Exec&, index_t, const Body&, T*, const Reduce*) {
  return false;
}

// The grid generator: grid (N, H, W, 2) from params (N, P), or one shared set (P).
template <typename Exec, typename T>
void transform_grid(Exec& exec, const T* params, const FamilySpec<T>& family, bool shared,
                    index_t batch, index_t height, index_t width, bool align_corners, T* grid) {
  auto coefficients = point_map_coefficients(exec, family, params, shared ? 1 : batch);
  with_point_map(family, coefficients.data(), shared, BaseGrid<T>{height, width, align_corners},
                 [&](const auto& coords) {
                   using Coords = CoordsType<decltype(coords)>;
                   exec.launch_pixels(batch, height, width, MapGridPixel<T, Coords>{coords, grid});
                 });
}

// Its adjoint: grad_params with params' shape (a shared set sums over the batch).
template <typename Exec, typename T>
void transform_grid_backward(Exec& exec, const T* grad_grid, const T* params,
                             const FamilySpec<T>& family, bool shared, index_t batch,
                             index_t height, index_t width, bool align_corners, T* grad_params) {
  const index_t images = shared ? 1 : batch, rows = batch * height;
  auto coefficients = point_map_coefficients(exec, family, params, images);
  auto partials = exec.template buffer<double>(rows * family.coefficients());
  with_point_map(family, coefficients.data(), shared, BaseGrid<T>{height, width, align_corners},
                 [&](const auto& coords) {
                   using Coords = CoordsType<decltype(coords)>;
                   exec.launch(rows, MapGridGradRow<T, Coords>{coords, grad_grid, height, width, partials.data()});
                   exec.launch(images, ReduceToParams<T, Coords::kCapacity>{
                                           partials.data(), rows / images, family, params, grad_params});
                 });
}

template <typename Exec, typename T, typename Coords>
void sample_forward(Exec& exec, const Coords& coords, const T* input, const SamplerShape& shape,
                    const SamplerOptions& options, T* output) {
  dispatch_interp(options.mode, [&](auto mode) {
    exec.launch_pixels(shape.batch, shape.out_height, shape.out_width,
                       ForwardPixel<T, decltype(mode)::value, Coords>{coords, input, output, shape, options});
  });
}

// grad_input (N, C, H, W) from grad_output (N, C, Ho, Wo). deterministic: no atomics, the
// result is independent of scheduling (sorted contributions, reduced in raster order).
template <typename Exec, typename T, typename Coords>
void scatter_grad_input(Exec& exec, const Coords& coords, const T* grad_output,
                        const SamplerShape& shape, const SamplerOptions& options,
                        bool deterministic, T* grad_input) {
  exec.zero(grad_input, shape.batch * shape.channels * shape.in_plane());
  dispatch_interp(options.mode, [&](auto mode) {
    constexpr Interp kMode = decltype(mode)::value;
    if (!deterministic) {
      using Add = typename Exec::AtomicAdd;
      exec.launch_pixels(shape.batch, shape.out_height, shape.out_width, ScatterPixel<T, kMode, Coords, Add>{
                                          coords, grad_output, grad_input, shape, options, 0,
                                          shape.in_height, Add{}});
      return;
    }
    const index_t slots = shape.out_pixels() * TapCapacity<kMode>::value;
    auto destination = exec.template buffer<index_t>(slots);
    auto slot = exec.template buffer<index_t>(slots);
    auto weight = exec.template buffer<T>(slots);
    exec.launch_pixels(shape.batch, shape.out_height, shape.out_width, CollectContributions<T, kMode, Coords>{
                                        coords, shape, options, destination.data(), slot.data(),
                                        weight.data()});
    exec.sort_by_destination(destination.data(), slot.data(), slots);
    exec.launch(slots, ReduceContributions<T, kMode>{destination.data(), slot.data(), weight.data(),
                                                     grad_output, grad_input, shape, slots});
  });
}

// Grid path backward. grad_input may be null (Caffe's to_compute_dU: false).
template <typename Exec, typename T>
void grid_sample_backward(Exec& exec, const T* grad_output, const T* input, const T* grid,
                          const SamplerShape& shape, const SamplerOptions& options,
                          bool deterministic, T* grad_input, T* grad_grid) {
  const GridCoords<T> coords{grid, shape.out_height, shape.out_width};
  dispatch_interp(options.mode, [&](auto mode) {
    exec.launch_pixels(shape.batch, shape.out_height, shape.out_width, GridGradPixel<T, decltype(mode)::value>{
                                        coords, grad_output, input, grad_grid, shape, options});
  });
  if (grad_input != nullptr)
    exec.scatter_grad_input(coords, grad_output, shape, options, deterministic, grad_input);
}

template <typename Exec, typename T>
void grid_sample_forward(Exec& exec, const T* input, const T* grid, const SamplerShape& shape,
                         const SamplerOptions& options, T* output) {
  sample_forward(exec, GridCoords<T>{grid, shape.out_height, shape.out_width}, input, shape, options,
                 output);
}

// The fused transformer: params (N, P) or one shared set (P) -> output (N, C, Ho, Wo); the
// grid is never materialized.
template <typename Exec, typename T>
void spatial_transform_forward(Exec& exec, const T* input, const T* params,
                               const FamilySpec<T>& family, bool shared, const SamplerShape& shape,
                               const SamplerOptions& options, T* output) {
  auto coefficients = point_map_coefficients(exec, family, params, shared ? 1 : shape.batch);
  const BaseGrid<T> base{shape.out_height, shape.out_width, options.align_corners};
  with_point_map(family, coefficients.data(), shared, base, [&](const auto& coords) {
    sample_forward(exec, coords, input, shape, options, output);
  });
}

// Fused backward: grad_params with params' shape; grad_input may be null.
template <typename Exec, typename T>
void spatial_transform_backward(Exec& exec, const T* grad_output, const T* input, const T* params,
                                const FamilySpec<T>& family, bool shared, const SamplerShape& shape,
                                const SamplerOptions& options, bool deterministic, T* grad_input,
                                T* grad_params) {
  const index_t images = shared ? 1 : shape.batch, rows = shape.batch * shape.out_height;
  auto coefficients = point_map_coefficients(exec, family, params, images);
  auto partials = exec.template buffer<double>(rows * family.coefficients());
  const BaseGrid<T> base{shape.out_height, shape.out_width, options.align_corners};
  with_point_map(family, coefficients.data(), shared, base, [&](const auto& coords) {
    using Coords = CoordsType<decltype(coords)>;
    const ReduceToParams<T, Coords::kCapacity> reduce{partials.data(), rows / images, family, params, grad_params};
    bool scattered = false;
    dispatch_interp(options.mode, [&](auto mode) {
      const CoefficientGradRow<T, decltype(mode)::value, Coords> coefficient_rows{
          coords, grad_output, input, partials.data(), shape, options};
      // A shared map's one sum runs over every image's rows: not per image.
      scattered = grad_input != nullptr &&
                  backward_in_one_pass(exec, rows, coefficient_rows, grad_input, shared ? nullptr : &reduce);
      if (!scattered) exec.launch(rows, coefficient_rows);
    });
    if (!scattered || shared) exec.launch(images, reduce);
    if (grad_input != nullptr && !scattered)
      exec.scatter_grad_input(coords, grad_output, shape, options, deterministic, grad_input);
  });
}

}  // namespace device_ops
}  // namespace stn

// Defines the entry points declared in api.h for one backend namespace, on executor Exec,
// for float and double.
#define STN_DEFINE_OPS_FOR(Exec, T)                                                               \
  template <>                                                                                     \
  void transform_coefficients<T>(const T* params, const FamilySpec<T>& family, index_t images,    \
                                 T* coefficients) {                                               \
    Exec exec;                                                                                    \
    exec.launch(images, ParamsToCoefficients<T>{family, params, coefficients});                   \
    exec.finish();                                                                                \
  }                                                                                               \
  template <>                                                                                     \
  void transform_grid<T>(const T* params, const FamilySpec<T>& family, bool shared,               \
                         index_t batch, index_t height, index_t width, bool align_corners,        \
                         T* grid) {                                                               \
    Exec exec;                                                                                    \
    device_ops::transform_grid(exec, params, family, shared, batch, height, width, align_corners, \
                               grid);                                                             \
    exec.finish();                                                                                \
  }                                                                                               \
  template <>                                                                                     \
  void transform_grid_backward<T>(const T* grad_grid, const T* params, const FamilySpec<T>& family, \
                                  bool shared, index_t batch, index_t height, index_t width,      \
                                  bool align_corners, T* grad_params) {                           \
    Exec exec;                                                                                    \
    device_ops::transform_grid_backward(exec, grad_grid, params, family, shared, batch, height,   \
                                        width, align_corners, grad_params);                       \
    exec.finish();                                                                                \
  }                                                                                               \
  template <>                                                                                     \
  void grid_sample_forward<T>(const T* input, const T* grid, const SamplerShape& shape,           \
                              const SamplerOptions& options, T* output) {                         \
    Exec exec;                                                                                    \
    device_ops::grid_sample_forward(exec, input, grid, shape, options, output);                   \
    exec.finish();                                                                                \
  }                                                                                               \
  template <>                                                                                     \
  void grid_sample_backward<T>(const T* grad_output, const T* input, const T* grid,               \
                               const SamplerShape& shape, const SamplerOptions& options,          \
                               bool deterministic, T* grad_input, T* grad_grid) {                 \
    Exec exec;                                                                                    \
    device_ops::grid_sample_backward(exec, grad_output, input, grid, shape, options,              \
                                     deterministic, grad_input, grad_grid);                       \
    exec.finish();                                                                                \
  }                                                                                               \
  template <>                                                                                     \
  void spatial_transform_forward<T>(const T* input, const T* params, const FamilySpec<T>& family, \
                                    bool shared, const SamplerShape& shape,                       \
                                    const SamplerOptions& options, T* output) {                   \
    Exec exec;                                                                                    \
    device_ops::spatial_transform_forward(exec, input, params, family, shared, shape, options,    \
                                          output);                                                \
    exec.finish();                                                                                \
  }                                                                                               \
  template <>                                                                                     \
  void spatial_transform_backward<T>(const T* grad_output, const T* input, const T* params,       \
                                     const FamilySpec<T>& family, bool shared,                    \
                                     const SamplerShape& shape, const SamplerOptions& options,    \
                                     bool deterministic, T* grad_input, T* grad_params) {         \
    Exec exec;                                                                                    \
    device_ops::spatial_transform_backward(exec, grad_output, input, params, family, shared,      \
                                           shape, options, deterministic, grad_input,             \
                                           grad_params);                                          \
    exec.finish();                                                                                \
  }

#define STN_DEFINE_OPS(Exec)        \
  STN_DEFINE_OPS_FOR(Exec, float)   \
  STN_DEFINE_OPS_FOR(Exec, double)
