// Keeps a static tree (docs/tree.md) current with what this origin serves
// (--http-tree DIR), for any HTTP server, cache or CDN to serve: after every
// publish and every re-sign, the new blobs first, the manifest last by
// rename, blobs no longer named removed after it. It reads the store as an
// UpdateSource and writes through ExportTree, so the tree gets exactly the
// checks an export from the network gets.
//
//   TreePublisher tree(dir, store, std::move(verifier));   // runs until destroyed
#ifndef SIGRELAY_ORIGIN_TREE_PUBLISHER_H_
#define SIGRELAY_ORIGIN_TREE_PUBLISHER_H_

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "core/model/manifest.h"
#include "core/store/version_store.h"

namespace sigrelay {

class TreePublisher {
 public:
  // The store's manifest is looked at every `period`.
  // Blobs no manifest named for `keep_unnamed` are removed.
  // `current_names`: component -> NAME kept as current/NAME.
  TreePublisher(std::string dir, VersionStore* store, std::unique_ptr<ManifestVerifier> verifier,
                absl::Duration keep_unnamed, std::map<std::string, std::string> current_names = {},
                absl::Duration period = absl::Milliseconds(200));
  ~TreePublisher();

 private:
  void Loop();

  const std::string dir_;
  VersionStore* const store_;
  const std::unique_ptr<ManifestVerifier> verifier_;
  const absl::Duration keep_unnamed_;
  const std::map<std::string, std::string> current_names_;
  const absl::Duration period_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_ORIGIN_TREE_PUBLISHER_H_
