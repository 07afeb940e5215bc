// Run-time choice of the row kernels (affine_rows.h): the widest level this CPU supports,
// unless STN_SIMD or set_level() asks for another. Built on every architecture; where the
// x86 kernels are not compiled in (STN_X86_SIMD undefined, e.g. aarch64) nothing is offered
// and the generic bodies run.
#include <atomic>
#include <cstdlib>
#include <cstring>

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

// The table for a level name, or nullptr ("off"); *known is false for an unknown name or a
// level this CPU or build lacks.
const RowKernels* lookup(const char* name, bool* known) {
  *known = true;
  if (std::strcmp(name, "off") == 0) return nullptr;
  if (std::strcmp(name, "avx512") == 0 && cpu_has("avx512") && avx512_kernels()) return avx512_kernels();
  if (std::strcmp(name, "avx2") == 0 && cpu_has("avx2") && avx2_kernels()) return avx2_kernels();
  if (std::strcmp(name, "best") == 0) {
    bool ignored;
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
