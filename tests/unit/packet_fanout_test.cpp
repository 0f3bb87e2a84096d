#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "matthan/core/packet.hpp"

namespace matthan {
namespace {

using namespace std::chrono_literals;

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

// The context switches a subscriber's delivery thread has made (it sleeps once per wake-up).
long switches(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return std::stol(line.substr(24));
  }
  return -1;
}

// A batched subscriber (the recorder, a live view nobody watches) gets every packet in order
// but is woken about once per batch, not once per packet; stop() does not wait out a batch.
TEST(PacketFanout, ABatchedSubscriberGetsEveryPacketWithFewWakeUps) {
  PacketFanout fanout;
  std::mutex bm, em;  // one each: a contended lock is a context switch too
  std::vector<std::int64_t> batched, eager;
  std::atomic<pid_t> batched_tid{0}, eager_tid{0};
  std::atomic<std::chrono::microseconds> gather{std::chrono::milliseconds(100)};
  fanout.subscribe(
      "recorder", DropPolicy::never, 0, 1 << 20,
      [&](const EncodedPacketPtr& p) {
        batched_tid = gettid();
        std::lock_guard l(bm);
        batched.push_back(p->pts);
      },
      [&] { return gather.load(); });
  fanout.subscribe("live", DropPolicy::until_keyframe, 250, 0, [&](const EncodedPacketPtr& p) {
    eager_tid = gettid();
    std::lock_guard l(em);
    eager.push_back(p->pts);
  });
  fanout.publish(packet(0, true));
  while (batched_tid == 0 || eager_tid == 0) std::this_thread::sleep_for(1ms);
  const long batched0 = switches(batched_tid), eager0 = switches(eager_tid);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 1; i <= 120; ++i) {  // a packet every 5 ms for 0.6 s
    std::this_thread::sleep_for(5ms);
    fanout.publish(packet(i, i % 50 == 0));
  }
  for (;;) {
    std::this_thread::sleep_for(10ms);
    std::scoped_lock l(bm, em);
    if (batched.size() == 121 && eager.size() == 121) break;
  }
  const auto took_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  const long batched_wakes = switches(batched_tid) - batched0;
  const long eager_wakes = switches(eager_tid) - eager0;
  ASSERT_GE(batched0, 0);
  std::printf("wake-ups for 120 packets: batched %ld, eager %ld\n", batched_wakes, eager_wakes);
  // 0.6 s (longer on a busy machine) in batches of 0.1 s: about one wake-up a batch; eager: ~120.
  EXPECT_LE(batched_wakes, took_ms / 100 * 3 / 2 + 5)
      << "eager " << eager_wakes << ", " << took_ms << " ms";
  EXPECT_GE(eager_wakes, 2 * batched_wakes);
  for (int i = 0; i <= 120; ++i) EXPECT_EQ(batched[static_cast<std::size_t>(i)], i);

  gather = std::chrono::seconds(30);
  fanout.publish(packet(121, false));  // handled, then the next batch gathers for 30 s...
  std::this_thread::sleep_for(100ms);
  fanout.publish(packet(122, false));
  const auto stop_t0 = std::chrono::steady_clock::now();
  fanout.stop();  // ...but a stop ends it, and what gathered is still delivered
  EXPECT_LT(std::chrono::steady_clock::now() - stop_t0, 10s);
  ASSERT_EQ(batched.size(), 123u);
  EXPECT_EQ(batched.back(), 122);
}

}  // namespace
}  // namespace matthan
