#include "pixel_ops.hpp"

#include <cstddef>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MATTHAN_AVX2 1
#endif

namespace matthan::analytics {

namespace {

void half_rows_scalar(const std::uint8_t* src, std::size_t stride, std::uint8_t* dst,
                      std::size_t dst_stride, int w, int h, int from_x) {
  for (int y = 0; y < h; ++y) {
    const std::uint8_t* r0 = src + 2 * static_cast<std::size_t>(y) * stride;
    const std::uint8_t* r1 = r0 + stride;
    std::uint8_t* d = dst + static_cast<std::size_t>(y) * dst_stride;
    for (int x = from_x; x < w; ++x) {
      d[x] = static_cast<std::uint8_t>(
          (r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1] + 2) >> 2);
    }
  }
}

DiffCounts diff_steady_scalar(const std::uint8_t* src, const std::uint16_t* bg,
                              const std::uint8_t* reg, std::uint8_t* nrm, std::uint8_t* msk,
                              std::uint8_t* b8, int from, int n, std::uint8_t t, std::uint8_t ql) {
  DiffCounts c;
  for (int x = from; x < n; ++x) {
    const std::uint8_t bb = static_cast<std::uint8_t>((bg[x] + 128) >> 8);
    const std::uint8_t v = src[x];
    const std::uint8_t d = static_cast<std::uint8_t>(v > bb ? v - bb : bb - v);
    const std::uint8_t moved = static_cast<std::uint8_t>((d > t ? 0xFF : 0) & reg[x]);
    b8[x] = bb;
    msk[x] = moved;
    nrm[x] = v;
    c.changed += moved & 1;
    if (d < ql) {
      ++c.quiet_n;
      c.quiet_sum += d;
    }
  }
  return c;
}

#ifdef MATTHAN_AVX2
bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}

// 32 output pixels per step: pairwise sums of each row (maddubs with ones), the two rows added,
// rounded, shifted, packed (packus works per 128-bit lane: the permute restores the order).
__attribute__((target("avx2"))) void half_rows_avx2(const std::uint8_t* src, std::size_t stride,
                                                    std::uint8_t* dst, std::size_t dst_stride,
                                                    int w, int h) {
  const __m256i ones = _mm256_set1_epi8(1);
  const __m256i two = _mm256_set1_epi16(2);
  const int wv = w & ~31;
  for (int y = 0; y < h; ++y) {
    const std::uint8_t* r0 = src + 2 * static_cast<std::size_t>(y) * stride;
    const std::uint8_t* r1 = r0 + stride;
    std::uint8_t* d = dst + static_cast<std::size_t>(y) * dst_stride;
    for (int x = 0; x < wv; x += 32) {
      const auto* p0 = reinterpret_cast<const __m256i*>(r0 + 2 * x);
      const auto* p1 = reinterpret_cast<const __m256i*>(r1 + 2 * x);
      const __m256i s0 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_loadu_si256(p0), ones),
                                          _mm256_maddubs_epi16(_mm256_loadu_si256(p1), ones));
      const __m256i s1 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_loadu_si256(p0 + 1), ones),
                                          _mm256_maddubs_epi16(_mm256_loadu_si256(p1 + 1), ones));
      const __m256i a0 = _mm256_srli_epi16(_mm256_add_epi16(s0, two), 2);
      const __m256i a1 = _mm256_srli_epi16(_mm256_add_epi16(s1, two), 2);
      const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(a0, a1), 0xD8);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + x), packed);
    }
  }
  half_rows_scalar(src, stride, dst, dst_stride, w, h, wv);
}

