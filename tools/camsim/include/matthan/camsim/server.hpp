// The RTSP side of camsim: gst-rtsp-server on 127.0.0.1, TCP only, /<camera>/main and
// /<camera>/sub per camera, optional Basic or Digest auth per camera, and faults on demand.
#pragma once

#include <cstdio>
#include <expected>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "matthan/camsim/encoded_loop.hpp"
#include "matthan/camsim/scenario.hpp"

namespace matthan::camsim {

enum class Fault {
  none,
  unauthorized,
  not_found,
  corrupt,
  truncate,
  stall,
  rtp_loss,
  sender_stall
};
std::optional<Fault> fault_from_string(const std::string& text);
std::string to_string(Fault fault);

struct ServedCamera {
  CameraSpec spec;
  CameraLoops loops;
};

// Threads: GStreamer's main loop thread runs the RTSP server and every command; a pacer
// thread pushes access units in real time. Shared state of a camera is atomic or guarded by
// the feeder's mutex.
class CamsimServer {
 public:
  explicit CamsimServer(std::vector<ServedCamera> cameras);
  ~CamsimServer();
  // Binds; returns the port.
  std::expected<int, std::string> start(const std::string& address, int port);
  // Before start(): cameras with credentials ask for Digest instead of Basic (as most real
  // cameras do).
  void set_digest(bool digest);
  void set_frame_log(std::FILE* file);  // "camera stream loop index send_us" per sent frame
  void set_truth_log(std::FILE* file);  // loop starts, so loop-relative truth maps to wall time
  // Commands run on the main loop: "stop CAM", "start CAM", "fault CAM MODE", "drops" (pictures
  // the full sender queue dropped), "quit".
  std::string command(const std::string& line);
  void run();  // the GLib main loop, until quit() or a signal
  void quit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace matthan::camsim
