#include "matthan/core/logging.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <vector>

#include "matthan/core/url.hpp"

namespace matthan {
namespace {

// Wraps a sink and masks credentials in the formatted message before it is written.
class MaskingSink final : public spdlog::sinks::sink {
 public:
  explicit MaskingSink(std::shared_ptr<spdlog::sinks::sink> inner) : inner_(std::move(inner)) {}
  void log(const spdlog::details::log_msg& msg) override {
    const std::string masked =
        mask_credentials(std::string_view(msg.payload.data(), msg.payload.size()));
    spdlog::details::log_msg copy = msg;
    copy.payload = masked;
    inner_->log(copy);
  }
  void flush() override { inner_->flush(); }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    inner_->set_formatter(std::move(formatter));
  }

 private:
  std::shared_ptr<spdlog::sinks::sink> inner_;
};

}  // namespace

void init_logging(const std::string& level, const std::string& file) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(
      std::make_shared<MaskingSink>(std::make_shared<spdlog::sinks::stderr_color_sink_mt>()));
  if (!file.empty()) {
    sinks.push_back(std::make_shared<MaskingSink>(
        std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, /*truncate=*/false)));
  }
  auto logger = std::make_shared<spdlog::logger>("matthan", sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::from_str(level));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace matthan
