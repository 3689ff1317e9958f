// The web console's HTTP surface on real daemons: sign-in, session cookie
// and CSRF, the JSON API (AdminService messages in protobuf's JSON mapping),
// /metrics, /healthz and /readyz, pausing pushes.
#include <httplib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/base/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testutil/daemons.h"
#include "tests/testutil/testutil.h"

namespace sigrelay {
namespace {

using testing::Daemon;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ServedVersion;
using testing::WaitFor;

// An HTTP client of one console; remembers the session cookie it was given.
class Browser {
 public:
  explicit Browser(const Daemon& node) {
    address_ = node.console_address();
    const size_t colon = address_.rfind(':');
    client_ = std::make_unique<httplib::Client>(address_.substr(0, colon),
                                                std::stoi(address_.substr(colon + 1)));
    client_->set_read_timeout(60, 0);
  }

  // Method, path, body; headers beyond the cookie and the CSRF token
  // (when `csrf`). Returns the status; `body` gets the answer.
  int Call(const std::string& method, const std::string& path, const std::string& in = "",
           bool csrf = true, httplib::Headers extra = {},
           const std::string& type = "application/json") {
    httplib::Headers h = std::move(extra);
    if (!cookie_.empty()) h.emplace("Cookie", cookie_);
    if (csrf && !csrf_.empty()) h.emplace("X-CSRF-Token", csrf_);
    httplib::Result r = method == "GET"   ? client_->Get(path, h)
                        : method == "PUT" ? client_->Put(path, h, in, type)
                                          : client_->Post(path, h, in, type);
    if (!r) return 0;
    body = r->body;
    headers = r->headers;
    return r->status;
  }

  int Login(const std::string& token) {
    int status = Call("POST", "/api/v1/login", absl::StrCat("{\"token\":\"", token, "\"}"));
    if (status != 200) return status;
    const std::string set = headers.find("Set-Cookie")->second;
    cookie_ = std::string(set.substr(0, set.find(';')));
    const std::string key = "\"csrfToken\":\"";
    const size_t at = body.find(key);
    EXPECT_NE(at, std::string::npos) << body;
    csrf_ = body.substr(at + key.size(), body.find('"', at + key.size()) - at - key.size());
    EXPECT_EQ(csrf_.size(), 64u) << body;
    return status;
  }

  std::string body;
  httplib::Headers headers;

 private:
  std::string address_;
  std::unique_ptr<httplib::Client> client_;
  std::string cookie_, csrf_;
};

// NAME{label="value",...} NUMBER, NAME of [a-z_] (std::regex is avoided:
// GCC 12 warns inside it under the sanitizers).
bool IsPrometheusSample(absl::string_view line) {
  size_t i = 0;
  while (i < line.size() && (absl::ascii_islower(line[i]) || line[i] == '_')) ++i;
  if (i == 0) return false;
  if (i < line.size() && line[i] == '{') {
    const size_t close = line.find('}', i);
    if (close == absl::string_view::npos) return false;
    for (absl::string_view label : absl::StrSplit(line.substr(i + 1, close - i - 1), "\",")) {
      if (label.empty()) continue;
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(label, "=\"");
      if (kv.first.empty() ||
          kv.first.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != absl::string_view::npos) {
        return false;
      }
    }
    i = close + 1;
  }
  if (i >= line.size() || line[i] != ' ') return false;
  double value;
  return absl::SimpleAtod(line.substr(i + 1), &value);
}

class ConsoleTest : public ::testing::Test {
 protected:
  std::unique_ptr<Daemon> StartOrigin(std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"--console", "127.0.0.1:0", "--chunk-size", "64KiB"});
    auto d = std::make_unique<Daemon>("sigrelay-origin", work_.File("origin"), extra);
    EXPECT_FALSE(d->address().empty()) << d->output();
    return d;
  }
  std::unique_ptr<Daemon> StartRelay(const Daemon& origin, std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"--console", "127.0.0.1:0", "--upstream", origin.address(),
                               "--origin-pubkey", origin.data_dir() + "/origin.pub", "--chunk-size",
                               "64KiB", "--max-backoff", "1s"});
    auto d = std::make_unique<Daemon>("sigrelay-relay", work_.File("relay"), extra);
    EXPECT_FALSE(d->address().empty()) << d->output();
    return d;
  }

  testing::TempDir work_;
};

