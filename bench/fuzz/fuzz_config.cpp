// libFuzzer target: the config parser (YAML, ${VAR} expansion, validation with file:line
// errors) and the inventory overlay the admin page writes. The input is the config, optionally
// followed by "\n---overlay---\n" and an overlay.
#include <cstdint>
#include <string>

#include "matthan/core/config.hpp"

namespace {
std::optional<std::string> env(const std::string& name) {
  if (name == "CAM_PASS") return "secret";
  return std::nullopt;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::string mark = "\n---overlay---\n";
  const auto at = input.find(mark);
  const std::string config = input.substr(0, at);
  const std::string overlay = at == std::string::npos ? "" : input.substr(at + mark.size());
  const auto loaded = matthan::load_config_text(config, "fuzz.yaml", env, overlay,
                                                overlay.empty() ? "" : "inventory.json");
  if (!loaded) {
    for (const auto& e : loaded.error()) (void)e.message.size();
  }
  return 0;
}
