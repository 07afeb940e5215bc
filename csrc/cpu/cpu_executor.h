// The CPU executor for device_ops.h: OpenMP loops over the same kernel bodies the GPU runs.
// Results are bit-identical for any thread count: every output element is written by exactly
// one body, theta gradients are reduced in a fixed order, and grad_input is scattered by
// threads that each own a band of input rows (below), so no two threads add to one element
// and every element receives its contributions in raster order.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "../stn/api.h"
#include "../stn/device_ops.h"
#include "simd_paths.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace stn {
namespace cpu {

// Below this many work items a loop runs on the calling thread: waking the OpenMP team
// costs more than a few pixels' work. (Results do not depend on it.)
constexpr index_t kMinItemsToSplit = 64;

// The items of a parallel_for in chunks of `chunk` consecutive items, dealt out in turn to
// `hands` hands: hand h holds chunks h, h + hands, h + 2 * hands, ... Each hand has its own
// counter of the takes from it, on its own cache line. A take is one of the hand's chunks,
// except in its last chunk, taken an item at a time: a thread that has emptied its own hand
// then helps with the other's last items one by one, and the threads finish within about one
// item of each other instead of one chunk. Measured on the AMD Zen 4 host (2 threads), in
// cluttered MNIST's backward (256 images, chunks of 16): the two threads' last items ended
// 8-10 us apart on average, against 17 us (49 us in a busy spell of the host) with whole
// chunks throughout, of a call of about 600 us.
class ItemDeal {
 public:
  ItemDeal(index_t count, index_t chunk, int hands)
      : count_(count), chunk_(chunk), chunks_((count + chunk - 1) / chunk), hands_(size_t(hands)) {}
  int hands() const { return int(hands_.size()); }

  // Takes hand h's next piece: items [*first, *last); false when the hand is empty.
  bool take(int h, index_t* first, index_t* last) {
    const index_t hands = index_t(hands_.size());
    const index_t own_chunks = h < chunks_ ? (chunks_ - h + hands - 1) / hands : 0;
    if (own_chunks == 0) return false;
    const index_t taken = hands_[size_t(h)].taken.fetch_add(1, std::memory_order_relaxed);
    if (taken < own_chunks - 1) {  // a whole chunk
      *first = (h + taken * hands) * chunk_;
      *last = *first + chunk_;  // not the last chunk of all: whole
      return true;
    }
    const index_t final_chunk = h + (own_chunks - 1) * hands;  // one item of it
    *first = final_chunk * chunk_ + (taken - (own_chunks - 1));
    *last = *first + 1;
    return *first < std::min((final_chunk + 1) * chunk_, count_);
  }

