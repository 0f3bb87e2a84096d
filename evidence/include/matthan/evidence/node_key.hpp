// The node's Ed25519 signing key (libsodium): made on first start under <data_dir>/keys, the
// secret half readable by the owner only. Exports are signed with it; its public half and
// fingerprint are published by the API so anyone can check an export without Mắt Thần.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace matthan::evidence {

struct NodeKey {
  std::array<std::uint8_t, 32> public_key{};
  std::array<std::uint8_t, 64> secret_key{};
  std::string public_base64() const;
  std::string fingerprint() const;  // "SHA256:" + base64 of SHA-256(public key), as ssh shows
  std::string sign_base64(std::string_view message) const;
};

// <data_dir>/keys/node_ed25519.{key,pub}
std::string key_dir(const std::string& data_dir);
// Loads the key, or makes and stores one when there is none (never replaces a key).
std::expected<NodeKey, std::string> load_or_create_node_key(const std::string& data_dir);
// Loads without creating.
std::expected<NodeKey, std::string> load_node_key(const std::string& data_dir);

std::string fingerprint_of(std::string_view public_base64);
bool verify_signature(std::string_view public_base64, std::string_view message,
                      std::string_view signature_base64);

// SHA-256 as lowercase hex.
std::string sha256_hex(std::string_view data);
std::expected<std::string, std::string> sha256_file_hex(const std::string& path);

}  // namespace matthan::evidence
