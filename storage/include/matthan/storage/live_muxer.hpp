// Live view without re-encoding: a stream's packets remuxed into fragmented MP4 for the browser's
// Media Source Extensions — an init segment (ftyp + moov) and one fragment (moof + mdat) per
// frame, so a viewer is never more than a frame behind what the muxer was given.
#pragma once

#include <cstddef>
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
  // renew_after: fragments after which the muxer is started afresh at the next keyframe
  // (FFmpeg's muxer grows an index by every fragment); 4500 is 3 minutes at 25 fps.
  explicit FragmentMuxer(std::size_t renew_after = 4500);
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
  std::size_t renewals() const { return renewals_; }  // fresh muxers on the same stream

 private:
  struct State;
  static std::expected<std::unique_ptr<State>, std::string> start(const StreamParams& p);
  std::unique_ptr<State> state_;
  std::size_t renew_after_;
  std::size_t renewals_ = 0;
  std::shared_ptr<const std::string> init_;
  std::string mime_;
};

// The RFC 6381 codec of an init segment: "avc1.PPCCLL" from its avcC box, "hvc1.1.6.L93.B0"
// and the like from its hvcC box; "" if it has neither.
std::string codec_string(const std::string& init_segment);

}  // namespace matthan::storage

namespace matthan::storage {

// The live view's fallback for what the browser cannot play in Media Source Extensions (H.265
// in Debian's Chromium, browsers without MSE): the stream decoded and re-encoded as JPEG
// pictures, at most max_fps, at most max_width wide. One per camera stream, running only while
// someone watches this way. Not thread-safe: one owner (the live hub's fan-out thread).
class JpegEncoder {
 public:
  JpegEncoder(double max_fps, int max_width);
  ~JpegEncoder();
  JpegEncoder(const JpegEncoder&) = delete;
  JpegEncoder& operator=(const JpegEncoder&) = delete;
  // Decodes the packet; a JPEG when a picture is due (nullopt otherwise or before a keyframe).
  // `due` false: decode only (catching up through a GOP without encoding every picture).
  std::expected<std::optional<std::string>, std::string> push(const EncodedPacket& packet,
                                                              bool due = true);
  void reset();

 private:
  struct State;
  std::unique_ptr<State> state_;
  double max_fps_;
  int max_width_;
};

}  // namespace matthan::storage
