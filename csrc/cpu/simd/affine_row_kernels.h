// The row kernels of affine_rows.h, written once over a vector type V (vec_avx512.h,
// vec_avx2.h). Every step names the scalar function it transcribes; keep the operations and
// their order identical to it, or the bit-identity tests fail (tests/test_simd.py).
//
// Lanes are consecutive output pixels wo .. wo + V::kLanes - 1 of one row; `tail` masks off
// lanes past the row's end. A skipped tap adds an exact +0: a masked gather reads nothing and
// gives 0, weights are >= 0, and no running sum is ever -0 (it starts at +0, and IEEE sums
// are -0 only when every term is), so x + 0 == x for every value the sum can hold.
#pragma once

#include "affine_rows.h"

namespace stn {
namespace cpu {
namespace simd {

// taps.h bilinear_taps for the pixels of one vector: corner offsets, weights, and which
// corners lie inside the image (and in input rows [row_begin, row_end)).
template <class V>
struct Corners {
  typename V::I base;          // r0 * W + c0, the north-west corner
  typename V::I column, line;  // c0, r0 (0 where !valid)
  typename V::M valid;         // the point has taps (within_tap_range, not past the row's end)
  typename V::F weight[4];     // NW, NE, SW, SE
  typename V::M inside[4];
  typename V::F tx, ty;        // position inside the 2x2 cell
  typename V::F dx_dgrid, dy_dgrid;
};

// The input values at the four corners of a vector of pixels, channel after channel: 0 at
// a corner outside the image. prepare() once per vector, then values() per channel. This one
// gathers each corner; a vector type may specialize CornerFetch (clamped_pairs.h reads
// neighbouring pairs instead).
template <class V>
struct CornerGather {
  typename V::I offset[4];
  typename V::M inside[4];
  void prepare(const Corners<V>& k, const AffineRow& row) {
    const int32_t width = int32_t(row.in_width);
    const int32_t shift[4] = {0, 1, width, width + 1};
    for (int c = 0; c < 4; ++c) {
      offset[c] = c == 0 ? k.base : V::plus(k.base, shift[c]);
      inside[c] = k.inside[c];
    }
  }
  void values(const float* plane, typename V::F corner[4]) const {
    for (int c = 0; c < 4; ++c) corner[c] = V::gather(plane, offset[c], inside[c]);
  }
};

template <class V>
struct CornerFetch : CornerGather<V> {};

template <class V>
struct AffineRowKernels {
  using F = typename V::F;
  using I = typename V::I;
  using M = typename V::M;
  using Corners = simd::Corners<V>;

  // coords.h source_index for bilinear (unnormalize, then border or no padding), with
  // d pixel / d grid in *d_pixel.
  static F source_pixel(F g, int64_t size, bool border, bool align_corners, F* d_pixel) {
    const float last = float(size - 1);
    F x;
    float d_unnormalize;
    if (align_corners) {  // ((g + 1) / 2) * T(size - 1); /2 and *0.5 are the same IEEE result
      x = V::mul(V::mul(V::add(g, V::set(1.0f)), V::set(0.5f)), V::set(last));
      d_unnormalize = last / 2;
    } else {  // ((g + 1) * T(size) - 1) / 2
      x = V::mul(V::sub(V::mul(V::add(g, V::set(1.0f)), V::set(float(size))), V::set(1.0f)), V::set(0.5f));
      d_unnormalize = float(size) / 2;
    }
    return pad(x, size, border, V::set(d_unnormalize), d_pixel);
  }

  // source_pixel's padding of the unnormalized coordinate x, d x / d grid d_unnormalize (both
  // as source_pixel computes them).
  static F pad(F x, int64_t size, bool border, F d_unnormalize, F* d_pixel) {
    if (!border) {
      *d_pixel = d_unnormalize;  // d_unnormalize * 1
      return x;
    }
    // clip_to_image: x <= 0 -> 0, x >= last -> last (derivative 0 at both); NaN stays NaN.
    // (coords.h infinite_to_edge gives the same edges for +-Inf when size > 1.)
    const F last = V::set(float(size - 1));
    const M low = V::le(x, V::zero()), high = V::ge(x, last);
    *d_pixel = V::zero_unless(V::neither(low, high), d_unnormalize);
    return V::select(low, V::zero(), V::select(high, last, x));
  }

