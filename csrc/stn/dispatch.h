// Turns the run-time interpolation mode into a compile-time one, so each mode's loop is
// compiled with its own tap capacity.
#pragma once

#include <stdexcept>
#include <type_traits>

#include "common.h"

namespace stn {

template <Interp Mode>
using InterpTag = std::integral_constant<Interp, Mode>;

// Calls fn(InterpTag<mode>{}).
template <typename Fn>
void dispatch_interp(Interp mode, Fn&& fn) {
  switch (mode) {
    case Interp::Bilinear: fn(InterpTag<Interp::Bilinear>{}); return;
    case Interp::Nearest: fn(InterpTag<Interp::Nearest>{}); return;
    case Interp::Bicubic: fn(InterpTag<Interp::Bicubic>{}); return;
  }
  throw std::invalid_argument("stn: unknown interpolation mode");
}

}  // namespace stn
