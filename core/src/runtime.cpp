#include "matthan/core/runtime.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace matthan {

namespace {
using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
}

Runtime::Runtime(unsigned threads)
    : threads_(threads == 0 ? 1 : threads),
      io_(std::make_unique<boost::asio::io_context>(static_cast<int>(threads_))) {}

Runtime::~Runtime() {
  stop();
}

boost::asio::io_context& Runtime::io() {
  return *io_;
}

void Runtime::start() {
  auto guard = std::make_shared<WorkGuard>(io_->get_executor());
  for (unsigned i = 0; i < threads_; ++i) {
    pool_.emplace_back([this, guard] { io_->run(); });
  }
}

void Runtime::stop() {
  io_->stop();
  for (auto& t : pool_) {
    if (t.joinable()) t.join();
  }
  pool_.clear();
}

}  // namespace matthan
