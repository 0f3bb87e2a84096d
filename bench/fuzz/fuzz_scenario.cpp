// libFuzzer target: the camera simulator's scenario files (tests and benchmarks write them by
// hand; a bad one must be refused with a message, never crash the simulator).
#include <cstdint>
#include <string>

#include "matthan/camsim/scenario.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto scenario =
      matthan::camsim::parse_scenario(std::string(reinterpret_cast<const char*>(data), size));
  if (scenario) {
    for (const auto& cam : scenario->cameras) (void)matthan::camsim::cache_key(*scenario, cam);
  }
  return 0;
}
