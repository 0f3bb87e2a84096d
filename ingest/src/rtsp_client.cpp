#include "rtsp_client.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/base64.h>
#include <libavutil/md5.h>
}

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <tuple>

namespace matthan::ingest {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr std::size_t kBufferSize = 512 * 1024;  // > one interleaved frame (4 + 65535 bytes)
constexpr std::uint8_t kStartCode[4] = {0, 0, 0, 1};
constexpr std::size_t kMaxUnit = 16 << 20;  // far above a 4K keyframe

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string md5_hex(const std::string& text) {
  std::uint8_t sum[16];
  av_md5_sum(sum, reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const auto b : sum) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

std::vector<std::uint8_t> base64(const std::string& text) {
  std::vector<std::uint8_t> out(text.size() * 3 / 4 + 4);
  const int n = av_base64_decode(out.data(), text.c_str(), static_cast<int>(out.size()));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

// key="value", key=value, ... (the parameters of a WWW-Authenticate challenge)
std::string auth_param(const std::string& header, const std::string& key) {
  const std::string h = lower(header);
  std::size_t at = 0;
  while ((at = h.find(key, at)) != std::string::npos) {
    const bool starts = at == 0 || h[at - 1] == ' ' || h[at - 1] == ',';
    std::size_t eq = at + key.size();
    while (eq < h.size() && h[eq] == ' ') ++eq;
    if (!starts || eq >= h.size() || h[eq] != '=') {
      at += key.size();
      continue;
    }
    std::size_t v = eq + 1;
    while (v < h.size() && h[v] == ' ') ++v;
    if (v < h.size() && header[v] == '"') {
      const auto end = header.find('"', v + 1);
      return header.substr(v + 1, end == std::string::npos ? std::string::npos : end - v - 1);
    }
    const auto end = header.find_first_of(", ", v);
    return header.substr(v, end == std::string::npos ? std::string::npos : end - v);
  }
  return {};
}

int nal_type(bool h265, std::uint8_t first) {
  return h265 ? (first >> 1) & 0x3f : first & 0x1f;
}
bool is_parameter_set(bool h265, int type) {
  return h265 ? type >= 32 && type <= 34 : type == 7 || type == 8;
}
bool is_keyframe_nal(bool h265, int type) {
  return h265 ? type >= 16 && type <= 21 : type == 5;
}
// The order parameter sets go in: VPS, SPS, PPS.
int parameter_rank(bool h265, int type) {
  return h265 ? type - 32 : type - 7;
}

// Picture size from the parameter sets and a slice, through libavcodec's own parser.
std::pair<int, int> picture_size(bool h265, const std::vector<std::uint8_t>& extradata,
                                 const std::vector<std::uint8_t>& unit) {
  const AVCodecID id = h265 ? AV_CODEC_ID_HEVC : AV_CODEC_ID_H264;
  AVCodecParserContext* parser = av_parser_init(id);
  AVCodecContext* ctx = avcodec_alloc_context3(avcodec_find_decoder(id));
  std::pair<int, int> size{0, 0};
  if (parser != nullptr && ctx != nullptr) {
    parser->flags |= PARSER_FLAG_COMPLETE_FRAMES;
    std::vector<std::uint8_t> data(extradata);
    data.insert(data.end(), unit.begin(), unit.end());
    data.resize(data.size() + AV_INPUT_BUFFER_PADDING_SIZE, 0);
    std::uint8_t* out = nullptr;
    int out_size = 0;
    av_parser_parse2(parser, ctx, &out, &out_size, data.data(),
                     static_cast<int>(data.size() - AV_INPUT_BUFFER_PADDING_SIZE), AV_NOPTS_VALUE,
                     AV_NOPTS_VALUE, 0);
    size = {parser->width > 0 ? parser->width : ctx->width,
            parser->height > 0 ? parser->height : ctx->height};
  }
  if (parser != nullptr) av_parser_close(parser);
  avcodec_free_context(&ctx);
  return size;
}

RtspFailure failure_of_status(int status) {
  if (status >= 300 && status < 400) return RtspFailure::unsupported;  // redirects: libavformat's
  if (status == 401) return RtspFailure::unauthorized;
  if (status == 403) return RtspFailure::forbidden;
  if (status == 404) return RtspFailure::not_found;
  if (status >= 500) return RtspFailure::server_error;
  return RtspFailure::protocol;
}

}  // namespace

std::string RtspClient::Response::header(const std::string& name) const {
  const std::string want = lower(name);
  for (const auto& [k, v] : headers) {
    if (lower(k) == want) return v;
  }
  return {};
}

std::string RtspClient::digest_response(const std::string& user, const std::string& password,
                                        const std::string& realm, const std::string& nonce,
                                        const std::string& method, const std::string& uri,
                                        const std::string& qop, const std::string& nc,
                                        const std::string& cnonce) {
  const std::string ha1 = md5_hex(user + ":" + realm + ":" + password);
  const std::string ha2 = md5_hex(method + ":" + uri);
  if (!qop.empty())
    return md5_hex(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + ha2);
  return md5_hex(ha1 + ":" + nonce + ":" + ha2);
}

RtspClient::RtspClient(std::string url, Interrupted interrupted)
    : interrupted_(std::move(interrupted)), buf_(kBufferSize) {
  // rtsp://[user[:password]@]host[:port][/path][?query]; the user name or password may hold
  // '@' (the last one ends them), each may be percent-encoded.
  if (!url.starts_with("rtsp://")) return;  // rtsps and others: not ours (open says so)
  const std::size_t start = 7;
  const std::size_t end = std::min(url.find_first_of("/?", start), url.size());
  std::string authority = url.substr(start, end - start);
  if (const auto at = authority.rfind('@'); at != std::string::npos) {
    const std::string userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = userinfo.find(':');
    user_ = percent_decode(userinfo.substr(0, colon));
    if (colon != std::string::npos) password_ = percent_decode(userinfo.substr(colon + 1));
  }
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    host_ = authority.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < authority.size() && authority[close + 1] == ':') {
      port_ = authority.substr(close + 2);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string::npos) {
    host_ = authority.substr(0, colon);
    port_ = authority.substr(colon + 1);
  } else {
    host_ = authority;
  }
  if (port_.empty()) port_ = "554";
  std::string rest = url.substr(end);
  if (rest.empty() || rest.front() != '/') rest = "/" + rest;
  url_ = "rtsp://" + authority + rest;
}

RtspClient::~RtspClient() {
  if (fd_ < 0) return;
  if (!session_.empty()) {
    std::string text = "TEARDOWN " + url_ + " RTSP/1.0\r\nCSeq: " + std::to_string(++cseq_) +
                       "\r\nSession: " + session_ + "\r\n" + authorization("TEARDOWN", url_) +
                       "\r\n";
    (void)::send(fd_, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  ::close(fd_);
}

RtspFailure RtspClient::connect_socket(SteadyClock::time_point deadline) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (const int rc = getaddrinfo(host_.c_str(), port_.c_str(), &hints, &list); rc != 0) {
    detail_ = std::string("cannot resolve '") + host_ + "': " + gai_strerror(rc);
    return RtspFailure::unreachable;
  }
  RtspFailure failure = RtspFailure::timeout;
  for (addrinfo* a = list; a != nullptr && fd_ < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int err = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      err = ETIMEDOUT;
      while (SteadyClock::now() < deadline) {
        if (interrupted_()) {
          err = EINTR;
          break;
        }
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, 100) > 0) {
          socklen_t len = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          break;
        }
      }
    }
    if (err != 0) {
      ::close(fd);
      failure = err == EINTR                                ? RtspFailure::interrupted
                : err == ECONNREFUSED                       ? RtspFailure::refused
                : err == EHOSTUNREACH || err == ENETUNREACH ? RtspFailure::unreachable
                : err == ETIMEDOUT                          ? RtspFailure::timeout
                                                            : RtspFailure::closed;
      detail_ = std::strerror(err);
      continue;
    }
    // Blocking reads that wake every kReadWait to look at the stop flag and the stall deadline.
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{0, static_cast<suseconds_t>(std::chrono::microseconds(kReadWait).count())};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fd_ = fd;
  }
  freeaddrinfo(list);
  return fd_ >= 0 ? RtspFailure::none : failure;
}

