#include "matthan/storage/clip.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

#include <sqlite3.h>

#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>

#include "matthan/storage/segment_index.hpp"

namespace matthan::storage {

namespace {

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

struct SegRow {
  std::string path, state;
  std::int64_t start_us = 0, end_us = 0, frames = 0, damaged = 0;
};

std::vector<SegRow> covering_segments(Database& db, const ClipRequest& r) {
  return db.read([&](sqlite3* conn) {
    std::vector<SegRow> out;
    sqlite3_stmt* st = nullptr;
    // Open rows (the segment being written) count: their complete fragments are readable.
    sqlite3_prepare_v2(
        conn,
        "SELECT path, state, start_us, end_us, frames, damaged_frames FROM segment WHERE"
        " node_id = ?1 AND"
        " camera_id = ?2 AND stream = ?3 AND state != 'unreadable' AND"
        " start_us < ?5 AND (end_us > ?4 OR state = 'open') ORDER BY start_us",
        -1, &st, nullptr);
    sqlite3_bind_text(st, 1, r.node_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, r.camera_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, r.stream.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, r.from_us);
    sqlite3_bind_int64(st, 5, r.to_us);
    while (sqlite3_step(st) == SQLITE_ROW) {
      out.push_back({reinterpret_cast<const char*>(sqlite3_column_text(st, 0)),
                     reinterpret_cast<const char*>(sqlite3_column_text(st, 1)),
                     sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
                     sqlite3_column_int64(st, 4), sqlite3_column_int64(st, 5)});
    }
    sqlite3_finalize(st);
    return out;
  });
}

// A minimal ASS header: FFmpeg's mov_text encoder takes its style from it.
constexpr const char* kAssHeader =
    "[Script Info]\r\nScriptType: v4.00+\r\nPlayResX: 384\r\nPlayResY: 288\r\n\r\n"
    "[V4+ Styles]\r\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, "
    "OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, "
    "Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\r\n"
    "Style: Default,Sans,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0"
    "\r\n\r\n[Events]\r\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, "
    "Effect, Text\r\n";

// "2026-11-29 22:15:03 +0700": the server's local time of a second, with its offset.
std::string server_time_text(std::int64_t second) {
  const std::time_t t = static_cast<std::time_t>(second);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[48];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %z", &tm);
  return buf;
}

bool same_params(const AVCodecParameters* a, const AVCodecParameters* b) {
  return a->codec_id == b->codec_id && a->width == b->width && a->height == b->height &&
         a->extradata_size == b->extradata_size &&
         (a->extradata_size == 0 || std::memcmp(a->extradata, b->extradata,
                                                static_cast<std::size_t>(a->extradata_size)) == 0);
}

// The output file and its streams; owns every libav object.
class ClipMuxer {
 public:
  ~ClipMuxer() {
    if (sub_enc_ != nullptr) avcodec_free_context(&sub_enc_);
    if (fmt_ != nullptr) {
      if (fmt_->pb != nullptr) avio_closep(&fmt_->pb);
      avformat_free_context(fmt_);
    }
    if (params_ != nullptr) avcodec_parameters_free(&params_);
  }

  // moov_reserve > 0: faststart by reserving that much room for the moov at the front (one
  // pass); 0: faststart by moving the moov after writing (a second pass over the file).
  std::expected<void, std::string> open(const std::string& path, const AVCodecParameters* video,
                                        bool time_track, bool faststart,
                                        std::int64_t moov_reserve) {
    if (avformat_alloc_output_context2(&fmt_, nullptr, "mp4", path.c_str()) < 0)
      return std::unexpected("no mp4 muxer");
    fmt_->flags |= AVFMT_FLAG_BITEXACT;  // no encoder string or creation time: same bytes
    AVStream* vs = avformat_new_stream(fmt_, nullptr);
    avcodec_parameters_copy(vs->codecpar, video);
    vs->codecpar->codec_tag = video->codec_id == AV_CODEC_ID_HEVC ? MKTAG('h', 'v', 'c', '1') : 0;
    vs->time_base = {1, 90000};
    params_ = avcodec_parameters_alloc();
    avcodec_parameters_copy(params_, video);
    if (time_track) {
      const AVCodec* enc = avcodec_find_encoder(AV_CODEC_ID_MOV_TEXT);
      if (enc == nullptr) return std::unexpected("no mov_text encoder");
      sub_enc_ = avcodec_alloc_context3(enc);
      sub_enc_->time_base = {1, 1000};
      sub_enc_->flags |= AV_CODEC_FLAG_BITEXACT;
      const std::size_t n = std::strlen(kAssHeader);
      sub_enc_->subtitle_header = static_cast<std::uint8_t*>(av_mallocz(n + 1));
      std::memcpy(sub_enc_->subtitle_header, kAssHeader, n);
      sub_enc_->subtitle_header_size = static_cast<int>(n);
      if (const int rc = avcodec_open2(sub_enc_, enc, nullptr); rc < 0)
        return std::unexpected("cannot open the mov_text encoder: " + av_error(rc));
      AVStream* ss = avformat_new_stream(fmt_, nullptr);
      avcodec_parameters_from_context(ss->codecpar, sub_enc_);
      ss->time_base = {1, 1000};
      av_dict_set(&ss->metadata, "language", "vie", 0);
      av_dict_set(&ss->metadata, "handler_name", "Server time", 0);
    }
    if (const int rc = avio_open(&fmt_->pb, path.c_str(), AVIO_FLAG_WRITE); rc < 0)
      return std::unexpected("cannot create " + path + ": " + av_error(rc));
    AVDictionary* opts = nullptr;
    if (faststart && moov_reserve > 0) {
      av_dict_set_int(&opts, "moov_size", moov_reserve, 0);
    } else if (faststart) {
      av_dict_set(&opts, "movflags", "+faststart", 0);
    }
    const int rc = avformat_write_header(fmt_, &opts);
    av_dict_free(&opts);
    if (rc < 0) return std::unexpected("cannot start " + path + ": " + av_error(rc));
    return {};
  }

