// stn._core: the thin binding between numpy and the plain C++ core (stn/api.h).
//
// python/stn validates every argument and hands over C-contiguous arrays of one dtype; this
// file re-checks only what it needs to never read or write out of bounds, allocates outputs,
// releases the GIL and calls the kernels. Nothing else here knows about Python.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>
#include <tuple>

#include "array_text.h"
#include "output_arrays.h"
#include "../cpu/buffer_cache.h"
#include "../cpu/simd/affine_rows.h"
#include "../stn/api.h"

namespace py = pybind11;

namespace stn {
namespace bindings {

py::dict build_info();  // build_info.cpp

namespace {



void require(bool ok, const std::string& message) {
  if (!ok) throw py::value_error("stn._core: " + message);
}

void require_shape(const py::array& a, std::initializer_list<index_t> shape, const char* name) {
  bool ok = a.ndim() == py::ssize_t(shape.size());
  py::ssize_t axis = 0;
  for (index_t extent : shape) ok = ok && a.shape(axis++) == extent;
  std::string expected = "(";
  axis = 0;
  for (index_t extent : shape) expected += (axis++ ? ", " : "") + std::to_string(extent);
  require(ok, std::string(name) + " must have shape " + expected + "), got " + shape_text(a));
}

SamplerOptions make_options(int mode, int padding, bool align_corners) {
  require(mode >= 0 && mode <= 2, "mode code must be 0, 1 or 2");
  require(padding >= 0 && padding <= 2, "padding code must be 0, 1 or 2");
  return SamplerOptions{Interp(mode), Padding(padding), align_corners};
}

enum class Backend { Cpu, Emulated };

Backend parse_backend(const std::string& name) {
  if (name == "cpu") return Backend::Cpu;
  if (name == "emulated") return Backend::Emulated;
  throw py::value_error("stn._core: backend must be 'cpu' or 'emulated', got '" + name + "'");
}

#define STN_CALL(backend, function, ...)                        \
  do {                                                          \
    py::gil_scoped_release no_gil;                              \
    if ((backend) == Backend::Cpu) cpu::function(__VA_ARGS__);  \
    else emulated::function(__VA_ARGS__);                       \
  } while (0)

// A transformation family as Python passes it: (code, params per image, fixed-entry mask,
// the six fixed values, tps_grid_h, tps_grid_w); tps_solution is None or (K + 3, K) float64.
using FamilyArgs = std::tuple<int, int, unsigned, std::array<double, 6>, int, int>;

template <typename T>
struct FamilyCall {
  FamilySpec<T> spec;
  Array<double> solution;  // keeps the TPS matrix (float64) alive for the call
};

template <typename T>
FamilyCall<T> make_family(const FamilyArgs& args, const py::object& tps_solution) {
  FamilyCall<T> family{};
  FamilySpec<T>& spec = family.spec;
  require(std::get<0>(args) >= 0 && std::get<0>(args) <= int(stn::Family::Tps), "unknown family code");
  spec.family = stn::Family(std::get<0>(args));
  spec.params = std::get<1>(args);
  spec.fixed_mask = std::get<2>(args);
  for (int i = 0; i < 6; ++i) spec.fixed_value[i] = T(std::get<3>(args)[i]);
  spec.tps_grid_h = std::get<4>(args);
  spec.tps_grid_w = std::get<5>(args);
  spec.tps_solution = nullptr;
  if (spec.family == stn::Family::Tps && !tps_solution.is_none()) {
    family.solution = py::cast<Array<double>>(tps_solution);
    const index_t k = index_t(spec.tps_grid_h) * spec.tps_grid_w;
    require_shape(family.solution, {k + 3, k}, "tps_solution");
    spec.tps_solution = family.solution.data();
  }
  const char* error = family_spec_error(spec);
  require(error == nullptr, error == nullptr ? "" : error);
  return family;
}

// params hold (shared ? 1 : batch) sets of spec.params values, whatever their shape.
template <typename T>
index_t images_of(const Array<T>& params, const FamilySpec<T>& spec, bool shared, index_t batch) {
  const index_t images = shared ? 1 : batch;
  require(index_t(params.size()) == images * spec.params,
          "params must hold " + std::to_string(images) + " x " + std::to_string(spec.params) +
              " values, got shape " + shape_text(params));
  return images;
}

template <typename T>
Array<T> same_shape_as(const py::array& a) {
  return Array<T>(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
}

// coefficients (images, count) of each image's point map: theta (2, 3) for the matrix
// families, h (8) for projective (stn.transforms.to_matrix).
template <typename T>
Array<T> transform_coefficients(const Array<T>& params, const FamilyArgs& family_args,
                                const py::object& tps_solution, index_t images,
                                const std::string& backend_name) {
  const Backend backend = parse_backend(backend_name);
  const FamilyCall<T> family = make_family<T>(family_args, tps_solution);
  require(images >= 0, "images must not be negative");
  images_of(params, family.spec, false, images);
  Array<T> coefficients({images, index_t(family.spec.coefficients())});
  STN_CALL(backend, transform_coefficients<T>, params.data(), family.spec, images,
           coefficients.mutable_data());
  return coefficients;
}

template <typename T>
Array<T> transform_grid(const Array<T>& params, const FamilyArgs& family_args,
                        const py::object& tps_solution, bool shared, index_t batch, index_t height,
                        index_t width, bool align_corners, const std::string& backend_name) {
  const Backend backend = parse_backend(backend_name);
  require(batch > 0 && height > 0 && width > 0, "size must be positive");
  const FamilyCall<T> family = make_family<T>(family_args, tps_solution);
  images_of(params, family.spec, shared, batch);
  Array<T> grid = new_array<T>({batch, height, width, index_t(2)});
  STN_CALL(backend, transform_grid<T>, params.data(), family.spec, shared, batch, height, width,
           align_corners, grid.mutable_data());
  return grid;
}

template <typename T>
Array<T> transform_grid_backward(const Array<T>& grad_grid, const Array<T>& params,
                                 const FamilyArgs& family_args, const py::object& tps_solution,
                                 bool shared, bool align_corners, const std::string& backend_name) {
  const Backend backend = parse_backend(backend_name);
  require(grad_grid.ndim() == 4 && grad_grid.shape(3) == 2,
          "grad_grid must be (N, H, W, 2), got " + shape_text(grad_grid));
  const index_t batch = grad_grid.shape(0), height = grad_grid.shape(1), width = grad_grid.shape(2);
  require(batch > 0 && height > 0 && width > 0, "grad_grid must not be empty");
  const FamilyCall<T> family = make_family<T>(family_args, tps_solution);
  images_of(params, family.spec, shared, batch);
  Array<T> grad_params = same_shape_as<T>(params);
  STN_CALL(backend, transform_grid_backward<T>, grad_grid.data(), params.data(), family.spec,
           shared, batch, height, width, align_corners, grad_params.mutable_data());
  return grad_params;
}

template <typename T>
SamplerShape sampler_shape(const Array<T>& input, index_t out_height, index_t out_width) {
  require(input.ndim() == 4, "input must be (N, C, H, W), got " + shape_text(input));
  const SamplerShape shape{input.shape(0), input.shape(1), input.shape(2), input.shape(3), out_height, out_width};
  require(shape.batch > 0 && shape.channels > 0 && shape.in_height > 0 && shape.in_width > 0 &&
              out_height > 0 && out_width > 0,
          "every size must be positive");
  return shape;
}

template <typename T>
SamplerShape grid_path_shape(const Array<T>& input, const Array<T>& grid) {
  require(grid.ndim() == 4 && grid.shape(3) == 2, "grid must be (N, Ho, Wo, 2), got " + shape_text(grid));
  const SamplerShape shape = sampler_shape(input, grid.shape(1), grid.shape(2));
  require_shape(grid, {shape.batch, shape.out_height, shape.out_width, 2}, "grid");
  return shape;
}

// A new (N, C, H, W) array, stored in *owner; returns its data.
template <typename T>
T* allocate_like_input(const SamplerShape& shape, py::object* owner) {
  Array<T> array = new_array<T>({shape.batch, shape.channels, shape.in_height, shape.in_width});
  T* data = array.mutable_data();
  *owner = std::move(array);
  return data;
}

template <typename T>
Array<T> grid_sample(const Array<T>& input, const Array<T>& grid, int mode, int padding,
                     bool align_corners, const std::string& backend_name) {
  const Backend backend = parse_backend(backend_name);
  const SamplerShape shape = grid_path_shape(input, grid);
  const SamplerOptions options = make_options(mode, padding, align_corners);
  Array<T> output = new_array<T>({shape.batch, shape.channels, shape.out_height, shape.out_width});
  STN_CALL(backend, grid_sample_forward<T>, input.data(), grid.data(), shape, options, output.mutable_data());
  return output;
}

template <typename T>
py::tuple grid_sample_backward(const Array<T>& grad_output, const Array<T>& input,
                               const Array<T>& grid, int mode, int padding, bool align_corners,
                               bool input_grad, bool deterministic, const std::string& backend_name) {
  const Backend backend = parse_backend(backend_name);
  const SamplerShape shape = grid_path_shape(input, grid);
  const SamplerOptions options = make_options(mode, padding, align_corners);
  require_shape(grad_output, {shape.batch, shape.channels, shape.out_height, shape.out_width}, "grad_output");
  Array<T> grad_grid = new_array<T>({shape.batch, shape.out_height, shape.out_width, index_t(2)});
  py::object grad_input_object = py::none();
  T* grad_input = input_grad ? allocate_like_input<T>(shape, &grad_input_object) : nullptr;
  STN_CALL(backend, grid_sample_backward<T>, grad_output.data(), input.data(), grid.data(), shape,
           options, deterministic, grad_input, grad_grid.mutable_data());
  return py::make_tuple(grad_input_object, grad_grid);
}

template <typename T>
Array<T> spatial_transform(const Array<T>& input, const Array<T>& params,
                           const FamilyArgs& family_args, const py::object& tps_solution,
                           bool shared, index_t out_height, index_t out_width, int mode, int padding,
                           bool align_corners, const std::string& backend_name) {
  const Backend backend = parse_backend(backend_name);
  const SamplerShape shape = sampler_shape(input, out_height, out_width);
  const SamplerOptions options = make_options(mode, padding, align_corners);
  const FamilyCall<T> family = make_family<T>(family_args, tps_solution);
  images_of(params, family.spec, shared, shape.batch);
  Array<T> output = new_array<T>({shape.batch, shape.channels, out_height, out_width});
  STN_CALL(backend, spatial_transform_forward<T>, input.data(), params.data(), family.spec, shared,
           shape, options, output.mutable_data());
  return output;
}

template <typename T>
py::tuple spatial_transform_backward(const Array<T>& grad_output, const Array<T>& input,
                                     const Array<T>& params, const FamilyArgs& family_args,
                                     const py::object& tps_solution, bool shared, int mode,
                                     int padding, bool align_corners, bool input_grad,
                                     bool deterministic, const std::string& backend_name) {
  const Backend backend = parse_backend(backend_name);
  require(grad_output.ndim() == 4, "grad_output must be (N, C, Ho, Wo), got " + shape_text(grad_output));
  const SamplerShape shape = sampler_shape(input, grad_output.shape(2), grad_output.shape(3));
  const SamplerOptions options = make_options(mode, padding, align_corners);
  require_shape(grad_output, {shape.batch, shape.channels, shape.out_height, shape.out_width}, "grad_output");
  const FamilyCall<T> family = make_family<T>(family_args, tps_solution);
  images_of(params, family.spec, shared, shape.batch);
  Array<T> grad_params = same_shape_as<T>(params);
  py::object grad_input_object = py::none();
  T* grad_input = input_grad ? allocate_like_input<T>(shape, &grad_input_object) : nullptr;
  STN_CALL(backend, spatial_transform_backward<T>, grad_output.data(), input.data(), params.data(),
           family.spec, shared, shape, options, deterministic, grad_input,
           grad_params.mutable_data());
  return py::make_tuple(grad_input_object, grad_params);
}

// Registers one function for float32 and float64, with no implicit dtype conversion.
template <typename T>
void define_for_dtype(py::module_& m) {
  m.def("transform_coefficients", &transform_coefficients<T>, py::arg("params").noconvert(),
        py::arg("family"), py::arg("tps_solution"), py::arg("images"), py::arg("backend") = "cpu");
  m.def("transform_grid", &transform_grid<T>, py::arg("params").noconvert(), py::arg("family"),
        py::arg("tps_solution"), py::arg("shared"), py::arg("batch"), py::arg("height"),
        py::arg("width"), py::arg("align_corners"), py::arg("backend") = "cpu");
  m.def("transform_grid_backward", &transform_grid_backward<T>, py::arg("grad_grid").noconvert(),
        py::arg("params").noconvert(), py::arg("family"), py::arg("tps_solution"),
        py::arg("shared"), py::arg("align_corners"), py::arg("backend") = "cpu");
  m.def("grid_sample", &grid_sample<T>, py::arg("input").noconvert(), py::arg("grid").noconvert(),
        py::arg("mode"), py::arg("padding"), py::arg("align_corners"), py::arg("backend") = "cpu");
  m.def("grid_sample_backward", &grid_sample_backward<T>, py::arg("grad_output").noconvert(),
        py::arg("input").noconvert(), py::arg("grid").noconvert(), py::arg("mode"),
        py::arg("padding"), py::arg("align_corners"), py::arg("input_grad"),
        py::arg("deterministic") = false, py::arg("backend") = "cpu");
  m.def("spatial_transform", &spatial_transform<T>, py::arg("input").noconvert(),
        py::arg("params").noconvert(), py::arg("family"), py::arg("tps_solution"),
        py::arg("shared"), py::arg("out_height"), py::arg("out_width"), py::arg("mode"),
        py::arg("padding"), py::arg("align_corners"), py::arg("backend") = "cpu");
  m.def("spatial_transform_backward", &spatial_transform_backward<T>,
        py::arg("grad_output").noconvert(), py::arg("input").noconvert(),
        py::arg("params").noconvert(), py::arg("family"), py::arg("tps_solution"),
        py::arg("shared"), py::arg("mode"), py::arg("padding"), py::arg("align_corners"),
        py::arg("input_grad"), py::arg("deterministic") = false, py::arg("backend") = "cpu");
}

}  // namespace

void define_cuda_entry_points(py::module_& m);  // cuda_bindings.cpp
void define_pooling(py::module_& m);            // pooling_bindings.cpp
void define_convolution(py::module_& m);        // conv_bindings.cpp

}  // namespace bindings
}  // namespace stn

PYBIND11_MODULE(_core, m) {
  m.doc() = "stn compiled core: spatial-transformer kernels (use the stn package, not this module)";
  stn::bindings::define_for_dtype<float>(m);
  stn::bindings::define_for_dtype<double>(m);
  m.def("build_info", &stn::bindings::build_info);
  m.def("set_num_threads", &stn::cpu::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &stn::cpu::get_num_threads);
  m.def("simd_level", &stn::cpu::simd::level_name,
        "The vector kernels in use by the CPU path: 'AVX-512', 'AVX2' or 'off'.");
  m.def("set_output_cache_bytes", &stn::cpu::buffer_cache::set_budget, py::arg("bytes"),
        "Most bytes of freed output arrays kept for reuse (default 256 MiB; 0: none).");
  m.def("output_cache_bytes", &stn::cpu::buffer_cache::budget);
  m.def("output_cache_idle_bytes", &stn::cpu::buffer_cache::idle_bytes);
  m.def("set_simd_level", [](const std::string& name) { return stn::cpu::simd::set_level(name.c_str()); },
        py::arg("name"), "Select 'best', 'avx512', 'avx2' or 'off'; False if unavailable here.");
  stn::bindings::define_cuda_entry_points(m);
  stn::bindings::define_pooling(m);
  stn::bindings::define_convolution(m);
}
