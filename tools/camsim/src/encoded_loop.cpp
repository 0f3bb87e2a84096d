#include "matthan/camsim/encoded_loop.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
}

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <opencv2/imgproc.hpp>

#include "matthan/camsim/frame_code.hpp"

namespace matthan::camsim {
namespace {

constexpr char kMagic[8] = {'M', 'T', 'C', 'S', 'L', 'O', 'O', '1'};

bool save_loop(const std::string& path, const EncodedLoop& loop) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) return false;
    out.write(kMagic, sizeof kMagic);
    const std::int32_t header[5] = {static_cast<std::int32_t>(loop.codec), loop.fps, loop.width,
                                    loop.height, static_cast<std::int32_t>(loop.units.size())};
    out.write(reinterpret_cast<const char*>(header), sizeof header);
    for (const auto& u : loop.units) {
      const std::uint32_t size = static_cast<std::uint32_t>(u.data.size());
      const std::uint8_t key = u.keyframe ? 1 : 0;
      out.write(reinterpret_cast<const char*>(&size), sizeof size);
      out.write(reinterpret_cast<const char*>(&key), 1);
      out.write(reinterpret_cast<const char*>(u.data.data()), size);
    }
    if (!out) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

std::shared_ptr<EncodedLoop> load_loop(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  char magic[8];
  in.read(magic, sizeof magic);
  if (!in || std::memcmp(magic, kMagic, sizeof magic) != 0) return nullptr;
  std::int32_t header[5];
  in.read(reinterpret_cast<char*>(header), sizeof header);
  if (!in || header[4] <= 0) return nullptr;
  auto loop = std::make_shared<EncodedLoop>();
  loop->codec = static_cast<SceneCodec>(header[0]);
  loop->fps = header[1];
  loop->width = header[2];
  loop->height = header[3];
  loop->units.resize(static_cast<std::size_t>(header[4]));
  for (auto& u : loop->units) {
    std::uint32_t size = 0;
    std::uint8_t key = 0;
    in.read(reinterpret_cast<char*>(&size), sizeof size);
    in.read(reinterpret_cast<char*>(&key), 1);
    if (!in || size > (64u << 20)) return nullptr;
    u.data.resize(size);
    in.read(reinterpret_cast<char*>(u.data.data()), size);
    u.keyframe = key != 0;
  }
  if (!in || loop->units.empty() || !loop->units.front().keyframe) return nullptr;
  return loop;
}

// One libx264/libx265 encoder. Not thread-safe; one per stream being encoded.
class Encoder {
 public:
  Encoder(SceneCodec codec, int width, int height, int fps, int gop, int kbps) {
    const AVCodec* c =
        avcodec_find_encoder_by_name(codec == SceneCodec::h265 ? "libx265" : "libx264");
    if (c == nullptr) {
      error_ = codec == SceneCodec::h265 ? "libx265 encoder missing" : "libx264 encoder missing";
      return;
    }
    ctx_ = avcodec_alloc_context3(c);
    ctx_->width = width;
    ctx_->height = height;
    ctx_->time_base = {1, fps};
    ctx_->framerate = {fps, 1};
    ctx_->pix_fmt = AV_PIX_FMT_YUV420P;
    ctx_->gop_size = gop;
    ctx_->max_b_frames = 0;  // like cameras: no B-frames
    ctx_->bit_rate = static_cast<std::int64_t>(kbps) * 1000;
    ctx_->rc_max_rate = ctx_->bit_rate * 3 / 2;
    ctx_->rc_buffer_size = static_cast<int>(ctx_->bit_rate);
    ctx_->thread_count = 1;  // deterministic output; cameras are encoded in parallel instead
    AVDictionary* opts = nullptr;
    av_dict_set(&opts, "preset", "ultrafast", 0);
    const std::string k = std::to_string(gop);
    if (codec == SceneCodec::h265) {
      av_dict_set(&opts, "x265-params",
                  ("keyint=" + k + ":min-keyint=" + k +
                   ":scenecut=0:repeat-headers=1:bframes=0:log-level=error")
                      .c_str(),
                  0);
    } else {
      av_dict_set(&opts, "x264-params",
                  ("keyint=" + k + ":min-keyint=" + k + ":scenecut=0").c_str(), 0);
    }
    if (avcodec_open2(ctx_, c, &opts) < 0) error_ = "cannot open the encoder";
    av_dict_free(&opts);
    frame_ = av_frame_alloc();
    frame_->format = AV_PIX_FMT_YUV420P;
    frame_->width = width;
    frame_->height = height;
    av_frame_get_buffer(frame_, 0);
    pkt_ = av_packet_alloc();
  }
  ~Encoder() {
    av_packet_free(&pkt_);
    av_frame_free(&frame_);
    avcodec_free_context(&ctx_);
  }
  const std::string& error() const { return error_; }

