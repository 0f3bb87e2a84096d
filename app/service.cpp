#include "service.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>

namespace matthan::app {

struct ServiceNotifier::Impl : std::enable_shared_from_this<ServiceNotifier::Impl> {
  explicit Impl(boost::asio::io_context& io) : timer(io) {}
  void ping() {
    timer.expires_after(interval);
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
      if (e || self->stopped.load()) return;
      sd_notify(0, "WATCHDOG=1");
      self->ping();
    });
  }
  boost::asio::steady_timer timer;
  std::chrono::microseconds interval{0};
  std::atomic<bool> stopped{false};  // stopping() sent; any thread
};

ServiceNotifier::ServiceNotifier(boost::asio::io_context& io) : impl_(std::make_shared<Impl>(io)) {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    impl_->interval = std::chrono::microseconds(usec / 2);
    spdlog::info("systemd watchdog: pinging every {} ms", usec / 2000);
  }
}

ServiceNotifier::~ServiceNotifier() {
  stopping();
}

bool ServiceNotifier::watchdog_enabled() const {
  return impl_->interval.count() > 0;
}

void ServiceNotifier::ready(const std::string& status) {
  sd_notify(0, ("READY=1\nSTATUS=" + status).c_str());
  if (watchdog_enabled()) {
    sd_notify(0, "WATCHDOG=1");
    impl_->ping();
  }
}

void ServiceNotifier::stopping() {
  if (impl_->stopped.exchange(true)) return;
  sd_notify(0, "STOPPING=1");
  boost::asio::post(impl_->timer.get_executor(), [impl = impl_] { impl->timer.cancel(); });
}

void ServiceNotifier::restarting() {
  if (impl_->stopped.exchange(true)) return;
  sd_notify(0, "RELOADING=1\nSTATUS=restarting to apply saved settings");
  boost::asio::post(impl_->timer.get_executor(), [impl = impl_] { impl->timer.cancel(); });
}

}  // namespace matthan::app
