// Run-time choice of the row kernels (affine_rows.h): the fastest level this CPU supports,
// unless STN_SIMD or set_level() asks for another. Built on every architecture; where the
// x86 kernels are not compiled in (STN_X86_SIMD undefined, e.g. aarch64) nothing is offered
// and the generic bodies run.
#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(STN_X86_SIMD)
#include <cpuid.h>
#endif

#include "affine_rows.h"

namespace stn {
namespace cpu {
namespace simd {

#if !defined(STN_X86_SIMD)
const RowKernels* avx512_kernels() { return nullptr; }
const RowKernels* avx2_kernels() { return nullptr; }
#endif

namespace {

bool cpu_has(const char* level) {
#if defined(STN_X86_SIMD)
  __builtin_cpu_init();
  if (std::strcmp(level, "avx512") == 0) return __builtin_cpu_supports("avx512f");
  if (std::strcmp(level, "avx2") == 0) return __builtin_cpu_supports("avx2");
#endif
  (void)level;
  return false;
}

// AMD's family 19h (Zen 3 and Zen 4; Zen 4 is the one with AVX-512) runs a 512-bit operation
// as two 256-bit halves, so AVX-512 buys no arithmetic, and its 512-bit gathers, which the
// AVX-512 kernels read corners with, are slow. Measured on a Zen 4 (2 threads, bench shapes):
// the AVX-512 kernels took 1.1-1.4x the AVX2 kernels' forward time and up to 1.6x their
// backward time (1.0x on one 1024 x 1024 image). Other CPUs with AVX-512 (Intel's, measured on
// a Xeon: 0.76-0.92x the AVX2 time) and AMD's later families (not measured) get AVX-512.
bool avx512_runs_halved() {
#if defined(STN_X86_SIMD)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
  const bool amd = ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u;  // "AuthenticAMD"
  if (!amd || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const unsigned base_family = (eax >> 8) & 0xFu, extended_family = (eax >> 20) & 0xFFu;
  const unsigned family = base_family == 0xFu ? base_family + extended_family : base_family;
  return family == 0x19u;
#else
  return false;
#endif
}

// The table for a level name, or nullptr ("off"); *known is false for an unknown name or a
// level this CPU or build lacks.
const RowKernels* lookup(const char* name, bool* known) {
  *known = true;
  if (std::strcmp(name, "off") == 0) return nullptr;
  if (std::strcmp(name, "avx512") == 0 && cpu_has("avx512") && avx512_kernels()) return avx512_kernels();
  if (std::strcmp(name, "avx2") == 0 && cpu_has("avx2") && avx2_kernels()) return avx2_kernels();
  if (std::strcmp(name, "best") == 0) {
    bool ignored;
    static const bool prefer_avx2 = avx512_runs_halved();
    if (prefer_avx2)
      if (const RowKernels* avx2 = lookup("avx2", &ignored)) return avx2;
    if (const RowKernels* widest = lookup("avx512", &ignored)) return widest;
    return lookup("avx2", &ignored);
  }
  *known = false;
  return nullptr;
}

const RowKernels* initial_level() {
  const char* requested = std::getenv("STN_SIMD");
  bool known = false;
  const RowKernels* chosen = lookup(requested != nullptr && *requested ? requested : "best", &known);
  if (!known) chosen = lookup("best", &known);  // an unusable request falls back to the default
  return chosen;
}

std::atomic<const RowKernels*>& current() {
  static std::atomic<const RowKernels*> kernels{initial_level()};
  return kernels;
}

}  // namespace

const RowKernels* row_kernels() { return current().load(std::memory_order_relaxed); }

bool set_level(const char* name) {
  bool known = false;
  const RowKernels* chosen = lookup(name, &known);
  if (known) current().store(chosen);
  return known;
}

const char* level_name() {
  const RowKernels* kernels = row_kernels();
  return kernels ? kernels->name : "off";
}

}  // namespace simd
}  // namespace cpu
}  // namespace stn
