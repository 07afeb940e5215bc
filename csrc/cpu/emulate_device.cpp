// Runs the CUDA launch sequence (stn/device_ops.h) and kernel bodies (stn/kernel_bodies.h)
// on the host: every "kernel" is a sequential loop over its thread-index space, atomicAdd is
// a plain add, and the GPU's stable sort is std::stable_sort. Tests compare this with the CPU
// path, which is how the device code is checked on machines without a GPU.
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "cpu_executor.h"

namespace stn {
namespace emulated {

struct HostEmulator {
  using AtomicAdd = PlainAdd;

  template <typename Body>
  void launch(index_t count, const Body& body) {
    for (index_t i = 0; i < count; ++i) body(i);
  }

  template <typename Body>
  void launch_pixels(index_t batch, index_t out_height, index_t out_width, const Body& body) {
    launch(batch * out_height * out_width, FlatPixels<Body>{body, out_height, out_width});
  }

  template <typename U>
  cpu::HostBuffer<U> buffer(index_t count) {
    return cpu::HostBuffer<U>(count);
  }

  void finish() {}  // loops are synchronous

  template <typename T>
  void zero(T* data, index_t count) {
    std::memset(data, 0, sizeof(T) * size_t(count));
  }

  void sort_by_destination(index_t* destination, index_t* slot, index_t count) {
    const size_t n = static_cast<size_t>(count);
    std::vector<std::pair<index_t, index_t>> pairs(n);
    for (size_t i = 0; i < n; ++i) pairs[i] = {destination[i], slot[i]};
    std::stable_sort(pairs.begin(), pairs.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 0; i < n; ++i) {
      destination[i] = pairs[i].first;
      slot[i] = pairs[i].second;
    }
  }

  template <typename T, typename Coords>
  void scatter_grad_input(const Coords& coords, const T* grad_output, const SamplerShape& shape,
                          const SamplerOptions& options, bool deterministic, T* grad_input) {
    device_ops::scatter_grad_input(*this, coords, grad_output, shape, options, deterministic,
                                   grad_input);
  }
};

STN_DEFINE_OPS(HostEmulator)

}  // namespace emulated
}  // namespace stn