  // coords.h affine_point of the pixels of one vector: theta[0] * x + theta[1] * y + theta[2],
  // left to right, at each pixel's base grid point.
  static void affine_points(const AffineRow& row, int64_t wo, M tail, F* grid_x, F* grid_y) {
    const float* t = row.theta;
    const F x_base = V::load(row.x_base + wo, tail);
    const F y_base = row.y_base_at != nullptr ? V::load(row.y_base_at + wo, tail) : V::set(row.y_base);
    *grid_x = V::add(V::add(V::mul(V::set(t[0]), x_base), V::mul(V::set(t[1]), y_base)), V::set(t[2]));
    *grid_y = V::add(V::add(V::mul(V::set(t[3]), x_base), V::mul(V::set(t[4]), y_base)), V::set(t[5]));
  }

  // affine_grid: the points of the row, as (x, y) pairs into grid (affine_rows.h GridPointsFn).
  static void grid_points(const AffineRow& row, float* grid) {
    for (int64_t wo = 0; wo < row.out_width; wo += V::kLanes) {
      F grid_x, grid_y;
      affine_points(row, wo, V::first(row.out_width - wo), &grid_x, &grid_y);
      V::store_pairs(grid + 2 * wo, row.out_width - wo, grid_x, grid_y);
    }
  }

  // taps.h bilinear_taps for the pixels of one vector.
  static Corners corners(const AffineRow& row, int64_t wo, M tail, int64_t row_begin, int64_t row_end) {
    F grid_x, grid_y;
    if (row.grid != nullptr)
      V::load_pairs(row.grid + 2 * wo, row.out_width - wo, &grid_x, &grid_y);
    else
      affine_points(row, wo, tail, &grid_x, &grid_y);
    F dx_dgrid, dy_dgrid;
    const F x = source_pixel(grid_x, row.in_width, row.border, row.align_corners, &dx_dgrid);
    const F y = source_pixel(grid_y, row.in_height, row.border, row.align_corners, &dy_dgrid);
    return corners_at(row, x, y, tail, dx_dgrid, dy_dgrid, row_begin, row_end);
  }

  // corners of the pixels at the unnormalized coordinates (x, y) (source_pixel's before its
  // padding), whose d x / d grid and d y / d grid are dx_unnormalize and dy_unnormalize;
  // `tail` the lanes within the row.
  static Corners corners_unnormalized(const AffineRow& row, F x, F y, M tail, F dx_unnormalize, F dy_unnormalize,
                                      int64_t row_begin, int64_t row_end) {
    F dx_dgrid, dy_dgrid;
    x = pad(x, row.in_width, row.border, dx_unnormalize, &dx_dgrid);
    y = pad(y, row.in_height, row.border, dy_unnormalize, &dy_dgrid);
    return corners_at(row, x, y, tail, dx_dgrid, dy_dgrid, row_begin, row_end);
  }

  // corners of the pixels at (x, y) in pixel units (source_pixel's, after any padding's clip),
  // d pixel / d grid dx_dgrid and dy_dgrid; `tail` the lanes within the row.
  static Corners corners_at(const AffineRow& row, F x, F y, M tail, F dx_dgrid, F dy_dgrid, int64_t row_begin,
                            int64_t row_end) {
    Corners k;
    k.dx_dgrid = dx_dgrid;
    k.dy_dgrid = dy_dgrid;
    // coords.h within_tap_range; a point outside it (or NaN) has no taps. Zeroing its
    // coordinates keeps the integer maths below in range for every lane.
    const float margin = 3.0f;  // coords.h kTapMargin
    const M valid = V::both(tail, V::both(
        V::both(V::gt(x, V::set(-margin)), V::lt(x, V::set(float(row.in_width - 1 + 3)))),
        V::both(V::gt(y, V::set(-margin)), V::lt(y, V::set(float(row.in_height - 1 + 3))))));
    x = V::select(valid, x, V::zero());
    y = V::select(valid, y, V::zero());
    const F column = V::floor(x), line = V::floor(y);  // floor_to_index, as exact floats
    k.tx = V::sub(x, column);
    k.ty = V::sub(y, line);
    // inside_image for columns c0, c0 + 1 and rows r0, r0 + 1 (rows limited to the band, which
    // lies inside the image). The floats are exact integers: sizes are below 2^24.
    const float width = float(row.in_width), first_row = float(row_begin), end_row = float(row_end);
    const M column0 = V::both(V::ge(column, V::zero()), V::lt(column, V::set(width)));
    const M column1 = V::both(V::ge(column, V::set(-1.0f)), V::lt(column, V::set(width - 1)));
    const M row0 = V::both(valid, V::both(V::ge(line, V::set(first_row)), V::lt(line, V::set(end_row))));
    const M row1 = V::both(valid, V::both(V::ge(line, V::set(first_row - 1)), V::lt(line, V::set(end_row - 1))));
    k.inside[0] = V::both(row0, column0);
    k.inside[1] = V::both(row0, column1);
    k.inside[2] = V::both(row1, column0);
    k.inside[3] = V::both(row1, column1);
    k.valid = valid;
    k.column = V::to_int(column);
    k.line = V::to_int(line);
    k.base = V::mul_add(k.line, int32_t(row.in_width), k.column);
    const F one = V::set(1.0f);
    const F left = V::sub(one, k.tx), up = V::sub(one, k.ty);  // (1 - tx), (1 - ty)
    k.weight[0] = V::mul(left, up);
    k.weight[1] = V::mul(k.tx, up);
    k.weight[2] = V::mul(left, k.ty);
    k.weight[3] = V::mul(k.tx, k.ty);
    return k;
  }

