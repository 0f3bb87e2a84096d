// The demux (and, for the analysis stream, decode) loop of one RTSP stream.
// Error policy: every libav failure becomes a state with a plain-words message; the loop
// never ends on bad input, only on stop().
#include "matthan/ingest/stream_session.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
}

#include <netdb.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "analysis_decoder.hpp"
#include "analysis_pacer.hpp"
#include "matthan/core/ts_smoother.hpp"
#include "matthan/core/url.hpp"
#include "rtsp_client.hpp"

namespace matthan::ingest {
namespace {

std::string av_error_text(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof buf);
  return buf;
}

Codec codec_of(AVCodecID id) {
  switch (id) {
    case AV_CODEC_ID_H264:
      return Codec::h264;
    case AV_CODEC_ID_HEVC:
      return Codec::h265;
    case AV_CODEC_ID_MJPEG:
      return Codec::mjpeg;
    case AV_CODEC_ID_AAC:
      return Codec::aac;
    case AV_CODEC_ID_PCM_ALAW:
      return Codec::pcm_alaw;
    case AV_CODEC_ID_PCM_MULAW:
      return Codec::pcm_mulaw;
    default:
      return Codec::other;
  }
}

struct UrlParts {
  std::string host;
  std::string port;
};

// host and port of rtsp://[user[:pass]@]host[:port]/...
UrlParts split_url(const std::string& url) {
  UrlParts parts;
  auto start = url.find("://");
  if (start == std::string::npos) return parts;
  start += 3;
  auto end = url.find_first_of("/?", start);
  std::string authority =
      url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (auto at = authority.rfind('@'); at != std::string::npos) authority = authority.substr(at + 1);
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    parts.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') {
      parts.port = authority.substr(close + 2);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string::npos) {
    parts.host = authority.substr(0, colon);
    parts.port = authority.substr(colon + 1);
  } else {
    parts.host = authority;
  }
  if (parts.port.empty()) parts.port = url.starts_with("rtsps://") ? "322" : "554";
  return parts;
}

struct FormatCloser {
  void operator()(AVFormatContext* ctx) const { avformat_close_input(&ctx); }
};
struct CodecCloser {
  void operator()(AVCodecContext* ctx) const { avcodec_free_context(&ctx); }
};
struct PacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct FrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct ParFree {
  void operator()(AVCodecParameters* p) const { avcodec_parameters_free(&p); }
};

// A failed set-up of our RTSP client, in the same words as libavformat's below.
std::pair<StreamState, std::string> open_failure(RtspFailure failure, const std::string& detail,
                                                 const std::string& where, bool was_online,
                                                 std::int64_t timeout_ms) {
  switch (failure) {
    case RtspFailure::unauthorized:
    case RtspFailure::forbidden:
      return {StreamState::unauthorized,
              "the camera at " + where + " refused the user name or password (" +
                  (failure == RtspFailure::forbidden ? "403" : "401") + ")"};
    case RtspFailure::not_found:
      return {StreamState::not_found, "the camera at " + where +
                                          " has no stream at this path (404): check the channel "
                                          "or the URL"};
    case RtspFailure::server_error:
      return {StreamState::offline,
              "the camera at " + where + " answered with a server error (5xx)"};
    case RtspFailure::refused:
      return {was_online ? StreamState::offline : StreamState::error,
              "connection refused by " + where +
                  (was_online ? ": the camera's RTSP service is gone"
                              : ": wrong port, or the camera's RTSP service is off")};
    case RtspFailure::timeout:
    case RtspFailure::unreachable:
    case RtspFailure::interrupted:
      return {was_online ? StreamState::offline : StreamState::error,
              "no answer from " + where + " within " + std::to_string(timeout_ms) + " ms" +
                  (was_online ? "" : ": wrong address, or the camera is off or unreachable")};
    case RtspFailure::closed:
      return {was_online ? StreamState::offline : StreamState::error,
              "the camera at " + where + " closed the connection during set-up"};
    default:
      return {StreamState::error, "cannot open the stream at " + where + ": " + detail};
  }
}

void av_log_to_spdlog(void* avcl, int level, const char* fmt, va_list args) {
  if (level > AV_LOG_WARNING) return;
  static thread_local int print_prefix = 1;
  char line[1024];
  va_list copy;
  va_copy(copy, args);
  av_log_format_line2(avcl, level, fmt, copy, line, sizeof line, &print_prefix);
  va_end(copy);
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) return;
  // libav's own messages are noisy on broken streams (one per bad macroblock); the session
  // reports the state they lead to. Keep them for debugging, masked like everything else.
  spdlog::debug("libav: {}", mask_credentials(text));
}

