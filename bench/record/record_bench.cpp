// bench/record: what recording costs, against references run in the same invocation.
//  1. Recorder CPU per 1080p 4 Mbit/s camera (the segment writer with fdatasync per fragment,
//     fed as fast as it goes) vs `ffmpeg -c copy` remuxing the same stream. Target ≤ 1 % of a
//     core per real-time camera.
//  2. N cameras (default 32) in real time through the real fan-out → recorder → SQLite path:
//     packets published, written, dropped (target 0), the largest queue, CPU per camera.
//  3. Exporting an hour of 1080p (clip with the server-time track, faststart, SHA-256) vs `cp`
//     of the same segment files. Target ≤ 1.5× the copy time.
// Usage: record_bench [--cameras N] [--seconds S] [--export-minutes M] [--work DIR]
#include <sys/resource.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "matthan/camsim/encoded_loop.hpp"
#include "matthan/evidence/node_key.hpp"
#include "matthan/storage/clip.hpp"
#include "matthan/storage/database.hpp"
#include "matthan/storage/recorder.hpp"
#include "matthan/storage/segment_index.hpp"
#include "matthan/storage/segment_writer.hpp"

namespace {

using namespace matthan;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}
double process_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}
double children_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_CHILDREN, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::vector<std::uint8_t> parameter_sets(const std::vector<std::uint8_t>& au) {
  for (std::size_t i = 0; i + 4 < au.size(); ++i) {
    if (au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1) {
      const int type = au[i + 3] & 0x1f;
      if (type >= 1 && type <= 5) {
        const std::size_t start = i > 0 && au[i - 1] == 0 ? i - 1 : i;
        return {au.begin(), au.begin() + static_cast<std::ptrdiff_t>(start)};
      }
      i += 2;
    }
  }
  return {};
}

struct Stream {
  std::shared_ptr<const camsim::EncodedLoop> loop;
  std::vector<std::uint8_t> extradata;
  double bitrate_bps = 0;
};

std::shared_ptr<StreamParams> params_for(const Stream& s, const std::string& camera) {
  auto p = std::make_shared<StreamParams>();
  p->camera_id = camera;
  p->codec = Codec::h264;
  p->width = s.loop->width;
  p->height = s.loop->height;
  p->extradata = s.extradata;
  return p;
}

EncodedPacketPtr packet(const Stream& s, const std::shared_ptr<StreamParams>& params, long i,
                        std::int64_t wall0) {
  const auto& u = s.loop->units[static_cast<std::size_t>(i) % s.loop->units.size()];
  auto p = std::make_shared<EncodedPacket>();
  p->params = params;
  p->dts = p->pts = i * 3600;
  p->duration = 3600;
  p->wall_us = wall0 + i * 40'000;
  p->keyframe = u.keyframe;
  p->data = u.data;
  return p;
}

