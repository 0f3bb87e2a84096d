#include "matthan/storage/reconcile.hpp"

#include "matthan/storage/segment_index.hpp"

extern "C" {
#include <libavformat/avformat.h>
}

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <set>

namespace matthan::storage {

namespace {

struct Readable {
  std::int64_t frames = 0;
  std::int64_t keyframes = 0;
  std::int64_t duration_us = 0;  // from the first frame to the end of the last readable one
  std::string codec;
};

// Reads packets until the data ends or breaks: what a crash left is readable up to the last
// complete fragment.
Readable read_segment(const std::string& path) {
  Readable r;
  AVFormatContext* fmt = nullptr;
  if (avformat_open_input(&fmt, path.c_str(), nullptr, nullptr) < 0) return r;
  const int vi = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (vi >= 0) {
    const AVStream* st = fmt->streams[vi];
    r.codec = st->codecpar->codec_id == AV_CODEC_ID_HEVC ? "h265"
              : st->codecpar->codec_id == AV_CODEC_ID_H264
                  ? "h264"
                  : avcodec_get_name(st->codecpar->codec_id);
    AVPacket* pkt = av_packet_alloc();
    std::int64_t first = AV_NOPTS_VALUE, end = 0;
    while (av_read_frame(fmt, pkt) >= 0) {
      if (pkt->stream_index == vi && pkt->size > 0 && !(pkt->flags & AV_PKT_FLAG_CORRUPT)) {
        ++r.frames;
        r.keyframes += (pkt->flags & AV_PKT_FLAG_KEY) ? 1 : 0;
        const std::int64_t t = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
        if (t != AV_NOPTS_VALUE) {
          if (first == AV_NOPTS_VALUE) first = t;
          end = std::max(end, t + std::max<std::int64_t>(pkt->duration, 0));
        }
      }
      av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    if (first != AV_NOPTS_VALUE)
      r.duration_us = av_rescale_q(end - first, st->time_base, {1, 1'000'000});
  }
  avformat_close_input(&fmt);
  return r;
}

// A kill during a write can leave the last fragment torn (a moof without its whole mdat). Cut
// the file after the last complete moof+mdat pair so that every player reads it without an
// error; the torn fragment never held more than fragment_s, the promised loss. Files without a
// complete ftyp+moov are left as they are (nothing readable to keep). Returns the bytes cut.
}  // namespace

std::int64_t cut_torn_fragment(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return 0;
  std::error_code ec;
  const auto size = static_cast<std::int64_t>(std::filesystem::file_size(path, ec));
  std::int64_t offset = 0, good_end = -1;
  bool moov = false, in_fragment = false;
  while (!ec && offset + 8 <= size) {
    unsigned char h[16];
    if (std::fseek(f, offset, SEEK_SET) != 0 || std::fread(h, 1, 8, f) != 8) break;
    std::int64_t box = (std::int64_t{h[0]} << 24) | (h[1] << 16) | (h[2] << 8) | h[3];
    const std::string type(reinterpret_cast<const char*>(h + 4), 4);
    if (box == 1) {  // 64-bit size follows
      if (std::fread(h + 8, 1, 8, f) != 8) break;
      box = 0;
      for (int i = 8; i < 16; ++i) box = (box << 8) | h[i];
    } else if (box == 0) {
      box = size - offset;  // "to the end of the file": only ever the last box
    }
    if (box < 8 || box > size - offset) break;  // torn (no overflow on a huge size field)
    offset += box;
    if (type == "moov") moov = true;
    if (type == "moof") in_fragment = true;
    if (type == "mdat") in_fragment = false;
    if (moov && !in_fragment) good_end = offset;
  }
  std::fclose(f);
  if (good_end < 0 || good_end >= size) return 0;
  std::filesystem::resize_file(path, static_cast<std::uintmax_t>(good_end), ec);
  return ec ? 0 : size - good_end;
}

namespace {

std::int64_t file_bytes(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<std::int64_t>(n);
}

// <root>/<camera>[/sub]/<YYYY-MM-DD>/<HHMMSS>[-n].mp4 → camera, stream, start (UTC, seconds).
bool parse_segment_path(const std::filesystem::path& rel, std::string* camera, std::string* stream,
                        std::int64_t* start_us) {
  std::vector<std::string> parts;
  for (const auto& p : rel) parts.push_back(p.string());
  if (parts.size() != 3 && parts.size() != 4) return false;
  *camera = parts[0];
  *stream = parts.size() == 4 ? "sub" : "main";
  if (parts.size() == 4 && parts[1] != "sub") return false;
  std::tm tm{};
  const std::string day = parts[parts.size() - 2];
  const std::string name = parts.back();
  if (std::sscanf(day.c_str(), "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3 ||
      std::sscanf(name.c_str(), "%2d%2d%2d", &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 3) {
    return false;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  *start_us = static_cast<std::int64_t>(timegm(&tm)) * 1'000'000;
  return true;
}

}  // namespace

ReconcileReport reconcile_segments(Database& db, const std::string& node_id,
                                   const std::string& recordings_root) {
  ReconcileReport report;
  struct OpenRow {
    std::string path;
    std::int64_t start_us;
  };
  // What the index knows.
  std::vector<OpenRow> open_rows;
  std::vector<std::pair<std::string, std::int64_t>> cut_rows;  // recovered: path, indexed bytes
  std::set<std::string> known;
  db.read([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn, "SELECT path, start_us, state, bytes FROM segment WHERE node_id = ?1",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, node_id.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) {
      const std::string path = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
      known.insert(path);
      if (std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 2))) == "open") {
        open_rows.push_back({path, sqlite3_column_int64(st, 1)});
      } else if (std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 2))) ==
                 "recovered") {
        cut_rows.emplace_back(path, sqlite3_column_int64(st, 3));
      }
    }
    sqlite3_finalize(st);
    return 0;
  });
  // Segments cut short by a failed write whose torn tail could not be cut then (a read-only
  // volume, then a stop): cut it to what the row describes.
  for (const auto& [path, bytes] : cut_rows) {
    const std::int64_t size = file_bytes(path);
    if (bytes <= 0 || size <= bytes) continue;
    std::error_code ec;
    std::filesystem::resize_file(path, static_cast<std::uintmax_t>(bytes), ec);
    if (!ec) {
      report.messages.push_back("cut " + std::to_string(size - bytes) +
                                " bytes of a torn last fragment from " + path);
    }
  }
  // Rows a crash left open: finish them from their files.
  for (const auto& row : open_rows) {
    if (const std::int64_t cut = cut_torn_fragment(row.path); cut > 0) {
      report.messages.push_back("cut " + std::to_string(cut) +
                                " bytes of a torn last fragment from " + row.path);
    }
    const auto r = read_segment(row.path);
    const std::int64_t bytes = file_bytes(row.path);
    const bool readable = r.frames > 0;
    db.write([row, r, bytes, readable](sqlite3* conn) {
      finish_segment_row(conn, row.path, row.start_us + r.duration_us, bytes, r.frames, r.keyframes,
                         readable ? "recovered" : "unreadable");
    });
    (readable ? report.recovered : report.unreadable) += 1;
    report.messages.push_back(readable ? "recovered " + row.path + ": " + std::to_string(r.frames) +
                                             " frames, " + std::to_string(r.duration_us / 1000) +
                                             " ms (cut short by a stop or crash)"
                                       : "unreadable " + row.path + " (" + std::to_string(bytes) +
                                             " bytes, no complete frame): kept and marked");
  }
  // Files without a row (the row is committed after the file is created): index them.
  std::error_code ec;
  if (std::filesystem::is_directory(recordings_root, ec)) {
    for (auto it = std::filesystem::recursive_directory_iterator(recordings_root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file() || it->path().extension() != ".mp4") continue;
      const std::string path = it->path().string();
      if (known.contains(path)) continue;
      std::string camera, stream;
      std::int64_t start_us = 0;
      if (!parse_segment_path(std::filesystem::relative(it->path(), recordings_root), &camera,
                              &stream, &start_us)) {
        report.messages.push_back("not a segment name, left alone: " + path);
        continue;
      }
      if (const std::int64_t cut = cut_torn_fragment(path); cut > 0) {
        report.messages.push_back("cut " + std::to_string(cut) +
                                  " bytes of a torn last fragment from " + path);
      }
      const auto r = read_segment(path);
      const std::int64_t bytes = file_bytes(path);
      const std::string state = r.frames > 0 ? "recovered" : "unreadable";
      db.write([=](sqlite3* conn) {
        sqlite3_stmt* st = nullptr;
        sqlite3_prepare_v2(conn,
                           "INSERT INTO segment (node_id, camera_id, stream, path, codec, start_us,"
                           " end_us, bytes, frames, keyframes, state)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                           -1, &st, nullptr);
        sqlite3_bind_text(st, 1, node_id.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, camera.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, stream.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, path.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, r.codec.empty() ? "unknown" : r.codec.c_str(), -1,
                          SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 6, start_us);
        sqlite3_bind_int64(st, 7, start_us + r.duration_us);
        sqlite3_bind_int64(st, 8, bytes);
        sqlite3_bind_int64(st, 9, r.frames);
        sqlite3_bind_int64(st, 10, r.keyframes);
        sqlite3_bind_text(st, 11, state.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_step(st);
        sqlite3_finalize(st);
      });
      ++report.orphans;
      report.messages.push_back("indexed orphan " + path + " (" + state + ", " +
                                std::to_string(r.frames) + " frames; start from its name)");
    }
  }
  db.flush();
  return report;
}

}  // namespace matthan::storage