// Analysis frames are recycled, ten a second per camera: a frame's plane is lent by the decoder
// (lend_luma), and the copy it falls back to (230 KB at 640x360) is not allocated and zeroed
// anew each time (that cost ~4 % of the server's CPU, perf, 8 cameras).
// Thread-safe: taken on the demux thread, given back by whichever thread drops the last
// reference (an analysis worker); mutex_ guards free_.
class LumaPool : public std::enable_shared_from_this<LumaPool> {
 public:
  std::shared_ptr<LumaFrame> take() {
    std::unique_ptr<LumaFrame> frame;
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        frame = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (!frame) frame = std::make_unique<LumaFrame>();
    // A frame still queued when its session ends is freed, not returned.
    return {frame.release(), [home = weak_from_this()](LumaFrame* f) {
              if (auto pool = home.lock()) {
                pool->give_back(f);
              } else {
                delete f;
              }
            }};
  }

 private:
  void give_back(LumaFrame* f) {
    std::unique_ptr<LumaFrame> owned(f);
    owned->lender.reset();  // the decoder's buffer goes back now, not when the frame is reused
    owned->lent_pixels = nullptr;
    std::lock_guard lock(mutex_);
    // The analysis queue holds a few frames per camera at most; more would be dropped there.
    if (free_.size() < 6) free_.push_back(std::move(owned));
  }

  std::mutex mutex_;
  std::vector<std::unique_ptr<LumaFrame>> free_;
};

// The decoder's luma plane goes to the analysis as it is: a reference on its buffer instead
// of a 230 KB copy per analysed picture (~2 % of the server's CPU, perf, 8 cameras). The
// decoder never writes a picture it has output (it is only read as a reference), and its
// buffer pool outlives the decoder while a buffer is held. A plane without a reference-counted
// buffer (never from libavcodec's decoders) is copied.
void lend_luma(const AVFrame& frame, LumaFrame& out) {
  if (AVBufferRef* plane = av_frame_get_plane_buffer(const_cast<AVFrame*>(&frame), 0);
      plane != nullptr && frame.linesize[0] > 0) {
    if (AVBufferRef* ref = av_buffer_ref(plane); ref != nullptr) {
      out.stride = frame.linesize[0];
      out.luma.clear();
      out.lent_pixels = frame.data[0];
      out.lender = std::shared_ptr<const void>(
          ref->data, [ref](const void*) mutable { av_buffer_unref(&ref); });
      return;
    }
  }
  out.stride = frame.width;
  out.luma.resize(static_cast<std::size_t>(frame.width) * frame.height);
  for (int y = 0; y < frame.height; ++y) {
    std::memcpy(out.luma.data() + static_cast<std::size_t>(y) * frame.width,
                frame.data[0] + static_cast<std::ptrdiff_t>(y) * frame.linesize[0],
                static_cast<std::size_t>(frame.width));
  }
}

}  // namespace

// What the read loop needs of an opened stream, whoever reads it.
struct StreamSession::Input {
  struct Track {
    const AVCodecParameters* par;  // may change between packets (new parameter sets)
    AVRational time_base;
    AVRational frame_rate;  // 0/0 or 0/1: unknown
  };
  std::vector<Track> tracks;
  int video_index = -1;
  std::function<int(AVPacket*)> read;  // as av_read_frame
  std::function<std::uint64_t()> lost_packets;
  std::int64_t age_us = 0;  // how long ago the last packet read had arrived (read ahead)
};

void install_av_log_masking() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(av_log_to_spdlog); });
}

StreamSession::StreamSession(StreamOptions options, const Clock& clock, StateCallback on_state)
    : options_(std::move(options)), clock_(clock), on_state_(std::move(on_state)) {
  stats_.kind = options_.kind;
  stats_.url_masked = mask_credentials(options_.url);
  stats_.since_us = clock_.now_us();
  stats_.stall_timeout_ms = options_.min_stall_timeout.count();
}

StreamSession::~StreamSession() {
  stop();
}

void StreamSession::start() {
  install_av_log_masking();
  thread_ = std::thread([this] { run(); });
}

void StreamSession::request_stop() {
  {
    std::lock_guard lock(sleep_mutex_);
    stopping_ = true;
  }
  sleep_cv_.notify_all();
}

void StreamSession::stop() {
  request_stop();
  if (thread_.joinable()) thread_.join();
  fanout_.stop();
}

StreamStats StreamSession::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

