#include "matthan/ingest/clip_reader.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

#include <cstring>
#include <memory>

#include "analysis_decoder.hpp"
#include "analysis_pacer.hpp"

namespace matthan::ingest {

std::expected<ClipInfo, std::string> read_clip(
    const std::string& path, const std::string& camera_id, double analysis_fps,
    std::int64_t base_us, const std::function<void(const LumaFrame&)>& on_frame, Decode decode,
    const std::function<bool()>& sooner) {
  AVFormatContext* raw = nullptr;
  if (avformat_open_input(&raw, path.c_str(), nullptr, nullptr) < 0) {
    return std::unexpected("cannot open clip " + path);
  }
  std::unique_ptr<AVFormatContext, void (*)(AVFormatContext*)> fmt(
      raw, [](AVFormatContext* f) { avformat_close_input(&f); });
  if (avformat_find_stream_info(fmt.get(), nullptr) < 0)
    return std::unexpected("cannot read clip " + path);
  const int vi = av_find_best_stream(fmt.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (vi < 0) return std::unexpected(path + " has no video");
  AVStream* st = fmt->streams[vi];
  const AVCodec* codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (codec == nullptr) return std::unexpected(path + ": no decoder for its codec");
  std::unique_ptr<AVCodecContext, void (*)(AVCodecContext*)> dec(
      avcodec_alloc_context3(codec), [](AVCodecContext* c) { avcodec_free_context(&c); });
  avcodec_parameters_to_context(dec.get(), st->codecpar);
  dec->thread_count = 1;
  if (decode == Decode::analysis) set_up_for_analysis(dec.get());
  if (avcodec_open2(dec.get(), codec, nullptr) < 0)
    return std::unexpected(path + ": cannot open the decoder");
  AVPacket* pkt = av_packet_alloc();
  AVFrame* frame = av_frame_alloc();
  ClipInfo info;
  const bool every = analysis_fps <= 0;
  const std::int64_t interval_us = static_cast<std::int64_t>(1e6 / std::max(0.1, analysis_fps));
  std::int64_t first_pts = AV_NOPTS_VALUE;
  AnalysisPacer pacer(interval_us);
  std::int64_t last_us = 0;
  // Raw elementary streams (.h264/.hevc) carry no timestamps: count frames at the nominal rate.
  AVRational rate = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
  if (rate.num <= 0 || rate.den <= 0) rate = {25, 1};
  auto drain = [&] {
    while (avcodec_receive_frame(dec.get(), frame) == 0) {
      ++info.frames_decoded;
      const std::int64_t pts = frame->best_effort_timestamp;
      if (first_pts == AV_NOPTS_VALUE) first_pts = pts;
      const std::int64_t t_us =
          pts == AV_NOPTS_VALUE
              ? av_rescale_q(info.frames_decoded - 1, av_inv_q(rate), {1, 1'000'000})
              : av_rescale_q(pts - first_pts, st->time_base, {1, 1'000'000});
      last_us = t_us;
      const auto slot = frame->data[0] == nullptr ? AnalysisPacer::Slot::none
                        : every                   ? AnalysisPacer::Slot::full
                                : pacer.take(t_us, [&] { return sooner && sooner(); });
      if (slot != AnalysisPacer::Slot::none) {
        LumaFrame f;
        f.camera_id = camera_id;
        f.early = slot == AnalysisPacer::Slot::half;
        f.wall_us = base_us + t_us;
        f.sequence = info.frames_decoded;
        f.width = frame->width;
        f.height = frame->height;
        f.stride = frame->width;
        f.luma.resize(static_cast<std::size_t>(frame->width) * frame->height);
        for (int y = 0; y < frame->height; ++y) {
          std::memcpy(f.luma.data() + static_cast<std::size_t>(y) * frame->width,
                      frame->data[0] + static_cast<std::ptrdiff_t>(y) * frame->linesize[0],
                      static_cast<std::size_t>(frame->width));
        }
        ++info.frames_analysed;
        if (f.early) ++info.frames_sooner;
        on_frame(f);
      }
      av_frame_unref(frame);
    }
  };
  while (av_read_frame(fmt.get(), pkt) >= 0) {
    if (pkt->stream_index == vi && avcodec_send_packet(dec.get(), pkt) >= 0) drain();
    av_packet_unref(pkt);
  }
  avcodec_send_packet(dec.get(), nullptr);
  drain();
  av_packet_free(&pkt);
  av_frame_free(&frame);
  info.duration_s = static_cast<double>(last_us) / 1e6;
  if (info.frames_decoded == 0) return std::unexpected(path + ": no frame could be decoded");
  return info;
}

}  // namespace matthan::ingest