bool RtspClient::send_all(const std::string& text) {
  std::size_t sent = 0;
  int stuck = 0;
  while (sent < text.size()) {
    const ssize_t n = ::send(fd_, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && ++stuck < 50) {
      if (interrupted_()) {
        why_ = Why::interrupted;
        return false;
      }
      continue;
    }
    why_ = n < 0 && errno != EAGAIN ? Why::eof : Why::timeout;
    detail_ = n < 0 ? std::strerror(errno) : "cannot send";
    return false;
  }
  return true;
}

bool RtspClient::fill(SteadyClock::time_point deadline) {
  if (pos_ == end_) {
    pos_ = end_ = 0;
  } else if (end_ == buf_.size()) {  // make room: move what is left to the front
    if (pos_ == 0) {  // a whole buffer that parses as nothing: not a camera we understand
      why_ = Why::error;
      detail_ = "the camera sends data that is neither RTP nor RTSP";
      return false;
    }
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  while (true) {
    // Before every read, not only when one times out: a camera that keeps sending what makes
    // no picture (another payload type, an endless unit) must still stall, and stop must act.
    if (interrupted_()) {
      why_ = Why::interrupted;
      return false;
    }
    if (SteadyClock::now() >= deadline) {
      why_ = Why::timeout;
      return false;
    }
    const ssize_t n = ::recv(fd_, buf_.data() + end_, buf_.size() - end_, 0);
    if (n > 0) {
      end_ += static_cast<std::size_t>(n);
      last_read_at_ = SteadyClock::now();
      return true;
    }
    if (n == 0) {
      why_ = Why::eof;
      return false;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
    why_ = errno == ECONNRESET || errno == EPIPE ? Why::eof : Why::error;
    detail_ = std::strerror(errno);
    return false;
  }
}

bool RtspClient::read_response(Response& out, SteadyClock::time_point deadline) {
  while (true) {
    // Interleaved media before the answer (a PLAY answer can trail the first packets).
    while (end_ - pos_ >= 4 && buf_[pos_] == '$') {
      const std::size_t len = (std::size_t{buf_[pos_ + 2]} << 8) | buf_[pos_ + 3];
      if (end_ - pos_ < 4 + len) break;
      if (buf_[pos_ + 1] == rtp_channel_ && payload_type_ >= 0) on_rtp(&buf_[pos_ + 4], len);
      pos_ += 4 + len;
    }
    const auto* begin = reinterpret_cast<const char*>(buf_.data() + pos_);
    const std::string_view have(begin, end_ - pos_);
    if (!have.empty() && have.front() != '$') {
      const auto head_end = have.find("\r\n\r\n");
      if (head_end != std::string_view::npos) {
        std::size_t body = 0;
        out = Response{};
        std::size_t line_start = 0;
        bool first = true;
        while (line_start < head_end) {
          auto line_end = have.find("\r\n", line_start);
          const std::string_view line = have.substr(line_start, line_end - line_start);
          line_start = line_end + 2;
          if (first) {
            first = false;
            if (!line.starts_with("RTSP/")) {
              detail_ = "the camera's answer is not RTSP";
              return false;
            }
            const auto sp = line.find(' ');
            out.status = sp == std::string_view::npos
                             ? 0
                             : std::atoi(std::string(line.substr(sp + 1, 3)).c_str());
            continue;
          }
          const auto colon = line.find(':');
          if (colon == std::string_view::npos) continue;
          out.headers.emplace_back(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
          if (lower(out.headers.back().first) == "content-length") {
            body = static_cast<std::size_t>(
                std::strtoul(out.headers.back().second.c_str(), nullptr, 10));
          }
        }
        if (body > 256 * 1024) {
          detail_ = "the camera's answer is too long";
          return false;
        }
        if (have.size() >= head_end + 4 + body) {
          out.body = std::string(have.substr(head_end + 4, body));
          pos_ += head_end + 4 + body;
          return true;
        }
      } else if (have.size() > 64 * 1024) {
        detail_ = "the camera's answer has no end";
        return false;
      }
    }
    if (!fill(deadline)) return false;
  }
}

std::string RtspClient::authorization(const std::string& method, const std::string& uri) const {
  if (auth_scheme_ == "basic") {
    const std::string plain = user_ + ":" + password_;
    std::string encoded(AV_BASE64_SIZE(plain.size()), '\0');
    av_base64_encode(encoded.data(), static_cast<int>(encoded.size()),
                     reinterpret_cast<const std::uint8_t*>(plain.data()),
                     static_cast<int>(plain.size()));
    encoded.resize(std::strlen(encoded.c_str()));
    return "Authorization: Basic " + encoded + "\r\n";
  }
  if (auth_scheme_ == "digest") {
    std::string h = "Authorization: Digest username=\"" + user_ + "\", realm=\"" + realm_ +
                    "\", nonce=\"" + nonce_ + "\", uri=\"" + uri + "\", response=\"";
    if (qop_.empty()) {
      h += digest_response(user_, password_, realm_, nonce_, method, uri) + "\"";
    } else {
      char nc[9];
      std::snprintf(nc, sizeof nc, "%08x", ++nonce_count_);
      h += digest_response(user_, password_, realm_, nonce_, method, uri, "auth", nc, cnonce_) +
           "\", qop=auth, nc=" + nc + ", cnonce=\"" + cnonce_ + "\"";
    }
    if (!opaque_.empty()) h += ", opaque=\"" + opaque_ + "\"";
    return h + "\r\n";
  }
  return {};
}

RtspFailure RtspClient::request(const std::string& method, const std::string& uri,
                                const std::string& extra, Response& out,
                                SteadyClock::time_point deadline) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string text = method + " " + uri + " RTSP/1.0\r\nCSeq: " + std::to_string(++cseq_) +
                       "\r\nUser-Agent: matthan\r\n" + authorization(method, uri);
    if (!session_.empty()) text += "Session: " + session_ + "\r\n";
    text += extra + "\r\n";
    if (!send_all(text) || !read_response(out, deadline)) {
      if (why_ == Why::interrupted) return RtspFailure::interrupted;
      if (why_ == Why::timeout) {
        detail_ = "no answer to " + method;
        return RtspFailure::timeout;
      }
      if (why_ == Why::eof || why_ == Why::none) {
        if (why_ == Why::eof) detail_ = "the camera closed the connection during " + method;
        return why_ == Why::eof ? RtspFailure::closed : RtspFailure::protocol;
      }
      return RtspFailure::closed;
    }
    if (out.status != 401 || attempt == 1 || user_.empty()) break;
    // The challenge: Digest if offered (cameras prefer it), else Basic.
    std::string digest, basic;
    for (const auto& [k, v] : out.headers) {
      if (lower(k) != "www-authenticate") continue;
      if (lower(v).starts_with("digest")) digest = v;
      if (lower(v).starts_with("basic")) basic = v;
    }
    if (!digest.empty()) {
      auth_scheme_ = "digest";
      realm_ = auth_param(digest, "realm");
      nonce_ = auth_param(digest, "nonce");
      opaque_ = auth_param(digest, "opaque");
      // qop="auth" (alone or in a list): RFC 2617's form; none: RFC 2069's.
      qop_.clear();
      const std::string qops = lower(auth_param(digest, "qop"));
      for (std::size_t q = 0; q < qops.size();) {
        auto comma = qops.find(',', q);
        if (comma == std::string::npos) comma = qops.size();
        if (trim(std::string_view(qops).substr(q, comma - q)) == "auth") qop_ = "auth";
        q = comma + 1;
      }
      if (!qop_.empty() && cnonce_.empty()) {
        std::random_device random;
        char hex[17];
        std::snprintf(hex, sizeof hex, "%08x%08x", random(), random());
        cnonce_ = hex;
      }
    } else if (!basic.empty()) {
      auth_scheme_ = "basic";
    } else {
      break;
    }
  }
  if (out.status != 200) {
    detail_ = method + " answered " + std::to_string(out.status);
    return failure_of_status(out.status);
  }
  return RtspFailure::none;
}

bool RtspClient::parse_sdp(const std::string& sdp, const std::string& base) {
  std::string session_control, control, rtpmap, fmtp, framerate;
  bool in_video = false, seen_video = false, in_media = false;
  int pt = -1;
  std::size_t at = 0;
  while (at < sdp.size()) {
    auto end = sdp.find('\n', at);
    if (end == std::string::npos) end = sdp.size();
    const std::string line = trim(std::string_view(sdp).substr(at, end - at));
    at = end + 1;
    if (line.starts_with("m=")) {
      in_media = true;
      in_video = !seen_video && line.starts_with("m=video");
      if (in_video) {
        seen_video = true;
        // m=video <port> <proto> <payload types...>: the first one
        std::size_t p = 0;
        for (int field = 0; field < 3 && p != std::string::npos; ++field) p = line.find(' ', p + 1);
        if (p != std::string::npos) pt = std::atoi(line.c_str() + p + 1);
      }
      continue;
    }
    if (!in_media && line.starts_with("a=control:")) session_control = line.substr(10);
    if (!in_video) continue;
    const std::string prefix_map = "a=rtpmap:" + std::to_string(pt) + " ";
    const std::string prefix_fmtp = "a=fmtp:" + std::to_string(pt) + " ";
    if (line.starts_with(prefix_map)) rtpmap = line.substr(prefix_map.size());
    if (line.starts_with(prefix_fmtp)) fmtp = line.substr(prefix_fmtp.size());
    if (line.starts_with("a=control:")) control = line.substr(10);
    if (line.starts_with("a=framerate:")) framerate = line.substr(12);
  }
  const std::string codec = lower(rtpmap.substr(0, rtpmap.find('/')));
  if (!seen_video || pt < 0 || (codec != "h264" && codec != "h265" && codec != "hevc")) {
    detail_ = seen_video ? "video codec '" + codec + "'" : "no video track";
    return false;
  }
  video_.h265 = codec != "h264";
  if (const auto slash = rtpmap.find('/'); slash != std::string::npos) {
    video_.clock_rate = std::max(1, std::atoi(rtpmap.c_str() + slash + 1));
  }
  if (!framerate.empty()) video_.frame_rate = std::atof(framerate.c_str());
  payload_type_ = pt;
  // Parameter sets from the description (sprop-*), in VPS, SPS, PPS order.
  std::vector<std::pair<int, std::vector<std::uint8_t>>> sets;
  std::size_t f = 0;
  while (f < fmtp.size()) {
    auto semi = fmtp.find(';', f);
    if (semi == std::string::npos) semi = fmtp.size();
    const std::string item = trim(std::string_view(fmtp).substr(f, semi - f));
    f = semi + 1;
    const auto eq = item.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = lower(item.substr(0, eq));
    if (key != "sprop-parameter-sets" && key != "sprop-vps" && key != "sprop-sps" &&
        key != "sprop-pps") {
      continue;
    }
    std::size_t v = eq + 1;
    while (v < item.size()) {
      auto comma = item.find(',', v);
      if (comma == std::string::npos) comma = item.size();
      auto nal = base64(item.substr(v, comma - v));
      v = comma + 1;
      if (nal.empty()) continue;
      const int type = nal_type(video_.h265, nal[0]);
      if (is_parameter_set(video_.h265, type))
        sets.emplace_back(parameter_rank(video_.h265, type), std::move(nal));
    }
  }
  std::stable_sort(sets.begin(), sets.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [rank, nal] : sets) param_sets_.push_back(std::move(nal));
  set_extradata();
  // The track's URL: absolute, relative to the base, or the base itself; PLAY goes to the
  // session's (aggregate) URL, as libavformat sends it.
  auto resolve = [&base](const std::string& c) {
    if (c.empty() || c == "*") return base;
    if (lower(c).starts_with("rtsp://")) return c;
    return base + (base.ends_with('/') ? "" : "/") + c;
  };
  play_url_ = resolve(session_control);
  control_ = resolve(control.empty() ? session_control : control);
  return true;
}

RtspFailure RtspClient::open(std::chrono::milliseconds timeout) {
  if (url_.empty()) {
    detail_ = "not an rtsp:// URL";
    return RtspFailure::unsupported;
  }
  const auto deadline = SteadyClock::now() + timeout;
  if (const auto f = connect_socket(deadline); f != RtspFailure::none) return f;
  Response r;
  // Some cameras answer OPTIONS with an error and stream all the same: only what would stop
  // DESCRIBE as well ends the attempt here.
  if (const auto f = request("OPTIONS", url_, "", r, deadline);
      f == RtspFailure::unauthorized || f == RtspFailure::forbidden || f == RtspFailure::timeout ||
      f == RtspFailure::closed || f == RtspFailure::interrupted) {
    return f;
  }
  get_parameter_ = r.header("Public").find("GET_PARAMETER") != std::string::npos;
  if (const auto f = request("DESCRIBE", url_, "Accept: application/sdp\r\n", r, deadline);
      f != RtspFailure::none) {
    return f;
  }
  std::string base = r.header("Content-Base");
  if (base.empty()) base = r.header("Content-Location");
  if (base.empty()) base = url_;
  if (!parse_sdp(r.body, base)) return RtspFailure::unsupported;
  if (const auto f = request("SETUP", control_,
                             "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n", r, deadline);
      f != RtspFailure::none) {
    return f == RtspFailure::protocol ? RtspFailure::unsupported : f;
  }
  const std::string transport = r.header("Transport");
  if (const auto il = transport.find("interleaved="); il != std::string::npos) {
    rtp_channel_ = std::atoi(transport.c_str() + il + 12);
  } else if (!transport.empty()) {
    detail_ = "the camera offers no RTP over RTSP";
    return RtspFailure::unsupported;
  }
  const std::string session = r.header("Session");
  session_ = session.substr(0, session.find(';'));
  if (const auto t = session.find("timeout="); t != std::string::npos) {
    session_timeout_s_ = std::max(10, std::atoi(session.c_str() + t + 8));
  }
  if (const auto f = request("PLAY", play_url_, "Range: npt=0.000-\r\n", r, deadline);
      f != RtspFailure::none) {
    return f;
  }
  next_keepalive_ = SteadyClock::now() + std::chrono::seconds(session_timeout_s_ / 2);
  return RtspFailure::none;
}

RtspClient::Read RtspClient::first_pictures(std::chrono::milliseconds timeout) {
  // Up to the size of the picture (parameter sets and a slice), and the frame rate from a few
  // pictures when the description does not declare it: what libavformat's probing gives.
  const auto deadline = SteadyClock::now() + timeout;
  std::vector<std::int64_t> times;
  std::size_t seen = 0;
  SteadyClock::time_point first_at{};
  while (true) {
    if (!parse_buffered()) {
      if (fill(deadline)) continue;
      // The camera closed or went quiet after a few pictures: those are still passed on, and
      // read() tells the rest. Otherwise: why there is no picture.
      if ((why_ == Why::eof || why_ == Why::timeout) && video_.width > 0) break;
      return why_ == Why::interrupted ? Read::interrupted
             : why_ == Why::eof       ? Read::closed
             : why_ == Why::timeout   ? Read::timeout
                                      : Read::error;
    }
    for (; seen < ready_.size(); ++seen) {
      AccessUnit& u = ready_[seen];
      u.new_extradata = false;  // the session's parameters are made after this
      if (video_.width == 0 && !video_.extradata.empty()) {
        std::tie(video_.width, video_.height) = picture_size(video_.h265, video_.extradata, u.data);
      }
      if (video_.width > 0) {
        if (times.empty()) first_at = SteadyClock::now();
        times.push_back(u.pts);
      }
    }
    if (video_.width > 0 && (video_.frame_rate > 0 || times.size() >= 6 ||
                             SteadyClock::now() - first_at > std::chrono::milliseconds(1500))) {
      break;
    }
  }
  if (video_.frame_rate <= 0 && times.size() >= 3) {
    std::vector<std::int64_t> steps;
    for (std::size_t i = 1; i < times.size(); ++i) {
      if (times[i] > times[i - 1]) steps.push_back(times[i] - times[i - 1]);
    }
    if (!steps.empty()) {
      std::nth_element(steps.begin(), steps.begin() + steps.size() / 2, steps.end());
      const double rate = video_.clock_rate / static_cast<double>(steps[steps.size() / 2]);
      if (rate > 0.5 && rate <= 120) video_.frame_rate = rate;
    }
  }
  return Read::ok;
}

void RtspClient::set_extradata() {
  video_.extradata.clear();
  for (const auto& nal : param_sets_) {
    video_.extradata.insert(video_.extradata.end(), kStartCode, kStartCode + 4);
    video_.extradata.insert(video_.extradata.end(), nal.begin(), nal.end());
  }
}

void RtspClient::keepalive() {
  const auto now = SteadyClock::now();
  if (now < next_keepalive_) return;
  next_keepalive_ = now + std::chrono::seconds(std::max(5, session_timeout_s_ / 2));
  const std::string method = get_parameter_ ? "GET_PARAMETER" : "OPTIONS";
  std::string text = method + " " + url_ + " RTSP/1.0\r\nCSeq: " + std::to_string(++cseq_) +
                     "\r\nUser-Agent: matthan\r\n" + authorization(method, url_) +
                     "Session: " + session_ + "\r\n\r\n";
  (void)send_all(text);  // the answer arrives among the media and is skipped there
}

bool RtspClient::parse_buffered() {
  const std::size_t before = ready_.size();
  while (pos_ < end_ && ready_.size() == before) {
    const std::uint8_t c = buf_[pos_];
    if (c == '$') {
      if (end_ - pos_ < 4) break;
      const std::size_t len = (std::size_t{buf_[pos_ + 2]} << 8) | buf_[pos_ + 3];
      if (end_ - pos_ < 4 + len) break;
      if (buf_[pos_ + 1] == rtp_channel_) on_rtp(&buf_[pos_ + 4], len);
      pos_ += 4 + len;
    } else if (c >= 'A' && c <= 'Z') {
      // An RTSP message among the media (the answer to a keep-alive): skipped whole.
      const std::string_view have(reinterpret_cast<const char*>(buf_.data() + pos_), end_ - pos_);
      const auto head_end = have.find("\r\n\r\n");
      if (head_end == std::string_view::npos) {
        if (have.size() < 16 * 1024) break;
        ++pos_;  // not a message after all
        continue;
      }
      std::size_t body = 0;
      const std::string head = lower(std::string(have.substr(0, head_end)));
      if (const auto cl = head.find("content-length:"); cl != std::string::npos) {
        body = std::strtoul(head.c_str() + cl + 15, nullptr, 10);
      }
      if (body > 64 * 1024) body = 0;
      if (have.size() < head_end + 4 + body) break;
      pos_ += head_end + 4 + body;
    } else {
      ++pos_;  // out of step: look for the next '$'
    }
  }
  return ready_.size() > before;
}

void RtspClient::batch_reads(int bytes, std::chrono::milliseconds wait) {
  if (fd_ < 0) return;
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof bytes);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(wait).count();
  const timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

RtspClient::Read RtspClient::read(AccessUnit& out) {
  while (ready_.empty() && !parse_buffered()) {
    keepalive();
    if (!fill(SteadyClock::time_point::max())) {
      return why_ == Why::interrupted ? Read::interrupted
             : why_ == Why::eof       ? Read::closed
                                      : Read::error;
    }
  }
  AccessUnit& front = ready_.front();
  std::swap(out, front);  // out's old buffer goes back to the spares
  front.data.clear();
  front.extradata.clear();
  spare_.push_back(std::move(front));
  ready_.pop_front();
  return Read::ok;
}

void RtspClient::on_rtp(const std::uint8_t* p, std::size_t n) {
  if (n < 12 || (p[0] >> 6) != 2) return;
  const bool padding = (p[0] & 0x20) != 0;
  const bool extension = (p[0] & 0x10) != 0;
  const std::size_t csrc = p[0] & 0x0f;
  const bool marker = (p[1] & 0x80) != 0;
  if ((p[1] & 0x7f) != payload_type_) return;
  const std::uint16_t seq = static_cast<std::uint16_t>((p[2] << 8) | p[3]);
  const std::uint32_t ts =
      (std::uint32_t{p[4]} << 24) | (std::uint32_t{p[5]} << 16) | (std::uint32_t{p[6]} << 8) | p[7];
  std::size_t off = 12 + 4 * csrc;
  std::size_t end = n;
  if (extension) {
    if (off + 4 > end) return;
    off += 4 + 4 * ((std::size_t{p[off + 2]} << 8) | p[off + 3]);
  }
  if (padding) {
    if (p[n - 1] > end) return;
    end -= p[n - 1];
  }
  if (off >= end) return;
  // Order: over TCP nothing is reordered, so a hole in the numbers is a loss (a camera that
  // cannot push its bitrate through the link drops packets before they reach the socket).
  bool lost = false;
  if (have_seq_) {
    // Far off either way is the camera restarting its numbering (a new RTP session on the
    // same connection), not thousands of packets lost: taken as the new start.
    const std::uint16_t missing = static_cast<std::uint16_t>(seq - last_seq_ - 1);
    if (missing > 0 && missing < 3000) {
      lost_packets_ += missing;
      lost = true;
      fu_active_ = false;
    }
  }
  have_seq_ = true;
  last_seq_ = seq;
  // The lost packets were of the open picture (its tail: no marker bit came) or of this new
  // one (its head): which, nobody can tell, so both are marked.
  if (lost && unit_open_) unit_.damaged = true;
  if (unit_open_ && ts != last_ts_) finish_unit();
  if (lost) unit_.damaged = true;
  if (!have_ts_) {
    have_ts_ = true;
  } else {
    ext_ts_ += static_cast<std::int32_t>(ts - last_ts_);
  }
  last_ts_ = ts;
  if (!unit_open_) {
    unit_open_ = true;
    unit_.pts = ext_ts_;
  }
  // A picture never ends (no marker bit, the same timestamp forever): cut it rather than grow.
  if (unit_.data.size() > kMaxUnit) {
    unit_.data.clear();
    unit_.damaged = true;
    fu_active_ = false;
  }
  const std::uint8_t* payload = p + off;
  const std::size_t size = end - off;
  const bool h265 = video_.h265;
  const int type = nal_type(h265, payload[0]);
  const std::size_t header = h265 ? 2 : 1;
  if ((h265 && type == 48) || (!h265 && type == 24)) {  // aggregation: [size16 NAL]...
    std::size_t at = header;
    while (at + 2 <= size) {
      const std::size_t len = (std::size_t{payload[at]} << 8) | payload[at + 1];
      at += 2;
      if (len == 0 || at + len > size) {
        unit_.damaged = true;
        break;
      }
      append_nal(payload + at, len);
      at += len;
    }
  } else if ((h265 && type == 49) || (!h265 && type == 28)) {  // a fragment of one NAL
    if (size < header + 2) return;
    const std::uint8_t fu = payload[header];
    const bool first = (fu & 0x80) != 0, last = (fu & 0x40) != 0;
    if (first) {
      std::uint8_t nal_header[2];
      if (h265) {
        nal_header[0] = static_cast<std::uint8_t>((payload[0] & 0x81) | ((fu & 0x3f) << 1));
        nal_header[1] = payload[1];
      } else {
        nal_header[0] = static_cast<std::uint8_t>((payload[0] & 0xe0) | (fu & 0x1f));
      }
      append_nal(nal_header, header);
      fu_active_ = true;
    }
    if (fu_active_) {
      unit_.data.insert(unit_.data.end(), payload + header + 1, payload + size);
    } else {
      unit_.damaged = true;  // the start of this NAL was lost
    }
    if (last) fu_active_ = false;
  } else if ((h265 && type <= 47) || (!h265 && type >= 1 && type <= 23)) {
    append_nal(payload, size);
  }
  if (marker) finish_unit();
}

void RtspClient::append_nal(const std::uint8_t* nal, std::size_t n) {
  if (n == 0) return;
  const bool h265 = video_.h265;
  const int type = nal_type(h265, nal[0]);
  if (is_keyframe_nal(h265, type)) unit_.keyframe = true;
  if (is_parameter_set(h265, type)) unit_has_params_ = true;
  unit_.data.insert(unit_.data.end(), kStartCode, kStartCode + 4);
  // A fragmented NAL's header comes first (n == header size); its body follows in on_rtp.
  unit_.data.insert(unit_.data.end(), nal, nal + n);
}

void RtspClient::finish_unit() {
  unit_open_ = false;
  fu_active_ = false;
  const bool had_params = unit_has_params_;
  unit_has_params_ = false;
  // A fragmented parameter set is complete only now: take them from the unit itself.
  // A damaged unit's parameter sets may be cut short: not taken.
  if (had_params && !unit_.damaged) {
    const bool h265 = video_.h265;
    auto is_pps = [h265](int rank) { return rank == (h265 ? 2 : 1); };
    const auto& d = unit_.data;
    std::vector<std::pair<int, std::vector<std::uint8_t>>> sets;
    std::size_t at = 0;
    while (at + 4 <= d.size()) {
      // Our own start codes are 4 bytes; NAL bodies never hold 00 00 00 01 (emulation bytes).
      std::size_t next = at + 4;
      while (next + 4 <= d.size() &&
             !(d[next] == 0 && d[next + 1] == 0 && d[next + 2] == 0 && d[next + 3] == 1)) {
        ++next;
      }
      if (next + 4 > d.size()) next = d.size();
      if (next > at + 4) {
        const int type = nal_type(video_.h265, d[at + 4]);
        if (is_parameter_set(video_.h265, type)) {
          // A repeat in the same unit (an encoder's and a packetiser's copy) is one set.
          const int rank = parameter_rank(video_.h265, type);
          std::vector<std::uint8_t> nal(d.begin() + static_cast<std::ptrdiff_t>(at + 4),
                                        d.begin() + static_cast<std::ptrdiff_t>(next));
          // PPS may be several (one per id): only a byte-identical repeat is the same one.
          auto same = std::find_if(sets.begin(), sets.end(), [&](const auto& x) {
            return x.first == rank && (!is_pps(rank) || x.second == nal);
          });
          if (same != sets.end()) {
            same->second = std::move(nal);
          } else {
            sets.emplace_back(rank, std::move(nal));
          }
        }
      }
      at = next;
    }
    // Those of the unit replace the current VPS/SPS; PPS are kept side by side (a camera may
    // use several, sent in turn), the last four.
    std::vector<std::pair<int, std::vector<std::uint8_t>>> merged;
    for (const auto& nal : param_sets_) {
      const int rank = parameter_rank(video_.h265, nal_type(video_.h265, nal[0]));
      if (std::none_of(sets.begin(), sets.end(), [&](const auto& x) {
            return x.first == rank && (!is_pps(rank) || x.second == nal);
          })) {
        merged.emplace_back(rank, nal);
      }
    }
    merged.insert(merged.end(), sets.begin(), sets.end());
    for (std::size_t pps = 0, i = merged.size(); i-- > 0;) {
      if (is_pps(merged[i].first) && ++pps > 4)
        merged.erase(merged.begin() + static_cast<std::ptrdiff_t>(i));
    }
    std::stable_sort(merged.begin(), merged.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::vector<std::uint8_t>> now;
    for (auto& [rank, nal] : merged) now.push_back(std::move(nal));
    // The same sets in another order are no change.
    auto sorted = [](std::vector<std::vector<std::uint8_t>> v) {
      std::sort(v.begin(), v.end());
      return v;
    };
    if (sorted(now) != sorted(param_sets_)) {
      param_sets_ = std::move(now);
      set_extradata();
      unit_.new_extradata = true;
      unit_.extradata = video_.extradata;
      if (const auto [w, h] = picture_size(video_.h265, video_.extradata, unit_.data); w > 0) {
        video_.width = w;
        video_.height = h;
      }
    }
  }
  if (unit_.data.empty()) {
    unit_.damaged = false;
    unit_.keyframe = false;
    return;
  }
  unit_.received = last_read_at_;
  ready_.push_back(std::move(unit_));
  unit_ = AccessUnit{};
  if (!spare_.empty()) {
    unit_.data = std::move(spare_.back().data);
    spare_.pop_back();
  }
  unit_.data.clear();
}

}  // namespace matthan::ingest