int StreamSession::interrupt_cb(void* opaque) {
  auto* self = static_cast<StreamSession*>(opaque);
  if (self->stopping_) return 1;
  if (self->clock_.steady_us() > self->deadline_steady_us_.load()) {
    self->deadline_hit_ = true;
    return 1;
  }
  return 0;
}

void StreamSession::set_state(StreamState state, const std::string& error) {
  bool changed = false;
  {
    std::lock_guard lock(mutex_);
    changed = stats_.state != state;
    if (changed) stats_.since_us = clock_.now_us();
    stats_.state = state;
    stats_.last_error = error;
    if (state == StreamState::online) {
      ever_online_ = true;
      stats_.next_retry_us = 0;
    }
  }
  if (changed) {
    const auto masked = mask_credentials(options_.url);
    if (state == StreamState::online) {
      spdlog::info("camera {} {}: online ({})", options_.camera_id, to_string(options_.kind),
                   masked);
    } else {
      spdlog::warn("camera {} {}: {}: {}", options_.camera_id, to_string(options_.kind),
                   to_string(state), error);
    }
    if (on_state_) on_state_(options_.kind, state, error);
  }
}

void StreamSession::sleep_interruptible(std::chrono::milliseconds delay) {
  std::unique_lock lock(sleep_mutex_);
  sleep_cv_.wait_for(lock, delay, [&] { return stopping_.load(); });
}

void StreamSession::run() {
  Backoff backoff(options_.backoff);
  bool first = true;
  while (!stopping_) {
    if (!first) {
      std::lock_guard lock(mutex_);
      ++stats_.reconnects;
    }
    first = false;
    Outcome outcome = connect_and_stream();
    if (stopping_) break;
    if (outcome.streamed) backoff.reset();
    auto delay = backoff.next();
    if (outcome.state == StreamState::unauthorized) {
      delay = std::max(delay, options_.unauthorized_min_delay);
    }
    {
      std::lock_guard lock(mutex_);
      stats_.next_retry_us = clock_.now_us() + delay.count() * 1000;
      stats_.fps_in = stats_.fps_decoded = stats_.bitrate_bps = 0;
      stats_.link_degraded = false;  // offline says more than degraded
      rate_steady_us_ = 0;
    }
    char retry[48];
    std::snprintf(retry, sizeof retry, " (retrying in %.1f s)",
                  static_cast<double>(delay.count()) / 1000.0);
    set_state(outcome.state, outcome.error + retry);
    sleep_interruptible(delay);
  }
}

void StreamSession::sample_rates(std::int64_t steady_us) {
  std::lock_guard lock(mutex_);
  if (rate_steady_us_ == 0) {
    rate_steady_us_ = steady_us;
    rate_packets_ = stats_.packets_in;
    rate_frames_ = stats_.frames_decoded;
    rate_bytes_ = bytes_in_;
    rate_decode_errors_ = stats_.decode_errors;
    rate_jumps_ = stats_.timestamp_jumps;
    rate_lost_ = stats_.rtp_lost;
    window_max_gap_us_ = 0;
    return;
  }
  const double dt = static_cast<double>(steady_us - rate_steady_us_) / 1e6;
  if (dt < 2.0) return;
  stats_.fps_in = static_cast<double>(stats_.packets_in - rate_packets_) / dt;
  stats_.fps_decoded = static_cast<double>(stats_.frames_decoded - rate_frames_) / dt;
  stats_.bitrate_bps = static_cast<double>(bytes_in_ - rate_bytes_) * 8.0 / dt;
  // Link quality over this sample.
  std::string issues;
  auto add = [&](const std::string& what) { issues += (issues.empty() ? "" : "; ") + what; };
  char text[96];
  if (stats_.nominal_fps > 0 && stats_.fps_in < 0.8 * stats_.nominal_fps) {
    std::snprintf(text, sizeof text, "%.1f of %.0f frames/s arrive", stats_.fps_in,
                  stats_.nominal_fps);
    add(text);
  }
  const double gap_limit_us =
      std::max(1e6, stats_.nominal_fps > 0 ? 5e6 / stats_.nominal_fps : 1e6);
  if (static_cast<double>(window_max_gap_us_) > gap_limit_us) {
    std::snprintf(text, sizeof text, "nothing arrived for %.1f s",
                  static_cast<double>(window_max_gap_us_) / 1e6);
    add(text);
  }
  if (stats_.decode_errors > rate_decode_errors_) {
    add(std::to_string(stats_.decode_errors - rate_decode_errors_) + " broken frame(s)");
  }
  if (stats_.timestamp_jumps > rate_jumps_) {
    add(std::to_string(stats_.timestamp_jumps - rate_jumps_) + " timestamp jump(s)");
  }
  // Over TCP a lost RTP packet is one the camera dropped because the link could not carry it.
  if (stats_.rtp_lost > rate_lost_) {
    add(std::to_string(stats_.rtp_lost - rate_lost_) + " RTP packet(s) lost");
  }
  const std::string who = options_.camera_id + " " + std::string(to_string(options_.kind));
  if (!issues.empty()) {
    clean_samples_ = 0;
    if (!stats_.link_degraded) {
      stats_.link_degraded = true;
      ++stats_.degraded_spells;
      spdlog::warn("camera {}: link degraded: {}", who, issues);
    }
    stats_.link_issues = issues;
  } else if (stats_.link_degraded && ++clean_samples_ >= 3) {
    stats_.link_degraded = false;
    spdlog::info("camera {}: link good again", who);
  }
  if (stats_.link_degraded) stats_.degraded_ms += static_cast<std::int64_t>(dt * 1000);
  rate_steady_us_ = steady_us;
  rate_packets_ = stats_.packets_in;
  rate_frames_ = stats_.frames_decoded;
  rate_bytes_ = bytes_in_;
  rate_decode_errors_ = stats_.decode_errors;
  rate_jumps_ = stats_.timestamp_jumps;
  rate_lost_ = stats_.rtp_lost;
  window_max_gap_us_ = 0;
}

