// buffer_cache.h: a best-fit list of idle blocks under one mutex.
#include "buffer_cache.h"

#include <cstdlib>
#include <list>
#include <mutex>
#include <unordered_map>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace stn {
namespace cpu {
namespace buffer_cache {
namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kHugePage = size_t(2) << 20;

struct Cache {
  std::mutex mutex;
  size_t budget = size_t(256) << 20;
  size_t idle_bytes = 0;
  std::unordered_map<void*, size_t> sizes;  // every block handed out and not freed
  std::list<void*> idle;                    // oldest first
};

// Never destroyed: arrays that outlive static destructors may still give blocks back.
Cache& cache() {
  static Cache* instance = new Cache;
  return *instance;
}

void* allocate(size_t bytes) {
  // Large blocks on 2 MiB boundaries, and marked for transparent huge pages where the
  // kernel only gives them on request: fewer page faults and TLB misses, as numpy does.
  const size_t alignment = bytes >= kHugePage ? kHugePage : kAlignment;
  const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* block = std::aligned_alloc(alignment, rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (block != nullptr && alignment == kHugePage) madvise(block, rounded, MADV_HUGEPAGE);
#endif
  return block;
}

// Frees idle blocks, oldest first, until they fit the budget. Caller holds the mutex.
void trim(Cache& c) {
  while (c.idle_bytes > c.budget && !c.idle.empty()) {
    void* oldest = c.idle.front();
    c.idle.pop_front();
    c.idle_bytes -= c.sizes[oldest];
    c.sizes.erase(oldest);
    std::free(oldest);
  }
}

}  // namespace

void* acquire(size_t bytes) {
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    // The smallest idle block that holds `bytes` without wasting more than half of itself.
    auto best = c.idle.end();
    for (auto it = c.idle.begin(); it != c.idle.end(); ++it) {
      const size_t size = c.sizes[*it];
      if (size >= bytes && size / 2 <= bytes && (best == c.idle.end() || size < c.sizes[*best])) best = it;
    }
    if (best != c.idle.end()) {
      void* block = *best;
      c.idle_bytes -= c.sizes[block];
      c.idle.erase(best);
      return block;
    }
  }
  void* block = allocate(bytes);
  if (block != nullptr) {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.sizes[block] = bytes;
  }
  return block;
}

void release(void* block) {
  if (block == nullptr) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.idle.push_back(block);
  c.idle_bytes += c.sizes[block];
  trim(c);
}

void set_budget(size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.budget = bytes;
  trim(c);
}

size_t budget() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.budget;
}

size_t idle_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.idle_bytes;
}

}  // namespace buffer_cache
}  // namespace cpu
}  // namespace stn
