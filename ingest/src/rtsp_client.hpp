// A small RTSP client for the common case: one H.264 or H.265 video track, RTP interleaved in
// the RTSP connection (TCP). It exists for speed: libavformat's RTSP reader makes six system
// calls per RTP packet (a poll and a recv for the '$', the header and the payload); this one
// reads the socket in large chunks and depacketises from its own buffer (docs/design/ingest.md).
// Anything else (UDP, MJPEG, audio-only) is left to libavformat by the caller.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

namespace matthan::ingest {

enum class RtspFailure {
  none,
  unauthorized,  // 401 after our credentials, or 401 and no credentials in the URL
  forbidden,     // 403
  not_found,     // 404
  server_error,  // 5xx
  refused,       // ECONNREFUSED
  unreachable,   // EHOSTUNREACH, ENETUNREACH
  timeout,       // no answer in time
  closed,        // the camera closed the connection during set-up
  unsupported,   // not a case for this client (codec, transport): use libavformat
  protocol,      // an answer we cannot use
  interrupted,   // the caller asked to stop
};

struct RtspVideo {
  bool h265 = false;
  std::vector<std::uint8_t> extradata;  // Annex B parameter sets (VPS,) SPS, PPS
  int width = 0;
  int height = 0;
  int clock_rate = 90000;
  double frame_rate = 0;  // declared (a=framerate) or measured over the first frames; 0: unknown
};

// One access unit (a picture), Annex B, with its unwrapped RTP time (clock_rate ticks).
struct AccessUnit {
  std::vector<std::uint8_t> data;
  std::int64_t pts = 0;
  bool keyframe = false;
  bool damaged = false;        // an RTP packet of it was lost: it is passed on as it arrived
  bool new_extradata = false;  // its in-band parameter sets differ from the ones before
  std::vector<std::uint8_t> extradata;  // then: the parameter sets from this unit on
  // When its last bytes were read off the socket: units read ahead (the first pictures, or
  // several in one read) keep their own arrival time.
  std::chrono::steady_clock::time_point received;
};

// Thread: one thread (the stream's demux thread) owns an instance. `interrupted` is polled at
// least once per read wait (kReadWait, or what batch_reads sets) while waiting on the network,
// so stop and stall deadlines act quickly.
class RtspClient {
 public:
  using Interrupted = std::function<bool()>;

  RtspClient(std::string url, Interrupted interrupted);
  ~RtspClient();  // TEARDOWN, best effort
  RtspClient(const RtspClient&) = delete;
  RtspClient& operator=(const RtspClient&) = delete;

  // OPTIONS, DESCRIBE (with Basic or Digest authentication), SETUP, PLAY, then reads until the
  // first keyframe and a few pictures after it (parameter sets, size, frame rate).
  RtspFailure open(std::chrono::milliseconds timeout);
  // After open: reads until the picture size is known (parameter sets and a slice) and the
  // frame rate too, if the description has none. What it read is returned by read() next.
  enum class Read { ok, closed, interrupted, timeout, error };
  Read first_pictures(std::chrono::milliseconds timeout);
  const std::string& detail() const { return detail_; }  // the words behind a failure
  const RtspVideo& video() const { return video_; }

  Read read(AccessUnit& out);  // never `timeout`: the caller's interruption ends a stall
  // How long a read waits before looking at the stop flag and the stall deadline, unless
  // batch_reads sets another wait.
  static constexpr std::chrono::milliseconds kReadWait{100};
  // Reads wait for this many bytes or `wait` (the read timeout, kReadWait unless set here) rather
  // than wake for every TCP segment: for a stream nobody needs frame by frame, a few wake-ups a
  // second instead of one or more per picture. Each picture still keeps its arrival time; the
  // stop flag and the stall deadline are looked at once per `wait`.
  void batch_reads(int bytes, std::chrono::milliseconds wait);
  std::uint64_t lost_packets() const { return lost_packets_; }

  // The RTP path without a socket, for the tests: what open() learns from the description,
  // then RTP packets in and access units out.
  void set_track_for_test(bool h265, int payload_type) {
    video_.h265 = h265;
    payload_type_ = payload_type;
  }
  void feed_rtp_for_test(const std::uint8_t* packet, std::size_t size) { on_rtp(packet, size); }
  bool next_unit_for_test(AccessUnit& out) {
    if (ready_.empty()) return false;
    out = std::move(ready_.front());
    ready_.pop_front();
    return true;
  }

  // Exposed for the unit tests.
  // qop empty: RFC 2069 (what most cameras ask for); "auth": RFC 2617 with nc and cnonce.
  static std::string digest_response(const std::string& user, const std::string& password,
                                     const std::string& realm, const std::string& nonce,
                                     const std::string& method, const std::string& uri,
                                     const std::string& qop = {}, const std::string& nc = {},
                                     const std::string& cnonce = {});

 private:
  struct Response {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string header(const std::string& name) const;
  };

  RtspFailure connect_socket(std::chrono::steady_clock::time_point deadline);
  RtspFailure request(const std::string& method, const std::string& uri, const std::string& extra,
                      Response& out, std::chrono::steady_clock::time_point deadline);
  bool send_all(const std::string& text);
  // Fills the buffer with at least one more byte; false at EOF, error or interruption (why_).
  bool fill(std::chrono::steady_clock::time_point deadline);
  bool read_response(Response& out, std::chrono::steady_clock::time_point deadline);
  std::string authorization(const std::string& method, const std::string& uri) const;
  bool parse_buffered();  // true: it made at least one access unit
  bool parse_sdp(const std::string& sdp, const std::string& base);
  void on_rtp(const std::uint8_t* p, std::size_t n);
  void append_nal(const std::uint8_t* nal, std::size_t n);
  void finish_unit();
  void keepalive();
  void set_extradata();  // video_.extradata from param_sets_

  std::string url_;  // without credentials
  std::string user_, password_;
  std::string host_, port_;
  Interrupted interrupted_;
  std::string detail_;
  RtspVideo video_;

  int fd_ = -1;
  std::vector<std::uint8_t> buf_;  // bytes read and not yet parsed: buf_[pos_, end_)
  std::size_t pos_ = 0, end_ = 0;
  std::chrono::steady_clock::time_point last_read_at_;
  enum class Why { none, eof, error, interrupted, timeout } why_ = Why::none;
  int cseq_ = 0;
  std::string session_;
  int session_timeout_s_ = 60;
  bool get_parameter_ = false;  // the camera lists GET_PARAMETER: the keep-alive of choice
  std::chrono::steady_clock::time_point next_keepalive_;
  std::string auth_scheme_, realm_, nonce_, opaque_, qop_, cnonce_;
  mutable unsigned nonce_count_ = 0;  // qop=auth: one more for every request
  std::string control_;               // the video track's URL (SETUP)
  std::string play_url_;              // the session's URL (PLAY)
  int payload_type_ = -1;
  int rtp_channel_ = 0;

  // Depacketiser state.
  bool have_seq_ = false;
  std::uint16_t last_seq_ = 0;
  bool have_ts_ = false;
  std::uint32_t last_ts_ = 0;
  std::int64_t ext_ts_ = 0;
  bool unit_open_ = false;
  bool fu_active_ = false;
  AccessUnit unit_;
  bool unit_has_params_ = false;  // this unit holds parameter sets (read back at its end)
  std::deque<AccessUnit> ready_;
  std::vector<AccessUnit> spare_;  // recycled buffers
  std::uint64_t lost_packets_ = 0;
  std::vector<std::vector<std::uint8_t>> param_sets_;  // the current ones, in Annex B order
};

}  // namespace matthan::ingest
