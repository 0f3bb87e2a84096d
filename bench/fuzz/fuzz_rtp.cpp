// libFuzzer target: a camera that talks RTSP correctly and then sends anything. The input is an
// SDP, a NUL byte, and the bytes the "camera" sends after PLAY (RTP/RTCP interleaved in the RTSP
// connection, '$' channel length payload, or whatever the fuzzer makes of it). A tiny server on
// 127.0.0.1 answers OPTIONS, DESCRIBE (with that SDP), SETUP and PLAY, sends the bytes and closes;
// the server's real StreamSession (libavformat's RTSP/RTP demux and depacketisers, the decoder,
// the timestamp smoother, the luma hand-off) reads it as a main stream with analysis, and the
// packets it publishes are written to MP4 by the real segment writer.
// Seeds: bench/fuzz/make_rtp_seeds.py records them from the camera simulator.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "matthan/core/clock.hpp"
#include "matthan/ingest/stream_session.hpp"
#include "matthan/storage/segment_writer.hpp"

namespace {

// Reads one RTSP request (up to the blank line; requests from libav carry no body here).
bool read_request(int fd, std::string& buffer, std::string& request) {
  for (;;) {
    if (auto end = buffer.find("\r\n\r\n"); end != std::string::npos) {
      request = buffer.substr(0, end + 4);
      buffer.erase(0, end + 4);
      return true;
    }
    char chunk[2048];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

std::string header(const std::string& request, const std::string& name) {
  auto at = request.find("\r\n" + name + ":");
  if (at == std::string::npos) return "";
  at += name.size() + 3;
  while (at < request.size() && request[at] == ' ') ++at;
  return request.substr(at, request.find("\r\n", at) - at);
}

void send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

// One connection: the handshake, then the stream bytes, then close.
void serve(int fd, const std::string& sdp, const std::uint8_t* stream, std::size_t stream_size,
           int port) {
  std::string buffer, request;
  while (read_request(fd, buffer, request)) {
    const std::string cseq = header(request, "CSeq");
    std::string reply = "RTSP/1.0 200 OK\r\nCSeq: " + cseq + "\r\n";
    if (request.starts_with("OPTIONS")) {
      reply += "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n\r\n";
    } else if (request.starts_with("DESCRIBE")) {
      reply += "Content-Base: rtsp://127.0.0.1:" + std::to_string(port) +
               "/fuzz/\r\nContent-Type: application/sdp\r\nContent-Length: " +
               std::to_string(sdp.size()) + "\r\n\r\n" + sdp;
    } else if (request.starts_with("SETUP")) {
      std::string transport = header(request, "Transport");
      if (transport.empty()) transport = "RTP/AVP/TCP;unicast;interleaved=0-1";
      reply += "Transport: " + transport + "\r\nSession: 4711;timeout=60\r\n\r\n";
    } else if (request.starts_with("PLAY")) {
      reply += "Session: 4711\r\nRange: npt=0.000-\r\n\r\n";
      send_all(fd, reply.data(), reply.size());
      send_all(fd, reinterpret_cast<const char*>(stream), stream_size);
      return;  // the caller closes: the camera is gone
    } else {
      reply += "Session: 4711\r\n\r\n";
    }
    send_all(fd, reply.data(), reply.size());
  }
}

// One per input, closed after it: a connection left over from one input can never be taken
// for the next one's.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 4);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() { ::close(fd_); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  int accept_one() const {
    for (;;) {
      const int fd = ::accept(fd_, nullptr, nullptr);
      if (fd >= 0 || errno != EINTR) return fd;
    }
  }
  // Makes a pending accept_one() return (-1) if nobody connected.
  void wake() const { ::shutdown(fd_, SHUT_RDWR); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class CountingSink final : public matthan::FrameSink {
 public:
  void on_frame(matthan::LumaFramePtr frame) override {
    if (frame && frame->pixels() != nullptr && frame->height > 0) {
      sum_ += frame->pixels()[static_cast<std::size_t>(frame->height / 2) * frame->stride];
    }
  }

 private:
  std::atomic<std::uint64_t> sum_{0};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Listener listener;
  static const std::string dir = [] {
    matthan::ingest::install_av_log_masking();
    spdlog::set_level(spdlog::level::off);
    return "/tmp/matthan-fuzz-rtp-" + std::to_string(::getpid());
  }();
  const auto* nul = static_cast<const std::uint8_t*>(std::memchr(data, 0, size));
  const std::size_t sdp_size = nul != nullptr ? static_cast<std::size_t>(nul - data) : size;
  const std::string sdp(reinterpret_cast<const char*>(data), sdp_size);
  const std::uint8_t* stream = nul != nullptr ? nul + 1 : data + size;
  const std::size_t stream_size = static_cast<std::size_t>(data + size - stream);

  // The camera: serves one connection (libav's RTSP client makes one), then is gone.
  std::thread camera([&] {
    const int fd = listener.accept_one();
    if (fd < 0) return;
    serve(fd, sdp, stream, stream_size, listener.port());
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  });

  std::mutex mutex;
  std::condition_variable cv;
  bool ended = false;
  matthan::SystemClock clock;
  CountingSink sink;
  matthan::ingest::StreamOptions options;
  options.camera_id = "fuzz";
  options.kind = matthan::StreamKind::main;
  options.url = "rtsp://127.0.0.1:" + std::to_string(listener.port()) + "/fuzz";
  options.connect_timeout = std::chrono::milliseconds(2000);
  options.min_stall_timeout = std::chrono::milliseconds(1000);
  options.backoff.initial = std::chrono::milliseconds(60'000);  // one attempt per input
  options.decode = true;
  options.analysis_fps = 25;
  options.frame_sink = &sink;
  {
    matthan::storage::SegmentWriterSettings settings;
    settings.root = dir;
    settings.segment_s = 2;
    settings.sync = false;
    matthan::storage::SegmentWriter writer(settings, "fuzz", matthan::StreamKind::main,
                                           [](const matthan::storage::SegmentInfo&) {});
    std::mutex writer_mutex;
    matthan::ingest::StreamSession session(
        options, clock, [&](matthan::StreamKind, matthan::StreamState state, const std::string&) {
          if (state == matthan::StreamState::online) return;
          std::lock_guard lock(mutex);
          ended = true;
          cv.notify_all();
        });
    session.packets().subscribe("fuzz-writer", matthan::DropPolicy::never, 0, 64 << 20,
                                [&](const matthan::EncodedPacketPtr& p) {
                                  std::lock_guard lock(writer_mutex);
                                  (void)writer.write(*p);
                                });
    session.start();
    {
      std::unique_lock lock(mutex);
      cv.wait_for(lock, std::chrono::seconds(10), [&] { return ended; });
    }
    session.stop();  // also drains the writer's queue
    // FUZZ_RTP_VERBOSE=1: what the session made of each input (to check that seeds reach the
    // decoder).
    if (std::getenv("FUZZ_RTP_VERBOSE") != nullptr) {
      const auto st = session.stats();
      std::fprintf(stderr, "fuzz_rtp: %s, %llu packets, %llu frames decoded, %s: %s\n",
                   st.codec.c_str(), static_cast<unsigned long long>(st.packets_in),
                   static_cast<unsigned long long>(st.frames_decoded),
                   std::string(matthan::to_string(st.state)).c_str(), st.last_error.c_str());
    }
    std::lock_guard lock(writer_mutex);
    writer.close();
  }
  // The session connected once and the camera has served it; had it not connected, the camera
  // would still be waiting.
  listener.wake();
  camera.join();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
