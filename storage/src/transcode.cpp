#include "matthan/storage/transcode.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <chrono>
#include <ctime>
#include <filesystem>

namespace matthan::storage {

namespace {

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Every libav object of one transcode; freed on every path.
struct Job {
  ~Job() {
    if (sws != nullptr) sws_freeContext(sws);
    if (frame != nullptr) av_frame_free(&frame);
    if (scaled != nullptr) av_frame_free(&scaled);
    if (pkt != nullptr) av_packet_free(&pkt);
    if (dec != nullptr) avcodec_free_context(&dec);
    if (enc != nullptr) avcodec_free_context(&enc);
    if (in != nullptr) avformat_close_input(&in);
    if (out != nullptr) {
      if (out->pb != nullptr) avio_closep(&out->pb);
      avformat_free_context(out);
    }
  }
  AVFormatContext* in = nullptr;
  AVFormatContext* out = nullptr;
  AVCodecContext* dec = nullptr;
  AVCodecContext* enc = nullptr;
  SwsContext* sws = nullptr;
  AVFrame* frame = nullptr;
  AVFrame* scaled = nullptr;
  AVPacket* pkt = nullptr;
  int vidx = -1;
  std::int64_t frames = 0;
};

std::expected<void, std::string> drain(Job& j) {
  AVPacket* p = av_packet_alloc();
  int rc = 0;
  while ((rc = avcodec_receive_packet(j.enc, p)) == 0) {
    av_packet_rescale_ts(p, j.enc->time_base, j.out->streams[0]->time_base);
    p->stream_index = 0;
    rc = av_interleaved_write_frame(j.out, p);
    if (rc < 0) break;
  }
  av_packet_free(&p);
  if (rc < 0 && rc != AVERROR(EAGAIN) && rc != AVERROR_EOF)
    return std::unexpected("encoding: " + av_error(rc));
  return {};
}

std::expected<void, std::string> encode(Job& j, AVFrame* f) {
  if (f != nullptr) {
    AVFrame* src = f;
    if (j.sws != nullptr) {
      sws_scale(j.sws, f->data, f->linesize, 0, f->height, j.scaled->data, j.scaled->linesize);
      j.scaled->pts = f->pts;
      src = j.scaled;
    }
    src->pict_type = AV_PICTURE_TYPE_NONE;
    if (const int rc = avcodec_send_frame(j.enc, src); rc < 0)
      return std::unexpected("encoding: " + av_error(rc));
    ++j.frames;
  } else {
    avcodec_send_frame(j.enc, nullptr);
  }
  return drain(j);
}

}  // namespace

std::expected<TranscodeResult, std::string> transcode_to_h264(const std::string& in_path,
                                                              const std::string& out_path,
                                                              int max_height) {
  const double cpu0 = thread_cpu_s();
  const auto t0 = std::chrono::steady_clock::now();
  Job j;
  if (avformat_open_input(&j.in, in_path.c_str(), nullptr, nullptr) < 0 ||
      avformat_find_stream_info(j.in, nullptr) < 0)
    return std::unexpected("cannot read " + in_path);
  j.vidx = av_find_best_stream(j.in, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (j.vidx < 0) return std::unexpected("no video in " + in_path);
  const AVStream* vs = j.in->streams[j.vidx];
  const AVCodec* dcodec = avcodec_find_decoder(vs->codecpar->codec_id);
  const AVCodec* ecodec = avcodec_find_encoder_by_name("libx264");
  if (dcodec == nullptr || ecodec == nullptr) return std::unexpected("no decoder or no libx264");
  j.dec = avcodec_alloc_context3(dcodec);
  avcodec_parameters_to_context(j.dec, vs->codecpar);
  j.dec->thread_count = 1;  // the budget: one core at most, decode and encode together
  if (avcodec_open2(j.dec, dcodec, nullptr) < 0) return std::unexpected("cannot open the decoder");

  int w = vs->codecpar->width, h = vs->codecpar->height;
  if (h > max_height) {
    w = (w * max_height / h) & ~1;
    h = max_height;
  }
  j.enc = avcodec_alloc_context3(ecodec);
  j.enc->width = w;
  j.enc->height = h;
  j.enc->pix_fmt = AV_PIX_FMT_YUV420P;
  j.enc->time_base = vs->time_base;
  j.enc->thread_count = 1;
  j.enc->gop_size = 50;
  j.enc->max_b_frames = 0;  // no reordering: every frame's time is its decode time
  j.enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER | AV_CODEC_FLAG_BITEXACT;
  av_opt_set(j.enc->priv_data, "preset", "veryfast", 0);
  av_opt_set(j.enc->priv_data, "crf", "26", 0);
  if (const int rc = avcodec_open2(j.enc, ecodec, nullptr); rc < 0)
    return std::unexpected("cannot open libx264: " + av_error(rc));

  const std::string part = out_path + ".part";
  avformat_alloc_output_context2(&j.out, nullptr, "mp4", part.c_str());
  j.out->flags |= AVFMT_FLAG_BITEXACT;
  AVStream* os = avformat_new_stream(j.out, nullptr);
  avcodec_parameters_from_context(os->codecpar, j.enc);
  os->time_base = {1, 90000};
  if (avio_open(&j.out->pb, part.c_str(), AVIO_FLAG_WRITE) < 0)
    return std::unexpected("cannot create " + part);
  AVDictionary* opts = nullptr;
  av_dict_set(&opts, "movflags", "+faststart", 0);
  const int hrc = avformat_write_header(j.out, &opts);
  av_dict_free(&opts);
  if (hrc < 0) return std::unexpected("cannot start " + out_path + ": " + av_error(hrc));

  j.frame = av_frame_alloc();
  j.pkt = av_packet_alloc();
  std::expected<void, std::string> ok;
  auto receive = [&]() -> bool {
    int rc = 0;
    while ((rc = avcodec_receive_frame(j.dec, j.frame)) == 0) {
      if (j.sws == nullptr &&
          (j.frame->width != w || j.frame->height != h || j.frame->format != AV_PIX_FMT_YUV420P)) {
        j.sws = sws_getContext(j.frame->width, j.frame->height,
                               static_cast<AVPixelFormat>(j.frame->format), w, h,
                               AV_PIX_FMT_YUV420P, SWS_BILINEAR, nullptr, nullptr, nullptr);
        j.scaled = av_frame_alloc();
        j.scaled->format = AV_PIX_FMT_YUV420P;
        j.scaled->width = w;
        j.scaled->height = h;
        av_frame_get_buffer(j.scaled, 0);
      }
      j.frame->pts = j.frame->best_effort_timestamp;
      ok = encode(j, j.frame);
      av_frame_unref(j.frame);
      if (!ok) return false;
    }
    return true;
  };
  while (ok && av_read_frame(j.in, j.pkt) >= 0) {
    if (j.pkt->stream_index == j.vidx) {
      avcodec_send_packet(j.dec, j.pkt);  // a corrupt packet: the decoder conceals and goes on
      if (!receive()) break;
    }
    av_packet_unref(j.pkt);
  }
  if (ok) {
    avcodec_send_packet(j.dec, nullptr);
    receive();
  }
  if (ok) ok = encode(j, nullptr);
  if (ok) {
    if (const int rc = av_write_trailer(j.out); rc < 0) ok = std::unexpected(av_error(rc));
  }
  avio_closep(&j.out->pb);
  std::error_code ec;
  if (!ok || j.frames == 0) {
    std::filesystem::remove(part, ec);
    return std::unexpected(ok ? "nothing decodable in " + in_path : ok.error());
  }
  std::filesystem::rename(part, out_path, ec);
  if (ec) return std::unexpected("cannot write " + out_path + ": " + ec.message());
  return TranscodeResult{
      j.frames, thread_cpu_s() - cpu0,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
}

}  // namespace matthan::storage
