// Transformation families: from one image's parameters to the coefficients of its point map,
// and the chain rule back. Host+device; run once per image (params are tiny), in double.
//
// Every family's point map (point_maps.h) takes normalized output coordinates (x, y) to
// normalized input coordinates, as affine_grid does. Coefficients per image:
//   matrix families  theta (2, 3) row-major: (x_in, y_in) = theta @ (x, y, 1)
//   projective       h (8): (x_in, y_in) = (h0 x + h1 y + h2, h3 x + h4 y + h5) / (h6 x + h7 y + 1)
//   tps              (K + 3, 2): K radial weights, then the constant, x and y terms, each (x, y)
// Parameters per image (python/stn/transforms.py documents them for users):
//   affine            the free entries of theta in row-major order (fixed ones from FamilySpec)
//   translation       (tx, ty)                theta = [[1, 0, tx], [0, 1, ty]]
//   scale_translation (s, tx, ty)             theta = [[s, 0, tx], [0, s, ty]]
//   rotation          (beta) or (beta, tx, ty), alpha = pi * beta (180 * beta degrees)
//   rigid             (alpha in radians, tx, ty)
//                     both: theta = [[cos a, -sin a, tx], [sin a, cos a, ty]]
//   similarity        (a, b, tx, ty)          theta = [[a, -b, tx], [b, a, ty]]
//                     (a = s cos alpha, b = s sin alpha: linear in the parameters)
//   projective        h (8), h33 fixed at 1
//   tps               (K, 2): where the K control points of the grid_h x grid_w layout land in
//                     the input; the coefficients are tps_solution (K + 3, K) @ params.
#pragma once

#include "common.h"

namespace stn {

// Values are the integers the Python layer passes (python/stn/transforms.py FAMILIES).
enum class Family : int {
  Affine = 0,
  Translation = 1,
  ScaleTranslation = 2,
  Rotation = 3,
  Rigid = 4,
  Similarity = 5,
  Projective = 6,
  Tps = 7,
};

constexpr int kMaxTpsPoints = 64;  // 8 x 8 control points
constexpr int kMaxTpsCoefficients = 2 * (kMaxTpsPoints + 3);
constexpr double kPi = 3.14159265358979323846;

template <typename T>
struct FamilySpec {
  Family family;
  int params;               // parameters per image
  unsigned fixed_mask;      // affine: bit i set = theta entry i (row-major) is fixed
  T fixed_value[6];         // ... at this value
  int tps_grid_h, tps_grid_w;
  const double* tps_solution;  // tps: (K + 3, K), row-major, float64 whatever T, on the device

