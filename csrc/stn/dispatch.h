// Turns run-time choices into compile-time ones: the interpolation mode (so each mode's loop
// is compiled with its own tap capacity) and the point map of a transformation family.
#pragma once

#include <stdexcept>
#include <type_traits>

#include "point_maps.h"

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

// Calls fn(coords) with the point map of `family` over `coefficients` (per image, or one
// shared set): AffineCoords for every matrix family, ProjectiveCoords or TpsCoords.
template <typename T, typename Fn>
void with_point_map(const FamilySpec<T>& family, const T* coefficients, bool shared,
                    const BaseGrid<T>& base, Fn&& fn) {
  const index_t stride = shared ? 0 : family.coefficients();
  switch (family.family) {
    case Family::Projective: fn(ProjectiveCoords<T>{coefficients, stride, base}); return;
    case Family::Tps: fn(TpsCoords<T>{coefficients, stride, family.tps_grid_h, family.tps_grid_w, base}); return;
    default: fn(AffineCoords<T>{coefficients, stride, base}); return;
  }
}

}  // namespace stn