  const AVCodecParameters* params() const { return params_; }

  // A video packet at server time wall_us (clip time 0 = the first packet's).
  std::expected<void, std::string> video(AVPacket* pkt, AVRational in_tb, std::int64_t wall_us) {
    if (origin_us_ < 0) origin_us_ = wall_us;
    const AVRational out_tb = fmt_->streams[0]->time_base;
    std::int64_t dts = av_rescale_q(wall_us - origin_us_, {1, 1'000'000}, out_tb);
    if (last_dts_ != AV_NOPTS_VALUE && dts <= last_dts_) dts = last_dts_ + 1;
    const std::int64_t delay = pkt->pts != AV_NOPTS_VALUE && pkt->dts != AV_NOPTS_VALUE
                                   ? std::max<std::int64_t>(0, pkt->pts - pkt->dts)
                                   : 0;
    pkt->dts = dts;
    pkt->pts = dts + av_rescale_q(delay, in_tb, out_tb);
    pkt->duration = pkt->duration > 0 ? av_rescale_q(pkt->duration, in_tb, out_tb) : 0;
    pkt->stream_index = 0;
    pkt->pos = -1;
    last_dts_ = dts;
    if (sub_enc_ != nullptr) {
      const std::int64_t second = wall_us / 1'000'000;
      if (second != last_second_) {
        last_second_ = second;
        if (auto cue = time_cue(wall_us, (second + 1) * 1'000'000 - wall_us); !cue) return cue;
      }
    }
    if (const int rc = av_interleaved_write_frame(fmt_, pkt); rc < 0)
      return std::unexpected("writing the clip: " + av_error(rc));
    return {};
  }

  std::expected<void, std::string> finish() {
    if (const int rc = av_write_trailer(fmt_); rc < 0)
      return std::unexpected("finishing the clip: " + av_error(rc));
    avio_closep(&fmt_->pb);
    return {};
  }

 private:
  std::expected<void, std::string> time_cue(std::int64_t wall_us, std::int64_t duration_us) {
    const std::string dialog = "0,0,Default,,0,0,0,," + server_time_text(wall_us / 1'000'000);
    AVSubtitleRect rect{};
    rect.type = SUBTITLE_ASS;
    rect.ass = const_cast<char*>(dialog.c_str());
    AVSubtitleRect* rects[1] = {&rect};
    AVSubtitle sub{};
    sub.num_rects = 1;
    sub.rects = rects;
    sub.end_display_time = static_cast<std::uint32_t>(duration_us / 1000);
    std::uint8_t buf[512];
    const int n = avcodec_encode_subtitle(sub_enc_, buf, sizeof buf, &sub);
    if (n < 0) return std::unexpected("encoding the time track: " + av_error(n));
    AVPacket* pkt = av_packet_alloc();
    av_new_packet(pkt, n);
    std::memcpy(pkt->data, buf, static_cast<std::size_t>(n));
    pkt->stream_index = 1;
    // Never backwards (the muxer refuses it), whatever the index says.
    last_cue_ms_ = std::max(last_cue_ms_ + 1, (wall_us - origin_us_) / 1000);
    pkt->pts = pkt->dts = last_cue_ms_;
    pkt->duration = duration_us / 1000;
    const int rc = av_interleaved_write_frame(fmt_, pkt);
    av_packet_free(&pkt);
    if (rc < 0) return std::unexpected("writing the time track: " + av_error(rc));
    return {};
  }

