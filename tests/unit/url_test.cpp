#include "matthan/core/url.hpp"

#include <gtest/gtest.h>

namespace matthan {
namespace {

TEST(BrandPresets, EachBrandHasItsKnownPaths) {
  struct Case {
    Brand brand;
    const char* main;
    const char* sub;
  };
  const Case cases[] = {
      {Brand::hikvision, "rtsp://u:p@10.0.0.2/Streaming/Channels/101",
       "rtsp://u:p@10.0.0.2/Streaming/Channels/102"},
      {Brand::dahua, "rtsp://u:p@10.0.0.2/cam/realmonitor?channel=1&subtype=0",
       "rtsp://u:p@10.0.0.2/cam/realmonitor?channel=1&subtype=1"},
      {Brand::kbvision, "rtsp://u:p@10.0.0.2/cam/realmonitor?channel=1&subtype=0",
       "rtsp://u:p@10.0.0.2/cam/realmonitor?channel=1&subtype=1"},
      {Brand::imou, "rtsp://u:p@10.0.0.2/cam/realmonitor?channel=1&subtype=0",
       "rtsp://u:p@10.0.0.2/cam/realmonitor?channel=1&subtype=1"},
      {Brand::ezviz, "rtsp://u:p@10.0.0.2/h264/ch1/main/av_stream",
       "rtsp://u:p@10.0.0.2/h264/ch1/sub/av_stream"},
      {Brand::uniview, "rtsp://u:p@10.0.0.2/unicast/c1/s0/live",
       "rtsp://u:p@10.0.0.2/unicast/c1/s1/live"},
      {Brand::xmeye, "rtsp://10.0.0.2/user=u_password=p_channel=1_stream=0.sdp?real_stream",
       "rtsp://10.0.0.2/user=u_password=p_channel=1_stream=1.sdp?real_stream"},
  };
  for (const auto& c : cases) {
    const auto urls = preset_urls(c.brand, "10.0.0.2", 554, 1, "u", "p");
    ASSERT_TRUE(urls.has_value()) << to_string(c.brand);
    EXPECT_EQ(urls->main, c.main) << to_string(c.brand);
    EXPECT_EQ(urls->sub, c.sub) << to_string(c.brand);
  }
  EXPECT_FALSE(preset_urls(Brand::generic, "h", 554, 1, "", "").has_value());
}

TEST(BrandPresets, PortAndChannelAndNoCredentials) {
  const auto urls = preset_urls(Brand::hikvision, "cam.local", 8554, 3, "", "");
  EXPECT_EQ(urls->main, "rtsp://cam.local:8554/Streaming/Channels/301");
}

TEST(MaskCredentials, PasswordsNeverSurvive) {
  EXPECT_EQ(mask_credentials("rtsp://admin:S3cret@10.0.0.2/x"), "rtsp://admin:***@10.0.0.2/x");
  EXPECT_EQ(mask_credentials("failed rtsp://a:b%40c@h:554/p and rtsp://h2/q"),
            "failed rtsp://a:***@h:554/p and rtsp://h2/q");
  EXPECT_EQ(mask_credentials("rtsp://h/user=u_password=topsecret_channel=1"),
            "rtsp://h/user=u_password=***_channel=1");
  EXPECT_EQ(mask_credentials("rtsp://nobody@h/x"), "rtsp://nobody@h/x");
  // Typed unencoded, as people do: nothing of the password may show.
  EXPECT_EQ(mask_credentials("rtsp://admin:abc@123@10.0.0.2:554/x rtsp://b:c@h/y"),
            "rtsp://admin:***@10.0.0.2:554/x rtsp://b:***@h/y");
  EXPECT_EQ(mask_credentials("rtsp://h/user=u_password=top_secret_1_channel=1_stream=0.sdp"),
            "rtsp://h/user=u_password=***_channel=1_stream=0.sdp");
  EXPECT_EQ(mask_credentials("http://h/cgi?user=a&pwd=x_y&ch=1"),
            "http://h/cgi?user=a&pwd=***&ch=1");
  EXPECT_EQ(mask_credentials("rtsp://me@mail.com:pw@host/x"), "rtsp://me@mail.com:***@host/x");
  EXPECT_EQ(mask_credentials("PASSWORD=abc&x"), "PASSWORD=***&x");
  // Not credentials: the authority ends at '?', '#' and '/'.
  EXPECT_EQ(mask_credentials("http://h:8080?e=a@b"), "http://h:8080?e=a@b");
  EXPECT_EQ(mask_credentials("://x:y@z"), "://x:y@z");
  // A long line (a client's request target) is scanned, not recursed over.
  const std::string long_target =
      "GET /" + std::string(200'000, 'a') + "?password=" + std::string(200'000, 'b') + " HTTP/1.1";
  const std::string masked = mask_credentials(long_target);
  EXPECT_EQ(masked.find('b'), std::string::npos);
  EXPECT_NE(masked.find("password=*** HTTP/1.1"), std::string::npos);
}

TEST(WithCredentials, EncodesAndKeepsExisting) {
  EXPECT_EQ(with_credentials("rtsp://h/x", "a b", "p:q"), "rtsp://a%20b:p%3Aq@h/x");
  EXPECT_EQ(with_credentials("rtsp://x:y@h/x", "a", "b"), "rtsp://x:y@h/x");
  EXPECT_EQ(with_credentials("rtsp://h/x", "", "b"), "rtsp://h/x");
}

}  // namespace
}  // namespace matthan