StreamSession::Outcome StreamSession::connect_and_stream() {
  const auto parts = split_url(options_.url);
  const std::string where = parts.host + ":" + parts.port;
  bool was_online;
  {
    std::lock_guard lock(mutex_);
    was_online = ever_online_;
    rate_steady_us_ = 0;
  }
  // Resolve first: libav reports a bad host name only as a generic I/O error.
  {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* result = nullptr;
    const int rc = getaddrinfo(parts.host.c_str(), parts.port.c_str(), &hints, &result);
    if (result != nullptr) freeaddrinfo(result);
    if (rc != 0) {
      return {StreamState::error,
              "cannot resolve camera host '" + parts.host + "': " + gai_strerror(rc)};
    }
  }

  if (options_.builtin_rtsp && !builtin_unsupported_ && options_.transport == Transport::tcp &&
      options_.url.starts_with("rtsp://")) {
    RtspClient client(options_.url, [this] { return interrupt_cb(this) != 0; });
    deadline_hit_ = false;
    deadline_steady_us_ = clock_.steady_us() + options_.connect_timeout.count() * 1000 + 500'000;
    const RtspFailure failure = client.open(options_.connect_timeout);
    if (failure != RtspFailure::unsupported) {
      if (failure != RtspFailure::none) {
        if (stopping_) return {StreamState::offline, "stopping"};
        auto [state, error] = open_failure(failure, client.detail(), where, was_online,
                                           options_.connect_timeout.count());
        return {state, std::move(error)};
      }
      const std::int64_t probe_ms = std::max<std::int64_t>(options_.connect_timeout.count(),
                                                           options_.min_stall_timeout.count());
      deadline_hit_ = false;
      deadline_steady_us_ = clock_.steady_us() + probe_ms * 1000 + 500'000;
      if (const auto first = client.first_pictures(std::chrono::milliseconds(probe_ms));
          first != RtspClient::Read::ok) {
        if (stopping_) return {StreamState::offline, "stopping"};
        if (first == RtspClient::Read::error) {
          return {StreamState::error, "cannot read the stream's format: " + client.detail()};
        }
        if (first == RtspClient::Read::closed) {
          return {was_online ? StreamState::offline : StreamState::error,
                  "the camera at " + where + " closed the stream before its first picture"};
        }
        return {StreamState::error, "the camera at " + where +
                                        " accepted the connection but sent no video (stalled "
                                        "stream)"};
      }
      // The video track as libavcodec describes it, kept current as parameter sets change.
      const RtspVideo& v = client.video();
      std::unique_ptr<AVCodecParameters, ParFree> par(avcodec_parameters_alloc());
      par->codec_type = AVMEDIA_TYPE_VIDEO;
      par->codec_id = v.h265 ? AV_CODEC_ID_HEVC : AV_CODEC_ID_H264;
      auto describe = [&par](const std::vector<std::uint8_t>& extradata, int width, int height) {
        av_freep(&par->extradata);
        par->extradata_size = 0;
        par->extradata =
            static_cast<std::uint8_t*>(av_mallocz(extradata.size() + AV_INPUT_BUFFER_PADDING_SIZE));
        if (par->extradata != nullptr) {
          std::memcpy(par->extradata, extradata.data(), extradata.size());
          par->extradata_size = static_cast<int>(extradata.size());
        }
        if (width > 0) {
          par->width = width;
          par->height = height;
        }
      };
      describe(v.extradata, v.width, v.height);
      Input input;
      input.tracks.push_back({par.get(),
                              {1, v.clock_rate},
                              v.frame_rate > 0 ? av_d2q(v.frame_rate, 1001000) : AVRational{0, 1}});
      input.video_index = 0;
      // Nobody watching it live: read in batches, a few pictures per wake-up; a picture's time
      // is kept (the smoother anchors on the quickest arrivals). The analysed stream: 64 KB or
      // 100 ms (the analysis learns of a picture that much later). The recorded-only one:
      // 256 KB or 250 ms, as long as its recorder gathers (a crash loses at most that more,
      // next to the 1 s fragment; 256 KB is 250 ms of 8 Mbit/s). A stream a viewer watches is
      // read as it comes (checked as the units are taken).
      using std::chrono::milliseconds;
      const int idle_bytes = options_.decode ? 64 * 1024 : 256 * 1024;
      const milliseconds idle_wait = options_.decode ? RtspClient::kReadWait : milliseconds(250);
      int read_batch = 1;
      AccessUnit unit;
      input.read = [&](AVPacket* pkt) {
        if (const int want = !fanout_.eager() ? idle_bytes : 1; want != read_batch) {
          client.batch_reads(want, want > 1 ? idle_wait : RtspClient::kReadWait);
          read_batch = want;
        }
        switch (client.read(unit)) {
          case RtspClient::Read::ok:
            break;
          case RtspClient::Read::closed:
            return AVERROR_EOF;
          case RtspClient::Read::interrupted:
            return AVERROR_EXIT;
          case RtspClient::Read::timeout:
          case RtspClient::Read::error:
            return AVERROR(EIO);
        }
        if (options_.decode) {
          // The decoder keeps references and reads past the end: its own padded copy.
          if (av_new_packet(pkt, static_cast<int>(unit.data.size())) < 0) return AVERROR(ENOMEM);
          std::memcpy(pkt->data, unit.data.data(), unit.data.size());
        } else {
          // Not decoded: the packet borrows the unit's bytes until the next read (it is
          // copied once, for the recorder and live view, before then); no allocation.
          pkt->buf = nullptr;
          pkt->data = unit.data.data();
          pkt->size = static_cast<int>(unit.data.size());
        }
        pkt->pts = pkt->dts = unit.pts;
        input.age_us =
            std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::steady_clock::now() - unit.received)
                                          .count());
        pkt->flags =
            (unit.keyframe ? AV_PKT_FLAG_KEY : 0) | (unit.damaged ? AV_PKT_FLAG_CORRUPT : 0);
        pkt->stream_index = 0;
        if (unit.new_extradata) {
          describe(unit.extradata, client.video().width, client.video().height);
          if (auto* side =
                  av_packet_new_side_data(pkt, AV_PKT_DATA_NEW_EXTRADATA, unit.extradata.size())) {
            std::memcpy(side, unit.extradata.data(), unit.extradata.size());
          }
        }
        return 0;
      };
      input.lost_packets = [&client] { return client.lost_packets(); };
      {
        std::lock_guard lock(mutex_);
        stats_.reader = "builtin";
      }
      return stream(input, where);
    }
    // Not a stream for our client (another codec, a redirect): libavformat's from now on.
    builtin_unsupported_ = true;
    spdlog::info("camera {} {}: {}: read through libavformat", options_.camera_id,
                 to_string(options_.kind), client.detail());
  }

  {
    std::lock_guard lock(mutex_);
    stats_.reader = "libavformat";
  }
  std::unique_ptr<AVFormatContext, FormatCloser> fmt;
  {
    AVFormatContext* raw = avformat_alloc_context();
    raw->interrupt_callback = {&StreamSession::interrupt_cb, this};
    deadline_hit_ = false;
    deadline_steady_us_ = clock_.steady_us() + options_.connect_timeout.count() * 1000;
    AVDictionary* opts = nullptr;
    av_dict_set(&opts, "rtsp_transport", options_.transport == Transport::tcp ? "tcp" : "udp", 0);
    av_dict_set_int(&opts, "timeout", options_.connect_timeout.count() * 1000, 0);
    av_dict_set(&opts, "allowed_media_types", "video+audio", 0);
    av_dict_set_int(&opts, "probesize", 500'000, 0);
    av_dict_set_int(&opts, "analyzeduration", 1'000'000, 0);
    const int err = avformat_open_input(&raw, options_.url.c_str(), nullptr, &opts);
    av_dict_free(&opts);
    if (err < 0) {
      // On failure libav has freed the context.
      if (stopping_) return {StreamState::offline, "stopping"};
      const bool timed_out = deadline_hit_ || err == AVERROR(ETIMEDOUT);
      // The same states and words as our RTSP client's failures.
      const RtspFailure failure =
          err == AVERROR_HTTP_UNAUTHORIZED   ? RtspFailure::unauthorized
          : err == AVERROR_HTTP_FORBIDDEN    ? RtspFailure::forbidden
          : err == AVERROR_HTTP_NOT_FOUND    ? RtspFailure::not_found
          : err == AVERROR_HTTP_SERVER_ERROR ? RtspFailure::server_error
          : err == AVERROR(ECONNREFUSED)     ? RtspFailure::refused
          : timed_out || err == AVERROR(EHOSTUNREACH) || err == AVERROR(ENETUNREACH)
              ? RtspFailure::timeout
          : err == AVERROR_EOF || err == AVERROR(ECONNRESET) ? RtspFailure::closed
                                                             : RtspFailure::protocol;
      auto [state, error] = open_failure(failure, av_error_text(err), where, was_online,
                                         options_.connect_timeout.count());
      return {state, std::move(error)};
    }
    fmt.reset(raw);
  }

  // The RTSP handshake worked; from here on, silence means a stalled stream.
  deadline_hit_ = false;
  deadline_steady_us_ =
      clock_.steady_us() +
      std::max<std::int64_t>(options_.connect_timeout.count(), options_.min_stall_timeout.count()) *
          1000;
  if (const int err = avformat_find_stream_info(fmt.get(), nullptr); err < 0) {
    if (stopping_) return {StreamState::offline, "stopping"};
    if (deadline_hit_) {
      return {
          StreamState::error,
          "the camera at " + where + " accepted the connection but sent no video (stalled stream)"};
    }
    return {StreamState::error, "cannot read the stream's format: " + av_error_text(err)};
  }
  Input input;
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    const AVStream* st = fmt->streams[i];
    input.tracks.push_back({st->codecpar, st->time_base,
                            st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate});
  }
  input.video_index = av_find_best_stream(fmt.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  input.read = [&fmt](AVPacket* pkt) { return av_read_frame(fmt.get(), pkt); };
  return stream(input, where);
}

