// stn._core.max_pool / ave_pool and their backward passes, for the Pooling layer
// (python/stn/layers/vision.py). Arrays arrive C-contiguous as (N, C, H, W); every result is
// written into an array the caller owns (the top, the bottom's diff, the layer's argmax), so
// a training iteration allocates nothing here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "array_text.h"
#include "../stn/pooling.h"

namespace py = pybind11;

namespace stn {
namespace bindings {
namespace {

using Argmax = py::array_t<int32_t, py::array::c_style>;
using Window = std::array<index_t, 6>;  // kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w


void require(bool ok, const std::string& message) {
  if (!ok) throw py::value_error("stn._core pooling: " + message);
}

// The shape of a pooling call from the input (N, C, H, W) and the output (N, C, OH, OW);
// checks what the kernels rely on to stay in bounds.
PoolShape pool_shape(const py::array& input, const Window& w, const py::array& output) {
  require(input.ndim() == 4, "input must be (N, C, H, W), got " + shape_text(input));
  require(output.ndim() == 4 && output.shape(0) == input.shape(0) &&
              output.shape(1) == input.shape(1),
          "output must be (N, C, OH, OW) with the input's N and C: input " + shape_text(input) +
              ", output " + shape_text(output));
  const PoolShape s{input.shape(0) * input.shape(1), input.shape(2), input.shape(3),
                    output.shape(2), output.shape(3), w[0], w[1], w[2], w[3], w[4], w[5]};
  require(s.kernel_h > 0 && s.kernel_w > 0 && s.stride_h > 0 && s.stride_w > 0 && s.pad_h >= 0 &&
              s.pad_w >= 0 && s.out_height > 0 && s.out_width > 0,
          "kernel, stride and output sizes must be positive");
  // Every window must start inside the padded image (the layer's output-size rule).
  require((s.out_height - 1) * s.stride_h < s.height + s.pad_h &&
              (s.out_width - 1) * s.stride_w < s.width + s.pad_w,
          "output " + shape_text(output) + " has windows past the padded input " +
              shape_text(input));
  return s;
}

void require_same_shape(const py::array& a, const py::array& b, const char* a_name,
                        const char* b_name) {
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == b.shape(i);
  require(same, std::string(a_name) + " " + shape_text(a) + " and " + b_name + " " +
                    shape_text(b) + " must have one shape");
}

void require_writeable(const py::array& a, const char* name) {
  require(a.writeable(), std::string(name) + " must be writeable");
}

// The backward kernel adds at (window start + argmax offset): an offset that lands outside
// the image would write outside grad_input. The layer's own argmax always passes; this
// guards any other caller. One pass over the outputs with table look-ups, no division:
// it runs on every backward pass.
void require_offsets_inside(const Argmax& argmax, const PoolShape& s) {
  const index_t area = s.kernel_h * s.kernel_w;
  // Kernel row and column of each offset; slot 0 (offset -1 and anything unknown) is never
  // inside, as its row is -1.
  std::vector<index_t> row_of(static_cast<size_t>(area + 1), -1), col_of(row_of);
  for (index_t k = 0; k < area; ++k) {
    row_of[static_cast<size_t>(k + 1)] = k / s.kernel_w;
    col_of[static_cast<size_t>(k + 1)] = k % s.kernel_w;
  }
  // For each output row (column), the kernel rows (columns) inside the image: [first, last].
  auto inside = [](index_t outputs, index_t stride, index_t pad, index_t size) {
    std::vector<std::array<index_t, 2>> ranges;
    for (index_t o = 0; o < outputs; ++o)
      ranges.push_back({pad - o * stride, size - 1 + pad - o * stride});
    return ranges;
  };
  const auto rows = inside(s.out_height, s.stride_h, s.pad_h, s.height);
  const auto cols = inside(s.out_width, s.stride_w, s.pad_w, s.width);
  const int32_t* offset = argmax.data();
  for (index_t p = 0; p < s.planes; ++p)
    for (size_t oh = 0; oh < rows.size(); ++oh)
      for (size_t ow = 0; ow < cols.size(); ++ow, ++offset) {
        const int32_t k = *offset;
        if (k == -1) continue;
        const size_t slot = k >= 0 && k < area ? static_cast<size_t>(k + 1) : 0;
        const index_t i = row_of[slot], j = col_of[slot];
        if (i < std::max<index_t>(rows[oh][0], 0) || i > rows[oh][1] || j < std::max<index_t>(cols[ow][0], 0) ||
            j > cols[ow][1])
          require(false, "argmax holds " + std::to_string(k) + " at output (" +
                             std::to_string(p) + ", " + std::to_string(oh) + ", " +
                             std::to_string(ow) + "): not -1 nor the offset of an input cell "
                             "inside its window");
      }
}

template <typename T>
void max_pool(const Array<T>& input, const Window& window, Array<T>& output, Argmax& argmax) {
  const PoolShape s = pool_shape(input, window, output);
  require_same_shape(output, argmax, "output", "argmax");
  require_writeable(output, "output");
  require_writeable(argmax, "argmax");
  T* best = output.mutable_data();
  int32_t* offsets = argmax.mutable_data();
  py::gil_scoped_release no_gil;
  cpu::max_pool_forward<T>(input.data(), s, best, offsets);
}

template <typename T>
void max_pool_backward(const Array<T>& grad_output, const Argmax& argmax, const Window& window,
                       Array<T>& grad_input) {
  const PoolShape s = pool_shape(grad_input, window, grad_output);
  require_same_shape(grad_output, argmax, "grad_output", "argmax");
  require_writeable(grad_input, "grad_input");
  require_offsets_inside(argmax, s);
  T* grad = grad_input.mutable_data();
  py::gil_scoped_release no_gil;
  cpu::max_pool_backward<T>(grad_output.data(), argmax.data(), s, grad);
}

template <typename T>
void ave_pool(const Array<T>& input, const Window& window, Array<T>& output) {
  const PoolShape s = pool_shape(input, window, output);
  require_writeable(output, "output");
  T* out = output.mutable_data();
  py::gil_scoped_release no_gil;
  cpu::ave_pool_forward<T>(input.data(), s, out);
}

template <typename T>
void ave_pool_backward(const Array<T>& grad_output, const Window& window, Array<T>& grad_input) {
  const PoolShape s = pool_shape(grad_input, window, grad_output);
  require_writeable(grad_input, "grad_input");
  T* grad = grad_input.mutable_data();
  py::gil_scoped_release no_gil;
  cpu::ave_pool_backward<T>(grad_output.data(), s, grad);
}

template <typename T>
void define_pooling_for(py::module_& m) {
  m.def("max_pool", &max_pool<T>, py::arg("input").noconvert(), py::arg("window"),
        py::arg("output").noconvert(), py::arg("argmax").noconvert());
  m.def("max_pool_backward", &max_pool_backward<T>, py::arg("grad_output").noconvert(),
        py::arg("argmax").noconvert(), py::arg("window"), py::arg("grad_input").noconvert());
  m.def("ave_pool", &ave_pool<T>, py::arg("input").noconvert(), py::arg("window"),
        py::arg("output").noconvert());
  m.def("ave_pool_backward", &ave_pool_backward<T>, py::arg("grad_output").noconvert(),
        py::arg("window"), py::arg("grad_input").noconvert());
}

}  // namespace

void define_pooling(py::module_& m) {
  define_pooling_for<float>(m);
  define_pooling_for<double>(m);
}

}  // namespace bindings
}  // namespace stn