TEST_F(ConsoleTest, NoCredentialsNoCsrfNoChange) {
  auto origin = StartOrigin();
  Browser anon(*origin);
  EXPECT_EQ(anon.Call("GET", "/api/v1/status"), 401);
  EXPECT_THAT(anon.body, HasSubstr("\"code\":\"UNAUTHENTICATED\""));
  EXPECT_EQ(anon.Call("PUT", "/api/v1/pushing", "{\"paused\":true}"), 401);
  EXPECT_EQ(anon.Call("GET", "/api/v1/status", "", true, {{"Authorization", "Bearer nope"}}), 401);
  EXPECT_EQ(anon.Call("POST", "/api/v1/login", "{\"token\":\"wrong\"}"), 401);
  EXPECT_EQ(anon.Call("POST", "/api/v1/login", "not json"), 400);

  Browser b(*origin);
  ASSERT_EQ(b.Login(origin->token()), 200) << b.body;
  const std::string cookie = b.headers.find("Set-Cookie")->second;
  EXPECT_THAT(cookie, HasSubstr("HttpOnly"));
  EXPECT_THAT(cookie, HasSubstr("SameSite=Strict"));
  EXPECT_THAT(cookie, HasSubstr("Path=/"));
  ASSERT_EQ(b.Call("GET", "/api/v1/status"), 200);
  EXPECT_THAT(b.body, HasSubstr("\"role\":\"origin\""));
  EXPECT_THAT(b.body, HasSubstr("\"pushesPaused\":false"));
  // The cookie alone does not change anything.
  EXPECT_EQ(b.Call("PUT", "/api/v1/pushing", "{\"paused\":true}", /*csrf=*/false), 403);
  EXPECT_THAT(b.body, HasSubstr("X-CSRF-Token"));
  // Bad bodies: 400 saying what was wrong.
  EXPECT_EQ(b.Call("PUT", "/api/v1/pushing", "{\"paused\":"), 400);
  EXPECT_THAT(b.body, HasSubstr("SetPushingRequest"));
  EXPECT_EQ(b.Call("PUT", "/api/v1/pushing", "{\"pausd\":true}"), 400);
  EXPECT_THAT(b.body, HasSubstr("pausd"));
  ASSERT_EQ(b.Call("GET", "/api/v1/status"), 200);
  EXPECT_THAT(b.body, HasSubstr("\"pushesPaused\":false"));
  // With the CSRF token it does.
  ASSERT_EQ(b.Call("PUT", "/api/v1/pushing", "{\"paused\":true}"), 200) << b.body;
  ASSERT_EQ(b.Call("GET", "/api/v1/status"), 200);
  EXPECT_THAT(b.body, HasSubstr("\"pushesPaused\":true"));
  // A huge body is refused before it is read.
  EXPECT_EQ(b.Call("PUT", "/api/v1/pushing", std::string(100 << 10, ' ')), 413);
  // Signed out, the cookie is worth nothing.
  ASSERT_EQ(b.Call("POST", "/api/v1/logout", "{}"), 200);
  EXPECT_EQ(b.Call("GET", "/api/v1/status"), 401);
  // Every refusal above was counted.
  Browser api(*origin);
  ASSERT_EQ(api.Call("GET", "/api/v1/status", "", false,
                     {{"Authorization", absl::StrCat("Bearer ", origin->token())}}),
            200);
  EXPECT_THAT(api.body, HasSubstr("\"adminRefused\":\"2\""));
  EXPECT_THAT(origin->output(), HasSubstr("refused a call from http:127.0.0.1"));
}

