// Fetch stream reassembly as a downloader sees it: a sequence of
// FetchResponse messages from an untrusted upstream, held to a signed entry
// (FetchStreamCheck) and passed on in verified signed chunks (VerifyingWriter).
#include "core/base/digest.h"
#include "core/client/fetch_client.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> parts = sigrelay::fuzz::Split(data, size);
  if (parts.empty()) return 0;
  // The signed entry: a 300-byte file of 'a' in 64-byte chunks.
  static const sigrelay::v1::ComponentEntry entry = [] {
    sigrelay::v1::ComponentEntry e;
    const std::string file(300, 'a');
    e.set_name("virus");
    e.set_version(3);
    e.set_size(file.size());
    e.set_sha256(sigrelay::Sha256::Of(file));
    e.set_chunk_size(64);
    for (size_t at = 0; at < file.size(); at += 64) {
      e.add_chunk_sha256(sigrelay::Sha256::Of(file.substr(at, 64)));
    }
    return e;
  }();
  const uint64_t offset = static_cast<uint8_t>(parts[0].empty() ? 0 : parts[0][0]) % 5 * 64;
  sigrelay::FetchStreamCheck check(sigrelay::ExpectedBody::Full(entry), offset);
  std::string kept;
  sigrelay::StringSink sink(&kept);
  sigrelay::VerifyingWriter chunks(sigrelay::ExpectedBody::Full(entry), offset, &sink);
  for (size_t i = 1; i < parts.size(); ++i) {
    sigrelay::v1::FetchResponse m;
    if (!m.ParseFromString(parts[i])) continue;
    absl::StatusOr<absl::string_view> taken = check.Take(m);
    if (!taken.ok()) break;
    if (!chunks.Write(*taken).ok()) break;
    if (offset + kept.size() > entry.size()) __builtin_trap();  // kept more than signed
    if (kept.find_first_not_of('a') != std::string::npos) __builtin_trap();  // unverified
    if (kept.size() % 64 != 0 && offset + kept.size() != entry.size()) __builtin_trap();
  }
  (void)check.Finish();
  (void)chunks.Finish();
  return 0;
}
