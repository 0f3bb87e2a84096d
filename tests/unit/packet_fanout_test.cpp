#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "matthan/core/packet.hpp"

namespace matthan {
namespace {

EncodedPacketPtr packet(int n, bool key) {
  auto p = std::make_shared<EncodedPacket>();
  p->pts = n;
  p->keyframe = key;
  p->data.assign(100, static_cast<std::uint8_t>(n));
  return p;
}

TEST(PacketFanout, EverySubscriberGetsEveryPacketInOrder) {
  PacketFanout fanout;
  std::mutex m;
  std::vector<std::int64_t> a, b;
  fanout.subscribe("recorder", DropPolicy::never, 0, 1 << 20, [&](const EncodedPacketPtr& p) {
    std::lock_guard l(m);
    a.push_back(p->pts);
  });
  fanout.subscribe("live", DropPolicy::oldest, 1000, 0, [&](const EncodedPacketPtr& p) {
    std::lock_guard l(m);
    b.push_back(p->pts);
  });
  for (int i = 0; i < 200; ++i) fanout.publish(packet(i, i % 50 == 0));
  fanout.stop();  // drains
  ASSERT_EQ(a.size(), 200u);
  ASSERT_EQ(b.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(a[i], i);
}

TEST(PacketFanout, SlowLiveViewerSkipsToNextKeyframeWhileRecorderKeepsAll) {
  PacketFanout fanout;
  std::atomic<bool> release{false};
  std::mutex m;
  std::vector<std::int64_t> live;
  std::atomic<int> recorded{0};
  fanout.subscribe("recorder", DropPolicy::never, 0, 1 << 20,
                   [&](const EncodedPacketPtr&) { ++recorded; });
  fanout.subscribe("live", DropPolicy::until_keyframe, 10, 0, [&](const EncodedPacketPtr& p) {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard l(m);
    live.push_back(p->pts);
  });
  for (int i = 0; i < 100; ++i) fanout.publish(packet(i, i % 25 == 0));
  const auto stats = fanout.stats();
  release = true;
  fanout.stop();
  EXPECT_EQ(recorded.load(), 100);
  EXPECT_GT(stats[1].dropped, 50u);
  // After a skip the viewer resumes on a keyframe: every gap in its sequence ends at one.
  for (std::size_t i = 1; i < live.size(); ++i) {
    if (live[i] != live[i - 1] + 1) {
      EXPECT_EQ(live[i] % 25, 0) << live[i];
    }
  }
}

TEST(PacketFanout, NeverQueueOverItsLimitRaisesTheAlarmButKeepsPackets) {
  PacketFanout fanout;
  std::atomic<bool> release{false};
  std::atomic<int> got{0};
  fanout.subscribe("recorder", DropPolicy::never, 0, 1000, [&](const EncodedPacketPtr&) {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ++got;
  });
  for (int i = 0; i < 50; ++i) fanout.publish(packet(i, false));
  EXPECT_TRUE(fanout.stats()[0].over_limit);
  EXPECT_EQ(fanout.stats()[0].dropped, 0u);
  release = true;
  fanout.stop();
  EXPECT_EQ(got.load(), 50);
}

}  // namespace
}  // namespace matthan
