// gst-rtsp-server wiring. Each stream is an appsrc fed by the pacer thread with the camera's
// pre-encoded access units, stamped on arrival (do-timestamp) so the loop never shows a
// timestamp jump. Media are shared: like a real camera, every client sees the same live stream.
#include "matthan/camsim/server.hpp"

#include <glib-unix.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace matthan::camsim {

std::optional<Fault> fault_from_string(const std::string& text) {
  if (text == "none") return Fault::none;
  if (text == "401" || text == "unauthorized") return Fault::unauthorized;
  if (text == "404" || text == "not_found") return Fault::not_found;
  if (text == "corrupt") return Fault::corrupt;
  if (text == "truncate") return Fault::truncate;
  if (text == "stall") return Fault::stall;
  if (text == "rtploss") return Fault::rtp_loss;
  if (text == "senderstall") return Fault::sender_stall;
  return std::nullopt;
}

std::string to_string(Fault fault) {
  switch (fault) {
    case Fault::none:
      return "none";
    case Fault::unauthorized:
      return "401";
    case Fault::not_found:
      return "404";
    case Fault::corrupt:
      return "corrupt";
    case Fault::truncate:
      return "truncate";
    case Fault::stall:
      return "stall";
    case Fault::rtp_loss:
      return "rtploss";
    case Fault::sender_stall:
      return "senderstall";
  }
  return "none";
}

namespace {

std::int64_t steady_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}
std::int64_t wall_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

struct Camera;

// One stream of one camera. appsrc is guarded by mutex; the rest is owned by the pacer.
struct Feeder {
  Camera* camera = nullptr;
  std::string stream;  // "main" / "sub"
  std::shared_ptr<const EncodedLoop> loop;
  std::mutex mutex;
  GstElement* appsrc = nullptr;
  bool wait_key = true;
  std::int64_t position = 0;
  std::int64_t frame_us = 40'000;
  std::int64_t due_us = 0;
  std::atomic<std::uint64_t> rtp_packets{0};  // out of the payloader (its streaming thread)
  std::atomic<std::uint64_t> dropped{0};      // pictures the full sender queue pushed out
  std::int64_t drop_logged_us = 0;            // pacer: the last drop warning (one a second)
};

// Seconds of pictures an appsrc holds before it drops the oldest, as a camera's small send
// buffer does: a link slower than the stream (Faults.BadLink's bandwidth cap) fills it, and so
// does a stall of the simulator's own sending thread. Two seconds, not more: a longer queue
// delivers stale video over a slow link instead of shedding (a 10 s queue recorded 9.8 of the
// 30 s bad phase). No byte limit: appsrc's default (200 KB, ~10 main-stream pictures) had made a
// 0.4 s stall of the simulator (dozens of RTSP set-ups at once on its one core) drop pictures.
constexpr int kSenderQueueSeconds = 2;

guint64 sender_queue_pictures(const Feeder& f) {
  return static_cast<guint64>(kSenderQueueSeconds * f.loop->fps);
}

struct Camera {
  CameraSpec spec;
  std::vector<TruthEntry> truth;
  std::atomic<Fault> fault{Fault::none};
  std::atomic<bool> stopped_by_command{false};
  std::atomic<bool> stopped_by_script{false};
  std::unique_ptr<Feeder> main;
  std::unique_ptr<Feeder> sub;
  bool stopped() const { return stopped_by_command || stopped_by_script; }
};

}  // namespace

struct CamsimServer::Impl {
  std::vector<std::unique_ptr<Camera>> cameras;
  GstRTSPServer* server = nullptr;
  bool digest = false;
  GMainLoop* main_loop = nullptr;
  guint source_id = 0;
  std::thread pacer;
  std::atomic<bool> running{false};
  std::mutex pacer_mutex;
  std::condition_variable pacer_cv;
  std::FILE* frame_log = nullptr;
  std::FILE* truth_log = nullptr;
  std::mutex log_mutex;

