// matthan-camsim: a commune's cameras on 127.0.0.1 for tests, benchmarks and the demo.
#include <gst/gst.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "matthan/camsim/server.hpp"

namespace {

using namespace matthan::camsim;

int usage() {
  std::fprintf(
      stderr,
      "usage: matthan-camsim [--scenario FILE | --cameras N] [options]\n"
      "  --scenario FILE        scenario YAML (see docs/guide/camsim.md)\n"
      "  --cameras N            a simulated commune of N cameras in 3 hamlets (default 8)\n"
      "  --seed N --duration S  for --cameras: seed and loop length (default 1, 40 s)\n"
      "  --h265 ID              for --cameras: encode camera ID in H.265 (repeatable)\n"
      "  --auth ID=USER:PASS    require RTSP Basic auth for camera ID (repeatable)\n"
      "  --digest               ask for Digest auth instead of Basic\n"
      "  --file ID=PATH         add camera ID serving a looped video file (repeatable)\n"
      "  --fault ID=MODE        start camera ID with a fault: 401 404 corrupt truncate stall\n"
      "                         rtploss (one RTP packet in 40 dropped), senderstall (the\n"
      "                         simulator's sender stops: its queue drops after 2 s)\n"
      "  --address A --port P   where to listen (default 127.0.0.1, 0 = any free port)\n"
      "  --cache DIR            encoded scene cache (default ~/.cache/matthan-camsim)\n"
      "  --truth FILE           write ground truth (JSON lines)\n"
      "  --frame-log FILE       log 'camera stream loop index send_us' for every frame sent\n"
      "stdin commands: stop ID | start ID | fault ID MODE | drops | quit\n");
  return 2;
}

std::string default_cache() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x) {
    return std::string(x) + "/matthan-camsim";
  }
  if (const char* h = std::getenv("HOME"); h != nullptr && *h) {
    return std::string(h) + "/.cache/matthan-camsim";
  }
  return "/tmp/matthan-camsim";
}

