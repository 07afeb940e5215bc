// Where the CPU executor hands work to the vectorized row kernels (simd/affine_rows.h): the
// fused forward, the fused grad_theta rows and the grad_input scatter of an affine map, and
// grid_sample's forward, grad_grid and grad_input, with float32 bilinear sampling and zeros
// or border padding; and affine_grid's points and theta gradient (float32). Each returns
// false, having done nothing, when the call does not qualify (another type, mode, padding or
// map, sizes beyond the kernels' 32-bit offsets, or no SIMD level in use); the caller then
// runs the generic bodies, which give the same bits.
#pragma once

#include "../stn/kernel_bodies.h"

namespace stn {
namespace cpu {

template <typename Body>
bool simd_launch_pixels(index_t, index_t, index_t, const Body&) {
  return false;
}
bool simd_launch_pixels(index_t batch, index_t out_height, index_t out_width,
                        const ForwardPixel<float, Interp::Bilinear, AffineCoords<float>>& body);
bool simd_launch_pixels(index_t batch, index_t out_height, index_t out_width,
                        const ForwardPixel<float, Interp::Bilinear, GridCoords<float>>& body);

bool simd_launch_pixels(index_t batch, index_t out_height, index_t out_width,
                        const GridGradPixel<float, Interp::Bilinear>& body);
bool simd_launch_pixels(index_t batch, index_t out_height, index_t out_width,
                        const MapGridPixel<float, AffineCoords<float>>& body);

template <typename Body>
bool simd_launch(index_t, const Body&) {
  return false;
}
bool simd_launch(index_t rows, const CoefficientGradRow<float, Interp::Bilinear, AffineCoords<float>>& body);
bool simd_launch(index_t rows, const MapGridGradRow<float, AffineCoords<float>>& body);

// The coefficient-gradient rows and the grad_input scatter in one pass (the taps computed
// once for both), where each image is one band of the scatter (N >= threads); and, when
// `reduce` is given, each image's sum of its rows' partials as soon as its rows are done, on
// the thread that wrote them (device_ops.h backward_in_one_pass).
template <typename Body, typename T, typename Reduce>
bool simd_fused_backward(index_t, const Body&, T*, const Reduce*) {
  return false;
}
bool simd_fused_backward(index_t rows, const CoefficientGradRow<float, Interp::Bilinear, AffineCoords<float>>& body,
                         float* grad_input, const ReduceToParams<float, AffineCoords<float>::kCapacity>* reduce);

template <typename T, typename Coords>
bool simd_scatter_grad_input(const Coords&, const T*, const SamplerShape&, const SamplerOptions&, T*) {
  return false;
}
bool simd_scatter_grad_input(const AffineCoords<float>& coords, const float* grad_output,
                             const SamplerShape& shape, const SamplerOptions& options,
                             float* grad_input);
bool simd_scatter_grad_input(const GridCoords<float>& coords, const float* grad_output,
                             const SamplerShape& shape, const SamplerOptions& options,
                             float* grad_input);

}  // namespace cpu
}  // namespace stn