  std::mutex clients_mutex;                            // guards clients
  std::multimap<std::string, GstRTSPClient*> clients;  // camera id -> client (ref held)

  Camera* find(const std::string& id) {
    for (auto& c : cameras) {
      if (c->spec.id == id) return c.get();
    }
    return nullptr;
  }

  // Closes every RTSP connection to a camera: what a camera that loses power does.
  void kick(const std::string& id) {
    std::vector<GstRTSPClient*> victims;
    {
      std::lock_guard lock(clients_mutex);
      auto range = clients.equal_range(id);
      for (auto it = range.first; it != range.second; ++it) {
        victims.push_back(GST_RTSP_CLIENT(g_object_ref(it->second)));
      }
    }
    for (auto* c : victims) {
      gst_rtsp_client_close(c);
      g_object_unref(c);
    }
  }

  void push(Feeder& f, const AccessUnit& unit, Fault fault) {
    std::lock_guard lock(f.mutex);
    if (f.appsrc == nullptr) return;
    if (f.wait_key) {
      if (!unit.keyframe) return;
      f.wait_key = false;
    }
    GstBuffer* buf = nullptr;
    if (fault == Fault::corrupt || fault == Fault::truncate) {
      std::vector<std::uint8_t> data = unit.data;
      if (fault == Fault::truncate) {
        data.resize(std::max<std::size_t>(8, data.size() / 3));
      } else {
        // Flip bytes well inside the slices; start codes and headers mostly survive, the
        // picture data does not.
        std::mt19937 rng(static_cast<unsigned>(f.position));
        for (std::size_t i = 0; i < data.size() / 40 + 4; ++i) {
          const std::size_t at = 32 + rng() % std::max<std::size_t>(1, data.size() - 32);
          if (at < data.size()) data[at] ^= static_cast<std::uint8_t>(1 + rng() % 255);
        }
      }
      buf = gst_buffer_new_memdup(data.data(), data.size());
    } else {
      // The loop outlives every buffer: wrap without copying.
      buf = gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY,
                                        const_cast<std::uint8_t*>(unit.data.data()),
                                        unit.data.size(), 0, unit.data.size(), nullptr, nullptr);
    }
    GST_BUFFER_DURATION(buf) = static_cast<GstClockTime>(f.frame_us) * 1000;
    if (!unit.keyframe) GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
    // A full queue while playing means this push drops the oldest picture (leaky): the receiver
    // never sees it, so say so. Before PLAY the queue fills by design and nothing is counted.
    GST_OBJECT_LOCK(f.appsrc);
    const bool playing = GST_STATE(f.appsrc) == GST_STATE_PLAYING;
    GST_OBJECT_UNLOCK(f.appsrc);
    if (playing &&
        gst_app_src_get_current_level_buffers(GST_APP_SRC(f.appsrc)) >= sender_queue_pictures(f)) {
      const auto total = ++f.dropped;
      const std::int64_t now = steady_us();
      if (now - f.drop_logged_us >= 1'000'000) {
        f.drop_logged_us = now;
        std::fprintf(stderr,
                     "camsim: %s/%s: sender queue full (%d s of pictures unsent: the link or the "
                     "simulator too slow): dropped the oldest picture, %llu in all\n",
                     f.camera->spec.id.c_str(), f.stream.c_str(), kSenderQueueSeconds,
                     static_cast<unsigned long long>(total));
      }
    }
    gst_app_src_push_buffer(GST_APP_SRC(f.appsrc), buf);
  }

  void tick(Feeder& f) {
    Camera& cam = *f.camera;
    const auto count = static_cast<std::int64_t>(f.loop->units.size());
    const std::int64_t index = f.position % count;
    const std::int64_t loop_n = f.position / count;
    const bool is_main = f.stream == "main";
    if (is_main) {
      if (index == 0 && truth_log != nullptr) {
        std::lock_guard lock(log_mutex);
        std::fprintf(
            truth_log, "{\"camera\":\"%s\",\"kind\":\"loop\",\"loop\":%lld,\"start_us\":%lld}\n",
            cam.spec.id.c_str(), static_cast<long long>(loop_n), static_cast<long long>(wall_us()));
        std::fflush(truth_log);
      }
      // Scripted outages follow the loop clock of the main stream.
      const double t = static_cast<double>(index) / f.loop->fps;
      bool out = false;
      for (const auto& a : cam.spec.actors) {
        if (a.kind == ActorKind::outage && t >= a.start_s && t < a.start_s + a.duration_s)
          out = true;
      }
      if (out != cam.stopped_by_script.load()) {
        cam.stopped_by_script = out;
        if (out) {
          // Kicking clients must happen on the main loop that owns them.
          g_main_context_invoke_full(
              nullptr, G_PRIORITY_DEFAULT,
              [](gpointer data) -> gboolean {
                auto* job = static_cast<std::pair<Impl*, std::string>*>(data);
                job->first->kick(job->second);
                return G_SOURCE_REMOVE;
              },
              new std::pair<Impl*, std::string>(this, cam.spec.id),
              [](gpointer data) { delete static_cast<std::pair<Impl*, std::string>*>(data); });
        }
      }
    }
    const Fault fault = cam.fault.load();
    if (!cam.stopped() && fault != Fault::stall) {
      push(f, f.loop->units[static_cast<std::size_t>(index)], fault);
      if (frame_log != nullptr) {
        std::lock_guard lock(log_mutex);
        std::fprintf(frame_log, "%s %s %lld %lld %lld\n", cam.spec.id.c_str(), f.stream.c_str(),
                     static_cast<long long>(loop_n), static_cast<long long>(index),
                     static_cast<long long>(wall_us()));
      }
    }
    ++f.position;
  }

  void pacer_loop() {
    std::vector<Feeder*> feeders;
    const std::int64_t t0 = steady_us();
    for (auto& c : cameras) {
      for (Feeder* f : {c->main.get(), c->sub.get()}) {
        f->frame_us = 1'000'000 / std::max(1, f->loop->fps);
        f->due_us = t0;
        feeders.push_back(f);
      }
    }
    while (running) {
      const std::int64_t now = steady_us();
      std::int64_t next = now + 100'000;
      for (Feeder* f : feeders) {
        if (now - f->due_us > 1'000'000) f->due_us = now;  // we were suspended: do not burst
        while (f->due_us <= now) {
          tick(*f);
          f->due_us += f->frame_us;
        }
        next = std::min(next, f->due_us);
      }
      std::unique_lock lock(pacer_mutex);
      pacer_cv.wait_for(lock,
                        std::chrono::microseconds(std::max<std::int64_t>(0, next - steady_us())),
                        [&] { return !running.load(); });
    }
  }

  static void on_unprepared(GstRTSPMedia* media, gpointer user_data) {
    auto* f = static_cast<Feeder*>(user_data);
    GstElement* element = gst_rtsp_media_get_element(media);
    GstElement* src = gst_bin_get_by_name_recurse_up(GST_BIN(element), "src");
    {
      std::lock_guard lock(f->mutex);
      if (f->appsrc != nullptr && f->appsrc == src) {
        gst_object_unref(f->appsrc);
        f->appsrc = nullptr;
      }
    }
    if (src != nullptr) gst_object_unref(src);
    gst_object_unref(element);
  }

  static void on_media_configure(GstRTSPMediaFactory*, GstRTSPMedia* media, gpointer user_data) {
    auto* f = static_cast<Feeder*>(user_data);
    GstElement* element = gst_rtsp_media_get_element(media);
    GstElement* src = gst_bin_get_by_name_recurse_up(GST_BIN(element), "src");
    const bool h265 = f->loop->codec == SceneCodec::h265;
    GstCaps* caps = gst_caps_new_simple(
        h265 ? "video/x-h265" : "video/x-h264", "stream-format", G_TYPE_STRING, "byte-stream",
        "alignment", G_TYPE_STRING, "au", "width", G_TYPE_INT, f->loop->width, "height", G_TYPE_INT,
        f->loop->height, "framerate", GST_TYPE_FRACTION, f->loop->fps, 1, nullptr);
    g_object_set(src, "caps", caps, "format", GST_FORMAT_TIME, "is-live", TRUE, "do-timestamp",
                 TRUE, "max-buffers", sender_queue_pictures(*f), "max-bytes",
                 static_cast<guint64>(0), "leaky-type", 2, nullptr);
    gst_caps_unref(caps);
    {
      std::lock_guard lock(f->mutex);
      if (f->appsrc != nullptr) gst_object_unref(f->appsrc);
      f->appsrc = src;  // keeps the ref from get_by_name
      f->wait_key = true;
    }
    g_signal_connect(media, "unprepared", G_CALLBACK(on_unprepared), f);
    GstPad* src_pad = gst_element_get_static_pad(src, "src");
    gst_pad_add_probe(src_pad, GST_PAD_PROBE_TYPE_BUFFER, &Impl::on_sender_out, f, nullptr);
    gst_object_unref(src_pad);
    if (GstElement* pay = gst_bin_get_by_name_recurse_up(GST_BIN(element), "pay0")) {
      GstPad* pad = gst_element_get_static_pad(pay, "src");
      gst_pad_add_probe(
          pad,
          static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
          &Impl::on_rtp_out, f, nullptr);
      gst_object_unref(pad);
      gst_object_unref(pay);
    }
    gst_object_unref(element);
  }

  // The `senderstall` fault: the stream's sending thread stops taking pictures while the pacer
  // keeps queuing them, as when the simulator is starved of CPU; after 2 s its queue drops the
  // oldest (counted). A pipeline being torn down flushes the pad and ends the wait.
  static GstPadProbeReturn on_sender_out(GstPad* pad, GstPadProbeInfo*, gpointer user_data) {
    auto* f = static_cast<Feeder*>(user_data);
    while (f->camera->fault.load() == Fault::sender_stall && !GST_PAD_IS_FLUSHING(pad)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return GST_PAD_PROBE_OK;
  }

  // The `rtploss` fault: one RTP packet in 40 never leaves (numbered, then dropped), as when a
  // camera's uplink cannot take its bitrate.
  static GstPadProbeReturn on_rtp_out(GstPad*, GstPadProbeInfo* info, gpointer user_data) {
    auto* f = static_cast<Feeder*>(user_data);
    if (f->camera->fault.load() != Fault::rtp_loss) return GST_PAD_PROBE_OK;
    if ((info->type & GST_PAD_PROBE_TYPE_BUFFER) != 0) {
      return ++f->rtp_packets % 40 == 0 ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
    }
    GstBufferList* list = gst_buffer_list_make_writable(GST_PAD_PROBE_INFO_BUFFER_LIST(info));
    for (guint i = 0; i < gst_buffer_list_length(list);) {
      if (++f->rtp_packets % 40 == 0) {
        gst_buffer_list_remove(list, i, 1);
      } else {
        ++i;
      }
    }
    GST_PAD_PROBE_INFO_DATA(info) = list;
    return gst_buffer_list_length(list) == 0 ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
  }

  static GstRTSPStatusCode on_pre_describe(GstRTSPClient* client, GstRTSPContext* ctx,
                                           gpointer user_data) {
    auto* self = static_cast<Impl*>(user_data);
    if (ctx->uri == nullptr || ctx->uri->abspath == nullptr) return GST_RTSP_STS_OK;
    std::string path = ctx->uri->abspath;
    if (!path.empty() && path.front() == '/') path.erase(0, 1);
    const std::string id = path.substr(0, path.find('/'));
    Camera* cam = self->find(id);
    if (cam == nullptr) return GST_RTSP_STS_OK;  // the mount lookup answers 404
    if (cam->stopped()) return GST_RTSP_STS_SERVICE_UNAVAILABLE;
    const Fault fault = cam->fault.load();
    if (fault == Fault::unauthorized) return GST_RTSP_STS_UNAUTHORIZED;
    if (fault == Fault::not_found) return GST_RTSP_STS_NOT_FOUND;
    std::lock_guard lock(self->clients_mutex);
    auto range = self->clients.equal_range(id);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == client) return GST_RTSP_STS_OK;
    }
    self->clients.emplace(id, GST_RTSP_CLIENT(g_object_ref(client)));
    return GST_RTSP_STS_OK;
  }

  static void on_client_closed(GstRTSPClient* client, gpointer user_data) {
    auto* self = static_cast<Impl*>(user_data);
    std::vector<GstRTSPClient*> drop;
    {
      std::lock_guard lock(self->clients_mutex);
      for (auto it = self->clients.begin(); it != self->clients.end();) {
        if (it->second == client) {
          drop.push_back(it->second);
          it = self->clients.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto* c : drop) g_object_unref(c);
  }

  static void on_client_connected(GstRTSPServer*, GstRTSPClient* client, gpointer user_data) {
    g_signal_connect(client, "pre-describe-request", G_CALLBACK(on_pre_describe), user_data);
    g_signal_connect(client, "closed", G_CALLBACK(on_client_closed), user_data);
  }
};

CamsimServer::CamsimServer(std::vector<ServedCamera> cameras) : impl_(std::make_unique<Impl>()) {
  for (auto& sc : cameras) {
    auto cam = std::make_unique<Camera>();
    cam->spec = sc.spec;
    cam->truth = sc.loops.truth;
    cam->main = std::make_unique<Feeder>();
    cam->main->camera = cam.get();
    cam->main->stream = "main";
    cam->main->loop = sc.loops.main;
    cam->sub = std::make_unique<Feeder>();
    cam->sub->camera = cam.get();
    cam->sub->stream = "sub";
    cam->sub->loop = sc.loops.sub;
    impl_->cameras.push_back(std::move(cam));
  }
}

CamsimServer::~CamsimServer() {
  impl_->running = false;
  impl_->pacer_cv.notify_all();
  if (impl_->pacer.joinable()) impl_->pacer.join();
  // Clients run on gst-rtsp-server's pool threads, which outlive the main loop: close them
  // without our "closed" handler, and wait for those threads to end, before Impl goes (TSan saw
  // a client closing into a destroyed Impl).
  if (impl_->server != nullptr) {
    gst_rtsp_server_client_filter(
        impl_->server,
        [](GstRTSPServer*, GstRTSPClient* client, gpointer self) {
          g_signal_handlers_disconnect_by_data(client, self);
          return GST_RTSP_FILTER_REMOVE;
        },
        impl_.get());
  }
  gst_rtsp_thread_pool_cleanup();
  for (auto& c : impl_->cameras) {
    for (Feeder* f : {c->main.get(), c->sub.get()}) {
      if (f->appsrc != nullptr) gst_object_unref(f->appsrc);
    }
  }
  {
    std::lock_guard lock(impl_->clients_mutex);
    for (auto& [id, client] : impl_->clients) g_object_unref(client);
    impl_->clients.clear();
  }
  if (impl_->source_id != 0) g_source_remove(impl_->source_id);
  if (impl_->server != nullptr) g_object_unref(impl_->server);
  if (impl_->main_loop != nullptr) g_main_loop_unref(impl_->main_loop);
}

void CamsimServer::set_digest(bool digest) {
  impl_->digest = digest;
}

void CamsimServer::set_frame_log(std::FILE* file) {
  impl_->frame_log = file;
}
void CamsimServer::set_truth_log(std::FILE* file) {
  impl_->truth_log = file;
  if (file == nullptr) return;
  // Loop-relative ground truth: add a loop's start_us (logged at each loop start) to t.
  for (const auto& cam : impl_->cameras) {
    for (const auto& e : cam->truth) {
      std::ostringstream line;
      line << "{\"camera\":\"" << e.camera << "\",\"kind\":\"" << to_string(e.kind)
           << "\",\"start_s\":" << e.start_s << ",\"end_s\":" << e.end_s << ",\"boxes\":[";
      for (std::size_t i = 0; i < e.boxes.size(); ++i) {
        const auto& b = e.boxes[i];
        line << (i ? "," : "") << "[" << b.t_s << "," << b.x << "," << b.y << "," << b.w << ","
             << b.h << "]";
      }
      line << "]}\n";
      std::fputs(line.str().c_str(), file);
    }
  }
  std::fflush(file);
}

std::expected<int, std::string> CamsimServer::start(const std::string& address, int port) {
  auto& d = *impl_;
  d.main_loop = g_main_loop_new(nullptr, FALSE);
  d.server = gst_rtsp_server_new();
  gst_rtsp_server_set_address(d.server, address.c_str());
  gst_rtsp_server_set_service(d.server, std::to_string(port).c_str());
  g_signal_connect(d.server, "client-connected", G_CALLBACK(Impl::on_client_connected), &d);
  // A client's DESCRIBE waits for the stream's next keyframe (up to a GOP): give each client
  // its own thread so one camera's wait does not delay the others.
  GstRTSPThreadPool* pool = gst_rtsp_server_get_thread_pool(d.server);
  gst_rtsp_thread_pool_set_max_threads(pool, 256);
  g_object_unref(pool);

  // Auth: one role per distinct credential; a camera with credentials admits only its role.
  GstRTSPAuth* auth = nullptr;
  std::map<std::string, std::string> role_of_cred;
  for (const auto& c : d.cameras) {
    if (c->spec.user.empty()) continue;
    const std::string cred = c->spec.user + ":" + c->spec.password;
    if (!role_of_cred.contains(cred)) {
      const std::string role = "cred" + std::to_string(role_of_cred.size());
      role_of_cred[cred] = role;
      if (auth == nullptr) auth = gst_rtsp_auth_new();
      GstRTSPToken* token = gst_rtsp_token_new(GST_RTSP_TOKEN_MEDIA_FACTORY_ROLE, G_TYPE_STRING,
                                               role.c_str(), nullptr);
      if (d.digest) {
        gst_rtsp_auth_add_digest(auth, c->spec.user.c_str(), c->spec.password.c_str(), token);
        gst_rtsp_auth_set_supported_methods(auth, GST_RTSP_AUTH_DIGEST);
      } else {
        gchar* basic = gst_rtsp_auth_make_basic(c->spec.user.c_str(), c->spec.password.c_str());
        gst_rtsp_auth_add_basic(auth, basic, token);
        g_free(basic);
      }
      gst_rtsp_token_unref(token);
    }
  }
  if (auth != nullptr) {
    GstRTSPToken* anon =
        gst_rtsp_token_new(GST_RTSP_TOKEN_MEDIA_FACTORY_ROLE, G_TYPE_STRING, "anonymous", nullptr);
    gst_rtsp_auth_set_default_token(auth, anon);
    gst_rtsp_token_unref(anon);
    gst_rtsp_server_set_auth(d.server, auth);
    g_object_unref(auth);
  }

  GstRTSPMountPoints* mounts = gst_rtsp_server_get_mount_points(d.server);
  for (auto& c : d.cameras) {
    for (Feeder* f : {c->main.get(), c->sub.get()}) {
      GstRTSPMediaFactory* factory = gst_rtsp_media_factory_new();
      const bool h265 = f->loop->codec == SceneCodec::h265;
      const std::string launch =
          std::string("( appsrc name=src ! ") + (h265 ? "h265parse" : "h264parse") + " ! " +
          (h265 ? "rtph265pay" : "rtph264pay") + " name=pay0 pt=96 config-interval=-1 )";
      gst_rtsp_media_factory_set_launch(factory, launch.c_str());
      gst_rtsp_media_factory_set_shared(factory, TRUE);
      gst_rtsp_media_factory_set_protocols(factory, GST_RTSP_LOWER_TRANS_TCP);
      g_signal_connect(factory, "media-configure", G_CALLBACK(Impl::on_media_configure), f);
      if (auth != nullptr) {
        // Everyone may see that the mount exists (else the server answers 404); only the
        // camera's own credentials may construct its media (else 401 with a Basic challenge).
        auto permit = [&](const std::string& role, bool construct) {
          gst_rtsp_media_factory_add_role(factory, role.c_str(), GST_RTSP_PERM_MEDIA_FACTORY_ACCESS,
                                          G_TYPE_BOOLEAN, TRUE,
                                          GST_RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, G_TYPE_BOOLEAN,
                                          construct ? TRUE : FALSE, nullptr);
        };
        const bool open = c->spec.user.empty();
        const std::string own = open ? "" : role_of_cred[c->spec.user + ":" + c->spec.password];
        permit("anonymous", open);
        for (const auto& [cred, role] : role_of_cred) permit(role, open || role == own);
      }
      const std::string path = "/" + c->spec.id + "/" + f->stream;
      gst_rtsp_mount_points_add_factory(mounts, path.c_str(), factory);
    }
  }
  g_object_unref(mounts);

  GError* error = nullptr;
  GSource* source = gst_rtsp_server_create_source(d.server, nullptr, &error);
  if (source == nullptr) {
    std::string msg = error ? error->message : "unknown error";
    g_clear_error(&error);
    return std::unexpected("cannot listen on " + address + ":" + std::to_string(port) + ": " + msg);
  }
  d.source_id = g_source_attach(source, nullptr);
  g_source_unref(source);
  d.running = true;
  d.pacer = std::thread([&d] { d.pacer_loop(); });
  return gst_rtsp_server_get_bound_port(d.server);
}

std::string CamsimServer::command(const std::string& line) {
  std::istringstream in(line);
  std::string verb, id, arg;
  in >> verb >> id >> arg;
  if (verb == "quit") {
    quit();
    return "ok quit";
  }
  if (verb == "drops") {
    // "ok drops N CAM/STREAM=N ...": pictures the full sender queue dropped, the nonzero ones.
    std::uint64_t total = 0;
    std::string each;
    for (const auto& c : impl_->cameras) {
      for (const Feeder* f : {c->main.get(), c->sub.get()}) {
        const auto n = f->dropped.load();
        total += n;
        if (n != 0) each += " " + c->spec.id + "/" + f->stream + "=" + std::to_string(n);
      }
    }
    return "ok drops " + std::to_string(total) + each;
  }
  Camera* cam = impl_->find(id);
  if (cam == nullptr) return "error no camera '" + id + "'";
  if (verb == "stop") {
    cam->stopped_by_command = true;
    impl_->kick(id);
    return "ok stopped " + id;
  }
  if (verb == "start") {
    cam->stopped_by_command = false;
    return "ok started " + id;
  }
  if (verb == "fault") {
    auto fault = fault_from_string(arg);
    if (!fault)
      return "error unknown fault '" + arg +
             "' (none, 401, 404, corrupt, truncate, stall, rtploss, senderstall)";
    cam->fault = *fault;
    // Refusals apply to new connections: drop the current ones so clients find out.
    if (*fault == Fault::unauthorized || *fault == Fault::not_found) impl_->kick(id);
    return "ok fault " + id + " " + to_string(*fault);
  }
  return "error unknown command '" + verb + "' (stop, start, fault, drops, quit)";
}

void CamsimServer::run() {
  g_unix_signal_add(
      SIGINT,
      [](gpointer loop) -> gboolean {
        g_main_loop_quit(static_cast<GMainLoop*>(loop));
        return G_SOURCE_REMOVE;
      },
      impl_->main_loop);
  g_unix_signal_add(
      SIGTERM,
      [](gpointer loop) -> gboolean {
        g_main_loop_quit(static_cast<GMainLoop*>(loop));
        return G_SOURCE_REMOVE;
      },
      impl_->main_loop);
  g_main_loop_run(impl_->main_loop);
}

void CamsimServer::quit() {
  if (impl_->main_loop != nullptr) g_main_loop_quit(impl_->main_loop);
}

}  // namespace matthan::camsim
