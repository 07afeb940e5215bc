// stn._core.max_pool / ave_pool and their backward passes, for the Pooling layer
// (python/stn/layers/vision.py). Arrays arrive C-contiguous as (N, C, H, W).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>

#include "../stn/pooling.h"

namespace py = pybind11;

namespace stn {
namespace bindings {
namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style>;
using Window = std::array<index_t, 6>;  // kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w

// The shape of a pooling call; checks what the kernels rely on to stay in bounds.
template <typename T>
PoolShape pool_shape(const Array<T>& input_4d, const Window& w, index_t out_height, index_t out_width) {
  if (input_4d.ndim() != 4) throw py::value_error("stn._core pooling: input must be (N, C, H, W)");
  const PoolShape s{input_4d.shape(0) * input_4d.shape(1), input_4d.shape(2), input_4d.shape(3),
                    out_height, out_width, w[0], w[1], w[2], w[3], w[4], w[5]};
  if (s.kernel_h <= 0 || s.kernel_w <= 0 || s.stride_h <= 0 || s.stride_w <= 0 || s.pad_h < 0 ||
      s.pad_w < 0 || out_height <= 0 || out_width <= 0)
    throw py::value_error("stn._core pooling: kernel, stride and output sizes must be positive");
  return s;
}

template <typename T>
py::tuple max_pool(const Array<T>& input, const Window& window, index_t out_height, index_t out_width) {
  const PoolShape s = pool_shape(input, window, out_height, out_width);
  Array<T> output({input.shape(0), input.shape(1), out_height, out_width});
  py::array_t<int32_t, py::array::c_style> argmax({input.shape(0), input.shape(1), out_height, out_width});
  {
    py::gil_scoped_release no_gil;
    cpu::max_pool_forward<T>(input.data(), s, output.mutable_data(), argmax.mutable_data());
  }
  return py::make_tuple(output, argmax);
}

template <typename T>
Array<T> max_pool_backward(const Array<T>& grad_output, const py::array_t<int32_t, py::array::c_style>& argmax,
                           const Array<T>& input, const Window& window) {
  const PoolShape s = pool_shape(input, window, grad_output.shape(2), grad_output.shape(3));
  if (grad_output.ndim() != 4 || argmax.ndim() != 4 || grad_output.size() != argmax.size() ||
      grad_output.shape(0) * grad_output.shape(1) != s.planes)
    throw py::value_error("stn._core max_pool_backward: grad_output and argmax must match the output");
  Array<T> grad_input({input.shape(0), input.shape(1), input.shape(2), input.shape(3)});
  py::gil_scoped_release no_gil;
  cpu::max_pool_backward<T>(grad_output.data(), argmax.data(), s, grad_input.mutable_data());
  return grad_input;
}

template <typename T>
Array<T> ave_pool(const Array<T>& input, const Window& window, index_t out_height, index_t out_width) {
  const PoolShape s = pool_shape(input, window, out_height, out_width);
  Array<T> output({input.shape(0), input.shape(1), out_height, out_width});
  py::gil_scoped_release no_gil;
  cpu::ave_pool_forward<T>(input.data(), s, output.mutable_data());
  return output;
}

template <typename T>
Array<T> ave_pool_backward(const Array<T>& grad_output, const Array<T>& input, const Window& window) {
  const PoolShape s = pool_shape(input, window, grad_output.shape(2), grad_output.shape(3));
  if (grad_output.ndim() != 4 || grad_output.shape(0) * grad_output.shape(1) != s.planes)
    throw py::value_error("stn._core ave_pool_backward: grad_output must match the output");
  Array<T> grad_input({input.shape(0), input.shape(1), input.shape(2), input.shape(3)});
  py::gil_scoped_release no_gil;
  cpu::ave_pool_backward<T>(grad_output.data(), s, grad_input.mutable_data());
  return grad_input;
}

template <typename T>
void define_pooling_for(py::module_& m) {
  m.def("max_pool", &max_pool<T>, py::arg("input").noconvert(), py::arg("window"),
        py::arg("out_height"), py::arg("out_width"));
  m.def("max_pool_backward", &max_pool_backward<T>, py::arg("grad_output").noconvert(),
        py::arg("argmax").noconvert(), py::arg("input").noconvert(), py::arg("window"));
  m.def("ave_pool", &ave_pool<T>, py::arg("input").noconvert(), py::arg("window"),
        py::arg("out_height"), py::arg("out_width"));
  m.def("ave_pool_backward", &ave_pool_backward<T>, py::arg("grad_output").noconvert(),
        py::arg("input").noconvert(), py::arg("window"));
}

}  // namespace

void define_pooling(py::module_& m) {
  define_pooling_for<float>(m);
  define_pooling_for<double>(m);
}

}  // namespace bindings
}  // namespace stn