  // Vectors of a row are taken kGroup at a time, and each channel is swept across the group:
  // the corners are prepared once per vector, and a channel's input lines, shared by
  // neighbouring vectors, are still in L1 when the next vector reads them.
  static constexpr int kGroup = 4;

  struct Group {
    int64_t wo;  // first pixel
    int count;   // vectors in the group
    M tail[kGroup];
    Corners k[kGroup];
    CornerFetch<V> fetch[kGroup];

    Group(const AffineRow& row, int64_t first) : wo(first), count(0) {
      for (; count < kGroup && first + count * V::kLanes < row.out_width; ++count) {
        const int64_t at = first + count * V::kLanes;
        tail[count] = V::first(row.out_width - at);
        k[count] = corners(row, at, tail[count], 0, row.in_height);
        fetch[count].prepare(k[count], row);
      }
    }
    int64_t at(int v) const { return wo + v * V::kLanes; }
  };

  // point_ops.h gather_point, every channel.
  static void forward(const AffineRow& row, ConstPlanes input, float* output, int64_t out_plane) {
    for (int64_t wo = 0; wo < row.out_width; wo += kGroup * V::kLanes) {
      const Group group(row, wo);
      for (int64_t channel = 0; channel < input.channels; ++channel) {
        const float* plane = input.data + channel * input.plane;
        for (int v = 0; v < group.count; ++v) {
          F corner[4];
          group.fetch[v].values(plane, corner);
          F value = V::zero();
          for (int c = 0; c < 4; ++c) value = V::add(value, V::mul(group.k[v].weight[c], corner[c]));
          V::store(output + channel * out_plane + group.at(v), value, group.tail[v]);
        }
      }
    }
  }

  // taps.h: d weight / dx and d weight / dy of NW, NE, SW, SE at (tx, ty) in the cell.
  static void weight_slopes(F tx, F ty, F dx[4], F dy[4]) {
    const F one = V::set(1.0f);
    const F left = V::sub(one, tx), up = V::sub(one, ty);
    dx[0] = V::neg(up), dx[1] = up, dx[2] = V::neg(ty), dx[3] = ty;
    dy[0] = V::neg(left), dy[1] = V::neg(tx), dy[2] = left, dy[3] = tx;
  }