  // bgr at the encoder's size, with the frame code already burned in.
  void encode(const cv::Mat& bgr, std::int64_t pts, std::vector<AccessUnit>& out) {
    cv::Mat i420;
    cv::cvtColor(bgr, i420, cv::COLOR_BGR2YUV_I420);
    av_frame_make_writable(frame_);
    const int w = ctx_->width, h = ctx_->height;
    const std::uint8_t* src = i420.data;
    for (int y = 0; y < h; ++y)
      std::memcpy(frame_->data[0] + y * frame_->linesize[0], src + y * w, w);
    src += static_cast<std::ptrdiff_t>(w) * h;
    for (int p = 1; p <= 2; ++p) {
      for (int y = 0; y < h / 2; ++y) {
        std::memcpy(frame_->data[p] + y * frame_->linesize[p], src + y * (w / 2), w / 2);
      }
      src += static_cast<std::ptrdiff_t>(w / 2) * (h / 2);
    }
    frame_->pts = pts;
    // Keyframes exactly every GOP, so the loop can restart at frame 0 seamlessly.
    frame_->pict_type = pts % ctx_->gop_size == 0 ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
    send(frame_, out);
  }
  void finish(std::vector<AccessUnit>& out) { send(nullptr, out); }

 private:
  void send(AVFrame* f, std::vector<AccessUnit>& out) {
    if (avcodec_send_frame(ctx_, f) < 0) return;
    while (avcodec_receive_packet(ctx_, pkt_) >= 0) {
      out.push_back({std::vector<std::uint8_t>(pkt_->data, pkt_->data + pkt_->size),
                     (pkt_->flags & AV_PKT_FLAG_KEY) != 0});
      av_packet_unref(pkt_);
    }
  }
  AVCodecContext* ctx_ = nullptr;
  AVFrame* frame_ = nullptr;
  AVPacket* pkt_ = nullptr;
  std::string error_;
};

// Whole GOPs only, so a loop ends just before a keyframe.
int loop_frames(const Scenario& scenario) {
  const int gop = scenario.gop_frames;
  const int frames = static_cast<int>(scenario.duration_s * scenario.fps);
  return ((frames + gop - 1) / gop) * gop;
}

}  // namespace

std::expected<CameraLoops, std::string> prepare_camera(const Scenario& scenario,
                                                       const CameraSpec& camera,
                                                       const std::string& cache_dir) {
  CameraLoops loops;
  if (!camera.file.empty()) {
    auto file = load_video_file(camera.file);
    if (!file) return std::unexpected(file.error());
    loops.main = *file;
    loops.sub = *file;
    return loops;
  }
  SceneRenderer renderer(scenario, camera);
  loops.truth = renderer.truth();
  const std::string key = cache_key(scenario, camera);
  const std::string main_path = cache_dir + "/" + key + ".main.loop";
  const std::string sub_path = cache_dir + "/" + key + ".sub.loop";
  auto main = load_loop(main_path);
  auto sub = load_loop(sub_path);
  if (main && sub) {
    loops.main = main;
    loops.sub = sub;
    return loops;
  }
  const int gop = scenario.gop_frames;
  const int frames = loop_frames(scenario);
  Encoder main_enc(camera.codec, camera.main.width, camera.main.height, scenario.fps, gop,
                   camera.main.bitrate_kbps);
  Encoder sub_enc(camera.sub_codec.value_or(camera.codec), camera.sub.width, camera.sub.height,
                  scenario.fps, gop, camera.sub.bitrate_kbps);
  if (!main_enc.error().empty()) return std::unexpected(main_enc.error());
  if (!sub_enc.error().empty()) return std::unexpected(sub_enc.error());
  auto m = std::make_shared<EncodedLoop>();
  auto s = std::make_shared<EncodedLoop>();
  m->codec = camera.codec;
  s->codec = camera.sub_codec.value_or(camera.codec);
  m->fps = s->fps = scenario.fps;
  m->width = camera.main.width;
  m->height = camera.main.height;
  s->width = camera.sub.width;
  s->height = camera.sub.height;
  cv::Mat small;
  double render_s = 0, encode_s = 0;
  auto now_s = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  for (int n = 0; n < frames; ++n) {
    const double t0 = now_s();
    cv::Mat img = renderer.render(n);
    cv::resize(img, small, {camera.sub.width, camera.sub.height}, 0, 0, cv::INTER_AREA);
    burn_frame_code(img.data, static_cast<int>(img.step), 3, img.cols, img.rows,
                    static_cast<std::uint32_t>(n));
    burn_frame_code(small.data, static_cast<int>(small.step), 3, small.cols, small.rows,
                    static_cast<std::uint32_t>(n));
    const double t1 = now_s();
    main_enc.encode(img, n, m->units);
    sub_enc.encode(small, n, s->units);
    render_s += t1 - t0;
    encode_s += now_s() - t1;
  }
  std::fprintf(stderr, "camsim: camera %s: %d frames rendered in %.1f s, encoded in %.1f s\n",
               camera.id.c_str(), frames, render_s, encode_s);
  main_enc.finish(m->units);
  sub_enc.finish(s->units);
  if (m->units.size() != static_cast<std::size_t>(frames) ||
      s->units.size() != static_cast<std::size_t>(frames) || !m->units.front().keyframe ||
      !s->units.front().keyframe) {
    return std::unexpected("encoder produced " + std::to_string(m->units.size()) + "/" +
                           std::to_string(s->units.size()) + " units for " +
                           std::to_string(frames) + " frames of camera " + camera.id);
  }
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  if (!ec) {
    save_loop(main_path, *m);
    save_loop(sub_path, *s);
  }
  loops.main = m;
  loops.sub = s;
  return loops;
}

