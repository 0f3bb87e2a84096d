#include "matthan/storage/live_muxer.hpp"

extern "C" {
#include <libavformat/avformat.h>
}

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "video_track.hpp"

namespace matthan::storage {

namespace {

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

}  // namespace

struct FragmentMuxer::State {
  AVFormatContext* fmt = nullptr;
  AVIOContext* io = nullptr;
  std::string pending;  // what the muxer wrote since the last take
  std::int64_t generation = -1;
  AVRational in_tb{1, 90000};
  std::int64_t first_dts = AV_NOPTS_VALUE;
  std::int64_t last_dts = AV_NOPTS_VALUE;
  std::int64_t frame_ticks = 3600;  // 25 fps until two frames tell
  std::size_t fragments = 0;

  static int write_cb(void* opaque, std::uint8_t* buf, int size) {
    static_cast<State*>(opaque)->pending.append(reinterpret_cast<const char*>(buf),
                                                static_cast<std::size_t>(size));
    return size;
  }
  ~State() {
    if (fmt != nullptr) avformat_free_context(fmt);
    if (io != nullptr) {
      av_freep(&io->buffer);
      avio_context_free(&io);
    }
  }
};

FragmentMuxer::FragmentMuxer(std::size_t renew_after) : renew_after_(renew_after) {}
FragmentMuxer::~FragmentMuxer() = default;

bool FragmentMuxer::open() const {
  return state_ != nullptr;
}

void FragmentMuxer::reset() {
  state_.reset();
}

std::string codec_string(const std::string& init) {
  char out[64] = {};
  if (const auto at = init.find("avcC"); at != std::string::npos && at + 8 <= init.size()) {
    const auto* b = reinterpret_cast<const unsigned char*>(init.data() + at + 4);
    std::snprintf(out, sizeof out, "avc1.%02x%02x%02x", b[1], b[2], b[3]);
    return out;
  }
  // hvcC (ISO/IEC 14496-15 8.3.3): version, profile space/tier/idc, 32 compatibility flags,
  // 48 constraint flags, level; written as Annex E of that standard says.
  if (const auto at = init.find("hvcC"); at != std::string::npos && at + 4 + 13 <= init.size()) {
    const auto* b = reinterpret_cast<const unsigned char*>(init.data() + at + 4);
    static constexpr const char* kSpace[] = {"", "A", "B", "C"};
    std::uint32_t compat = 0;
    for (int i = 0; i < 4; ++i) compat = compat << 8 | b[2 + i];
    std::uint32_t reversed = 0;  // flag 0 first: the bits in reverse order
    for (int i = 0; i < 32; ++i) reversed |= ((compat >> i) & 1u) << (31 - i);
    std::string s = "hvc1.";
    std::snprintf(out, sizeof out, "%s%d.%X.%c%d", kSpace[b[1] >> 6], b[1] & 0x1f, reversed,
                  (b[1] & 0x20) != 0 ? 'H' : 'L', b[12]);
    s += out;
    int last = 5;  // trailing zero constraint bytes are left out
    while (last >= 0 && b[6 + last] == 0) --last;
    for (int i = 0; i <= last; ++i) {
      std::snprintf(out, sizeof out, ".%02X", b[6 + i]);
      s += out;
    }
    return s;
  }
  return "";
}

std::expected<std::unique_ptr<FragmentMuxer::State>, std::string> FragmentMuxer::start(
    const StreamParams& p) {
  auto s = std::make_unique<State>();
  s->generation = p.generation;
  s->in_tb = {p.time_base_num, p.time_base_den};
  if (avformat_alloc_output_context2(&s->fmt, nullptr, "mp4", nullptr) < 0)
    return std::unexpected("no mp4 muxer");
  constexpr int kBuffer = 256 * 1024;
  auto* buffer = static_cast<unsigned char*>(av_malloc(kBuffer));
  s->io = avio_alloc_context(buffer, kBuffer, 1, s.get(), nullptr, &State::write_cb, nullptr);
  s->fmt->pb = s->io;
  s->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
  // Timestamps go in as they are (ours start at 0): a renewed muxer's first fragment carries
  // the time it continues from (frag_discont), not 0 again.
  s->fmt->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED;
  AVDictionary* opts = nullptr;
  // frag_custom: we cut a fragment after every frame (av_write_frame(fmt, nullptr)).
  av_dict_set(&opts, "movflags", "empty_moov+default_base_moof+frag_custom+frag_discont", 0);
  av_dict_set(&opts, "use_editlist", "0", 0);
  const int rc = add_video_track(s->fmt, p) == nullptr ? AVERROR(ENOMEM)
                                                       : avformat_write_header(s->fmt, &opts);
  av_dict_free(&opts);
  if (rc < 0) return std::unexpected("live view: cannot start the muxer: " + av_error(rc));
  avio_flush(s->io);
  return s;
}

std::expected<std::optional<LiveFragment>, std::string> FragmentMuxer::push(
    const EncodedPacket& packet) {
  if (!packet.params || !packet.params->is_video) return std::optional<LiveFragment>();
  const auto& p = *packet.params;
  if (state_ && state_->generation != p.generation) state_.reset();
  bool new_init = false;
  if (!state_) {
    if (!packet.keyframe) return std::optional<LiveFragment>();
    if (p.codec != Codec::h264 && p.codec != Codec::h265)
      return std::unexpected("live view: codec " + std::string(to_string(p.codec)));
    auto s = start(p);
    if (!s) return std::unexpected(s.error());
    init_ = std::make_shared<const std::string>(std::move((*s)->pending));
    (*s)->pending.clear();
    const auto codec = codec_string(*init_);
    mime_ = "video/mp4; codecs=\"" + (codec.empty() ? std::string("avc1.42e01e") : codec) + "\"";
    state_ = std::move(*s);
    new_init = true;
  } else if (packet.keyframe && state_->fragments >= renew_after_) {
    // FFmpeg's MP4 muxer keeps 40 bytes per fragment for an index it would write at the end
    // (3.6 MB an hour at 25 fps, for as long as someone watches): a fresh muxer at a keyframe
    // drops it. The timeline goes on; viewers see no new init unless its bytes differ.
    auto s = start(p);
    if (!s) {
      state_.reset();
      return std::unexpected(s.error());
    }
    (*s)->first_dts = state_->first_dts;
    (*s)->last_dts = state_->last_dts;
    (*s)->frame_ticks = state_->frame_ticks;
    if ((*s)->pending != *init_) {
      init_ = std::make_shared<const std::string>((*s)->pending);
      new_init = true;
    }
    (*s)->pending.clear();
    state_ = std::move(*s);
    ++renewals_;
  }
  auto& s = *state_;
  if (s.first_dts == AV_NOPTS_VALUE) s.first_dts = packet.dts == AV_NOPTS_VALUE ? 0 : packet.dts;
  AVPacket* pkt = av_packet_alloc();
  pkt->data = const_cast<std::uint8_t*>(packet.data.data());
  pkt->size = static_cast<int>(packet.data.size());
  const AVRational out_tb{1, 90000};
  pkt->dts = av_rescale_q(packet.dts - s.first_dts, s.in_tb, out_tb);
  pkt->pts = av_rescale_q(packet.pts - s.first_dts, s.in_tb, out_tb);
  // Repeated or backward timestamps (cameras, RTP at a start): one frame after the last.
  if (packet.dts == AV_NOPTS_VALUE || packet.pts == AV_NOPTS_VALUE ||
      (s.last_dts != AV_NOPTS_VALUE && pkt->dts <= s.last_dts)) {
    const std::int64_t fixed = s.last_dts == AV_NOPTS_VALUE ? 0 : s.last_dts + s.frame_ticks;
    pkt->pts = fixed + std::max<std::int64_t>(0, pkt->pts - pkt->dts);
    pkt->dts = fixed;
  } else if (s.last_dts != AV_NOPTS_VALUE) {
    s.frame_ticks = pkt->dts - s.last_dts;
  }
  if (pkt->pts < pkt->dts) pkt->pts = pkt->dts;
  // A fragment of one frame must say how long the frame lasts: its own duration, else the last
  // interval (the next frame's time is not known yet, and waiting for it is a frame of latency).
  pkt->duration =
      packet.duration > 0 ? av_rescale_q(packet.duration, s.in_tb, out_tb) : s.frame_ticks;
  pkt->flags = packet.keyframe ? AV_PKT_FLAG_KEY : 0;
  pkt->stream_index = 0;
  const std::int64_t dts_out = pkt->dts;
  int rc = av_write_frame(s.fmt, pkt);
  av_packet_free(&pkt);
  if (rc >= 0) rc = av_write_frame(s.fmt, nullptr);  // cut the fragment now
  if (rc < 0) {
    state_.reset();
    return std::unexpected("live view: muxing failed: " + av_error(rc));
  }
  avio_flush(s.io);
  s.last_dts = dts_out;
  LiveFragment out;
  out.bytes = std::move(s.pending);
  s.pending.clear();
  ++s.fragments;
  out.keyframe = packet.keyframe;
  out.new_init = new_init;
  return std::optional<LiveFragment>(std::move(out));
}

}  // namespace matthan::storage

