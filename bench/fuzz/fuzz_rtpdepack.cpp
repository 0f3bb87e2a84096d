// libFuzzer target: our RTSP client's depacketiser alone, thousands of times faster than
// fuzz_rtp (which sets up a connection per input). The input is a codec byte (even: H.264,
// odd: H.265) and then RTP packets, each as a 16-bit big-endian length and the packet. Every
// picture that comes out goes through the checks a reader of it relies on.
extern "C" {
#include <libavutil/log.h>
}

#include <cstdint>
#include <cstdlib>

#include "rtsp_client.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  av_log_set_level(AV_LOG_QUIET);  // libavcodec's parser complains about every broken SPS
  matthan::ingest::RtspClient client("rtsp://127.0.0.1/fuzz", [] { return false; });
  client.set_track_for_test((data[0] & 1) != 0, 96);
  std::size_t at = 1;
  matthan::ingest::AccessUnit unit;
  while (at + 2 <= size) {
    const std::size_t len = (std::size_t{data[at]} << 8) | data[at + 1];
    at += 2;
    if (len > size - at) break;
    client.feed_rtp_for_test(data + at, len);
    at += len;
    while (client.next_unit_for_test(unit)) {
      // A picture is Annex B: it starts with a start code, and carries parameter sets only
      // when they changed.
      if (unit.data.size() < 5 || unit.data[0] != 0 || unit.data[1] != 0 || unit.data[2] != 0 ||
          unit.data[3] != 1) {
        std::abort();
      }
      if (!unit.new_extradata && !unit.extradata.empty()) std::abort();
    }
  }
  return 0;
}
