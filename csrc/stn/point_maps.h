// Point maps: where output pixel (n, ho, wo) samples the input, in normalized coordinates
// (x = column, y = row, both in [-1, 1]; see coords.h base_coordinate for the base grid).
//
//   GridCoords        a materialized grid (N, Ho, Wo, 2)
//   AffineCoords      theta (2, 3) per image: every matrix family (families.h)
//   ProjectiveCoords  a homography h (8) per image
//   TpsCoords         thin-plate-spline coefficients (K + 3, 2) per image
//
// The maps with coefficients also give their adjoint: accumulate(partial, n, ho, wo, gx, gy)
// adds d loss / d coefficients of one point, given d loss / d (x_in, y_in), in double.
// count() is the number of coefficients per image; kCapacity bounds it at compile time.
// A coefficient stride of 0 shares one set of coefficients across the batch.
#pragma once

#include "coords.h"
#include "families.h"

namespace stn {

template <typename T>
struct GridCoords {
  const T* grid;  // (N, Ho, Wo, 2), last axis (x, y)
  index_t out_height, out_width;
  STN_HD void at(index_t n, index_t ho, index_t wo, T* gx, T* gy) const {
    const T* g = grid + ((n * out_height + ho) * out_width + wo) * 2;
    *gx = g[0];
    *gy = g[1];
  }
};

// The base grid point of output pixel (ho, wo): what every coefficient map transforms.
template <typename T>
struct BaseGrid {
  index_t out_height, out_width;
  bool align_corners;
  STN_HD T x(index_t wo) const { return base_coordinate<T>(wo, out_width, align_corners); }
  STN_HD T y(index_t ho) const { return base_coordinate<T>(ho, out_height, align_corners); }
};

template <typename T>
struct AffineCoords {
  static constexpr int kCapacity = 6;
  const T* theta;        // (N, 2, 3), or one (2, 3) when theta_stride == 0
  index_t theta_stride;  // 6, or 0
  BaseGrid<T> base;

  STN_HD int count() const { return 6; }
  STN_HD void at(index_t n, index_t ho, index_t wo, T* gx, T* gy) const {
    affine_point(theta + n * theta_stride, base.x(wo), base.y(ho), gx, gy);
  }
  STN_HD void accumulate(double* partial, index_t /*n*/, index_t ho, index_t wo, T grad_x, T grad_y) const {
    accumulate_theta_grad(partial, grad_x, grad_y, base.x(wo), base.y(ho));
  }
};

// A point whose denominator is <= this, or not finite, is outside the image (it lies at or
// behind the projective horizon).
constexpr double kProjectiveMinDenominator = 1e-6;

template <typename T>
struct ProjectiveCoords {
  static constexpr int kCapacity = 8;
  const T* h;            // (N, 8): h0..h7 of the matrix [[h0 h1 h2] [h3 h4 h5] [h6 h7 1]]
  index_t h_stride;      // 8, or 0
  BaseGrid<T> base;

  STN_HD int count() const { return 8; }

  // The projected point; false when its denominator says it is outside.
  STN_HD bool project(index_t n, index_t ho, index_t wo, double* x, double* y, double* u, double* v,
                      double* w) const {
    const T* m = h + n * h_stride;
    *x = base.x(wo);
    *y = base.y(ho);
    *w = double(m[6]) * *x + double(m[7]) * *y + 1.0;
    if (!(is_finite(*w) && *w > kProjectiveMinDenominator)) return false;
    *u = (double(m[0]) * *x + double(m[1]) * *y + double(m[2])) / *w;
    *v = (double(m[3]) * *x + double(m[4]) * *y + double(m[5])) / *w;
    return true;
  }

  STN_HD void at(index_t n, index_t ho, index_t wo, T* gx, T* gy) const {
    double x, y, u, v, w;
    if (!project(n, ho, wo, &x, &y, &u, &v, &w)) {
      *gx = *gy = T(NAN);  // reads as outside the image with every padding mode
      return;
    }
    *gx = T(u);
    *gy = T(v);
  }

  // u = a / w, v = b / w: d u / d h0..2 = (x, y, 1) / w, d u / d h6..7 = -u (x, y) / w.
  STN_HD void accumulate(double* partial, index_t n, index_t ho, index_t wo, T grad_x, T grad_y) const {
    double x, y, u, v, w;
    if (!project(n, ho, wo, &x, &y, &u, &v, &w)) return;
    const double gu = double(grad_x) / w, gv = double(grad_y) / w;
    partial[0] += gu * x, partial[1] += gu * y, partial[2] += gu;
    partial[3] += gv * x, partial[4] += gv * y, partial[5] += gv;
    // A zero gradient contributes nothing, even where u or v is infinite (0 * Inf is NaN).
    const double g_w = -((gu != 0 ? gu * u : 0.0) + (gv != 0 ? gv * v : 0.0));
    partial[6] += g_w * x, partial[7] += g_w * y;
  }
};

// Thin-plate spline on a grid_h x grid_w layout of control points c_k spread over [-1, 1]^2
// (row-major, k = i * grid_w + j at (x, y) = (-1 + 2j/(grid_w-1), -1 + 2i/(grid_h-1))):
//   (x_in, y_in) = sum_k w_k U(|p - c_k|) + a_0 + a_x x + a_y y,  U(r) = r^2 log r^2.
template <typename T>
struct TpsCoords {
  static constexpr int kCapacity = kMaxTpsCoefficients;
  const T* coefficients;  // (N, K + 3, 2): w_0..w_{K-1}, a_0, a_x, a_y, each as (x, y)
  index_t stride;         // 2 (K + 3), or 0
  int grid_h, grid_w;
  BaseGrid<T> base;

  STN_HD int points() const { return grid_h * grid_w; }
  STN_HD int count() const { return 2 * (points() + 3); }

  // The radial basis of control point k at (x, y); 0 at the point itself (the limit).
  STN_HD double radial(int k, double x, double y) const {
    const double dx = x - base_coordinate<double>(k % grid_w, grid_w, true);
    const double dy = y - base_coordinate<double>(k / grid_w, grid_h, true);
    const double r2 = dx * dx + dy * dy;
    return r2 > 0 ? r2 * log(r2) : 0.0;
  }

  STN_HD void at(index_t n, index_t ho, index_t wo, T* gx, T* gy) const {
    const T* c = coefficients + n * stride;
    const int k_points = points();
    const double x = base.x(wo), y = base.y(ho);
    const T* affine = c + 2 * k_points;
    double sx = double(affine[0]) + double(affine[2]) * x + double(affine[4]) * y;
    double sy = double(affine[1]) + double(affine[3]) * x + double(affine[5]) * y;
    for (int k = 0; k < k_points; ++k) {
      const double u = radial(k, x, y);
      sx += double(c[2 * k]) * u;
      sy += double(c[2 * k + 1]) * u;
    }
    *gx = T(sx);
    *gy = T(sy);
  }

  STN_HD void accumulate(double* partial, index_t /*n*/, index_t ho, index_t wo, T grad_x, T grad_y) const {
    const int k_points = points();
    const double x = base.x(wo), y = base.y(ho), gx = grad_x, gy = grad_y;
    for (int k = 0; k < k_points; ++k) {
      const double u = radial(k, x, y);
      partial[2 * k] += u * gx;
      partial[2 * k + 1] += u * gy;
    }
    double* affine = partial + 2 * k_points;
    affine[0] += gx, affine[1] += gy;
    affine[2] += gx * x, affine[3] += gy * x;
    affine[4] += gx * y, affine[5] += gy * y;
  }
};

}  // namespace stn
