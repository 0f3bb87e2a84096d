// The HTTP server's worker threads: a handler that blocks must not stall the io thread that
// carries every other connection (live video, pushes).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <future>
#include <thread>

#include "child_process.hpp"
#include "matthan/web/http_server.hpp"

namespace {

using namespace std::chrono_literals;
using matthan::web::HttpRequest;
using matthan::web::HttpResponse;

// One io thread; /slow waits until /fast has been answered. Run inline on that thread, /slow
// would hold it and /fast would never be read: both time out.
TEST(HttpServer, ASlowHandlerDoesNotHoldTheIoThread) {
  boost::asio::io_context io;
  std::promise<void> fast_done;
  auto fast_seen = fast_done.get_future().share();
  matthan::web::HttpServer server(
      io,
      [&](const HttpRequest& req) -> HttpResponse {
        if (req.path == "/slow") {
          if (fast_seen.wait_for(10s) != std::future_status::ready)
            return {504, "text/plain", "fast never came"};
          return {200, "text/plain", "slow"};
        }
        fast_done.set_value();
        return {200, "text/plain", "fast"};
      },
      {}, 2);
  auto port = server.start("127.0.0.1", 0);
  ASSERT_TRUE(port.has_value()) << port.error();
  auto guard = boost::asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });

  auto slow =
      std::async(std::launch::async, [&] { return matthan::test::http_get(*port, "/slow", 15s); });
  std::this_thread::sleep_for(200ms);  // /slow is in its handler (either way the test holds)
  const auto fast = matthan::test::http_get(*port, "/fast", 15s);
  const auto slow_result = slow.get();
  EXPECT_EQ(fast.status, 200);
  EXPECT_EQ(fast.body, "fast");
  EXPECT_EQ(slow_result.status, 200) << slow_result.body;
  EXPECT_EQ(slow_result.body, "slow");

  server.stop();
  guard.reset();
  io.stop();
  io_thread.join();
}

// A handler that throws answers 500 with the JSON error, and the connection keeps serving.
TEST(HttpServer, AThrowingHandlerAnswers500) {
  boost::asio::io_context io;
  matthan::web::HttpServer server(
      io,
      [](const HttpRequest& req) -> HttpResponse {
        if (req.path == "/throw") throw std::runtime_error("boom");
        return {200, "text/plain", "ok"};
      },
      {}, 1);
  auto port = server.start("127.0.0.1", 0);
  ASSERT_TRUE(port.has_value()) << port.error();
  auto guard = boost::asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });
  const auto bad = matthan::test::http_get(*port, "/throw");
  EXPECT_EQ(bad.status, 500);
  EXPECT_NE(bad.body.find("\"internal\""), std::string::npos) << bad.body;
  EXPECT_EQ(matthan::test::http_get(*port, "/ok").status, 200);
  server.stop();
  guard.reset();
  io.stop();
  io_thread.join();
}

}  // namespace
