// The frame index strip camsim burns into every frame's top-left corner: a row of black/white
// blocks (2 sync blocks, 20 index bits, 4 check bits) big enough to survive H.264 at 512 kbit/s.
// Latency, loss and clip boundaries are read off the video with it, not from server bookkeeping.
#pragma once

#include <cstdint>
#include <optional>

namespace matthan::camsim {

constexpr std::uint32_t kFrameCodeMax = (1u << 20) - 1;

// Block edge in pixels for a frame of this height.
int frame_code_block(int height);

// Draws the code into an 8-bit plane (luma or one channel of a packed image with `step`
// bytes between pixels).
void burn_frame_code(std::uint8_t* plane, int stride, int pixel_step, int width, int height,
                     std::uint32_t index);

// Reads the code back from a luma plane; nullopt when the strip is absent or damaged.
std::optional<std::uint32_t> read_frame_code(const std::uint8_t* luma, int stride, int width,
                                             int height);

}  // namespace matthan::camsim
