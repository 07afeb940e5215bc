// stn._core.cuda_*: entry points on raw device pointers, for arrays that expose
// __cuda_array_interface__ (CuPy and friends). python/stn/_cuda.py validates the arrays,
// allocates the outputs and passes the pointers; shapes arrive as (N, C, H, W, Ho, Wo).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>

#include "../stn/api.h"

namespace py = pybind11;

namespace stn {
namespace bindings {

#if defined(STN_WITH_CUDA)
namespace {

using Shape6 = std::array<index_t, 6>;

SamplerShape to_shape(const Shape6& s) { return SamplerShape{s[0], s[1], s[2], s[3], s[4], s[5]}; }

template <typename T>
const T* in_ptr(std::uintptr_t address) {
  return reinterpret_cast<const T*>(address);
}
template <typename T>
T* out_ptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

// Calls body(T{}) with T = float or double, from numpy's dtype name, on `stream` (a
// cudaStream_t as an integer: CuPy's current stream), without the GIL.
template <typename Body>
void on_dtype(const std::string& dtype, std::uintptr_t stream, Body&& body) {
  if (dtype != "float32" && dtype != "float64")
    throw py::type_error("stn._core: CUDA dtype must be float32 or float64, got " + dtype);
  py::gil_scoped_release no_gil;
  cuda::set_stream(stream);
  if (dtype == "float32") return body(float{});
  return body(double{});
}

SamplerOptions options_of(int mode, int padding, bool align_corners) {
  if (mode < 0 || mode > 2 || padding < 0 || padding > 2)
    throw py::value_error("stn._core: mode and padding codes must be 0, 1 or 2");
  return SamplerOptions{Interp(mode), Padding(padding), align_corners};
}

// (code, params, fixed mask, fixed values, tps_grid_h, tps_grid_w), as in module.cpp; the
// TPS matrix is a device pointer to float64 (0 for other families).
using FamilyArgs = std::tuple<int, int, unsigned, std::array<double, 6>, int, int>;

template <typename T>
FamilySpec<T> family_of(const FamilyArgs& args, std::uintptr_t tps_solution) {
  FamilySpec<T> spec{};
  if (std::get<0>(args) < 0 || std::get<0>(args) > int(Family::Tps))
    throw std::invalid_argument("stn._core: unknown family code");
  spec.family = Family(std::get<0>(args));
  spec.params = std::get<1>(args);
  spec.fixed_mask = std::get<2>(args);
  for (int i = 0; i < 6; ++i) spec.fixed_value[i] = T(std::get<3>(args)[i]);
  spec.tps_grid_h = std::get<4>(args);
  spec.tps_grid_w = std::get<5>(args);
  spec.tps_solution = in_ptr<double>(tps_solution);
  if (const char* error = family_spec_error(spec)) throw std::invalid_argument(std::string("stn._core: ") + error);
  return spec;
}

}  // namespace

void define_cuda_entry_points(py::module_& m) {
  m.attr("cuda_compiled") = true;
  m.def("cuda_device_count", &cuda::device_count);
  m.def("cuda_transform_coefficients",
        [](const std::string& dtype, std::uintptr_t stream, std::uintptr_t params,
           const FamilyArgs& family, std::uintptr_t tps_solution, index_t images,
           std::uintptr_t coefficients) {
          on_dtype(dtype, stream, [&](auto tag) {
            using T = decltype(tag);
            cuda::transform_coefficients<T>(in_ptr<T>(params), family_of<T>(family, tps_solution),
                                            images, out_ptr<T>(coefficients));
          });
        });
  m.def("cuda_transform_grid",
        [](const std::string& dtype, std::uintptr_t stream, std::uintptr_t params,
           const FamilyArgs& family, std::uintptr_t tps_solution, bool shared, index_t batch,
           index_t height, index_t width, bool align_corners, std::uintptr_t grid) {
          on_dtype(dtype, stream, [&](auto tag) {
            using T = decltype(tag);
            cuda::transform_grid<T>(in_ptr<T>(params), family_of<T>(family, tps_solution), shared,
                                    batch, height, width, align_corners, out_ptr<T>(grid));
          });
        });
  m.def("cuda_transform_grid_backward",
        [](const std::string& dtype, std::uintptr_t stream, std::uintptr_t grad_grid,
           std::uintptr_t params, const FamilyArgs& family, std::uintptr_t tps_solution,
           bool shared, index_t batch, index_t height, index_t width, bool align_corners,
           std::uintptr_t grad_params) {
          on_dtype(dtype, stream, [&](auto tag) {
            using T = decltype(tag);
            cuda::transform_grid_backward<T>(in_ptr<T>(grad_grid), in_ptr<T>(params),
                                             family_of<T>(family, tps_solution), shared, batch,
                                             height, width, align_corners, out_ptr<T>(grad_params));
          });
        });
  m.def("cuda_grid_sample", [](const std::string& dtype, std::uintptr_t stream, std::uintptr_t input, std::uintptr_t grid,
                               const Shape6& shape, int mode, int padding, bool align_corners,
                               std::uintptr_t output) {
    on_dtype(dtype, stream, [&](auto tag) {
      using T = decltype(tag);
      cuda::grid_sample_forward<T>(in_ptr<T>(input), in_ptr<T>(grid), to_shape(shape),
                                   options_of(mode, padding, align_corners), out_ptr<T>(output));
    });
  });
  m.def("cuda_grid_sample_backward",
        [](const std::string& dtype, std::uintptr_t stream, std::uintptr_t grad_output, std::uintptr_t input, std::uintptr_t grid,
           const Shape6& shape, int mode, int padding, bool align_corners, bool deterministic,
           std::uintptr_t grad_input, std::uintptr_t grad_grid) {
          on_dtype(dtype, stream, [&](auto tag) {
            using T = decltype(tag);
            cuda::grid_sample_backward<T>(in_ptr<T>(grad_output), in_ptr<T>(input), in_ptr<T>(grid),
                                          to_shape(shape), options_of(mode, padding, align_corners),
                                          deterministic, out_ptr<T>(grad_input), out_ptr<T>(grad_grid));
          });
        });
  m.def("cuda_spatial_transform",
        [](const std::string& dtype, std::uintptr_t stream, std::uintptr_t input, std::uintptr_t params,
           const FamilyArgs& family, std::uintptr_t tps_solution, bool shared, const Shape6& shape,
           int mode, int padding, bool align_corners, std::uintptr_t output) {
          on_dtype(dtype, stream, [&](auto tag) {
            using T = decltype(tag);
            cuda::spatial_transform_forward<T>(in_ptr<T>(input), in_ptr<T>(params),
                                               family_of<T>(family, tps_solution), shared,
                                               to_shape(shape), options_of(mode, padding, align_corners),
                                               out_ptr<T>(output));
          });
        });
  m.def("cuda_spatial_transform_backward",
        [](const std::string& dtype, std::uintptr_t stream, std::uintptr_t grad_output, std::uintptr_t input,
           std::uintptr_t params, const FamilyArgs& family, std::uintptr_t tps_solution, bool shared,
           const Shape6& shape, int mode, int padding, bool align_corners, bool deterministic,
           std::uintptr_t grad_input, std::uintptr_t grad_params) {
          on_dtype(dtype, stream, [&](auto tag) {
            using T = decltype(tag);
            cuda::spatial_transform_backward<T>(in_ptr<T>(grad_output), in_ptr<T>(input), in_ptr<T>(params),
                                                family_of<T>(family, tps_solution), shared,
                                                to_shape(shape), options_of(mode, padding, align_corners),
                                                deterministic, out_ptr<T>(grad_input),
                                                out_ptr<T>(grad_params));
          });
        });
}
#else
void define_cuda_entry_points(py::module_& m) {
  m.attr("cuda_compiled") = false;
  m.def("cuda_device_count", []() { return 0; });
}
#endif

}  // namespace bindings
}  // namespace stn
