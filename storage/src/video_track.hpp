// The one video track of our MP4 output (recorded segments and live fragments), from a stream's
// parameters: the packets are copied in as they came, so the track says what they are.
#pragma once

extern "C" {
#include <libavformat/avformat.h>
}

#include <cstring>

#include "matthan/core/packet.hpp"

namespace matthan::storage {

inline AVStream* add_video_track(AVFormatContext* fmt, const StreamParams& p) {
  AVStream* st = avformat_new_stream(fmt, nullptr);
  if (st == nullptr) return nullptr;
  st->time_base = {1, 90000};
  st->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
  st->codecpar->codec_id = p.codec == Codec::h264 ? AV_CODEC_ID_H264 : AV_CODEC_ID_HEVC;
  st->codecpar->width = p.width;
  st->codecpar->height = p.height;
  if (!p.extradata.empty()) {
    st->codecpar->extradata =
        static_cast<std::uint8_t*>(av_mallocz(p.extradata.size() + AV_INPUT_BUFFER_PADDING_SIZE));
    std::memcpy(st->codecpar->extradata, p.extradata.data(), p.extradata.size());
    st->codecpar->extradata_size = static_cast<int>(p.extradata.size());
  }
  // hvc1 (parameter sets in the sample entry): what Apple's players and Chrome accept.
  if (p.codec == Codec::h265) st->codecpar->codec_tag = MKTAG('h', 'v', 'c', '1');
  return st;
}

}  // namespace matthan::storage