StreamSession::Outcome StreamSession::stream(Input& input, const std::string& where) {
  const int video_index = input.video_index;
  if (video_index < 0) {
    return {StreamState::error, "the camera's stream has no video track"};
  }
  const Input::Track& video = input.tracks[static_cast<std::size_t>(video_index)];

  // Parameters per elementary stream (video and, for recording, audio).
  std::vector<std::shared_ptr<const StreamParams>> params(input.tracks.size());
  static std::atomic<std::int64_t> generation{0};
  auto make_params = [&](unsigned i) {
    const Input::Track& st = input.tracks[i];
    auto p = std::make_shared<StreamParams>();
    p->camera_id = options_.camera_id;
    p->stream = options_.kind;
    p->index = static_cast<int>(i);
    p->codec = codec_of(st.par->codec_id);
    p->is_video = st.par->codec_type == AVMEDIA_TYPE_VIDEO;
    p->width = st.par->width;
    p->height = st.par->height;
    p->sample_rate = st.par->sample_rate;
    p->channels = st.par->ch_layout.nb_channels;
    p->extradata.assign(st.par->extradata, st.par->extradata + st.par->extradata_size);
    p->time_base_num = st.time_base.num;
    p->time_base_den = st.time_base.den;
    p->generation = ++generation;
    params[i] = std::move(p);
  };
  for (unsigned i = 0; i < input.tracks.size(); ++i) make_params(i);

  std::unique_ptr<AVCodecContext, CodecCloser> decoder;
  if (options_.decode) {
    const AVCodec* codec = avcodec_find_decoder(video.par->codec_id);
    if (codec == nullptr) {
      return {StreamState::error, std::string("no decoder for the camera's codec ") +
                                      avcodec_get_name(video.par->codec_id)};
    }
    decoder.reset(avcodec_alloc_context3(codec));
    avcodec_parameters_to_context(decoder.get(), video.par);
    set_up_for_analysis(decoder.get());
    decoder->pkt_timebase = video.time_base;
    if (avcodec_open2(decoder.get(), codec, nullptr) < 0) {
      return {StreamState::error, std::string("cannot open the decoder for ") + codec->name};
    }
  }
  {
    std::lock_guard lock(mutex_);
    stats_.codec = avcodec_get_name(video.par->codec_id);
    stats_.width = video.par->width;
    stats_.height = video.par->height;
  }

  // Stall timeout scales with the stream's frame interval: a 1 fps camera is not stalled
  // after a second of silence. The floor is the configured minimum.
  const AVRational rate = video.frame_rate;
  const double frame_interval_s = rate.num > 0 ? av_q2d(av_inv_q(rate)) : 0.2;
  const std::int64_t stall_us =
      std::max<std::int64_t>(options_.min_stall_timeout.count() * 1000,
                             static_cast<std::int64_t>(frame_interval_s * 10e6));
  {
    std::lock_guard lock(mutex_);
    stats_.stall_timeout_ms = stall_us / 1000;
    stats_.nominal_fps = rate.num > 0 && av_q2d(rate) <= 120 ? av_q2d(rate) : 0;
    last_arrival_steady_us_ = 0;
  }

  TimestampSmoother smoother;
  std::int64_t last_video_wall_us = 0;
  const auto frames = std::make_shared<LumaPool>();
  std::unique_ptr<AVPacket, PacketFree> pkt(av_packet_alloc());
  std::unique_ptr<AVFrame, FrameFree> frame(av_frame_alloc());
  const std::int64_t analysis_interval_us =
      static_cast<std::int64_t>(1e6 / std::max(0.1, options_.analysis_fps));
  AnalysisPacer pacer(analysis_interval_us);
  std::int64_t frame_seq = 0;
  // Decode health over the last 50 video packets: a corrupt stream is an error even while the
  // connection is fine.
  std::array<bool, 50> bad_window{};
  std::size_t window_pos = 0;
  std::size_t window_filled = 0;
  std::size_t bad_count = 0;
  bool streamed = false;
  bool corrupt = false;

  while (!stopping_) {
    deadline_hit_ = false;
    deadline_steady_us_ = clock_.steady_us() + stall_us;
    const int err = input.read(pkt.get());
    if (err < 0) {
      if (stopping_) break;
      if (deadline_hit_) {
        return {StreamState::error,
                "no packets for " + std::to_string(stall_us / 1000) +
                    " ms while the connection stayed open (stalled stream)",
                streamed};
      }
      if (err == AVERROR_EOF || err == AVERROR(ECONNRESET) || err == AVERROR(EPIPE)) {
        return {StreamState::offline, "the camera at " + where + " closed the stream", streamed};
      }
      if (err == AVERROR(ETIMEDOUT)) {
        return {StreamState::offline, "the camera at " + where + " stopped answering", streamed};
      }
      return {StreamState::offline, "reading from " + where + " failed: " + av_error_text(err),
              streamed};
    }
    // Both clocks at the same moment: their difference places the steady-clock smoothing on
    // server time below.
    const std::int64_t arrival_us = clock_.now_us() - input.age_us;
    const std::int64_t arrival_steady_us = clock_.steady_us() - input.age_us;
    const unsigned index = static_cast<unsigned>(pkt->stream_index);
    if (index >= params.size()) {
      av_packet_unref(pkt.get());
      continue;
    }
    const Input::Track& st = input.tracks[index];
    std::size_t extradata_size = 0;
    if (av_packet_get_side_data(pkt.get(), AV_PKT_DATA_NEW_EXTRADATA, &extradata_size) != nullptr) {
      make_params(index);  // the camera changed its parameter sets: tell the subscribers
    }
    const bool is_video = static_cast<int>(index) == video_index;
    std::int64_t wall_us = arrival_us;
    if (is_video) {
      const std::int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
      if (ts != AV_NOPTS_VALUE) {
        // Smoothed against the steady clock, so that only the camera's own timestamps make a
        // jump: a step of the system clock (or the server clock slowly absorbing one) is not
        // the link's fault. Server time is then the same instant on the server clock. While
        // that clock runs slow (absorbing a step back) a late packet could land a little before
        // the one before it: the order is kept. A large step back (the server clock following
        // a system clock that had been set days ahead) is taken as it is.
        const auto smoothed =
            smoother.update(av_rescale_q(ts, st.time_base, {1, 1'000'000}), arrival_steady_us);
        wall_us = smoothed.wall_us + (arrival_us - arrival_steady_us);
        if (wall_us <= last_video_wall_us && last_video_wall_us - wall_us < 1'000'000) {
          wall_us = last_video_wall_us + 1;
        }
        last_video_wall_us = wall_us;
        if (smoothed.reanchored && smoother.jumps() > 0 && smoothed.jump_us != 0) {
          spdlog::warn(
              "camera {} {}: media timestamps jumped by {} ms against the arrival clock;"
              " re-anchored",
              options_.camera_id, to_string(options_.kind), smoothed.jump_us / 1000);
        }
      }
      std::lock_guard lock(mutex_);
      if (last_arrival_steady_us_ != 0) {
        window_max_gap_us_ =
            std::max(window_max_gap_us_, arrival_steady_us - last_arrival_steady_us_);
      }
      last_arrival_steady_us_ = arrival_steady_us;
      ++stats_.packets_in;
      stats_.last_packet_us = arrival_us;
      stats_.timestamp_jumps = static_cast<std::uint64_t>(smoother.jumps());
      if (input.lost_packets) stats_.rtp_lost = input.lost_packets();
    }
    {
      std::lock_guard lock(mutex_);
      bytes_in_ += static_cast<std::uint64_t>(pkt->size);
    }

    bool packet_bad = false;
    if (is_video && decoder) {
      int rc = avcodec_send_packet(decoder.get(), pkt.get());
      if (rc < 0 && rc != AVERROR(EAGAIN)) packet_bad = true;
      while (rc >= 0 || rc == AVERROR(EAGAIN)) {
        rc = avcodec_receive_frame(decoder.get(), frame.get());
        if (rc < 0) break;
        if (frame->decode_error_flags != 0 || (frame->flags & AV_FRAME_FLAG_CORRUPT) != 0) {
          packet_bad = true;
        }
        ++frame_seq;
        {
          std::lock_guard lock(mutex_);
          ++stats_.frames_decoded;
        }
        // Frames beyond the analysis rate are dropped here, before any pixel is touched.
        const std::int64_t media_us =
            frame->best_effort_timestamp != AV_NOPTS_VALUE
                ? av_rescale_q(frame->best_effort_timestamp, video.time_base, {1, 1'000'000})
                : wall_us;
        const auto slot =
            options_.frame_sink != nullptr && frame->data[0] != nullptr
                ? pacer.take(media_us,
                             [&] { return options_.frame_sink->wants_sooner(options_.camera_id); })
                : AnalysisPacer::Slot::none;
        if (slot != AnalysisPacer::Slot::none) {
          auto luma = frames->take();  // same size as last time: no allocation, no zeroing
          luma->camera_id = options_.camera_id;
          luma->early = slot == AnalysisPacer::Slot::half;
          luma->wall_us = wall_us;
          luma->sequence = frame_seq;
          luma->width = frame->width;
          luma->height = frame->height;
          lend_luma(*frame, *luma);
          {
            std::lock_guard lock(mutex_);
            ++stats_.frames_to_analysis;
          }
          options_.frame_sink->on_frame(std::move(luma));
        }
        av_frame_unref(frame.get());
      }
      if (packet_bad) {
        std::lock_guard lock(mutex_);
        ++stats_.decode_errors;
      }
    }
    if (is_video) {
      if (window_filled == bad_window.size() && bad_window[window_pos]) --bad_count;
      bad_window[window_pos] = packet_bad;
      if (packet_bad) ++bad_count;
      window_pos = (window_pos + 1) % bad_window.size();
      window_filled = std::min(window_filled + 1, bad_window.size());
      if (!corrupt && bad_count >= 15) {
        corrupt = true;
        set_state(StreamState::error, "corrupt stream: " + std::to_string(bad_count) +
                                          " of the last " + std::to_string(window_filled) +
                                          " frames failed to decode");
      } else if (corrupt && bad_count <= 2) {
        corrupt = false;
        set_state(StreamState::online, "");
      } else if (!streamed && !corrupt && (!decoder || frame_seq > 0)) {
        set_state(StreamState::online, "");
      }
      if (!corrupt && (!decoder || frame_seq > 0)) streamed = true;
    }

    if (fanout_.has_subscribers()) {
      auto out = std::make_shared<EncodedPacket>();
      out->params = params[index];
      out->pts = pkt->pts;
      out->dts = pkt->dts;
      out->duration = pkt->duration;
      out->wall_us = wall_us;
      out->arrival_us = arrival_steady_us;
      out->keyframe = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
      out->damaged = (pkt->flags & AV_PKT_FLAG_CORRUPT) != 0;
      out->data.assign(pkt->data, pkt->data + pkt->size);
      fanout_.publish(std::move(out));
    }
    av_packet_unref(pkt.get());
    sample_rates(clock_.steady_us());
  }
  return {StreamState::offline, "stopping", streamed};
}

}  // namespace matthan::ingest
