#include "origin/tree_publisher.h"

#include "absl/strings/str_cat.h"
#include "core/base/log.h"
#include "core/client/tree.h"
#include "core/client/update_source.h"

namespace sigrelay {
namespace {

// The store as an UpdateSource: its signed manifest, and each body chunk
// by chunk (each chunk checked against its digest as it is read).
class StoreSource final : public UpdateSource {
 public:
  explicit StoreSource(VersionStore* store) : store_(store) {}
  std::string Describe() const override { return "this origin's store"; }

 protected:
  absl::Status ReadManifest(TransferControl*, ByteSink* out) override {
    std::shared_ptr<const v1::SignedManifest> m = store_->CurrentManifest();
    if (m == nullptr) return absl::NotFoundError("nothing published yet");
    return out->Write(m->SerializeAsString());
  }
  absl::Status ReadBody(const ExpectedBody& want, uint64_t offset, TransferControl* control,
                        ByteSink* out) override {
    std::shared_ptr<const StoreView> view = store_->Snapshot();
    absl::StatusOr<v1::FileRecord> record =
        want.kind == v1::PAYLOAD_KIND_INCREMENTAL
            ? view->Incremental(want.component, want.from_version, want.version)
            : view->Full(want.component, want.version);
    if (!record.ok()) return record.status();
    if (record->chunk_size() == 0) return absl::DataLossError("a stored file without chunks");
    for (int i = static_cast<int>(offset / record->chunk_size());
         i < record->chunks_size() && !control->cut(); ++i) {
      absl::StatusOr<std::string> chunk = view->ReadChunk(*record, i);
      if (!chunk.ok()) return chunk.status();
      absl::string_view data = *chunk;
      const uint64_t start = static_cast<uint64_t>(i) * record->chunk_size();
      if (offset > start) data.remove_prefix(offset - start);
      if (absl::Status s = out->Write(data); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  VersionStore* const store_;
};

}  // namespace

TreePublisher::TreePublisher(std::string dir, VersionStore* store,
                             std::unique_ptr<ManifestVerifier> verifier,
                             absl::Duration keep_unnamed,
                             std::map<std::string, std::string> current_names,
                             absl::Duration period)
    : dir_(std::move(dir)),
      store_(store),
      verifier_(std::move(verifier)),
      keep_unnamed_(keep_unnamed),
      current_names_(std::move(current_names)),
      period_(period) {
  thread_ = std::thread([this] { Loop(); });
}

TreePublisher::~TreePublisher() {
  stop_.Notify();
  thread_.join();
}

void TreePublisher::Loop() {
  StoreSource source(store_);
  std::shared_ptr<const v1::SignedManifest> written;
  std::string last_error;
  TreeExportOptions options;
  options.limits.stop = &stop_;
  options.keep_unnamed = keep_unnamed_;
  options.current_names = current_names_;
  do {
    std::shared_ptr<const v1::SignedManifest> current = store_->CurrentManifest();
    if (current == nullptr || current == written) continue;
    absl::StatusOr<TreeExportResult> r = ExportTree(&source, *verifier_, dir_, options);
    if (!r.ok()) {
      if (std::string(r.status().message()) != last_error) {
        last_error = std::string(r.status().message());
        Log(LogLevel::kError,
            absl::StrCat("--http-tree ", dir_, ": ", last_error, "; trying again"),
            {{"event", "tree_failed"}});
      }
      continue;
    }
    last_error.clear();
    written = current;
    Log(LogLevel::kInfo,
        absl::StrCat("--http-tree ", dir_, ": manifest serial ", r->serial, " in place (",
                     r->blobs_written, " files written, ", r->blobs_removed, " removed)"),
        {{"event", "tree_written"}});
  } while (!stop_.WaitForNotificationWithTimeout(period_));
}

}  // namespace sigrelay
