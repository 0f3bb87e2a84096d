#include "matthan/evidence/node_key.hpp"

#include <openssl/evp.h>
#include <sodium.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace matthan::evidence {

namespace {

void ensure_sodium() {
  static const int rc = sodium_init();
  (void)rc;  // 0 or 1 (already initialised); -1 cannot happen on Linux with /dev/urandom
}

std::string to_base64(const std::uint8_t* data, std::size_t n) {
  std::string out(sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, n, sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::vector<std::uint8_t> from_base64(std::string_view text) {
  if (text.empty()) return {};  // libsodium's buffers must not be null (UBSan)
  std::vector<std::uint8_t> out(text.size());
  std::size_t len = 0;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), " \n\r", &len, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    return {};
  }
  out.resize(len);
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string NodeKey::public_base64() const {
  return to_base64(public_key.data(), public_key.size());
}

std::string NodeKey::fingerprint() const {
  return fingerprint_of(public_base64());
}

std::string NodeKey::sign_base64(std::string_view message) const {
  ensure_sodium();
  std::array<std::uint8_t, crypto_sign_BYTES> sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size(), secret_key.data());
  return to_base64(sig.data(), sig.size());
}

std::string key_dir(const std::string& data_dir) {
  return data_dir + "/keys";
}

std::expected<NodeKey, std::string> load_node_key(const std::string& data_dir) {
  ensure_sodium();
  const std::string dir = key_dir(data_dir);
  if (!std::filesystem::exists(dir + "/node_ed25519.key")) {
    return std::unexpected("no node key in " + dir);
  }
  const auto secret = from_base64(read_text(dir + "/node_ed25519.key"));
  if (secret.size() != crypto_sign_SECRETKEYBYTES) {
    return std::unexpected(dir + "/node_ed25519.key is not an Ed25519 secret key");
  }
  NodeKey key;
  std::copy(secret.begin(), secret.end(), key.secret_key.begin());
  crypto_sign_ed25519_sk_to_pk(key.public_key.data(), key.secret_key.data());
  return key;
}

std::expected<NodeKey, std::string> load_or_create_node_key(const std::string& data_dir) {
  ensure_sodium();
  const std::string dir = key_dir(data_dir);
  if (std::filesystem::exists(dir + "/node_ed25519.key")) return load_node_key(data_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return std::unexpected("cannot create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  NodeKey key;
  crypto_sign_keypair(key.public_key.data(), key.secret_key.data());
  // Written to a temporary name, owner-only, then renamed: never a half key.
  const std::string tmp = dir + "/node_ed25519.key.tmp";
  {
    const mode_t old = ::umask(077);
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    ::umask(old);
    out << to_base64(key.secret_key.data(), key.secret_key.size()) << "\n";
    if (!out) return std::unexpected("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, dir + "/node_ed25519.key", ec);
  if (ec) return std::unexpected("cannot store the node key: " + ec.message());
  std::ofstream pub(dir + "/node_ed25519.pub");
  pub << key.public_base64() << "\n";
  return key;
}

std::string fingerprint_of(std::string_view public_base64) {
  ensure_sodium();
  const auto pk = from_base64(public_base64);
  std::array<std::uint8_t, crypto_hash_sha256_BYTES> h{};
  crypto_hash_sha256(h.data(), pk.data(), pk.size());
  std::string b64 = to_base64(h.data(), h.size());
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return "SHA256:" + b64;
}

bool verify_signature(std::string_view public_base64, std::string_view message,
                      std::string_view signature_base64) {
  ensure_sodium();
  const auto pk = from_base64(public_base64);
  const auto sig = from_base64(signature_base64);
  if (pk.size() != crypto_sign_PUBLICKEYBYTES || sig.size() != crypto_sign_BYTES) return false;
  return crypto_sign_verify_detached(sig.data(),
                                     reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(), pk.data()) == 0;
}

std::string sha256_hex(std::string_view data) {
  ensure_sodium();
  std::array<std::uint8_t, crypto_hash_sha256_BYTES> h{};
  crypto_hash_sha256(h.data(), reinterpret_cast<const unsigned char*>(data.data()), data.size());
  std::string hex(h.size() * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), h.data(), h.size());
  hex.pop_back();
  return hex;
}

std::expected<std::string, std::string> sha256_file_hex(const std::string& path) {
  // OpenSSL's SHA-256 uses the CPU's SHA extensions (~4x libsodium's portable code): an hour
  // of 1080p is 1.8 GB to hash per export.
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return std::unexpected("cannot open " + path);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<unsigned char> buf(1 << 20);
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) EVP_DigestUpdate(ctx, buf.data(), n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  std::array<std::uint8_t, 32> h{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, h.data(), &len);
  EVP_MD_CTX_free(ctx);
  if (failed) return std::unexpected("cannot read " + path);
  std::string hex(h.size() * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), h.data(), h.size());
  hex.pop_back();
  return hex;
}

}  // namespace matthan::evidence
