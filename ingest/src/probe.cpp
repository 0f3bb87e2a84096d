#include "matthan/ingest/probe.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

#include "matthan/core/clock.hpp"
#include "matthan/core/url.hpp"
#include "matthan/ingest/stream_session.hpp"

namespace matthan::ingest {
namespace {
struct Deadline {
  std::int64_t until_us;
  SystemClock clock;
};
int deadline_cb(void* opaque) {
  auto* d = static_cast<Deadline*>(opaque);
  return d->clock.steady_us() > d->until_us ? 1 : 0;
}
}  // namespace

std::expected<ProbeResult, std::string> probe_stream(const std::string& url,
                                                     std::chrono::milliseconds duration,
                                                     std::chrono::milliseconds timeout) {
  install_av_log_masking();
  ProbeResult result;
  result.url_masked = mask_credentials(url);
  Deadline deadline{0, {}};
  deadline.until_us = deadline.clock.steady_us() + (timeout + duration).count() * 1000;
  AVFormatContext* fmt = avformat_alloc_context();
  fmt->interrupt_callback = {deadline_cb, &deadline};
  AVDictionary* opts = nullptr;
  if (url.starts_with("rtsp")) av_dict_set(&opts, "rtsp_transport", "tcp", 0);
  av_dict_set_int(&opts, "timeout", timeout.count() * 1000, 0);
  int err = avformat_open_input(&fmt, url.c_str(), nullptr, &opts);
  av_dict_free(&opts);
  if (err < 0) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {};
    av_strerror(err, buf, sizeof buf);
    return std::unexpected(std::string("cannot open ") + result.url_masked + ": " + buf);
  }
  err = avformat_find_stream_info(fmt, nullptr);
  const int vi = err < 0 ? -1 : av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (vi < 0) {
    avformat_close_input(&fmt);
    return std::unexpected("no video stream in " + result.url_masked);
  }
  const AVStream* st = fmt->streams[vi];
  result.codec = avcodec_get_name(st->codecpar->codec_id);
  if (const char* prof = avcodec_profile_name(st->codecpar->codec_id, st->codecpar->profile)) {
    result.profile = prof;
  }
  result.width = st->codecpar->width;
  result.height = st->codecpar->height;
  const int ai = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
  if (ai >= 0) result.audio_codec = avcodec_get_name(fmt->streams[ai]->codecpar->codec_id);

  // Measure rather than trust the SDP: count frames, bytes and keyframe spacing.
  AVPacket* pkt = av_packet_alloc();
  std::int64_t first_pts = AV_NOPTS_VALUE;
  std::int64_t last_pts = AV_NOPTS_VALUE;
  std::int64_t bytes = 0;
  int keyframes = 0;
  int frames_at_first_key = -1;
  int frames_at_last_key = -1;
  const std::int64_t span = av_rescale_q(duration.count(), {1, 1000}, st->time_base);
  while (av_read_frame(fmt, pkt) >= 0) {
    if (pkt->stream_index == vi) {
      const std::int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
      if (first_pts == AV_NOPTS_VALUE) first_pts = ts;
      last_pts = ts;
      bytes += pkt->size;
      if (pkt->flags & AV_PKT_FLAG_KEY) {
        ++keyframes;
        if (frames_at_first_key < 0) frames_at_first_key = result.frames;
        frames_at_last_key = result.frames;
      }
      ++result.frames;
      if (ts != AV_NOPTS_VALUE && first_pts != AV_NOPTS_VALUE && ts - first_pts >= span) {
        av_packet_unref(pkt);
        break;
      }
    }
    av_packet_unref(pkt);
  }
  av_packet_free(&pkt);
  if (result.frames > 1 && last_pts != first_pts) {
    const double seconds = av_q2d(st->time_base) * static_cast<double>(last_pts - first_pts);
    result.fps = (result.frames - 1) / seconds;
    result.bitrate_bps = static_cast<double>(bytes) * 8.0 / seconds;
  }
  if (keyframes >= 2) {
    result.gop_frames =
        static_cast<double>(frames_at_last_key - frames_at_first_key) / (keyframes - 1);
    if (result.fps > 0) result.gop_seconds = result.gop_frames / result.fps;
  }
  avformat_close_input(&fmt);
  if (result.frames == 0)
    return std::unexpected("no video frames arrived from " + result.url_masked);
  return result;
}

}  // namespace matthan::ingest
