// The static tree (docs/tree.md): signed content as plain files that any
// HTTP server, cache or CDN serves, or that removable media carry.
//
//   DIR/sigrelay-tree          "sigrelay-tree 1": the layout's version
//   DIR/manifest.binpb         the SignedManifest bytes, as published
//   DIR/blobs/sha256/<hex>     every full file and incremental the manifest
//                              names, under the digest it signs; immutable
//   DIR/current/NAME           optional (--http-tree-name COMPONENT=NAME):
//                              the newest full file of COMPONENT, for HTTP
//                              clients that know nothing of sigrelay; its
//                              mtime is when it was written (the publish),
//                              rounded up to the next second, so
//                              If-Modified-Since answers 304 until the next
//                              publish
//
// UpdateSources over it (file:// and http(s)://) and its writer, which
// every producer of a tree uses (origin --http-tree, sigrelayctl export).
#ifndef SIGRELAY_CORE_CLIENT_TREE_H_
#define SIGRELAY_CORE_CLIENT_TREE_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "core/client/transfer_watch.h"
#include "core/client/update_source.h"
#include "core/model/manifest.h"
#include "sigrelay/v1/update.pb.h"

namespace sigrelay {

inline constexpr char kTreeFormatFile[] = "sigrelay-tree";
inline constexpr char kTreeManifest[] = "manifest.binpb";
inline constexpr int kTreeFormat = 1;

// OK when `text` (the sigrelay-tree file of the tree at `where`) names a
// layout this build reads; FailedPrecondition saying what to do otherwise.
absl::Status CheckTreeFormat(absl::string_view where, absl::string_view text);
// "blobs/sha256/<hex>" for a signed digest (raw bytes).
std::string TreeBlobName(const std::string& sha256);
// The digests (raw) of every blob `manifest` names: full files and their
// incrementals.
std::set<std::string> TreeBlobsOf(const v1::Manifest& manifest);

// Whether `upstream` names a tree rather than a gRPC server.
bool IsTreeUrl(const std::string& upstream);

struct TreeSourceOptions {
  // The HTTP proxy for http(s) URLs at each request ("" for none):
  // http://[user:password@]HOST:PORT.
  std::function<std::string()> proxy;
  // The CA (PEM) that signed an https server's certificate; "" for the
  // system's.
  std::string tls_ca;
  absl::Duration connect_timeout = absl::Seconds(10);
};

// An UpdateSource reading the tree at `url`: file:///PATH, http://HOST[:PORT]/PATH/
// or https://... InvalidArgument for anything else.
absl::StatusOr<std::unique_ptr<UpdateSource>> OpenTreeSource(const std::string& url,
                                                             TreeSourceOptions options = {});

// Writes what `source` serves into the tree at `dir`, verified: the
// manifest is checked against `verifier` and the tree's own manifest (no
// older serial, nothing it conflicts with); each blob the manifest names
// and the tree lacks is fetched through the checks of its signed size,
// chunks and digest into a staged name and renamed into place; the manifest
// is replaced last, by rename, so a reader never sees it name a missing
// blob; then blobs no manifest has named for `keep_unnamed` are removed (a
// reader that fetched an older manifest can still finish; each export
// stamps the blobs its manifest names). An interrupted export resumes a
// full file from its last verified chunk.
struct TreeExportOptions {
  bool full_files = true;  // false: incrementals only (media that carry
                           // updates to a site that holds the older version)
  bool incrementals = true;
  TransferLimits limits;
  absl::Duration keep_unnamed = absl::Minutes(10);
  // component -> NAME: keep current/NAME (needs full_files), written after
  // the manifest.
  std::map<std::string, std::string> current_names;
};
struct TreeExportResult {
  v1::SignedManifest manifest;
  uint64_t serial = 0;
  int blobs_written = 0;
  int blobs_kept = 0;
  int blobs_removed = 0;
  uint64_t bytes_written = 0;
};
absl::StatusOr<TreeExportResult> ExportTree(UpdateSource* source, const ManifestVerifier& verifier,
                                            const std::string& dir,
                                            const TreeExportOptions& options = {});

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CLIENT_TREE_H_
