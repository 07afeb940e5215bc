// CUDA entry points: the shared launch sequences (stn/device_ops.h) on a CUDA executor.
// Only the loop (a grid-stride kernel), scratch memory, the atomic scatter and the sort are
// device-specific; every per-pixel formula comes from the host+device headers in stn/.
#include <cuda_runtime.h>
#include <thrust/execution_policy.h>
#include <thrust/sort.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../stn/api.h"
#include "../stn/device_ops.h"

namespace stn {
namespace cuda {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear it, so the next call does not report this failure again
    throw std::runtime_error(std::string("stn CUDA error in ") + what + ": " +
                             cudaGetErrorString(status));
  }
}

// The stream every operation of this thread runs on (set by the bindings from CuPy's
// current stream; 0, the legacy default stream, otherwise).
thread_local cudaStream_t current_stream = nullptr;

template <typename Body>
__global__ void run_body(Body body, index_t count) {
  const index_t stride = index_t(blockDim.x) * gridDim.x;
  for (index_t i = index_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) body(i);
}

struct AtomicAddFunctor {
  template <typename T>
  __device__ void operator()(T* destination, T value) const {
    atomicAdd(destination, value);
  }
};

template <typename U>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(index_t count) {
    if (count > 0) check(cudaMalloc(&data_, sizeof(U) * size_t(count)), "cudaMalloc");
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept : data_(other.data_) { other.data_ = nullptr; }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {  // cudaFree waits for the kernels still using the memory
    if (data_ != nullptr) cudaFree(data_);
  }
  U* data() { return data_; }

 private:
  U* data_ = nullptr;
};

struct CudaExecutor {
  using AtomicAdd = AtomicAddFunctor;
  static constexpr int kThreadsPerBlock = 256;
  cudaStream_t stream = current_stream;

  template <typename Body>
  void launch(index_t count, const Body& body) {
    if (count <= 0) return;
    const index_t blocks = std::min<index_t>((count + kThreadsPerBlock - 1) / kThreadsPerBlock, 1 << 20);
    run_body<<<unsigned(blocks), kThreadsPerBlock, 0, stream>>>(body, count);
    check(cudaGetLastError(), "kernel launch");
  }

  template <typename Body>
  void launch_pixels(index_t batch, index_t out_height, index_t out_width, const Body& body) {
    launch(batch * out_height * out_width, FlatPixels<Body>{body, out_height, out_width});
  }

  template <typename U>
  DeviceBuffer<U> buffer(index_t count) {
    return DeviceBuffer<U>(count);
  }

  template <typename T>
  void zero(T* data, index_t count) {
    check(cudaMemsetAsync(data, 0, sizeof(T) * size_t(count), stream), "cudaMemsetAsync");
  }

  void sort_by_destination(index_t* destination, index_t* slot, index_t count) {
    thrust::stable_sort_by_key(thrust::cuda::par.on(stream), destination, destination + count, slot);
    check(cudaGetLastError(), "stable_sort_by_key");
  }

  template <typename T, typename Coords>
  void scatter_grad_input(const Coords& coords, const T* grad_output, const SamplerShape& shape,
                          const SamplerOptions& options, bool deterministic, T* grad_input) {
    device_ops::scatter_grad_input(*this, coords, grad_output, shape, options, deterministic,
                                   grad_input);
  }

  // Waits for the stream, so a fault inside a kernel is reported by the call that caused it
  // (and scratch buffers are released only after the kernels that use them).
  void finish() { check(cudaStreamSynchronize(stream), "kernel execution"); }
};

}  // namespace

STN_DEFINE_OPS(CudaExecutor)

void set_stream(std::uintptr_t stream) { current_stream = reinterpret_cast<cudaStream_t>(stream); }

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" status
    return 0;
  }
  return count;
}

}  // namespace cuda
}  // namespace stn
