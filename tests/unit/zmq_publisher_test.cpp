// The event schema as a subscriber sees it: a real ZeroMQ SUB socket on loopback.
#include "matthan/analytics/zmq_publisher.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>
#include <zmq.hpp>

namespace matthan::analytics {
namespace {

TEST(ZmqPublisher, SubscriberGetsTopicsSchemaAndGaplessSequence) {
  zmq::context_t ctx(1);
  auto pub = ZmqPublisher::bind("tcp://127.0.0.1:*", "node-z");
  ASSERT_TRUE(pub.has_value()) << pub.error();
  const std::string endpoint = (*pub)->endpoint();
  ASSERT_TRUE(endpoint.starts_with("tcp://127.0.0.1:")) << endpoint;
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "");
  sub.set(zmq::sockopt::rcvtimeo, 3000);
  sub.connect(endpoint);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // slow joiner

  Event e;
  e.id = "01JAAAAAAAAAAAAAAAAAAAAAAA";
  e.camera_id = "cong-ap-1";
  e.commune = "xa-an-binh";
  e.type = "motion";
  e.start_us = 1'767'225'600'000'000;
  (*pub)->on_event(EventPhase::start, e);
  (*pub)->on_status({"cong-ap-1", "xa-an-binh", "ap-1", "offline", "closed", e.start_us + 5});
  e.end_us = e.start_us + 4'000'000;
  (*pub)->on_event(EventPhase::end, e);

  std::vector<std::pair<std::string, nlohmann::json>> got;
  for (int i = 0; i < 3; ++i) {
    zmq::message_t topic, body;
    ASSERT_TRUE(sub.recv(topic).has_value());
    ASSERT_TRUE(topic.more());
    ASSERT_TRUE(sub.recv(body).has_value());
    got.emplace_back(topic.to_string(), nlohmann::json::parse(body.to_string()));
  }
  EXPECT_EQ(got[0].first, "event.xa-an-binh.cong-ap-1.motion");
  EXPECT_EQ(got[1].first, "status.xa-an-binh.cong-ap-1");
  EXPECT_EQ(got[2].first, "event.xa-an-binh.cong-ap-1.motion");
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].second["schema"], kEventSchemaVersion);
    EXPECT_EQ(got[i].second["seq"], i + 1);
    EXPECT_EQ(got[i].second["node_id"], "node-z");
  }
  EXPECT_EQ(got[0].second["phase"], "start");
  EXPECT_EQ(got[0].second["event"]["id"], e.id);
  EXPECT_EQ(got[0].second["event"]["start"], "2026-01-01T00:00:00.000000Z");
  EXPECT_TRUE(got[0].second["event"]["end"].is_null());
  EXPECT_EQ(got[1].second["state"], "offline");
  EXPECT_EQ(got[2].second["phase"], "end");
  EXPECT_EQ(got[2].second["event"]["end_us"], e.start_us + 4'000'000);
}

TEST(ZmqPublisher, BadEndpointIsAClearError) {
  auto pub = ZmqPublisher::bind("tcp://256.1.1.1:1", "n");
  ASSERT_FALSE(pub.has_value());
  EXPECT_NE(pub.error().find("cannot bind the ZeroMQ event socket to tcp://256.1.1.1:1"),
            std::string::npos);
}

}  // namespace
}  // namespace matthan::analytics
