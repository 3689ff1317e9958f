// The node's store of component versions on RocksDB.
//
// Files are split into chunks (1 MiB by default) stored under their SHA-256,
// so a transfer streams chunk by chunk with bounded memory. A version becomes
// visible in one synced WriteBatch (records + manifest) after all its chunks
// are written: a crash at any instant leaves the old state or the new one,
// never a mix. Chunks no record references are collected at Open and after
// each Commit.
//
//   auto store = VersionStore::Open(dir + "/store");
//   auto writer = (*store)->NewFileWriter();
//   writer->Append(bytes);
//   absl::StatusOr<v1::FileRecord> rec = writer->Finish();
//   (*store)->Commit({{"virus", 3, *rec, {}, {1, 3}}}, signed_manifest);
//   auto view = (*store)->Snapshot();   // consistent reads while others commit
//
// One process opens a store. Thread-safe: writes serialize on a mutex, reads
// go through snapshots.
#ifndef SIGRELAY_CORE_STORE_VERSION_STORE_H_
#define SIGRELAY_CORE_STORE_VERSION_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/base/byte_sink.h"
#include "core/base/mapped_file.h"
#include "core/store/chunk_cache.h"
#include "sigrelay/v1/store.pb.h"
#include "sigrelay/v1/update.pb.h"

namespace rocksdb {
class DB;
class Snapshot;
}  // namespace rocksdb

namespace sigrelay {

struct StoreOptions {
  uint32_t chunk_size = 1 << 20;
  // Verified chunks kept in memory for serving: the hot incrementals and
  // the few chunks of a full file that agents fetching it at once share.
  // A few chunks, not more: the cache counts in a relay's peak while it
  // rebuilds a big pattern (16 MiB here cost 12-20 MiB of RSS).
  size_t chunk_cache_bytes = 4 << 20;
};

class VersionStore;

// A consistent read-only view of the store at one instant. Holding it keeps
// what it sees readable even after later commits retire it.
class StoreView {
 public:
  ~StoreView();
  StoreView(const StoreView&) = delete;
  StoreView& operator=(const StoreView&) = delete;

  // The signed manifest in this view, or nullopt before the first commit.
  const std::optional<v1::SignedManifest>& manifest() const { return manifest_; }
  // NotFound when the version is not stored.
  absl::StatusOr<v1::FileRecord> Full(absl::string_view component, uint32_t version) const;
  absl::StatusOr<v1::FileRecord> Incremental(absl::string_view component, uint32_t from,
                                             uint32_t to) const;
  // Full versions held of `component`, ascending.
  std::vector<uint32_t> FullVersions(absl::string_view component) const;
  // Chunk `index` of `record`; DataLoss when it is missing or its bytes do
  // not match their digest. `cache`: keep it in the chunk cache (for chunks
  // served to many clients, not for one-off whole-file reads).
  absl::StatusOr<std::string> ReadChunk(const v1::FileRecord& record, int index,
                                        bool cache = false) const;
  // The whole file, checked against its digest (small files).
  absl::StatusOr<std::string> ReadAll(const v1::FileRecord& record) const;
  // The file chunk by chunk into `sink` (each chunk checked as it is read,
  // the whole digest at the end): memory is one chunk.
  absl::Status CopyTo(const v1::FileRecord& record, ByteSink* sink) const;

 private:
  friend class VersionStore;
  StoreView(rocksdb::DB* db, const rocksdb::Snapshot* snapshot, ChunkCache* cache);
  absl::StatusOr<v1::FileRecord> GetRecord(const std::string& key) const;

  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
  ChunkCache* const cache_;
  std::optional<v1::SignedManifest> manifest_;
};

// `record` copied out of the store to a file in `dir` (named after `name`,
// removed once unmapped) and mapped: for the incremental codec, which needs
// a file whole and in place, without holding it in memory.
absl::StatusOr<std::unique_ptr<MappedFile>> CopyOutMapped(const StoreView& view,
                                                          const v1::FileRecord& record,
                                                          const std::string& dir,
                                                          const std::string& name);

class VersionStore {
 public:
  // Writes the chunks of one file. Chunks are protected from collection while
  // the writer lives, so keep it until the record is committed.
  class FileWriter final : public ByteSink {
   public:
    ~FileWriter() override;
    absl::Status Append(absl::string_view data);
    absl::Status Write(absl::string_view data) override { return Append(data); }
    // The record of everything appended; the writer takes no more data.
    absl::StatusOr<v1::FileRecord> Finish();
    // The record of the whole chunks written so far (what SavePartial keeps).
    v1::FileRecord Flushed() const;