// 32 pixels from x; only those from `from` on (from - x in 0..31) are counted, and the stores
// are the same whichever step writes them, so the last step may overlap the one before.
__attribute__((always_inline, target("avx2,popcnt"))) inline void steady_step(
    const std::uint8_t* src, const std::uint16_t* bg, const std::uint8_t* reg, std::uint8_t* nrm,
    std::uint8_t* msk, std::uint8_t* b8, int x, int from, std::uint8_t t, std::uint8_t ql,
    long& changed, long& quiet_n, __m256i& qsum) {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i all = _mm256_set1_epi8(-1);
  const __m256i r128 = _mm256_set1_epi16(128);
  const __m256i g0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bg + x));
  const __m256i g1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bg + x + 16));
  const __m256i h0 = _mm256_srli_epi16(_mm256_add_epi16(g0, r128), 8);
  const __m256i h1 = _mm256_srli_epi16(_mm256_add_epi16(g1, r128), 8);
  const __m256i b = _mm256_permute4x64_epi64(_mm256_packus_epi16(h0, h1), 0xD8);
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + x));
  const __m256i d = _mm256_or_si256(_mm256_subs_epu8(v, b), _mm256_subs_epu8(b, v));
  // d > t  <=>  d - t (saturated) != 0;  d < ql  <=>  ql - d (saturated) != 0
  const __m256i above = _mm256_xor_si256(
      _mm256_cmpeq_epi8(_mm256_subs_epu8(d, _mm256_set1_epi8(static_cast<char>(t))), zero), all);
  const __m256i moved =
      _mm256_and_si256(above, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reg + x)));
  __m256i quiet = _mm256_xor_si256(
      _mm256_cmpeq_epi8(_mm256_subs_epu8(_mm256_set1_epi8(static_cast<char>(ql)), d), zero), all);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(b8 + x), b);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(msk + x), moved);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(nrm + x), v);
  __m256i counted = moved;
  if (from != x) {
    // Lanes before `from` were counted by the step before.
    const __m256i lane =
        _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
                         21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
    const __m256i fresh =
        _mm256_cmpgt_epi8(lane, _mm256_set1_epi8(static_cast<char>(from - x - 1)));
    counted = _mm256_and_si256(counted, fresh);
    quiet = _mm256_and_si256(quiet, fresh);
  }
  changed += __builtin_popcount(static_cast<unsigned>(_mm256_movemask_epi8(counted)));
  quiet_n += __builtin_popcount(static_cast<unsigned>(_mm256_movemask_epi8(quiet)));
  qsum = _mm256_add_epi64(qsum, _mm256_sad_epu8(_mm256_and_si256(d, quiet), zero));
}

__attribute__((target("avx2,popcnt"))) DiffCounts diff_steady_avx2(
    const std::uint8_t* src, const std::uint16_t* bg, const std::uint8_t* reg, std::uint8_t* nrm,
    std::uint8_t* msk, std::uint8_t* b8, int n, std::uint8_t t, std::uint8_t ql) {
  __m256i qsum = _mm256_setzero_si256();
  long changed = 0, quiet_n = 0;
  const int nv = n & ~31;
  for (int x = 0; x < nv; x += 32)
    steady_step(src, bg, reg, nrm, msk, b8, x, x, t, ql, changed, quiet_n, qsum);
  DiffCounts c;
  if (nv < n && n >= 32) {
    // The rest as one more step ending at n: the detector's spans are quarter rows of 80 pixels,
    // and the scalar loop over their last 16 cost more than the vector one over the first 64.
    steady_step(src, bg, reg, nrm, msk, b8, n - 32, nv, t, ql, changed, quiet_n, qsum);
  } else if (nv < n) {
    c = diff_steady_scalar(src, bg, reg, nrm, msk, b8, nv, n, t, ql);
  }
  alignas(32) long long lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), qsum);
  c.changed += changed;
  c.quiet_n += quiet_n;
  c.quiet_sum += static_cast<long>(lanes[0] + lanes[1] + lanes[2] + lanes[3]);
  return c;
}
#endif

}  // namespace

void half_size(const cv::Mat& src, cv::Mat& dst) {
  CV_Assert(src.type() == CV_8U);
  dst.create(src.rows / 2, src.cols / 2, CV_8U);
#ifdef MATTHAN_AVX2
  if (have_avx2()) {
    half_rows_avx2(src.data, src.step, dst.data, dst.step, dst.cols, dst.rows);
    return;
  }
#endif
  half_rows_scalar(src.data, src.step, dst.data, dst.step, dst.cols, dst.rows, 0);
}

DiffCounts diff_steady(const std::uint8_t* src, const std::uint16_t* bg, const std::uint8_t* reg,
                       std::uint8_t* nrm, std::uint8_t* msk, std::uint8_t* b8, int n,
                       std::uint8_t thr, std::uint8_t quiet_limit) {
#ifdef MATTHAN_AVX2
  if (have_avx2()) return diff_steady_avx2(src, bg, reg, nrm, msk, b8, n, thr, quiet_limit);
#endif
  return diff_steady_scalar(src, bg, reg, nrm, msk, b8, 0, n, thr, quiet_limit);
}

}  // namespace matthan::analytics
