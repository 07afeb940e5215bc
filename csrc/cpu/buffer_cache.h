// Recycled memory for large output arrays. A fresh allocation of tens of megabytes costs a
// page fault and the kernel's zeroing of every page on first touch, which for a warp that
// reads and writes each byte once is a third of its time (64 x 3 x 227 x 227 float32: about
// 5 ms of zeroing against 15 ms of warping on 2 cores). The bindings take large outputs from
// here (bindings/output_arrays.h) and give the memory back when Python frees the array;
// the next call of the same size reuses it, already mapped.
//
// Only blocks of at least kMinCachedBytes are cached, and idle blocks are freed, oldest
// first, beyond a budget (set_budget, default 256 MiB; 0 turns the cache off). Thread-safe.
#pragma once

#include <cstddef>

namespace stn {
namespace cpu {
namespace buffer_cache {

constexpr size_t kMinCachedBytes = size_t(1) << 20;

// At least `bytes` (> 0) of memory aligned to 64 bytes; nullptr if out of memory. Give it
// back with release().
void* acquire(size_t bytes);
void release(void* block);

// Most bytes idle blocks may hold; 0 frees them all and stops caching.
void set_budget(size_t bytes);
size_t budget();
size_t idle_bytes();  // held by idle blocks now

}  // namespace buffer_cache
}  // namespace cpu
}  // namespace stn
