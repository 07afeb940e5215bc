// The size of one core's L2 cache, for the executor's choices between ways that give the same
// bits but use the cache differently.
#pragma once

#include <cstddef>

namespace stn {
namespace cpu {

// Bytes of L2 cache per core, as the C library reports it (glibc reads CPUID on x86 and the
// kernel's cache description elsewhere); kAssumedL2Bytes where it reports nothing. Read once.
constexpr size_t kAssumedL2Bytes = size_t(1) << 20;
size_t l2_cache_bytes();

}  // namespace cpu
}  // namespace stn