int run(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  int cameras = 32;
  double seconds = 20;
  double export_minutes = 60;
  std::string work = "/tmp/matthan-record-bench";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--cameras")
      cameras = std::atoi(argv[i + 1]);
    else if (a == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else if (a == "--export-minutes")
      export_minutes = std::atof(argv[i + 1]);
    else if (a == "--work")
      work = argv[i + 1];
  }
  fs::remove_all(work);
  fs::create_directories(work);

  // The stream: 10 s of 1080p25 at 4 Mbit/s from the simulator (cached after the first run).
  camsim::Scenario sc;
  sc.duration_s = 10;
  camsim::CameraSpec cam;
  cam.id = "bench1080";
  cam.main = {1920, 1080, 4000};
  cam.sub = {320, 180, 200};
  camsim::Actor walker;
  walker.start_s = 1;
  walker.duration_s = 8;
  cam.actors = {walker};
  sc.cameras = {cam};
  std::printf("preparing a 1080p 4 Mbit/s H.264 loop (cached in /tmp/matthan-it-cache)...\n");
  auto loops = camsim::prepare_camera(sc, sc.cameras[0], "/tmp/matthan-it-cache");
  if (!loops) {
    std::fprintf(stderr, "%s\n", loops.error().c_str());
    return 1;
  }
  Stream s{loops->main, parameter_sets(loops->main->units.front().data), 0};
  std::size_t loop_bytes = 0;
  for (const auto& u : s.loop->units) loop_bytes += u.data.size();
  s.bitrate_bps =
      static_cast<double>(loop_bytes) * 8 / (static_cast<double>(s.loop->units.size()) / 25.0);
  std::printf("stream: %dx%d, %.2f Mbit/s, GOP %d frames\n\n", s.loop->width, s.loop->height,
              s.bitrate_bps / 1e6, 50);
  const std::int64_t wall0 = 1'795'900'000'000'000;

  // ---- 1. Recorder CPU, one camera, 600 s of media as fast as possible.
  const long frames = 600 * 25;
  {
    storage::SegmentWriterSettings ws;
    ws.root = work + "/cpu";
    storage::SegmentWriter w(ws, "cpu", StreamKind::main, [](const storage::SegmentInfo&) {});
    auto params = params_for(s, "cpu");
    std::vector<EncodedPacketPtr> pkts;
    for (long i = 0; i < frames; ++i) pkts.push_back(packet(s, params, i, wall0));
    const double c0 = thread_cpu_s();
    const auto t0 = Clock::now();
    for (const auto& p : pkts) {
      if (!w.write(*p)) return 1;
    }
    w.close();
    const double cpu = thread_cpu_s() - c0;
    const double wall = seconds_since(t0);
    // Reference: ffmpeg stream-copying the same 600 s (raw H.264 in) into fragmented MP4.
    const std::string raw = work + "/ref.h264";
    {
      std::ofstream out(raw, std::ios::binary);
      for (long i = 0; i < frames; ++i) {
        const auto& u = s.loop->units[static_cast<std::size_t>(i) % s.loop->units.size()];
        out.write(reinterpret_cast<const char*>(u.data.data()),
                  static_cast<std::streamsize>(u.data.size()));
      }
    }
    const double r0 = children_cpu_s();
    const auto rt0 = Clock::now();
    run("ffmpeg -v error -y -f h264 -framerate 25 -i " + raw +
        " -c copy -f mp4 -movflags empty_moov+default_base_moof -frag_duration 1000000 " + work +
        "/ref.mp4");
    const double ref_cpu = children_cpu_s() - r0;
    const double ref_wall = seconds_since(rt0);
    std::printf("1. recorder, one 1080p camera, 600 s of media (fdatasync per 1 s fragment)\n");
    std::printf(
        "   matthan segment writer: %.3f s CPU (%.2f s wall) = %.3f %% of a core per camera\n", cpu,
        wall, cpu / 600.0 * 100);
    std::printf("   ffmpeg -c copy (ref):   %.3f s CPU (%.2f s wall) = %.3f %% of a core\n",
                ref_cpu, ref_wall, ref_cpu / 600.0 * 100);
    std::printf("   ratio matthan/ffmpeg CPU: %.2f   target <= 1 %% of a core: %s\n\n",
                cpu / ref_cpu, cpu / 600.0 * 100 <= 1.0 ? "MET" : "NOT MET");
    fs::remove(raw);
  }

  // ---- 2. N cameras in real time through fan-out → recorder → SQLite.
  {
    auto db = storage::Database::open(work + "/rt.db");
    if (!db) return 1;
    storage::RecorderSettings rs;
    rs.writer.root = work + "/rt";
    rs.writer.segment_s = 10;
    std::vector<std::unique_ptr<PacketFanout>> fanouts;
    std::vector<std::unique_ptr<storage::Recorder>> recorders;
    std::vector<std::shared_ptr<StreamParams>> params;
    for (int c = 0; c < cameras; ++c) {
      const std::string id = "cam" + std::to_string(c);
      fanouts.push_back(std::make_unique<PacketFanout>());
      recorders.push_back(
          std::make_unique<storage::Recorder>(**db, "bench", id, StreamKind::main, rs));
      recorders.back()->attach(*fanouts.back());
      params.push_back(params_for(s, id));
    }
    const long n = static_cast<long>(seconds * 25);
    std::size_t max_queued = 0;
    bool over = false;
    const double c0 = process_cpu_s();
    const auto t0 = Clock::now();
    const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    for (long i = 0; i < n; ++i) {
      std::this_thread::sleep_until(t0 + std::chrono::microseconds(i * 40'000));
      for (int c = 0; c < cameras; ++c) {
        // Cameras are not in step: each starts at its own point of the loop.
        fanouts[static_cast<std::size_t>(c)]->publish(
            packet(s, params[static_cast<std::size_t>(c)], i + c * 7, now_us));
      }
      if (i % 25 == 0) {
        for (const auto& f : fanouts) {
          for (const auto& st : f->stats()) {
            max_queued = std::max(max_queued, st.queued_bytes);
            over = over || st.over_limit;
          }
        }
      }
    }
    std::uint64_t dropped = 0;
    for (const auto& f : fanouts) {
      f->stop();  // drains every queue into its recorder
      for (const auto& st : f->stats()) dropped += st.dropped;
    }
    for (auto& r : recorders) r->close();
    (*db)->flush();
    const double cpu = process_cpu_s() - c0;
    const double wall = seconds_since(t0);
    std::uint64_t written = 0, skipped = 0, errors = 0;
    for (const auto& r : recorders) {
      const auto st = r->stats();
      written += st.packets;
      skipped += st.skipped;
      errors += st.errors;
    }
    const std::uint64_t published =
        static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(cameras);
    std::printf(
        "2. %d cameras x %.0f s real time (%.1f Mbit/s in all), fan-out -> recorder -> SQLite\n",
        cameras, seconds, s.bitrate_bps * cameras / 1e6);
    std::printf(
        "   published %llu, received by the recorders %llu (%llu before the first keyframe), "
        "dropped %llu, errors %llu, largest queue %.1f MiB%s\n",
        static_cast<unsigned long long>(published), static_cast<unsigned long long>(written),
        static_cast<unsigned long long>(skipped), static_cast<unsigned long long>(dropped),
        static_cast<unsigned long long>(errors), static_cast<double>(max_queued) / (1 << 20),
        over ? " (OVER LIMIT)" : "");
    std::printf("   CPU %.2f s over %.1f s = %.3f %% of a core per camera (publisher included)\n",
                cpu, wall, cpu / wall / cameras * 100);
    std::printf("   zero dropped packets: %s\n\n",
                dropped == 0 && written == published && errors == 0 ? "MET" : "NOT MET");
  }

  // ---- 3. Export an hour vs cp of the same bytes.
  {
    auto db = storage::Database::open(work + "/exp.db");
    if (!db) return 1;
    storage::SegmentWriterSettings ws;
    ws.root = work + "/hour";
    ws.sync = false;  // the data only needs to exist for this part
    auto params = params_for(s, "hour");
    {
      storage::SegmentWriter w(ws, "hour", StreamKind::main, [&](const storage::SegmentInfo& i) {
        (*db)->write([i](sqlite3* conn) {
          storage::finish_segment_row(conn, i.path, i.end_us, i.bytes, i.frames, i.keyframes,
                                      "complete", i.start_us);
        });
      });
      w.set_on_opened([&](const storage::SegmentInfo& i) {
        (*db)->write([i](sqlite3* conn) {
          storage::insert_segment_row(conn, {"bench", "hour", "main", i.path, i.codec, i.start_us},
                                      "restart");
        });
      });
      const long n = static_cast<long>(export_minutes * 60 * 25);
      for (long i = 0; i < n; ++i) {
        if (!w.write(*packet(s, params, i, wall0))) return 1;
      }
    }
    (*db)->flush();
    run("sync");
    std::uintmax_t bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(ws.root)) {
      if (e.is_regular_file()) bytes += e.file_size();
    }
    const auto c0 = Clock::now();
    run("cp -r " + ws.root + " " + work + "/copy && sync");
    const double cp_s = seconds_since(c0);
    fs::remove_all(work + "/copy");
    run("sync");
    const auto e0 = Clock::now();
    storage::ClipRequest r{
        "bench", "hour", "main", wall0, wall0 + static_cast<std::int64_t>(export_minutes * 60e6),
        true,    true};
    auto clip = storage::write_clip(**db, r, work + "/hour.mp4");
    if (!clip) {
      std::fprintf(stderr, "export: %s\n", clip.error().c_str());
      return 1;
    }
    auto sha = evidence::sha256_file_hex(work + "/hour.mp4");
    run("sync");
    const double export_s = seconds_since(e0);
    std::printf("3. export of %.0f min of 1080p (%.2f GB in %llu segments)\n", export_minutes,
                static_cast<double>(bytes) / 1e9,
                static_cast<unsigned long long>(clip->segments.size()));
    std::printf("   cp -r + sync (ref):                       %.2f s\n", cp_s);
    std::printf("   matthan export (remux, time track, faststart, SHA-256) + sync: %.2f s\n",
                export_s);
    std::printf("   ratio export/cp: %.2f   target <= 1.5: %s\n", export_s / cp_s,
                export_s / cp_s <= 1.5 ? "MET" : "NOT MET");
  }
  fs::remove_all(work);
  return 0;
}