TEST_F(ConsoleTest, SignInsAreSlowedAfterAFewRefusals) {
  auto origin = StartOrigin();
  Browser guesser(*origin);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(guesser.Call("POST", "/api/v1/login", absl::StrCat("{\"token\":\"guess", i, "\"}")),
              401);
  }
  // Locked out for a minute, even with the right token.
  EXPECT_EQ(guesser.Login(origin->token()), 429);
  EXPECT_THAT(guesser.body, HasSubstr("wait a minute"));
}

// The relay's console: update now, schedule (kept across a restart), proxy
// (the password never comes back), metrics and readiness.
TEST_F(ConsoleTest, RelayActionsMetricsAndReadiness) {
  auto origin = StartOrigin();
  // Readiness before anything is held: a relay without a manifest is not ready.
  auto relay = StartRelay(*origin, {"--schedule", "1h"});
  Browser r(*relay);
  EXPECT_EQ(r.Call("GET", "/healthz"), 200);
  EXPECT_EQ(r.Call("GET", "/readyz"), 503);
  EXPECT_THAT(r.body, HasSubstr("no verified manifest"));

  Browser o(*origin);
  const std::string token = origin->token();
  const std::string pattern = testing::GenPattern(work_.path(), "p1", 2000, 1);
  ASSERT_EQ(o.Call("POST", "/api/v1/publish/virus", *ReadFileToString(pattern), false,
                   {{"Authorization", absl::StrCat("Bearer ", token)}}, "application/octet-stream"),
            200)
      << o.body;
  EXPECT_THAT(o.body, HasSubstr("\"version\":1"));
  ASSERT_TRUE(WaitFor([&] { return ServedVersion(relay->address(), "virus") == 1; }));
  EXPECT_EQ(r.Call("GET", "/readyz"), 200);

  ASSERT_EQ(r.Login(relay->token()), 200);
  const std::string p3 = testing::GenPattern(work_.path(), "p3", 0, 3, pattern);
  ASSERT_EQ(testing::Publish(*origin, "virus", p3), 3u);
  ASSERT_EQ(r.Call("POST", "/api/v1/update", "{}"), 200) << r.body;
  // Either the push or this call took it; the answer says what happened.
  EXPECT_THAT(r.body, HasSubstr("\"upstream\":\"" + origin->address() + "\""));

  EXPECT_EQ(r.Call("PUT", "/api/v1/schedule", "{\"period\":\"banana\"}"), 400);
  EXPECT_THAT(r.body, HasSubstr("banana"));
  ASSERT_EQ(r.Call("PUT", "/api/v1/schedule", "{\"period\":\"30m\"}"), 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr("\"scheduleSeconds\":\"1800\""));

  const std::string secret = "s3cr3t-pa55";
  ASSERT_EQ(r.Call("PUT", "/api/v1/proxy",
                   absl::StrCat("{\"url\":\"http://op:", secret, "@127.0.0.1:3128\"}")),
            200)
      << r.body;
  EXPECT_THAT(r.body, HasSubstr("127.0.0.1:3128 (with credentials)"));
  EXPECT_THAT(r.body, Not(HasSubstr(secret)));
  ASSERT_EQ(r.Call("GET", "/api/v1/status"), 200);
  EXPECT_THAT(r.body, Not(HasSubstr(secret)));
  ASSERT_EQ(r.Call("GET", "/metrics"), 200);
  EXPECT_THAT(r.body, Not(HasSubstr(secret)));
  EXPECT_THAT(relay->output(), Not(HasSubstr(secret)));
  ASSERT_EQ(r.Call("PUT", "/api/v1/proxy", "{\"url\":\"\"}"), 200);

  // Metrics: Prometheus names, the values status has.
  ASSERT_EQ(r.Call("GET", "/metrics"), 200);
  const std::string metrics = r.body;
  EXPECT_THAT(metrics, HasSubstr("sigrelay_component_version{component=\"virus\"} 3"));
  EXPECT_THAT(metrics, HasSubstr("sigrelay_manifest_freshness{state=\"fresh\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("sigrelay_downloaded_bytes_total{kind=\"incremental\"}"));
  EXPECT_THAT(metrics, HasSubstr("sigrelay_sync_duration_seconds_bucket{le=\"+Inf\"}"));
  EXPECT_THAT(metrics, HasSubstr("sigrelay_upstream_up{upstream=\"" + origin->address() + "\"} 1"));
  for (absl::string_view line : absl::StrSplit(metrics, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    EXPECT_TRUE(IsPrometheusSample(line)) << line;
    if (absl::StrContains(line, "_total")) {
      EXPECT_TRUE(absl::StrContains(line, "_total{") || absl::StrContains(line, "_total ")) << line;
    }
  }

  // The period survives a restart.
  relay->Restart();
  Browser again(*relay);
  ASSERT_EQ(again.Login(relay->token()), 200);
  ASSERT_EQ(again.Call("GET", "/api/v1/status"), 200);
  EXPECT_THAT(again.body, HasSubstr("\"scheduleSeconds\":\"1800\""));
  // The origin has no upstream: what a relay-only action answers there.
  ASSERT_EQ(o.Call("POST", "/api/v1/update", "{}", false,
                   {{"Authorization", absl::StrCat("Bearer ", token)}}),
            501);
}

// Pushing paused at the origin: a publish does not reach the relay (whose
// schedule is an hour) until pushing resumes.
TEST_F(ConsoleTest, PausedPushesWaitForResume) {
  auto origin = StartOrigin();
  const std::string p1 = testing::GenPattern(work_.path(), "p1", 2000, 1);
  ASSERT_EQ(testing::Publish(*origin, "virus", p1), 1u);
  auto relay = StartRelay(*origin, {"--schedule", "1h"});
  ASSERT_TRUE(WaitFor([&] { return ServedVersion(relay->address(), "virus") == 1; }));
  Browser o(*origin);
  const httplib::Headers bearer = {{"Authorization", "Bearer " + origin->token()}};
  ASSERT_EQ(o.Call("PUT", "/api/v1/pushing", "{\"paused\":true}", false, bearer), 200);
  ASSERT_EQ(testing::Publish(*origin, "virus", testing::GenPattern(work_.path(), "p3", 0, 3, p1)),
            3u);
  // A window to see nothing arrive (a push takes well under a second).
  EXPECT_FALSE(
      WaitFor([&] { return ServedVersion(relay->address(), "virus") == 3; }, absl::Seconds(3)));
  ASSERT_EQ(o.Call("PUT", "/api/v1/pushing", "{\"paused\":false}", false, bearer), 200);
  EXPECT_TRUE(WaitFor([&] { return ServedVersion(relay->address(), "virus") == 3; }));
}

TEST_F(ConsoleTest, MetricsCanRequireTheToken) {
  auto origin = StartOrigin({"--metrics-auth", "--log-format", "json"});
  Browser anon(*origin);
  EXPECT_EQ(anon.Call("GET", "/metrics"), 401);
  EXPECT_EQ(
      anon.Call("GET", "/metrics", "", false, {{"Authorization", "Bearer " + origin->token()}}),
      200);
  EXPECT_THAT(anon.body, HasSubstr("sigrelay_manifest_serial"));
  EXPECT_EQ(anon.Call("GET", "/metrics", "", false, {{"Authorization", "Bearer wrong"}}), 401);
  // A refusal is an event with its fields.
  EXPECT_THAT(origin->output(),
              HasSubstr("\"event\":\"admin_refused\",\"peer\":\"http:127.0.0.1:"));
  // --log-format json: every line one JSON object.
  for (absl::string_view line : absl::StrSplit(origin->output(), '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(line, "{\"ts\":\"") && absl::EndsWith(line, "}")) << line;
  }
  Daemon bad("sigrelay-origin", work_.File("bad"), {"--log-format", "xml"});
  EXPECT_TRUE(bad.address().empty());
  EXPECT_THAT(bad.output(), HasSubstr("--log-format xml: give text or json"));
}

}  // namespace
}  // namespace sigrelay
