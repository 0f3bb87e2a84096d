// The process runtime: one io_context run by a small thread pool. Timers, the web server and
// supervision live here; blocking work (demux, decode, SQLite writes) never does.
#pragma once

#include <memory>
#include <thread>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace matthan {

// start() and stop() are called from the main thread only.
class Runtime {
 public:
  explicit Runtime(unsigned threads);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  boost::asio::io_context& io();
  void start();
  void stop();  // stops the io_context and joins the pool

 private:
  unsigned threads_;
  std::unique_ptr<boost::asio::io_context> io_;
  std::vector<std::thread> pool_;
};

}  // namespace matthan