  AVFormatContext* fmt_ = nullptr;
  AVCodecContext* sub_enc_ = nullptr;
  AVCodecParameters* params_ = nullptr;
  std::int64_t origin_us_ = -1;
  std::int64_t last_dts_ = AV_NOPTS_VALUE;
  std::int64_t last_second_ = -1;
  std::int64_t last_cue_ms_ = -1;
};

struct InputFile {
  ~InputFile() {
    if (fmt != nullptr) avformat_close_input(&fmt);
  }
  AVFormatContext* fmt = nullptr;
};

}  // namespace

namespace {

// The room a moov needs: per video sample its size, duration and chunk offsets; per second a
// time cue. Generous: too small fails at the trailer and the clip is redone the slow way.
std::int64_t moov_estimate(const std::vector<SegRow>& segs, const ClipRequest& r) {
  std::int64_t frames = 0;
  for (const auto& s : segs) {
    frames += s.state == "open" || s.frames == 0 ? (r.to_us - s.start_us) / 16'000  // up to 60 fps
                                                 : s.frames;
  }
  const std::int64_t seconds = (r.to_us - r.from_us) / 1'000'000 + 1;
  return 64 * 1024 + frames * 24 + seconds * 48;
}

std::expected<ClipResult, std::string> write_clip_once(const std::vector<SegRow>& segs,
                                                       const ClipRequest& request,
                                                       const std::string& out_path,
                                                       const ClipProgress& progress,
                                                       std::int64_t moov_reserve);

}  // namespace

std::expected<ClipResult, std::string> write_clip(Database& db, const ClipRequest& request,
                                                  const std::string& out_path,
                                                  const ClipProgress& progress) {
  if (request.to_us <= request.from_us) return std::unexpected("the range is empty");
  const auto segs = covering_segments(db, request);
  if (segs.empty()) {
    return std::unexpected("no recording of camera " + request.camera_id + " (" + request.stream +
                           ") in the requested range");
  }
  auto done = write_clip_once(segs, request, out_path, progress, moov_estimate(segs, request));
  if (!done && done.error().find("moov") != std::string::npos) {
    done = write_clip_once(segs, request, out_path, progress, 0);  // the estimate was short
  }
  return done;
}

namespace {

std::expected<ClipResult, std::string> write_clip_once(const std::vector<SegRow>& segs,
                                                       const ClipRequest& request,
                                                       const std::string& out_path,
                                                       const ClipProgress& progress,
                                                       std::int64_t moov_reserve) {
  const std::string part = out_path + ".part";
  ClipResult result;
  ClipMuxer mux;
  bool opened = false;
  bool done = false;
  std::int64_t cov_start = -1, last_end = -1;
  std::deque<AVPacket*> pending;  // pre-roll: packets from the last keyframe before the range
  auto drop_pending = [&] {
    for (auto* p : pending) av_packet_free(&p);
    pending.clear();
  };
  std::expected<void, std::string> failure;
  for (std::size_t i = 0; i < segs.size() && !done && failure; ++i) {
    const auto& seg = segs[i];
    InputFile in;
    if (avformat_open_input(&in.fmt, seg.path.c_str(), nullptr, nullptr) < 0 ||
        avformat_find_stream_info(in.fmt, nullptr) < 0) {
      result.notes.push_back("unreadable segment skipped: " + seg.path);
      continue;
    }
    const int vidx = av_find_best_stream(in.fmt, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    if (vidx < 0) {
      result.notes.push_back("no video in segment " + seg.path);
      continue;
    }
    const AVStream* vs = in.fmt->streams[vidx];
    if (opened && !same_params(mux.params(), vs->codecpar)) {
      // A new resolution or codec needs a new file: the clip ends here, and says so.
      result.notes.push_back("stream parameters change at " + seg.path + ": the clip ends there");
      break;
    }
    result.segments.push_back(seg.path);
    if (seg.damaged > 0) {  // the whole segment's count: the clip may hold some of them
      result.source_damaged_frames += seg.damaged;
      result.notes.push_back(std::to_string(seg.damaged) + " frame(s) of " + seg.path +
                             " arrived damaged (RTP packets lost on the way)");
    }
    std::int64_t first_dts = AV_NOPTS_VALUE, frame_us = 40'000, last_wall = -1;
    double scale = 1;  // index span / media span (below 1 only while a clock step is absorbed)
    AVPacket* pkt = av_packet_alloc();
    for (;;) {
      const int rc = av_read_frame(in.fmt, pkt);
      if (rc < 0) {
        if (rc != AVERROR_EOF && seg.state != "open")
          result.notes.push_back("segment " + seg.path + " ends early: " + av_error(rc));
        break;
      }
      if (pkt->stream_index != vidx) {
        av_packet_unref(pkt);
        continue;
      }
      const std::int64_t ts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
      if (first_dts == AV_NOPTS_VALUE) {
        first_dts = ts;
        // A segment recorded while server time ran slow (a step back of the system clock being
        // absorbed) is indexed shorter than its media: its frames are spread over its indexed
        // span, so that they do not run into the next segment.
        // (Only when the file says how long a frame lasts: the writer gives every sample a
        // duration; older files without one are never scaled.)
        const std::int64_t nominal =
            pkt->duration > 0 ? av_rescale_q(pkt->duration, vs->time_base, {1, 1'000'000}) : 0;
        const std::int64_t media = seg.frames * nominal;
        if (nominal > 0 && seg.state != "open" && seg.frames > 1 &&
            seg.end_us - seg.start_us < media - nominal) {
          scale = static_cast<double>(seg.end_us - seg.start_us) / static_cast<double>(media);
        }
      }
      const std::int64_t wall =
          seg.start_us +
          static_cast<std::int64_t>(scale * static_cast<double>(av_rescale_q(
                                                ts - first_dts, vs->time_base, {1, 1'000'000})));
      if (last_wall >= 0 && wall > last_wall) frame_us = wall - last_wall;
      last_wall = wall;
      if (pkt->duration > 0) {
        frame_us =
            static_cast<std::int64_t>(scale * static_cast<double>(av_rescale_q(
                                                  pkt->duration, vs->time_base, {1, 1'000'000})));
      }
      if (wall >= request.to_us) {
        done = true;
        av_packet_unref(pkt);
        break;
      }
      const bool key = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
      if (wall < request.from_us) {
        if (key) drop_pending();
        if (key || !pending.empty()) {
          AVPacket* copy = av_packet_clone(pkt);
          copy->pos = wall;  // carries the server time to the flush below
          pending.push_back(copy);
        }
        av_packet_unref(pkt);
        continue;
      }
      if (!opened) {
        if (pending.empty() && !key) {  // no keyframe yet: nothing decodable to start from
          av_packet_unref(pkt);
          continue;
        }
        if (auto o = mux.open(part, vs->codecpar, request.server_time_track, request.faststart,
                              moov_reserve);
            !o) {
          failure = std::unexpected(o.error());
          av_packet_unref(pkt);
          break;
        }
        opened = true;
        result.codec = vs->codecpar->codec_id == AV_CODEC_ID_HEVC ? "h265" : "h264";
      }
      auto emit = [&](AVPacket* p, std::int64_t at) -> bool {
        if (cov_start < 0) {
          cov_start = at;
          result.start_us = at;
        } else if (at - last_end > kMinGapUs) {
          result.covered.push_back({cov_start, last_end});
          result.gaps.push_back({last_end, at});
          cov_start = at;
        }
        last_end = at + frame_us;
        ++result.frames;
        if (auto w = mux.video(p, vs->time_base, at); !w) {
          failure = std::unexpected(w.error());
          return false;
        }
        return true;
      };
      bool ok = true;
      for (auto* p : pending) {
        const std::int64_t at = p->pos;
        ok = ok && emit(p, at);
      }
      drop_pending();
      ok = ok && emit(pkt, wall);
      av_packet_unref(pkt);
      if (!ok) break;
    }
    av_packet_free(&pkt);
    if (progress) progress(static_cast<double>(i + 1) / static_cast<double>(segs.size()));
  }
  drop_pending();
  if (!failure) {
    std::error_code ec;
    std::filesystem::remove(part, ec);
    return std::unexpected(failure.error());
  }
  if (!opened) {
    return std::unexpected("no frame of camera " + request.camera_id + " (" + request.stream +
                           ") in the requested range");
  }
  if (auto f = mux.finish(); !f) {
    std::error_code ec;
    std::filesystem::remove(part, ec);
    return std::unexpected(f.error() + (moov_reserve > 0 ? " (moov reserve)" : ""));
  }
  result.covered.push_back({cov_start, last_end});
  if (result.start_us > request.from_us + kMinGapUs)
    result.gaps.insert(result.gaps.begin(), {request.from_us, result.start_us});
  if (last_end < request.to_us - kMinGapUs) result.gaps.push_back({last_end, request.to_us});
  result.end_us = last_end;
  std::error_code ec;
  std::filesystem::rename(part, out_path, ec);
  if (ec) return std::unexpected("cannot write " + out_path + ": " + ec.message());
  result.bytes = static_cast<std::int64_t>(std::filesystem::file_size(out_path, ec));
  return result;
}

}  // namespace

}  // namespace matthan::storage
