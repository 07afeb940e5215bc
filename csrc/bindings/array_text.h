// Helpers every binding file shares: the C-contiguous numpy array type the kernels take, and
// an array's shape as Python prints it, for error messages that name the shapes involved.
#pragma once

#include <pybind11/numpy.h>

#include <string>

namespace stn {
namespace bindings {

template <typename T>
using Array = pybind11::array_t<T, pybind11::array::c_style>;

// "(2, 3)", "(5,)", "()".
inline std::string shape_text(const pybind11::array& a) {
  std::string text = "(";
  for (pybind11::ssize_t i = 0; i < a.ndim(); ++i) text += (i ? ", " : "") + std::to_string(a.shape(i));
  return text + (a.ndim() == 1 ? ",)" : ")");
}

}  // namespace bindings
}  // namespace stn