extern "C" {
#include <libavcodec/avcodec.h>
#include <libswscale/swscale.h>
}

namespace matthan::storage {

struct JpegEncoder::State {
  ~State() {
    if (sws != nullptr) sws_freeContext(sws);
    if (frame != nullptr) av_frame_free(&frame);
    if (scaled != nullptr) av_frame_free(&scaled);
    if (pkt != nullptr) av_packet_free(&pkt);
    if (dec != nullptr) avcodec_free_context(&dec);
    if (enc != nullptr) avcodec_free_context(&enc);
  }
  AVCodecContext* dec = nullptr;
  AVCodecContext* enc = nullptr;
  SwsContext* sws = nullptr;
  AVFrame* frame = nullptr;
  AVFrame* scaled = nullptr;
  AVPacket* pkt = nullptr;
  std::int64_t generation = -1;
  std::int64_t last_wall_us = 0;  // of the last picture encoded
};

JpegEncoder::JpegEncoder(double max_fps, int max_width)
    : max_fps_(max_fps), max_width_(max_width) {}
JpegEncoder::~JpegEncoder() = default;

void JpegEncoder::reset() {
  state_.reset();
}

std::expected<std::optional<std::string>, std::string> JpegEncoder::push(
    const EncodedPacket& packet, bool due) {
  if (!packet.params || !packet.params->is_video) return std::optional<std::string>();
  const auto& p = *packet.params;
  if (state_ && state_->generation != p.generation) state_.reset();
  if (!state_) {
    if (!packet.keyframe) return std::optional<std::string>();
    auto s = std::make_unique<State>();
    s->generation = p.generation;
    const AVCodec* codec =
        avcodec_find_decoder(p.codec == Codec::h265 ? AV_CODEC_ID_HEVC : AV_CODEC_ID_H264);
    if (codec == nullptr) return std::unexpected("live view: no decoder");
    s->dec = avcodec_alloc_context3(codec);
    s->dec->thread_count = 1;  // one camera's pictures: a core is shared by many
    if (!p.extradata.empty()) {
      s->dec->extradata =
          static_cast<std::uint8_t*>(av_mallocz(p.extradata.size() + AV_INPUT_BUFFER_PADDING_SIZE));
      std::memcpy(s->dec->extradata, p.extradata.data(), p.extradata.size());
      s->dec->extradata_size = static_cast<int>(p.extradata.size());
    }
    if (const int rc = avcodec_open2(s->dec, codec, nullptr); rc < 0)
      return std::unexpected("live view: cannot open the decoder: " + av_error(rc));
    s->frame = av_frame_alloc();
    s->scaled = av_frame_alloc();
    s->pkt = av_packet_alloc();
    state_ = std::move(s);
  }
  auto& s = *state_;
  s.pkt->data = const_cast<std::uint8_t*>(packet.data.data());
  s.pkt->size = static_cast<int>(packet.data.size());
  s.pkt->pts = packet.pts;
  s.pkt->dts = packet.dts;
  s.pkt->flags = packet.keyframe ? AV_PKT_FLAG_KEY : 0;
  int rc = avcodec_send_packet(s.dec, s.pkt);
  s.pkt->data = nullptr;
  s.pkt->size = 0;
  if (rc < 0 && rc != AVERROR(EAGAIN)) return std::optional<std::string>();  // corrupt: skip
  std::optional<std::string> out;
  while ((rc = avcodec_receive_frame(s.dec, s.frame)) == 0) {
    const bool time = max_fps_ <= 0 || packet.wall_us - s.last_wall_us >= 1e6 / max_fps_;
    if (!due || !time) {
      av_frame_unref(s.frame);
      continue;
    }
    const int w = std::min(max_width_, s.frame->width) & ~1;
    const int h = (static_cast<int>(static_cast<std::int64_t>(s.frame->height) * w /
                                    std::max(1, s.frame->width))) &
                  ~1;
    if (s.enc == nullptr || s.enc->width != w || s.enc->height != h) {
      if (s.enc != nullptr) avcodec_free_context(&s.enc);
      const AVCodec* mjpeg = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
      if (mjpeg == nullptr) return std::unexpected("live view: no JPEG encoder");
      s.enc = avcodec_alloc_context3(mjpeg);
      s.enc->width = w;
      s.enc->height = h;
      s.enc->pix_fmt = AV_PIX_FMT_YUVJ420P;
      s.enc->time_base = {1, 25};
      s.enc->flags |= AV_CODEC_FLAG_QSCALE;
      s.enc->global_quality = FF_QP2LAMBDA * 6;  // visually fine at phone sizes, ~30-60 kB
      if (const int orc = avcodec_open2(s.enc, mjpeg, nullptr); orc < 0)
        return std::unexpected("live view: cannot open the JPEG encoder: " + av_error(orc));
      av_frame_unref(s.scaled);
      s.scaled->format = AV_PIX_FMT_YUVJ420P;
      s.scaled->width = w;
      s.scaled->height = h;
      if (av_frame_get_buffer(s.scaled, 0) < 0) return std::unexpected("out of memory");
    }
    s.sws = sws_getCachedContext(s.sws, s.frame->width, s.frame->height,
                                 static_cast<AVPixelFormat>(s.frame->format), w, h,
                                 AV_PIX_FMT_YUVJ420P, SWS_FAST_BILINEAR, nullptr, nullptr, nullptr);
    if (s.sws == nullptr) return std::unexpected("live view: cannot scale this picture format");
    av_frame_make_writable(s.scaled);
    sws_scale(s.sws, s.frame->data, s.frame->linesize, 0, s.frame->height, s.scaled->data,
              s.scaled->linesize);
    av_frame_unref(s.frame);
    s.scaled->quality = s.enc->global_quality;
    if (avcodec_send_frame(s.enc, s.scaled) < 0) continue;
    AVPacket* jp = av_packet_alloc();
    if (avcodec_receive_packet(s.enc, jp) == 0) {
      out =
          std::string(reinterpret_cast<const char*>(jp->data), static_cast<std::size_t>(jp->size));
      s.last_wall_us = packet.wall_us;
    }
    av_packet_free(&jp);
  }
  return out;
}

}  // namespace matthan::storage