 private:
  struct alignas(64) Hand {
    std::atomic<index_t> taken{0};
  };
  index_t count_, chunk_, chunks_;
  std::vector<Hand> hands_;
};

// Runs fn(i) for i in [0, count) on get_num_threads() threads. The items are dealt out in
// chunks of `chunk` (ItemDeal), one hand per thread: each thread takes its own hand's chunks,
// then helps empty the others'. A thread that is descheduled (BLAS threads still spinning
// after a GEMM, a busy machine) then does not stall the whole loop, which static chunks did,
// 5-10x in a net. Every item writes its own outputs, so results do not depend on which thread
// runs it. A thread runs the same items from call to call and from loop to loop: an image's
// lines stay in the cache of the core that last read or wrote them. (OpenMP's dynamic
// schedule handed the chunks out in turn from one shared counter, so that an image's work
// landed on either core, and each hand-out passed that counter's line between the cores.)
// Measured on the AMD Zen 4 host (2 threads, A/B in alternating calls), against the dynamic
// schedule: where the copy probe read 33-39 GB/s (the cores far apart, items_per_handout),
// cluttered MNIST's forward and backward 0.91-0.95x the time, its grid path 0.65-0.73x, its
// forward 0.98-1.06x; where it read 26-29 GB/s, 0.98-1.00x, the grid path 0.97-1.02x; one
// 3 x 1024 x 1024 image's forward 1.00x, 32 x 32 x 64 x 64 and 8 x 64 x 128 x 128 forward
// and backward 0.98x, the seed's batch 0.94-1.0x. (One contiguous range per thread instead of
// dealt chunks: a 3 x 1024 x 1024 image's forward 1.01-1.03x, its strips' neighbouring input
// lines no longer read by both cores at once; cluttered MNIST's backward slower in some runs,
// 0.66 against 0.59 ms.)
template <typename Fn>
void parallel_for(index_t count, const Fn& fn, index_t min_items_to_split = kMinItemsToSplit, index_t chunk = 1) {
  const int threads = get_num_threads();
#if defined(_OPENMP)
  if (threads > 1 && count > 1 && count >= min_items_to_split) {
    ItemDeal deal(count, std::max<index_t>(1, chunk), threads);
#pragma omp parallel num_threads(threads)
    {
      // A team smaller than asked for still empties every hand: each thread goes on to the
      // hands after its own.
      const int own = omp_get_thread_num();
      for (int k = 0; k < deal.hands(); ++k) {
        const int hand = (own + k) % deal.hands();
        index_t first, last;
        while (deal.take(hand, &first, &last))
          for (index_t i = first; i < last; ++i) fn(i);
      }
    }
    return;
  }
#endif
  (void)threads;
  (void)chunk;
  for (index_t i = 0; i < count; ++i) fn(i);
}

// Items per hand-out (parallel_for's chunk) for a loop of `count` items of about `item_work`
// pixel-channels each. A thread takes about kHandoutWork pixel-channels at a time, but at
// least kHandoutsPerThread times per loop, so that the threads still finish together. Chosen
// under OpenMP's dynamic schedule, where each hand-out was an atomic on a line both threads
// shared: where the two cores sit far apart (on a host whose virtual cores land on different
// L3 slices, say), passing that line back and forth costs a few hundred nanoseconds, and a
// loop of short items spent much of its time queueing on it. Measured on the AMD Zen 4 host
// (2 threads, A/B in alternating calls) in its two states: where the copy probe read 35-42
// GB/s (the cores far apart), cluttered MNIST's forward took 0.77x the time with chunks of
// 16 images instead of one, its forward and backward 0.89-0.92x, the grid path 0.70-0.78x;
// where it read 26-30 GB/s, 0.95-0.96x, 0.98-1.00x and 0.93-0.96x. (Dealt out (ItemDeal), a
// thread's own chunks no longer pass a line between the cores; the chunk still sets which
// items run together on one core.)
constexpr index_t kHandoutWork = index_t(1) << 14;
constexpr index_t kHandoutsPerThread = 8;

inline index_t items_per_handout(index_t count, index_t item_work) {
  const index_t by_work = kHandoutWork / std::max<index_t>(1, item_work);
  const index_t by_balance = count / (index_t(get_num_threads()) * kHandoutsPerThread);
  return std::max<index_t>(1, std::min(by_work, by_balance));
}

// parallel_for over items of about `item_work` elementary operations each (a few
// nanoseconds' worth apiece): the loop stays on the calling thread unless it is long enough
// to pay for waking the team, and threads take kChunkWork operations' worth of items at a
// time. Each hand-out is an atomic on a line the threads share; one item per hand-out had
// the threads queue on that line. Measured on the AMD Zen 4 (2 threads, A/B in alternating
// calls): cluttered MNIST's forward (256 x 1 x 60 x 60), whose 256 theta copies went out one
// at a time, took 0.93-0.98x the time with them on the calling thread.
constexpr index_t kSplitWork = index_t(1) << 15;
constexpr index_t kChunkWork = index_t(1) << 13;

template <typename Fn>
void parallel_for_light(index_t count, index_t item_work, const Fn& fn) {
  const index_t work = std::max<index_t>(1, item_work);
  const index_t chunk = std::max<index_t>(1, kChunkWork / work);
  parallel_for(count, fn, count * work >= kSplitWork ? 2 : count + 1, chunk);
}

// grad_input (N, C, H, W) in work items (n, band of input rows): each item zeroes its band
// (unless zero_bands is false: fn then writes every element of it), then calls
// fn(n, row_begin, row_end), which adds only the taps landing in that band. Bands exist so
// that N = 1 still uses every thread; they cost a repeated coordinate pass. `threads`: the
// thread count the bands are cut for (N >= threads: one band per image).
template <typename T, typename Fn>
void for_each_band(const SamplerShape& shape, T* grad_input, const Fn& fn, bool zero_bands = true,
                   index_t threads = get_num_threads()) {
  const index_t bands =
      std::max<index_t>(1, std::min<index_t>((threads + shape.batch - 1) / shape.batch, shape.in_height));
  const index_t band_rows = (shape.in_height + bands - 1) / bands;
  // Each item walks a whole image, so split whenever there is more than one.
  parallel_for(shape.batch * bands, [&](index_t item) {
    const index_t n = item / bands;
    const index_t row_begin = (item % bands) * band_rows;
    const index_t row_end = std::min(shape.in_height, row_begin + band_rows);
    if (row_begin >= row_end) return;
    for (index_t c = 0; zero_bands && c < shape.channels; ++c) {
      T* plane = grad_input + (n * shape.channels + c) * shape.in_plane();
      std::memset(plane + row_begin * shape.in_width, 0,
                  sizeof(T) * size_t((row_end - row_begin) * shape.in_width));
    }
    fn(n, row_begin, row_end);
  }, /*min_items_to_split=*/2, items_per_handout(shape.batch * bands, shape.channels * shape.out_plane() / bands));
}

// Exec::buffer on the host: scratch memory left uninitialized, as cudaMalloc leaves it, since
// every body writes its slots before any reads them. (Zeroing it had cost the fused backward a
// serial memset of its theta partials, 6 doubles per output row: cluttered MNIST's backward,
// 256 x 28 rows, took 0.95x the time without it on the AMD Zen 4. The test suite passes with
// the buffer filled with NaN bytes instead.)
template <typename U>
class HostBuffer {
 public:
  explicit HostBuffer(index_t count) : values_(new U[size_t(count)]) {}
  U* data() { return values_.get(); }

