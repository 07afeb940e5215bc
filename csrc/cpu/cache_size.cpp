#include "cache_size.h"

#include <unistd.h>

namespace stn {
namespace cpu {
namespace {

size_t query_l2_cache_bytes() {
#if defined(_SC_LEVEL2_CACHE_SIZE)
  const long bytes = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (bytes > 0) return size_t(bytes);
#endif
  return kAssumedL2Bytes;
}

}  // namespace

size_t l2_cache_bytes() {
  static const size_t bytes = query_l2_cache_bytes();
  return bytes;
}

}  // namespace cpu
}  // namespace stn
