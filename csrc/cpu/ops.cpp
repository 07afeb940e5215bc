// CPU entry points: the shared launch sequences (stn/device_ops.h) on the OpenMP executor.
#include "cpu_executor.h"

namespace stn {
namespace cpu {
STN_DEFINE_OPS(CpuExecutor)
}  // namespace cpu
}  // namespace stn
