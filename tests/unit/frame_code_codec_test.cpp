// The frame index strip survives the simulator's real encoding (512 kbit/s sub stream, 2 s GOP):
// decode the cached loop with libavcodec and read every frame's index back from the luma plane.
#include <gtest/gtest.h>

extern "C" {
#include <libavcodec/avcodec.h>
}

#include <filesystem>

#include "child_process.hpp"
#include "matthan/camsim/encoded_loop.hpp"
#include "matthan/camsim/frame_code.hpp"

namespace matthan::camsim {
namespace {

void expect_indices_survive(SceneCodec codec) {
  Scenario s;
  s.duration_s = 2;
  CameraSpec cam;
  cam.id = codec == SceneCodec::h265 ? "codeh265" : "codeh264";
  cam.codec = codec;
  cam.main = {640, 360, 1000};
  cam.sub = {640, 360, 512};
  Actor walker;
  walker.kind = ActorKind::person;
  walker.start_s = 0;
  walker.duration_s = 2;
  cam.actors = {walker};
  s.cameras = {cam};
  const auto dir = test::temp_dir("matthan-code");
  auto loops = prepare_camera(s, s.cameras[0], dir);
  ASSERT_TRUE(loops.has_value()) << loops.error();
  const auto& loop = *loops->sub;
  ASSERT_EQ(loop.units.size(), 50u);
  EXPECT_TRUE(loop.units[0].keyframe);

  const AVCodec* dec =
      avcodec_find_decoder(codec == SceneCodec::h265 ? AV_CODEC_ID_HEVC : AV_CODEC_ID_H264);
  AVCodecContext* ctx = avcodec_alloc_context3(dec);
  ctx->thread_count = 1;
  ASSERT_EQ(avcodec_open2(ctx, dec, nullptr), 0);
  AVPacket* pkt = av_packet_alloc();
  AVFrame* frame = av_frame_alloc();
  std::vector<std::uint32_t> got;
  auto drain = [&] {
    while (avcodec_receive_frame(ctx, frame) == 0) {
      const auto index =
          read_frame_code(frame->data[0], frame->linesize[0], frame->width, frame->height);
      got.push_back(index.value_or(0xFFFFFFFF));
      av_frame_unref(frame);
    }
  };
  for (const auto& unit : loop.units) {
    pkt->data = const_cast<std::uint8_t*>(unit.data.data());
    pkt->size = static_cast<int>(unit.data.size());
    ASSERT_EQ(avcodec_send_packet(ctx, pkt), 0);
    drain();
  }
  avcodec_send_packet(ctx, nullptr);
  drain();
  ASSERT_EQ(got.size(), 50u);
  for (std::uint32_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], i);
  av_frame_free(&frame);
  av_packet_free(&pkt);
  avcodec_free_context(&ctx);
  std::filesystem::remove_all(dir);
}

TEST(FrameCodeThroughCodec, H264SubStream) {
  expect_indices_survive(SceneCodec::h264);
}
TEST(FrameCodeThroughCodec, H265SubStream) {
  expect_indices_survive(SceneCodec::h265);
}

}  // namespace
}  // namespace matthan::camsim
