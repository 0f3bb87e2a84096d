// Internal to analytics: the picture area that counts (255) with the masks cut out (0), at a
// given analysis size. Shared by the detector and the evaluation's baseline.
#pragma once

#include <cmath>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "matthan/core/zones.hpp"

namespace matthan::analytics {

inline cv::Mat region_mask(cv::Size size, const std::vector<Polygon>& masks) {
  cv::Mat region(size, CV_8U, cv::Scalar(255));
  for (const auto& poly : masks) {
    std::vector<cv::Point> pts;
    for (const auto& [x, y] : poly) {
      pts.emplace_back(static_cast<int>(std::lround(x * size.width)),
                       static_cast<int>(std::lround(y * size.height)));
    }
    cv::fillPoly(region, std::vector<std::vector<cv::Point>>{pts}, cv::Scalar(0));
  }
  return region;
}

}  // namespace matthan::analytics
