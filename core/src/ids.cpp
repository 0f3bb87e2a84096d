#include "matthan/core/ids.hpp"

#include <array>
#include <mutex>
#include <random>

namespace matthan {
namespace {
constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int decode_char(char c) {
  for (int i = 0; i < 32; ++i) {
    if (kAlphabet[i] == c) return i;
  }
  return -1;
}
}  // namespace

std::string make_ulid(std::int64_t now_us) {
  static std::mutex mutex;  // guards rng
  static std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  {
    std::lock_guard lock(mutex);
    hi = rng();
    lo = rng();
  }
  const auto ms = static_cast<std::uint64_t>(now_us / 1000) & ((1ULL << 48) - 1);
  // 128 bits: 48 bits time, 80 bits random (16 from hi, 64 from lo).
  std::array<std::uint8_t, 16> bytes{};
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
  bytes[6] = static_cast<std::uint8_t>(hi >> 8);
  bytes[7] = static_cast<std::uint8_t>(hi);
  for (int i = 0; i < 8; ++i) bytes[8 + i] = static_cast<std::uint8_t>(lo >> (56 - 8 * i));
  std::string out(26, '0');
  // 26 chars × 5 bits = 130 bits: the first char carries the top 3 bits.
  for (int c = 0; c < 26; ++c) {
    int value = 0;
    for (int b = 0; b < 5; ++b) {
      const int bit = c * 5 + b - 2;  // bit index into the 128-bit number, MSB first
      value <<= 1;
      if (bit >= 0) value |= (bytes[bit / 8] >> (7 - bit % 8)) & 1;
    }
    out[c] = kAlphabet[value];
  }
  return out;
}

std::int64_t ulid_time_ms(const std::string& ulid) {
  if (ulid.size() != 26) return -1;
  std::int64_t ms = 0;
  for (int c = 0; c < 10; ++c) {
    const int v = decode_char(ulid[c]);
    if (v < 0) return -1;
    ms = (ms << 5) | v;
  }
  for (int c = 10; c < 26; ++c) {
    if (decode_char(ulid[c]) < 0) return -1;
  }
  return ms;
}

}  // namespace matthan
