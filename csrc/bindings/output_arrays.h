// New numpy arrays for the kernels' outputs. Large ones live in recycled memory
// (cpu/buffer_cache.h), returned to the cache when Python frees the array; the kernels write
// every element, so what the memory held before never shows.
#pragma once

#include <pybind11/numpy.h>

#include <new>
#include <vector>

#include "../cpu/buffer_cache.h"
#include "array_text.h"

namespace stn {
namespace bindings {

template <typename T>
Array<T> new_array(const std::vector<pybind11::ssize_t>& shape) {
  size_t count = 1;
  for (pybind11::ssize_t side : shape) count *= size_t(side);
  const size_t bytes = count * sizeof(T);
  if (bytes < cpu::buffer_cache::kMinCachedBytes || cpu::buffer_cache::budget() == 0) return Array<T>(shape);
  void* block = cpu::buffer_cache::acquire(bytes);
  if (block == nullptr) throw std::bad_alloc();
  pybind11::capsule owner(block, [](void* memory) { cpu::buffer_cache::release(memory); });
  return Array<T>(shape, static_cast<const T*>(block), owner);
}

}  // namespace bindings
}  // namespace stn