std::expected<std::shared_ptr<const EncodedLoop>, std::string> load_video_file(
    const std::string& path) {
  AVFormatContext* fmt = nullptr;
  if (avformat_open_input(&fmt, path.c_str(), nullptr, nullptr) < 0) {
    return std::unexpected("cannot open video file " + path);
  }
  if (avformat_find_stream_info(fmt, nullptr) < 0) {
    avformat_close_input(&fmt);
    return std::unexpected("cannot read " + path);
  }
  const int vi = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (vi < 0) {
    avformat_close_input(&fmt);
    return std::unexpected(path + " has no video");
  }
  AVStream* st = fmt->streams[vi];
  auto loop = std::make_shared<EncodedLoop>();
  const auto id = st->codecpar->codec_id;
  if (id != AV_CODEC_ID_H264 && id != AV_CODEC_ID_HEVC) {
    avformat_close_input(&fmt);
    return std::unexpected(path + ": only H.264 and H.265 files can be served as a camera");
  }
  loop->codec = id == AV_CODEC_ID_HEVC ? SceneCodec::h265 : SceneCodec::h264;
  loop->width = st->codecpar->width;
  loop->height = st->codecpar->height;
  const AVRational r = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
  loop->fps = r.num > 0 ? std::max(1, static_cast<int>(av_q2d(r) + 0.5)) : 25;
  const AVBitStreamFilter* filter =
      av_bsf_get_by_name(id == AV_CODEC_ID_HEVC ? "hevc_mp4toannexb" : "h264_mp4toannexb");
  AVBSFContext* bsf = nullptr;
  av_bsf_alloc(filter, &bsf);
  avcodec_parameters_copy(bsf->par_in, st->codecpar);
  bsf->time_base_in = st->time_base;
  av_bsf_init(bsf);
  AVPacket* pkt = av_packet_alloc();
  while (av_read_frame(fmt, pkt) >= 0) {
    if (pkt->stream_index == vi && av_bsf_send_packet(bsf, pkt) >= 0) {
      while (av_bsf_receive_packet(bsf, pkt) >= 0) {
        const bool key = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
        if (!loop->units.empty() || key) {
          loop->units.push_back({std::vector<std::uint8_t>(pkt->data, pkt->data + pkt->size), key});
        }
        av_packet_unref(pkt);
      }
    }
    av_packet_unref(pkt);
  }
  av_packet_free(&pkt);
  av_bsf_free(&bsf);
  avformat_close_input(&fmt);
  if (loop->units.empty()) return std::unexpected(path + ": no keyframe found");
  return std::shared_ptr<const EncodedLoop>(loop);
}

}  // namespace matthan::camsim

namespace matthan::camsim {

std::expected<CameraLoops, std::string> prepare_sub_stream(const Scenario& scenario,
                                                           const CameraSpec& camera,
                                                           const std::string& cache_dir) {
  CameraSpec small = camera;
  small.main = camera.sub;  // the renderer draws at the main size: make that the sub's
  CameraLoops loops;
  SceneRenderer renderer(scenario, small);
  loops.truth = renderer.truth();
  const std::string path = cache_dir + "/" + cache_key(scenario, small) + ".subonly.loop";
  if (auto cached = load_loop(path)) {
    loops.sub = cached;
    return loops;
  }
  const int gop = scenario.gop_frames;
  const int frames = loop_frames(scenario);
  Encoder enc(camera.codec, small.main.width, small.main.height, scenario.fps, gop,
              camera.sub.bitrate_kbps);
  if (!enc.error().empty()) return std::unexpected(enc.error());
  auto s = std::make_shared<EncodedLoop>();
  s->codec = camera.codec;
  s->fps = scenario.fps;
  s->width = small.main.width;
  s->height = small.main.height;
  for (int n = 0; n < frames; ++n) {
    cv::Mat img = renderer.render(n);
    burn_frame_code(img.data, static_cast<int>(img.step), 3, img.cols, img.rows,
                    static_cast<std::uint32_t>(n));
    enc.encode(img, n, s->units);
  }
  enc.finish(s->units);
  if (s->units.size() != static_cast<std::size_t>(frames) || !s->units.front().keyframe) {
    return std::unexpected("encoder produced " + std::to_string(s->units.size()) + " units for " +
                           std::to_string(frames) + " frames of camera " + camera.id);
  }
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  if (!ec) save_loop(path, *s);
  loops.sub = s;
  return loops;
}

}  // namespace matthan::camsim