bool split_eq(const std::string& s, std::string& key, std::string& value) {
  const auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  key = s.substr(0, eq);
  value = s.substr(eq + 1);
  return true;
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string scenario_file, address = "127.0.0.1", cache = default_cache(), truth_file, frame_log;
  int cameras = 8, port = 0;
  bool digest = false;
  std::uint64_t seed = 1;
  double duration = 40;
  std::vector<std::string> h265, auths, files, faults;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "camsim: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return args[++i];
    };
    if (a == "--scenario")
      scenario_file = next();
    else if (a == "--cameras")
      cameras = std::atoi(next().c_str());
    else if (a == "--seed")
      seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--duration")
      duration = std::atof(next().c_str());
    else if (a == "--h265")
      h265.push_back(next());
    else if (a == "--auth")
      auths.push_back(next());
    else if (a == "--digest")
      digest = true;
    else if (a == "--file")
      files.push_back(next());
    else if (a == "--fault")
      faults.push_back(next());
    else if (a == "--address")
      address = next();
    else if (a == "--port")
      port = std::atoi(next().c_str());
    else if (a == "--cache")
      cache = next();
    else if (a == "--truth")
      truth_file = next();
    else if (a == "--frame-log")
      frame_log = next();
    else
      return usage();
  }

  Scenario scenario;
  if (!scenario_file.empty()) {
    auto loaded = load_scenario(scenario_file);
    if (!loaded) {
      std::fprintf(stderr, "camsim: %s\n", loaded.error().c_str());
      return 2;
    }
    scenario = *loaded;
  } else {
    if (cameras < 1 || cameras > 256) return usage();
    scenario = demo_commune(cameras, seed, duration);
  }
  for (const auto& id : h265) {
    for (auto& c : scenario.cameras) {
      if (c.id == id) c.codec = SceneCodec::h265;
    }
  }
  for (const auto& spec : auths) {
    std::string id, cred;
    if (!split_eq(spec, id, cred) || cred.find(':') == std::string::npos) return usage();
    for (auto& c : scenario.cameras) {
      if (c.id == id) {
        c.user = cred.substr(0, cred.find(':'));
        c.password = cred.substr(cred.find(':') + 1);
      }
    }
  }
  for (const auto& spec : files) {
    std::string id, path;
    if (!split_eq(spec, id, path)) return usage();
    CameraSpec c;
    c.id = id;
    c.file = path;
    scenario.cameras.push_back(c);
  }

  // Render and encode (or load from the cache) in parallel, one camera per core.
  std::vector<ServedCamera> served(scenario.cameras.size());
  std::vector<std::string> errors(scenario.cameras.size());
  std::atomic<std::size_t> next_cam{0};
  const double t0 = cpu_seconds();
  std::vector<std::thread> workers;
  for (unsigned w = 0; w < std::max(1u, std::thread::hardware_concurrency()); ++w) {
    workers.emplace_back([&] {
      for (std::size_t i; (i = next_cam++) < scenario.cameras.size();) {
        auto loops = prepare_camera(scenario, scenario.cameras[i], cache);
        if (!loops) {
          errors[i] = loops.error();
          continue;
        }
        served[i] = {scenario.cameras[i], *loops};
      }
    });
  }
  for (auto& w : workers) w.join();
  for (const auto& e : errors) {
    if (!e.empty()) {
      std::fprintf(stderr, "camsim: %s\n", e.c_str());
      return 1;
    }
  }
  std::fprintf(stderr, "camsim: %zu camera(s) ready (%.1f s of CPU to render/encode or load)\n",
               served.size(), cpu_seconds() - t0);

  CamsimServer server(std::move(served));
  for (const auto& spec : faults) {
    std::string id, mode;
    if (!split_eq(spec, id, mode)) return usage();
    const auto reply = server.command("fault " + id + " " + mode);
    if (reply.rfind("ok", 0) != 0) {
      std::fprintf(stderr, "camsim: %s\n", reply.c_str());
      return 2;
    }
  }
  std::FILE* truth = nullptr;
  std::FILE* frames = nullptr;
  if (!truth_file.empty()) truth = std::fopen(truth_file.c_str(), "w");
  if (!frame_log.empty()) frames = std::fopen(frame_log.c_str(), "w");
  if (frames != nullptr) std::setvbuf(frames, nullptr, _IOLBF, 0);  // readers follow it live
  server.set_truth_log(truth);
  server.set_digest(digest);
  server.set_frame_log(frames);
  auto bound = server.start(address, port);
  if (!bound) {
    std::fprintf(stderr, "camsim: %s\n", bound.error().c_str());
    return 1;
  }
  const std::string base = "rtsp://" + address + ":" + std::to_string(*bound);
  std::printf("CAMSIM %s\n", base.c_str());
  for (const auto& c : scenario.cameras) {
    std::printf("CAMERA %s %s %s/%s/main %s/%s/sub\n", c.id.c_str(),
                c.hamlet.empty() ? "-" : c.hamlet.c_str(), base.c_str(), c.id.c_str(), base.c_str(),
                c.id.c_str());
  }
  std::fflush(stdout);

  // Commands on stdin, handled on the main loop.
  GIOChannel* in = g_io_channel_unix_new(STDIN_FILENO);
  g_io_add_watch(
      in, static_cast<GIOCondition>(G_IO_IN | G_IO_HUP),
      [](GIOChannel* ch, GIOCondition cond, gpointer data) -> gboolean {
        auto* srv = static_cast<CamsimServer*>(data);
        if (cond & G_IO_IN) {
          gchar* line = nullptr;
          gsize len = 0;
          if (g_io_channel_read_line(ch, &line, &len, nullptr, nullptr) == G_IO_STATUS_NORMAL &&
              line) {
            std::string cmd(line, len);
            g_free(line);
            while (!cmd.empty() && (cmd.back() == '\n' || cmd.back() == '\r')) cmd.pop_back();
            if (!cmd.empty()) {
              std::printf("%s\n", srv->command(cmd).c_str());
              std::fflush(stdout);
            }
            return TRUE;
          }
        }
        return FALSE;  // stdin closed: keep serving (the demo runs detached)
      },
      &server);

  // Report our own CPU: the simulator must stay cheap next to what it tests.
  struct CpuState {
    double last_cpu;
    gint64 last_us;
    std::size_t streams;
  };
  auto* cpu = new CpuState{cpu_seconds(), g_get_monotonic_time(), scenario.cameras.size() * 2};
  g_timeout_add_seconds(
      30,
      [](gpointer data) -> gboolean {
        auto* s = static_cast<CpuState*>(data);
        const double c = cpu_seconds();
        const gint64 now = g_get_monotonic_time();
        std::fprintf(stderr, "camsim: cpu %.1f%% of a core for %zu streams\n",
                     100.0 * (c - s->last_cpu) / ((now - s->last_us) / 1e6), s->streams);
        s->last_cpu = c;
        s->last_us = now;
        return TRUE;
      },
      cpu);

  server.run();
  g_io_channel_unref(in);
  if (truth) std::fclose(truth);
  if (frames) std::fclose(frames);
  delete cpu;
  return 0;
}
