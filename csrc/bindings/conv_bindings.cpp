// stn._core.im2col / col2im, for the Convolution layer (python/stn/layers/vision.py). Both
// write into an array the caller owns (the layer's reused workspace, the bottom's diff), so a
// training iteration allocates nothing here. Checks every shape the kernels index by.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <string>

#include "array_text.h"
#include "../cpu/im2col.h"

namespace py = pybind11;

namespace stn {
namespace bindings {
namespace {

// kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w
using Window = std::array<index_t, 8>;


void require(bool ok, const char* function, const std::string& message) {
  if (!ok) throw py::value_error(std::string("stn._core.") + function + ": " + message);
}

// The geometry of image (N, C, H, W) under window; checks that every output has a tap inside
// the padded image, as the layer's reshape does.
ConvGeometry geometry(const char* function, const py::array& image, const Window& w) {
  require(image.ndim() == 4, function, "image must be (N, C, H, W), got " + shape_text(image));
  for (int k = 0; k < 8; ++k)
    require(w[k] >= (k == 4 || k == 5 ? 0 : 1), function,
            "kernel, stride and dilation must be >= 1 and pad >= 0");
  ConvGeometry g{image.shape(0), image.shape(1), image.shape(2), image.shape(3),
                 w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], 0, 0};
  const index_t extent_h = g.dilation_h * (g.kernel_h - 1) + 1;
  const index_t extent_w = g.dilation_w * (g.kernel_w - 1) + 1;
  require(g.height + 2 * g.pad_h >= extent_h && g.width + 2 * g.pad_w >= extent_w, function,
          "the kernel extent is larger than the padded image " + shape_text(image));
  g.out_height = (g.height + 2 * g.pad_h - extent_h) / g.stride_h + 1;
  g.out_width = (g.width + 2 * g.pad_w - extent_w) / g.stride_w + 1;
  return g;
}

void require_columns(const char* function, const py::array& columns, const ConvGeometry& g) {
  const index_t rows = g.channels * g.kernel_h * g.kernel_w;
  const index_t length = g.images * g.out_height * g.out_width;
  require(columns.ndim() == 2 && columns.shape(0) == rows && columns.shape(1) == length, function,
          "columns must have shape (" + std::to_string(rows) + ", " + std::to_string(length) +
              "), got " + shape_text(columns));
}

void require_apart(const char* function, const py::array& a, const py::array& b) {
  const char* a_begin = static_cast<const char*>(a.data());
  const char* b_begin = static_cast<const char*>(b.data());
  const bool apart = a_begin + a.nbytes() <= b_begin || b_begin + b.nbytes() <= a_begin;
  require(apart, function, "the image and the columns must not share memory");
}

template <typename T>
void im2col(const Array<T>& image, const Window& window, Array<T>& columns) {
  const ConvGeometry g = geometry("im2col", image, window);
  require_columns("im2col", columns, g);
  require(columns.writeable(), "im2col", "columns must be writeable");
  require_apart("im2col", image, columns);
  T* out = columns.mutable_data();
  py::gil_scoped_release no_gil;
  cpu::im2col<T>(image.data(), g, out);
}

template <typename T>
void col2im(const Array<T>& columns, const Window& window, Array<T>& image) {
  const ConvGeometry g = geometry("col2im", image, window);
  require_columns("col2im", columns, g);
  require(image.writeable(), "col2im", "image must be writeable");
  require_apart("col2im", image, columns);
  T* out = image.mutable_data();
  py::gil_scoped_release no_gil;
  cpu::col2im<T>(columns.data(), g, out);
}

template <typename T>
void define_for(py::module_& m) {
  m.def("im2col", &im2col<T>, py::arg("image").noconvert(), py::arg("window"),
        py::arg("columns").noconvert(),
        "image (N, C, H, W) -> columns (C*kh*kw, N*OH*OW), written in place; window is "
        "(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)");
  m.def("col2im", &col2im<T>, py::arg("columns").noconvert(), py::arg("window"),
        py::arg("image").noconvert(),
        "columns (C*kh*kw, N*OH*OW) -> image (N, C, H, W), overwritten with the sum of the "
        "taps that read each pixel (the adjoint of im2col)");
}

}  // namespace

void define_convolution(py::module_& m) {
  define_for<float>(m);
  define_for<double>(m);
}

}  // namespace bindings
}  // namespace stn