 private:
  std::unique_ptr<U[]> values_;
};

struct CpuExecutor {
  // Bodies the row kernels cover (simd_paths.h) go there; the rest run here.
  template <typename Body>
  void launch(index_t count, const Body& body) {
    if (simd_launch(count, body)) return;
    parallel_for(count, body);
  }

  // Bodies of a few operations per item (parallel_for_light): per image, the coefficients of
  // its point map, and the sum of its rows' theta partials.
  template <typename T>
  void launch(index_t count, const ParamsToCoefficients<T>& body) {
    parallel_for_light(count, index_t(body.family.params) * body.family.coefficients(), body);
  }
  template <typename T, int Capacity>
  void launch(index_t count, const ReduceToParams<T, Capacity>& body) {
    parallel_for_light(count, (body.rows_per_image + body.family.params) * body.family.coefficients(), body);
  }

  // One work item per output row, so the pixel loop needs no index division.
  template <typename Body>
  void launch_pixels(index_t batch, index_t out_height, index_t out_width, const Body& body) {
    if (simd_launch_pixels(batch, out_height, out_width, body)) return;
    const index_t min_rows = (kMinItemsToSplit + out_width - 1) / out_width;
    parallel_for(batch * out_height, [&](index_t row) {
      const index_t n = row / out_height, ho = row % out_height;
      for (index_t wo = 0, pixel = row * out_width; wo < out_width; ++wo, ++pixel) body.at(n, ho, wo, pixel);
    }, min_rows);
  }

  template <typename U>
  HostBuffer<U> buffer(index_t count) {
    return HostBuffer<U>(count);
  }

  void finish() {}  // loops are synchronous

  // grad_input (N, C, H, W), band by band (for_each_band): every output pixel of image n in
  // raster order, adding only the taps that land in the band.
  template <typename T, typename Coords>
  void scatter_grad_input(const Coords& coords, const T* grad_output, const SamplerShape& shape,
                          const SamplerOptions& options, bool /*always deterministic*/,
                          T* grad_input) {
    if (simd_scatter_grad_input(coords, grad_output, shape, options, grad_input)) return;
    dispatch_interp(options.mode, [&](auto mode) {
      using Body = ScatterPixel<T, decltype(mode)::value, Coords, PlainAdd>;
      for_each_band(shape, grad_input, [&](index_t n, index_t row_begin, index_t row_end) {
        const Body body{coords, grad_output, grad_input, shape, options, row_begin, row_end, PlainAdd{}};
        index_t pixel = n * shape.out_plane();
        for (index_t ho = 0; ho < shape.out_height; ++ho)
          for (index_t wo = 0; wo < shape.out_width; ++wo, ++pixel) body.at(n, ho, wo, pixel);
      });
    });
  }
};

// device_ops' backward_in_one_pass on the CPU: the row kernels' fused backward where it
// applies (simd_paths.h).
template <typename Body, typename T, typename Reduce>
bool backward_in_one_pass(CpuExecutor&, index_t rows, const Body& body, T* grad_input, const Reduce* reduce) {
  return simd_fused_backward(rows, body, grad_input, reduce);
}

}  // namespace cpu
}  // namespace stn
