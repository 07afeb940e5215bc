// stn.build_info(): how this copy of the core was compiled.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <sstream>
#include <string>
#include <vector>

#include "../cpu/cache_size.h"
#include "../cpu/simd/affine_rows.h"
#include "../stn/api.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace py = pybind11;

namespace stn {
namespace bindings {

namespace {

// The widest vector instruction set the compiler was allowed to use for the whole build.
const char* compiled_simd_level() {
#if defined(__AVX512F__)
  return "AVX-512";
#elif defined(__AVX2__)
  return "AVX2";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE4_2__)
  return "SSE4.2";
#elif defined(__SSE2__) || defined(__x86_64__)
  return "SSE2";
#elif defined(__ARM_NEON) || defined(__aarch64__)
  return "NEON";
#else
  return "none";
#endif
}

[[maybe_unused]] std::vector<int> parse_architectures(const std::string& text) {
  // CMake passes the list ";"-separated (or space-separated); entries may carry -real/-virtual.
  std::vector<int> architectures;
  std::string token;
  std::istringstream stream(text);
  while (std::getline(stream, token, ';')) {
    std::istringstream words(token);
    std::string word;
    while (words >> word) architectures.push_back(std::stoi(word));
  }
  return architectures;
}

}  // namespace

py::dict build_info() {
  py::dict info;
  info["compiler"] = STN_CXX_COMPILER;
  info["cxx_standard"] = int(__cplusplus);
  info["simd"] = compiled_simd_level();
  info["simd_kernels"] = cpu::simd::level_name();  // chosen at run time (cpu/simd/)
  info["l2_cache_bytes"] = cpu::l2_cache_bytes();   // per core, as the C library reports it
#if defined(_OPENMP)
  info["openmp"] = true;
  info["openmp_version"] = int(_OPENMP);
  info["openmp_max_threads"] = omp_get_max_threads();
#else
  info["openmp"] = false;
  info["openmp_version"] = py::none();
  info["openmp_max_threads"] = 1;
#endif
  info["num_threads"] = cpu::get_num_threads();
#if defined(STN_WITH_CUDA)
  info["cuda"] = true;
  info["cuda_compiler"] = STN_CUDA_COMPILER;
  info["cuda_architectures"] = parse_architectures(STN_CUDA_ARCHITECTURES);
  info["cuda_devices"] = cuda::device_count();
#else
  info["cuda"] = false;
  info["cuda_compiler"] = py::none();
  info["cuda_architectures"] = std::vector<int>{};
  info["cuda_devices"] = 0;
#endif
  return info;
}

}  // namespace bindings
}  // namespace stn
