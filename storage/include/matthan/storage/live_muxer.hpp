// Live view without re-encoding: a stream's packets remuxed into fragmented MP4 for the browser's
// Media Source Extensions — an init segment (ftyp + moov) and one fragment (moof + mdat) per
// frame, so a viewer is never more than a frame behind what the muxer was given.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>

#include "matthan/core/packet.hpp"

namespace matthan::storage {

struct LiveFragment {
  std::string bytes;      // moof + mdat
  bool keyframe = false;  // a viewer may start (or skip ahead to) here
  bool new_init = false;  // the init segment changed before this fragment (open or new params)
};

// Not thread-safe: one owner (the live hub's fan-out delivery thread).
class FragmentMuxer {
 public:
  FragmentMuxer();
  ~FragmentMuxer();
  FragmentMuxer(const FragmentMuxer&) = delete;
  FragmentMuxer& operator=(const FragmentMuxer&) = delete;

  // The packet's fragment; nullopt before the first keyframe (nothing to start from).
  std::expected<std::optional<LiveFragment>, std::string> push(const EncodedPacket& packet);
  void reset();  // closes the muxer: the next push must be a keyframe
  bool open() const;
  const std::shared_ptr<const std::string>& init() const { return init_; }
  // The MSE type, e.g. video/mp4; codecs="avc1.64001f"
  const std::string& mime() const { return mime_; }

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::shared_ptr<const std::string> init_;
  std::string mime_;
};

// "avc1.PPCCLL" from an init segment's avcC box ("hvc1.1.6.L93.B0" for H.265), "" if none.
std::string codec_string(const std::string& init_segment);

}  // namespace matthan::storage
