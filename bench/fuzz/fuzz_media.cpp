// libFuzzer target: broken media through the real demux and decode. The input is written as a
// file and read by the clip reader (libavformat probes it: fragmented MP4 as recorded, raw
// H.264/H.265 as cameras send it, MPEG-TS, ...; every frame decoded and handed to analysis as
// luma), then cut after its last whole fragment as start-up reconciliation does after a crash,
// and read again.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include <spdlog/spdlog.h>

#include "matthan/ingest/clip_reader.hpp"
#include "matthan/ingest/stream_session.hpp"
#include "matthan/storage/reconcile.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = [] {
    matthan::ingest::install_av_log_masking();  // libav's log into spdlog, which is off
    spdlog::set_level(spdlog::level::off);
    return "/tmp/matthan-fuzz-media-" + std::to_string(::getpid());
  }();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  if (size > 0) std::fwrite(data, 1, size, f);  // an empty input may come as a null pointer
  std::fclose(f);
  std::uint64_t luma = 0;
  auto on_frame = [&](const matthan::LumaFrame& frame) {
    if (frame.pixels() != nullptr && frame.height > 0) {
      luma += frame.pixels()[static_cast<std::size_t>(frame.height / 2) * frame.stride];
    }
  };
  (void)matthan::ingest::read_clip(path, "fuzz", 25, 0, on_frame);
  if (matthan::storage::cut_torn_fragment(path) > 0) {
    (void)matthan::ingest::read_clip(path, "fuzz", 25, 0, on_frame);
  }
  return 0;
}