  // point_ops.h grid_grad_point: d loss / d grid of each pixel, summed over channels, then
  // over corners, in that order.
  static void grid_grad(const AffineRow& row, ConstPlanes input, const float* grad_output,
                        int64_t out_plane, float* grad_x, float* grad_y) {
    for (int64_t wo = 0; wo < row.out_width; wo += kGroup * V::kLanes) {
      const Group group(row, wo);
      F weight_dx[kGroup][4], weight_dy[kGroup][4], sum_x[kGroup], sum_y[kGroup];
      for (int v = 0; v < group.count; ++v) {
        weight_slopes(group.k[v].tx, group.k[v].ty, weight_dx[v], weight_dy[v]);
        sum_x[v] = sum_y[v] = V::zero();
      }
      for (int64_t channel = 0; channel < input.channels; ++channel) {
        const float* plane = input.data + channel * input.plane;
        for (int v = 0; v < group.count; ++v) {
          F corner[4];
          group.fetch[v].values(plane, corner);
          const F g = V::load(grad_output + channel * out_plane + group.at(v), group.tail[v]);
          for (int c = 0; c < 4; ++c) {
            // in * g, exactly 0 for a skipped corner even where g is Inf or NaN.
            const F product = V::zero_unless(group.k[v].inside[c], V::mul(corner[c], g));
            sum_x[v] = V::add(sum_x[v], V::mul(weight_dx[v][c], product));
            sum_y[v] = V::add(sum_y[v], V::mul(weight_dy[v][c], product));
          }
        }
      }
      for (int v = 0; v < group.count; ++v) {
        V::store(grad_x + group.at(v), V::mul(sum_x[v], group.k[v].dx_dgrid), group.tail[v]);
        V::store(grad_y + group.at(v), V::mul(sum_y[v], group.k[v].dy_dgrid), group.tail[v]);
      }
    }
  }

  // The corners of every pixel of the row, for the scatter of grad_input (simd_paths.cpp).
  static void corners_row(const AffineRow& row, int64_t row_begin, int64_t row_end, const RowCorners& out) {
    for (int64_t wo = 0; wo < row.out_width; wo += V::kLanes) corners_vector(row, wo, row_begin, row_end, out);
  }

  // corners_row of the vector of pixels from wo.
  static void corners_vector(const AffineRow& row, int64_t wo, int64_t row_begin, int64_t row_end,
                             const RowCorners& out) {
    const M tail = V::first(row.out_width - wo);
    store_corners(corners(row, wo, tail, row_begin, row_end), wo, tail, out);
  }

  // The corners k of the vector of pixels from wo into out (RowCorners' layout).
  static void store_corners(const Corners& k, int64_t wo, M tail, const RowCorners& out) {
    store_cells(k, wo, tail, out);
    for (int c = 0; c < 4; ++c) V::store(out.weight[c] + wo, k.weight[c], tail);
  }

  // store_corners with, in place of the weights, the weights times the `count` lanes of
  // grad_output g (one channel) in out.products (RowCorners::products).
  static void store_corner_products(const Corners& k, int64_t wo, M tail, int64_t count, F g,
                                    const RowCorners& out) {
    store_cells(k, wo, tail, out);
    store_products(k.weight, g, count, out.products + 4 * wo);
  }

  // weight[k] * g of the first `count` lanes, as RowCorners::products holds them, from `at`.
  static void store_products(const F weight[4], F g, int64_t count, float* at) {
    F products[4];
    for (int c = 0; c < 4; ++c) products[c] = V::mul(weight[c], g);
    V::store_quads(at, count, products);
  }

  // RowCorners' base and inside of the vector from wo.
  static void store_cells(const Corners& k, int64_t wo, M tail, const RowCorners& out) {
    V::store_int(out.base + wo, k.base, tail);
    I bits = V::bit_if(k.inside[0], 1);
    for (int c = 1; c < 4; ++c) bits = V::or_int(bits, V::bit_if(k.inside[c], 1 << c));
    V::store_int(out.inside + wo, bits, tail);
  }

  // coords.h accumulate_theta_grad over each row, one pixel at a time (affine_rows.h
  // ThetaPartialsFn).
  static void theta_partials(const float* grad_x, const float* grad_y, const float* x_base, const float* y_base,
                             int64_t width, int64_t rows, double* partials) {
    for (int64_t r = 0; r < rows; ++r) {
      double sum[6] = {};
      const double y = double(y_base[r]);
      for (int64_t wo = 0; wo < width; ++wo) {
        const double gx = double(grad_x[r * width + wo]), gy = double(grad_y[r * width + wo]);
        const double x = double(x_base[wo]);
        sum[0] += gx * x, sum[1] += gx * y, sum[2] += gx;
        sum[3] += gy * x, sum[4] += gy * y, sum[5] += gy;
      }
      for (int i = 0; i < 6; ++i) partials[r * 6 + i] = sum[i];
    }
  }
};

}  // namespace simd
}  // namespace cpu
}  // namespace stn
