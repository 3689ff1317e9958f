// Shared by version_store_test and store_crash_helper: deterministic file
// contents per (component, version) and a commit that publishes one version
// of several components at once, so a checker can recompute what must be
// stored.
#ifndef SIGRELAY_TESTS_TESTUTIL_STORE_TEST_UTIL_H_
#define SIGRELAY_TESTS_TESTUTIL_STORE_TEST_UTIL_H_

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/component.h"
#include "core/model/delta_codec.h"
#include "core/store/version_store.h"

namespace sigrelay::testing {

inline const std::vector<std::string>& TestComponents() {
  static const std::vector<std::string> kNames = {"virus", "spyware"};
  return kNames;
}

// About 20 KiB, sharing most lines with neighbouring versions.
inline std::string TestContent(const std::string& component, uint32_t version) {
  std::string out;
  for (uint32_t line = 0; line < 400; ++line) {
    uint32_t stamp = line % 37 == version % 37 ? version : 0;
    absl::StrAppend(&out, component, "-sig-", line, "-", stamp, "-", (line * 2654435761u) ^ stamp,
                    "\n");
  }
  return out;
}

inline absl::StatusOr<v1::FileRecord> PutFile(
    VersionStore* store, const std::string& bytes,
    std::vector<std::unique_ptr<VersionStore::FileWriter>>* keep) {
  keep->push_back(store->NewFileWriter());
  absl::Status s = keep->back()->Append(bytes);
  if (!s.ok()) return s;
  return keep->back()->Finish();
}

// Commits `version` of every test component with incrementals from the
// retained older versions; the manifest's serial is `version` and it lists
// each component's digest.
inline absl::Status CommitTestVersion(VersionStore* store, uint32_t version,
                                      const VersionPolicy& policy) {
  IncrementalCodec codec(1);
  std::vector<std::unique_ptr<VersionStore::FileWriter>> writers;
  std::vector<VersionStore::ComponentCommit> commits;
  v1::Manifest manifest;
  manifest.set_serial(version);
  auto view = store->Snapshot();
  for (const std::string& c : TestComponents()) {
    std::string bytes = TestContent(c, version);
    auto full = PutFile(store, bytes, &writers);
    if (!full.ok()) return full.status();
    VersionStore::ComponentCommit cc{c, version, *full, {}, {}, {}};
    cc.retained = policy.Retained(view->FullVersions(c), version);
    v1::ComponentEntry* e = manifest.add_components();
    e->set_name(c);
    e->set_version(version);
    e->set_size(full->size());
    e->set_sha256(full->sha256());
    for (uint32_t from : cc.retained) {
      if (from == version) continue;
      auto incr = codec.Encode(TestContent(c, from), bytes);
      if (!incr.ok()) return incr.status();
      auto rec = PutFile(store, *incr, &writers);
      if (!rec.ok()) return rec.status();
      cc.incrementals.emplace_back(from, *rec);
      v1::IncrementalEntry* ie = e->add_incrementals();
      ie->set_from_version(from);
      ie->set_size(rec->size());
      ie->set_sha256(rec->sha256());
    }
    commits.push_back(std::move(cc));
  }
  v1::SignedManifest signed_manifest;
  manifest.SerializeToString(signed_manifest.mutable_manifest());
  return store->Commit(commits, signed_manifest);
}

}  // namespace sigrelay::testing

#endif  // SIGRELAY_TESTS_TESTUTIL_STORE_TEST_UTIL_H_
