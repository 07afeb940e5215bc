// The thread count every CPU kernel uses; set from Python with stn.set_num_threads(n).
#include <atomic>
#include <stdexcept>

#include "../stn/api.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace stn {
namespace cpu {
namespace {

int default_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

std::atomic<int>& thread_setting() {
  static std::atomic<int> threads{default_threads()};
  return threads;
}

}  // namespace

void set_num_threads(int threads) {
  if (threads < 1) throw std::invalid_argument("stn.set_num_threads: n must be >= 1");
  thread_setting().store(threads);
}

int get_num_threads() { return thread_setting().load(); }

}  // namespace cpu
}  // namespace stn
