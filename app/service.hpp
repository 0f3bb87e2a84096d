// Running under systemd (deploy/matthan.service, Type=notify): READY=1 once the server listens,
// WATCHDOG=1 from the io threads at half the unit's WatchdogSec (a wedged pool stops the pings and
// systemd restarts the server), STOPPING=1 on the way out, RELOADING=1 before a restart in
// place. Without NOTIFY_SOCKET it does nothing.
#pragma once

#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace matthan::app {

// Thread-safe: sd_notify may be called from any thread; the watchdog timer lives on the
// io_context (its strand is the timer's own handler chain).
class ServiceNotifier {
 public:
  explicit ServiceNotifier(boost::asio::io_context& io);
  ~ServiceNotifier();
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  void ready(const std::string& status);
  void stopping();
  // A restart in place (SIGHUP, the admin page): RELOADING=1 now, READY=1 from the new image.
  void restarting();
  bool watchdog_enabled() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace matthan::app
