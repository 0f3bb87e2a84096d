// People: OpenCV's built-in HOG people detector (no model download), run only on the region
// that moved, at most once a second per camera, under one global budget: a single worker with
// a short queue shared by all cameras. At ~10-100 ms a run it could eat a core; the queue
// drops rather than lags, and its cost and backlog are reported.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "matthan/core/event.hpp"

namespace matthan::analytics {

struct PersonJob {
  std::string camera_id;
  std::string event_id;
  int width = 0;  // of the crop
  int height = 0;
  std::vector<std::uint8_t> luma;  // the crop around the moving region, packed
  double target_height_px = 0;     // the moving region's height inside the crop
};

struct ClassifierStats {
  std::uint64_t runs = 0;
  std::uint64_t people = 0;
  std::uint64_t dropped = 0;  // queue full: the budget was exceeded
  std::size_t backlog = 0;    // queued plus the one running
  double ms_avg = 0;
};

// Thread-safe: submit() from analysis workers; the classifier's own thread runs HOG and calls
// on_person(camera_id, event_id) for crops that hold a person.
class PersonClassifier {
 public:
  using OnPerson = std::function<void(const std::string& camera_id, const std::string& event_id)>;

  PersonClassifier(OnPerson on_person, std::size_t queue_depth = 4,
                   std::int64_t min_interval_us = 1'000'000);
  ~PersonClassifier();
  // False when the camera asked too recently or the queue is full (then counted as dropped).
  bool submit(PersonJob job, std::int64_t now_us);
  ClassifierStats stats() const;
  // Runs HOG on one crop synchronously (tests and benchmarks).
  static bool has_person(const PersonJob& job);

 private:
  void run();

  OnPerson on_person_;
  std::size_t depth_;
  std::int64_t min_interval_us_;
  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable cv_;
  std::deque<PersonJob> queue_;
  std::map<std::string, std::int64_t> last_submit_us_;
  ClassifierStats stats_;
  double total_ms_ = 0;
  bool stopping_ = false;
  bool busy_ = false;
  std::thread thread_;
};

}  // namespace matthan::analytics
