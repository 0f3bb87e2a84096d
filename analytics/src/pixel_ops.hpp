// Internal to analytics: per-pixel helpers shared by the detectors, with AVX2 versions picked
// at run time when the CPU has it (the x86-64 baseline, SSE2, has no byte shuffles or 32-bit
// vector multiplies, and the compiler's output for these loops was the detector's main cost).
#pragma once

#include <cstdint>
#include <opencv2/core.hpp>

namespace matthan::analytics {

// dst = src at half size, each pixel (a + b + c + d + 2) / 4 of its 2x2 block: exactly OpenCV's
// 2x INTER_AREA.
void half_size(const cv::Mat& src, cv::Mat& dst);

struct DiffCounts {
  long changed = 0;    // pixels in the region whose difference is above the threshold
  long quiet_n = 0;    // pixels whose difference is below quiet_limit
  long quiet_sum = 0;  // the sum of those differences
};

// For n pixels at steady exposure: b8 = background (1/256 grey levels) rounded to 8 bits;
// d = |src - b8|; msk = 255 where d > thr and reg is set, else 0; nrm = src.
DiffCounts diff_steady(const std::uint8_t* src, const std::uint16_t* bg, const std::uint8_t* reg,
                       std::uint8_t* nrm, std::uint8_t* msk, std::uint8_t* b8, int n,
                       std::uint8_t thr, std::uint8_t quiet_limit);

}  // namespace matthan::analytics