   private:
    friend class VersionStore;
    FileWriter(VersionStore* store, bool logged);
    absl::Status FlushChunk(absl::string_view chunk);

    VersionStore* store_;
    const bool logged_;  // chunks through the write-ahead log
    std::string buffer_;
    v1::FileRecord record_;
    struct HashState;
    std::unique_ptr<HashState> hash_;
  };

  // What one component's commit makes true.
  struct ComponentCommit {
    std::string component;
    uint32_t version = 0;  // the new newest
    v1::FileRecord full;
    // Incrementals from -> version; every other incremental of the component
    // is dropped (they lead to a version that is no longer the newest).
    std::vector<std::pair<uint32_t, v1::FileRecord>> incrementals;
    // Full versions to keep, `version` among them; the others are dropped.
    std::vector<uint32_t> retained;
    // Older full versions stored beside it (retained ones this node did not
    // hold: a staged rollout's previous version, which rings not yet
    // admitted take).
    std::vector<std::pair<uint32_t, v1::FileRecord>> older_fulls;
  };

  // Opens (creating if needed) the store in `dir` and collects chunks no
  // record references (left by a crash between chunk writes and commit).
  static absl::StatusOr<std::unique_ptr<VersionStore>> Open(const std::string& dir,
                                                            const StoreOptions& options = {});
  ~VersionStore();

  // A resumable writer's chunks are durable as each is written, for a
  // download that saves partial records (SavePartial) as it goes; any
  // other's become durable at the Commit that names them (fewer bytes
  // written: a rebuild, a publish).
  enum class Resumable { kNo, kYes };
  std::unique_ptr<FileWriter> NewFileWriter(Resumable resumable = Resumable::kNo);

  // Resumable downloads. A partial file is the record of the whole chunks
  // a resumable writer received so far, kept under `name` across restarts
  // until dropped; its chunks are never collected while it is kept.
  absl::Status SavePartial(const std::string& name, const v1::FileRecord& partial);
  // nullopt when nothing is kept under `name`.
  absl::StatusOr<std::optional<v1::FileRecord>> LoadPartial(const std::string& name);
  absl::Status DropPartial(const std::string& name);
  // A resumable writer that continues `partial` (re-reading its chunks to
  // restore the digest state); DataLoss when they are missing or corrupt.
  absl::StatusOr<std::unique_ptr<FileWriter>> ResumeFileWriter(const v1::FileRecord& partial);

  // Atomically applies `components` and sets `manifest`, then collects chunks
  // it left unreferenced and tells the commit observer. With no components it
  // only replaces the manifest (e.g. a re-signed one with a later expiry).
  absl::Status Commit(const std::vector<ComponentCommit>& components,
                      const v1::SignedManifest& manifest);

  std::shared_ptr<const StoreView> Snapshot() const;
  // The last committed manifest (nullptr before the first commit).
  std::shared_ptr<const v1::SignedManifest> CurrentManifest() const;

  // Called after every successful commit with the new manifest, on the
  // committing thread, outside the store's locks.
  void SetCommitObserver(std::function<void(std::shared_ptr<const v1::SignedManifest>)> observer);

  // Number of chunks stored (referenced or not); for tests and status.
  absl::StatusOr<uint64_t> ChunkCount() const;

  // Called before every write to RocksDB; tests kill the process from it.
  void TEST_SetWriteHook(std::function<void()> hook) { write_hook_ = std::move(hook); }

 private:
  VersionStore(std::unique_ptr<rocksdb::DB> db, const StoreOptions& options);
  absl::Status SweepUnreferenced(const std::vector<std::string>& candidates);
  // Makes every chunk written so far durable (a memtable flush: writers
  // that are not resumable skip the write-ahead log), before a record
  // names them.
  absl::Status DurableChunks();
  void BeforeWrite() {
    if (write_hook_) write_hook_();
  }
  void Pin(const std::string& digest);
  void Unpin(const std::string& digest);

  // Constant after construction.
  std::unique_ptr<rocksdb::DB> db_;
  const StoreOptions options_;
  std::unique_ptr<ChunkCache> cache_;
  std::function<void()> write_hook_;

  absl::Mutex commit_mu_;  // serializes Commit
  mutable absl::Mutex mu_;
  std::shared_ptr<const v1::SignedManifest> manifest_ ABSL_GUARDED_BY(mu_);
  std::function<void(std::shared_ptr<const v1::SignedManifest>)> observer_ ABSL_GUARDED_BY(mu_);
  // Chunks written by live FileWriters, with a count per writer holding them.
  absl::flat_hash_map<std::string, int> pinned_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_STORE_VERSION_STORE_H_
