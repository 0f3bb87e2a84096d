// bench/analytics: per-frame analysis cost (motion + events + tamper, everything the server runs
// per analysed frame, excluding decode) at analysis heights 180 and 360, over camsim frames with
// a person walking, against decoding the same 640x360 H.264 frame (the reference in this run).
//   build/release/bin/analytics_bench
// Target: <= 0.3 ms per frame at 320x180 on one core.
#include <benchmark/benchmark.h>

extern "C" {
#include <libavcodec/avcodec.h>
}

#include <filesystem>
#include <opencv2/imgproc.hpp>

#include "matthan/analytics/engine.hpp"
#include "matthan/camsim/encoded_loop.hpp"
#include "matthan/camsim/renderer.hpp"

namespace {

using namespace matthan;

struct Frames {
  std::vector<LumaFrame> luma;
  std::shared_ptr<const camsim::EncodedLoop> sub;
};

const Frames& frames() {
  static const Frames f = [] {
    Frames out;
    camsim::Scenario s;
    s.duration_s = 4;
    camsim::CameraSpec cam;
    cam.id = "bench";
    cam.main = {1280, 720, 4000};
    camsim::Actor p;
    p.kind = camsim::ActorKind::person;
    p.start_s = 0.5;
    p.duration_s = 3;
    cam.actors = {p};
    s.cameras = {cam};
    camsim::SceneRenderer r(s, s.cameras[0]);
    for (int n = 0; n < 100; ++n) {
      cv::Mat bgr = r.render(n), small, grey;
      cv::resize(bgr, small, {640, 360}, 0, 0, cv::INTER_AREA);
      cv::cvtColor(small, grey, cv::COLOR_BGR2GRAY);
      LumaFrame lf;
      lf.camera_id = "bench";
      lf.width = 640;
      lf.height = 360;
      lf.stride = 640;
      lf.wall_us = 1'000'000'000'000 + n * 40'000;
      lf.luma.assign(grey.data, grey.data + grey.total());
      out.luma.push_back(std::move(lf));
    }
    const auto dir = std::filesystem::temp_directory_path() / "matthan-bench-cache";
    out.sub = camsim::prepare_camera(s, s.cameras[0], dir.string())->sub;
    return out;
  }();
  return f;
}

struct NullSink : EventSink {
  void on_event(EventPhase, const Event&) override {}
};

void BM_Analysis(benchmark::State& state) {
  cv::setNumThreads(1);
  const auto& f = frames();
  NullSink sink;
  analytics::MotionSettings m;
  m.analysis_height = static_cast<int>(state.range(0));
  analytics::Engine engine({{"bench", "", "", {}, {}, {}}}, m, {}, {}, &sink, "",
                           analytics::Engine::People::off);
  std::size_t i = 0;
  std::int64_t t = 0;
  for (auto _ : state) {
    LumaFrame frame = f.luma[i % f.luma.size()];
    frame.wall_us += t;
    engine.analyze(frame);
    if (++i % f.luma.size() == 0) t += 4'000'000;
  }
  state.SetLabel("analysis " + std::to_string(state.range(0) * 16 / 9) + "x" +
                 std::to_string(state.range(0)));
}
BENCHMARK(BM_Analysis)->Arg(180)->Arg(360)->Unit(benchmark::kMillisecond);

void BM_DecodeReference(benchmark::State& state) {
  const auto& f = frames();
  const AVCodec* dec = avcodec_find_decoder(AV_CODEC_ID_H264);
  AVCodecContext* ctx = avcodec_alloc_context3(dec);
  ctx->thread_count = 1;
  avcodec_open2(ctx, dec, nullptr);
  AVPacket* pkt = av_packet_alloc();
  AVFrame* frame = av_frame_alloc();
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& unit = f.sub->units[i++ % f.sub->units.size()];
    pkt->data = const_cast<std::uint8_t*>(unit.data.data());
    pkt->size = static_cast<int>(unit.data.size());
    avcodec_send_packet(ctx, pkt);
    while (avcodec_receive_frame(ctx, frame) == 0) av_frame_unref(frame);
  }
  state.SetLabel("decode 640x360 H.264 (reference)");
  av_frame_free(&frame);
  av_packet_free(&pkt);
  avcodec_free_context(&ctx);
}
BENCHMARK(BM_DecodeReference)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