  STN_HD int tps_points() const { return tps_grid_h * tps_grid_w; }
  // Coefficients of the point map per image.
  STN_HD int coefficients() const {
    if (family == Family::Projective) return 8;
    if (family == Family::Tps) return 2 * (tps_points() + 3);
    return 6;
  }
};

// sin(pi x) and cos(pi x), exact at every multiple of 1/2 (so a rotation by beta = 0.5 is
// exactly a quarter turn): x is reduced to f in [-1/4, 1/4] plus whole quarter turns.
STN_HD void sincospi(double x, double* sin_value, double* cos_value) {
  if (!is_finite(x)) {
    *sin_value = *cos_value = x - x;  // NaN
    return;
  }
  const double r = fmod(x, 2.0);  // exact, in (-2, 2)
  const index_t quarters = round_half_even_to_index(2.0 * r);
  const double f = r - 0.5 * double(quarters);  // exact
  const double s = sin(kPi * f), c = cos(kPi * f);
  switch (((quarters % 4) + 4) % 4) {
    case 0: *sin_value = s; *cos_value = c; return;
    case 1: *sin_value = c; *cos_value = -s; return;
    case 2: *sin_value = -s; *cos_value = -c; return;
    default: *sin_value = -c; *cos_value = s; return;
  }
}

template <typename T>
STN_HD void set_matrix(T* theta, double a, double b, double tx, double c, double d, double ty) {
  theta[0] = T(a), theta[1] = T(b), theta[2] = T(tx);
  theta[3] = T(c), theta[4] = T(d), theta[5] = T(ty);
}

// params (family.params) -> coefficients (family.coefficients()) of one image.
template <typename T>
STN_HD void params_to_coefficients(const FamilySpec<T>& family, const T* p, T* coefficients) {
  switch (family.family) {
    case Family::Affine: {
      int next = 0;
      for (int i = 0; i < 6; ++i)
        coefficients[i] = (family.fixed_mask >> i) & 1u ? family.fixed_value[i] : p[next++];
      return;
    }
    case Family::Translation: set_matrix(coefficients, 1, 0, p[0], 0, 1, p[1]); return;
    case Family::ScaleTranslation: set_matrix(coefficients, p[0], 0, p[1], 0, p[0], p[2]); return;
    case Family::Rotation:
    case Family::Rigid: {
      double s, c;
      if (family.family == Family::Rotation) {
        sincospi(double(p[0]), &s, &c);
      } else {
        s = sin(double(p[0]));
        c = cos(double(p[0]));
      }
      const bool shifted = family.params == 3;
      set_matrix(coefficients, c, -s, shifted ? double(p[1]) : 0.0, s, c, shifted ? double(p[2]) : 0.0);
      return;
    }
    case Family::Similarity: set_matrix(coefficients, p[0], -p[1], p[2], p[1], p[0], p[3]); return;
    case Family::Projective:
      for (int i = 0; i < 8; ++i) coefficients[i] = p[i];
      return;
    case Family::Tps: {
      const int k_points = family.tps_points();
      for (int i = 0; i < k_points + 3; ++i) {
        const double* solution_row = family.tps_solution + i * k_points;
        double x = 0, y = 0;
        for (int k = 0; k < k_points; ++k) {
          x += solution_row[k] * double(p[2 * k]);
          y += solution_row[k] * double(p[2 * k + 1]);
        }
        coefficients[2 * i] = T(x);
        coefficients[2 * i + 1] = T(y);
      }
      return;
    }
  }
}

// a * g, but exactly 0 when g is 0 (even for a NaN or infinite a).
STN_HD double scaled_or_zero(double a, double g) { return g == 0 ? 0.0 : a * g; }

// d loss / d params of one image from d loss / d coefficients: the transpose of the Jacobian
// of params_to_coefficients at p.
template <typename T>
STN_HD void coefficient_grad_to_params(const FamilySpec<T>& family, const T* p,
                                       const double* grad_coefficients, double* grad_params) {
  const double* g = grad_coefficients;
  switch (family.family) {
    case Family::Affine: {
      int next = 0;
      for (int i = 0; i < 6; ++i)
        if (!((family.fixed_mask >> i) & 1u)) grad_params[next++] = g[i];
      return;
    }
    case Family::Translation:
      grad_params[0] = g[2], grad_params[1] = g[5];
      return;
    case Family::ScaleTranslation:
      grad_params[0] = g[0] + g[4], grad_params[1] = g[2], grad_params[2] = g[5];
      return;
    case Family::Rotation:
    case Family::Rigid: {
      // d theta / d angle = (-sin, -cos, 0, cos, -sin, 0) * d angle / d param.
      double s, c, d_angle;
      if (family.family == Family::Rotation) {
        sincospi(double(p[0]), &s, &c);
        d_angle = kPi;  // alpha = pi * beta
      } else {
        s = sin(double(p[0]));
        c = cos(double(p[0]));
        d_angle = 1.0;
      }
      // A NaN or infinite angle makes every point NaN (outside, zero gradient): its
      // gradient is 0 then, not 0 * NaN.
      grad_params[0] = d_angle * (scaled_or_zero(-s, g[0]) + scaled_or_zero(-c, g[1]) +
                                  scaled_or_zero(c, g[3]) + scaled_or_zero(-s, g[4]));
      if (family.params == 3) grad_params[1] = g[2], grad_params[2] = g[5];
      return;
    }
    case Family::Similarity:
      grad_params[0] = g[0] + g[4], grad_params[1] = g[3] - g[1];
      grad_params[2] = g[2], grad_params[3] = g[5];
      return;
    case Family::Projective:
      for (int i = 0; i < 8; ++i) grad_params[i] = g[i];
      return;
    case Family::Tps: {
      const int k_points = family.tps_points();
      for (int k = 0; k < k_points; ++k) {
        double x = 0, y = 0;
        for (int i = 0; i < k_points + 3; ++i) {
          const double weight = family.tps_solution[i * k_points + k];
          x += weight * g[2 * i];
          y += weight * g[2 * i + 1];
        }
        grad_params[2 * k] = x;
        grad_params[2 * k + 1] = y;
      }
      return;
    }
  }
}

// Host-side check that a spec is one the kernels can run (the bindings call it before any
// pointer is read): returns nullptr, or what is wrong.
template <typename T>
const char* family_spec_error(const FamilySpec<T>& family) {
  switch (family.family) {
    case Family::Affine: {
      int fixed = 0;
      for (int i = 0; i < 6; ++i) fixed += (family.fixed_mask >> i) & 1u;
      return family.fixed_mask < 64u && family.params == 6 - fixed ? nullptr
             : "affine: params must be 6 minus the number of fixed entries";
    }
    case Family::Translation: return family.params == 2 ? nullptr : "translation takes 2 params";
    case Family::ScaleTranslation: return family.params == 3 ? nullptr : "scale_translation takes 3 params";
    case Family::Rotation:
      return family.params == 1 || family.params == 3 ? nullptr : "rotation takes 1 or 3 params";
    case Family::Rigid: return family.params == 3 ? nullptr : "rigid takes 3 params";
    case Family::Similarity: return family.params == 4 ? nullptr : "similarity takes 4 params";
    case Family::Projective: return family.params == 8 ? nullptr : "projective takes 8 params";
    case Family::Tps:
      if (family.tps_grid_h < 2 || family.tps_grid_w < 2 || family.tps_points() > kMaxTpsPoints)
        return "tps grid must be at least 2 x 2 and at most 64 points";
      if (family.tps_solution == nullptr) return "tps needs its solution matrix";
      return family.params == 2 * family.tps_points() ? nullptr : "tps takes 2 params per control point";
  }
  return "unknown transformation family";
}

}  // namespace stn
