#include "core/store/version_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/base/digest.h"
#include "core/base/file_util.h"

namespace sigrelay {
namespace {

// The store's key layout; nothing else knows it.
//   c/<sha256>                          chunk bytes (in blob files)
//   k/<sha256>                          empty: lists chunks without reading them
//   f/<component>/<be32 version>        FileRecord of a full version
//   i/<component>/<be32 to><be32 from>  FileRecord of an incremental
//   p/<name>                            FileRecord of a partial download
//   m                                   SignedManifest
constexpr char kChunkPrefix[] = "c/";
constexpr char kChunkIndexPrefix[] = "k/";
constexpr char kManifestKey[] = "m";

std::string Be32(uint32_t v) {
  char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  return std::string(b, 4);
}
uint32_t ReadBe32(absl::string_view s) {
  auto u = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[i])); };
  return u(0) << 24 | u(1) << 16 | u(2) << 8 | u(3);
}
std::string ChunkKey(absl::string_view digest) { return absl::StrCat(kChunkPrefix, digest); }
std::string ChunkIndexKey(absl::string_view digest) {
  return absl::StrCat(kChunkIndexPrefix, digest);
}
constexpr char kPartialPrefix[] = "p/";
std::string FullPrefix(absl::string_view c) { return absl::StrCat("f/", c, "/"); }
std::string FullKey(absl::string_view c, uint32_t v) { return FullPrefix(c) + Be32(v); }
std::string IncrPrefix(absl::string_view c) { return absl::StrCat("i/", c, "/"); }
std::string IncrKey(absl::string_view c, uint32_t from, uint32_t to) {
  return IncrPrefix(c) + Be32(to) + Be32(from);
}

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
    return absl::FailedPreconditionError(
        absl::StrCat(msg, " (is another sigrelay process using this data dir?)"));
  }
  return absl::InternalError(msg);
}

// Calls fn(key, value) for every key starting with `prefix`.
template <typename Fn>
absl::Status ScanPrefix(rocksdb::DB* db, const rocksdb::Snapshot* snapshot,
                        const std::string& prefix, Fn fn) {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    fn(absl::string_view(it->key().data(), it->key().size()),
       absl::string_view(it->value().data(), it->value().size()));
  }
  return FromRocks(it->status(), "scan store");
}

}  // namespace

// ---------------------------------------------------------------- StoreView

StoreView::StoreView(rocksdb::DB* db, const rocksdb::Snapshot* snapshot, ChunkCache* cache)
    : db_(db), snapshot_(snapshot), cache_(cache) {}

StoreView::~StoreView() { db_->ReleaseSnapshot(snapshot_); }

absl::StatusOr<v1::FileRecord> StoreView::GetRecord(const std::string& key) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot_;
  std::string value;
  rocksdb::Status s = db_->Get(ro, key, &value);
  if (s.IsNotFound()) return absl::NotFoundError("not stored");
  if (!s.ok()) return FromRocks(s, "read record");
  v1::FileRecord record;
  if (!record.ParseFromString(value)) {
    return absl::DataLossError("stored file record is corrupt");
  }
  return record;
}

absl::StatusOr<v1::FileRecord> StoreView::Full(absl::string_view component,
                                               uint32_t version) const {
  auto r = GetRecord(FullKey(component, version));
  if (absl::IsNotFound(r.status())) {
    return absl::NotFoundError(absl::StrCat(component, " ", version, " is not stored here"));
  }
  return r;
}

absl::StatusOr<v1::FileRecord> StoreView::Incremental(absl::string_view component, uint32_t from,
                                                      uint32_t to) const {
  auto r = GetRecord(IncrKey(component, from, to));
  if (absl::IsNotFound(r.status())) {
    return absl::NotFoundError(
        absl::StrCat("no incremental ", component, " v_", from, ".", to, " is stored here"));
  }
  return r;
}

std::vector<uint32_t> StoreView::FullVersions(absl::string_view component) const {
  std::vector<uint32_t> out;
  std::string prefix = FullPrefix(component);
  absl::Status s =
      ScanPrefix(db_, snapshot_, prefix, [&](absl::string_view key, absl::string_view) {
        if (key.size() == prefix.size() + 4) {
          out.push_back(ReadBe32(key.substr(prefix.size())));
        }
      });
  (void)s;  // a failed scan yields the versions seen so far; reads re-check
  return out;
}

absl::StatusOr<std::string> StoreView::ReadChunk(const v1::FileRecord& record, int index,
                                                 bool cache) const {
  if (index < 0 || index >= record.chunks_size()) {
    return absl::OutOfRangeError(absl::StrCat("chunk ", index, " of ", record.chunks_size()));
  }
  const std::string& digest = record.chunks(index);
  if (std::shared_ptr<const std::string> hit = cache_->Find(digest)) return *hit;
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot_;
  ro.verify_checksums = false;  // the SHA-256 below checks more
  std::string value;
  rocksdb::Status s = db_->Get(ro, ChunkKey(digest), &value);
  if (s.IsNotFound()) {
    return absl::DataLossError(absl::StrCat("chunk ", ToHex(digest), " is missing from the store"));
  }
  if (!s.ok()) return FromRocks(s, "read chunk");
  if (Sha256::Of(value) != digest) {
    return absl::DataLossError(absl::StrCat("chunk ", ToHex(digest), " is corrupt on disk"));
  }
  if (cache) cache_->Insert(digest, std::make_shared<const std::string>(value));
  return value;
}

absl::StatusOr<std::string> StoreView::ReadAll(const v1::FileRecord& record) const {
  std::string out;
  out.reserve(record.size());
  for (int i = 0; i < record.chunks_size(); ++i) {
    auto chunk = ReadChunk(record, i);
    if (!chunk.ok()) return chunk.status();
    out += *chunk;
  }
  if (out.size() != record.size() || Sha256::Of(out) != record.sha256()) {
    return absl::DataLossError("stored file does not match its digest");
  }
  return out;
}

absl::Status StoreView::CopyTo(const v1::FileRecord& record, ByteSink* sink) const {
  Sha256 sha;
  uint64_t size = 0;
  for (int i = 0; i < record.chunks_size(); ++i) {
    absl::StatusOr<std::string> chunk = ReadChunk(record, i);
    if (!chunk.ok()) return chunk.status();
    sha.Update(*chunk);
    size += chunk->size();
    if (absl::Status s = sink->Write(*chunk); !s.ok()) return s;
  }
  if (size != record.size() || sha.Finish() != record.sha256()) {
    return absl::DataLossError("stored file does not match its digest");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MappedFile>> CopyOutMapped(const StoreView& view,
                                                          const v1::FileRecord& record,
                                                          const std::string& dir,
                                                          const std::string& name) {
  absl::StatusOr<std::unique_ptr<StagedFile>> file = StagedFile::Create(dir + "/" + name, 0600);
  if (!file.ok()) return file.status();
  if (absl::Status s = view.CopyTo(record, file->get()); !s.ok()) return s;
  // Mapped under its temporary name, which goes with the StagedFile; the
  // mapping keeps the bytes until it is unmapped.
  return MappedFile::Open((*file)->temp_path());
}

// ---------------------------------------------------------------- FileWriter

struct VersionStore::FileWriter::HashState {
  Sha256 sha;
};

VersionStore::FileWriter::FileWriter(VersionStore* store, bool logged)
    : store_(store), logged_(logged), hash_(std::make_unique<HashState>()) {
  record_.set_chunk_size(store->options_.chunk_size);
}

VersionStore::FileWriter::~FileWriter() {
  for (const std::string& d : record_.chunks()) store_->Unpin(d);
}

absl::Status VersionStore::FileWriter::Append(absl::string_view data) {
  if (!hash_) return absl::FailedPreconditionError("file writer already finished");
  hash_->sha.Update(data);
  record_.set_size(record_.size() + data.size());
  const size_t chunk_size = store_->options_.chunk_size;
  while (!data.empty()) {
    if (buffer_.empty() && data.size() >= chunk_size) {
      // A whole chunk in place: no copy through the buffer.
      absl::Status s = FlushChunk(data.substr(0, chunk_size));
      if (!s.ok()) return s;
      data.remove_prefix(chunk_size);
      continue;
    }
    size_t take = std::min(chunk_size - buffer_.size(), data.size());
    buffer_.append(data.data(), take);
    data.remove_prefix(take);
    if (buffer_.size() == chunk_size) {
      absl::Status s = FlushChunk(buffer_);
      buffer_.clear();
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status VersionStore::FileWriter::FlushChunk(absl::string_view chunk) {
  std::string digest = Sha256::Of(chunk);
  store_->Pin(digest);
  record_.add_chunks(digest);
  rocksdb::WriteBatch batch;
  batch.Put(ChunkKey(digest), rocksdb::Slice(chunk.data(), chunk.size()));
  batch.Put(ChunkIndexKey(digest), "");
  store_->BeforeWrite();
  // A resumable download's chunks go through the write-ahead log (a
  // partial record names them as they come); others skip it (half the
  // bytes written and checksummed): nothing names them before a Commit,
  // which flushes them first.
  rocksdb::WriteOptions wo;
  wo.disableWAL = !logged_;
  return FromRocks(store_->db_->Write(wo, &batch), "write chunk");
}

v1::FileRecord VersionStore::FileWriter::Flushed() const {
  v1::FileRecord out = record_;
  out.set_size(record_.size() - buffer_.size());
  out.clear_sha256();
  return out;
}

absl::StatusOr<v1::FileRecord> VersionStore::FileWriter::Finish() {
  if (!hash_) return absl::FailedPreconditionError("file writer already finished");
  if (!buffer_.empty()) {
    absl::Status s = FlushChunk(buffer_);
    buffer_.clear();
    if (!s.ok()) return s;
  }
  record_.set_sha256(hash_->sha.Finish());
  hash_.reset();
  return record_;
}

// ---------------------------------------------------------------- VersionStore

VersionStore::VersionStore(std::unique_ptr<rocksdb::DB> db, const StoreOptions& options)
    : db_(std::move(db)),
      options_(options),
      cache_(std::make_unique<ChunkCache>(options.chunk_cache_bytes)) {}

VersionStore::~VersionStore() {
  if (db_) {
    rocksdb::Status s = db_->Close();
    (void)s;  // nothing left to do with a failed close at teardown
  }
}

absl::StatusOr<std::unique_ptr<VersionStore>> VersionStore::Open(const std::string& dir,
                                                                 const StoreOptions& options) {
  if (options.chunk_size < 4096 || options.chunk_size > (4u << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk size ", options.chunk_size, " is outside 4 KiB..4 MiB"));
  }
  absl::Status made = MakeDirs(dir);
  if (!made.ok()) return made;
  rocksdb::Options opts;
  opts.create_if_missing = true;
  // Chunks live in blob files: large values stay out of the LSM tree, so
  // compactions move only small keys and records.
  opts.enable_blob_files = true;
  opts.min_blob_size = 4096;
  opts.enable_blob_garbage_collection = true;
  opts.max_open_files = 256;
  // Chunks pass through the memtable before a flush moves them to blob
  // files: small memtables keep a 150 MB download from costing 128 MB of
  // RAM (RocksDB's 64 MB default, twice), at the price of more, smaller
  // flushes (a few 1 MiB chunks each).
  opts.write_buffer_size = 4 << 20;
  opts.max_write_buffer_number = 2;
  opts.level0_file_num_compaction_trigger = 4;
  opts.keep_log_file_num = 3;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opts, dir, &raw);
  if (!s.ok()) return FromRocks(s, absl::StrCat("open store ", dir));
  std::unique_ptr<VersionStore> store(new VersionStore(std::unique_ptr<rocksdb::DB>(raw), options));

  std::string value;
  s = raw->Get(rocksdb::ReadOptions(), kManifestKey, &value);
  if (s.ok()) {
    auto m = std::make_shared<v1::SignedManifest>();
    if (!m->ParseFromString(value)) {
      return absl::DataLossError(absl::StrCat("store ", dir, " holds a corrupt manifest"));
    }
    absl::MutexLock lock(&store->mu_);
    store->manifest_ = std::move(m);
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "read manifest");
  }

  // Whatever a crash left between chunk writes and their commit.
  std::vector<std::string> all_chunks;
  absl::Status scan = ScanPrefix(
      raw, nullptr, kChunkIndexPrefix,
      [&](absl::string_view key, absl::string_view) { all_chunks.emplace_back(key.substr(2)); });
  if (!scan.ok()) return scan;
  absl::Status swept = store->SweepUnreferenced(all_chunks);
  if (!swept.ok()) return swept;
  return store;
}

std::unique_ptr<VersionStore::FileWriter> VersionStore::NewFileWriter(Resumable resumable) {
  return std::unique_ptr<FileWriter>(new FileWriter(this, resumable == Resumable::kYes));
}

void VersionStore::Pin(const std::string& digest) {
  absl::MutexLock lock(&mu_);
  ++pinned_[digest];
}

void VersionStore::Unpin(const std::string& digest) {
  absl::MutexLock lock(&mu_);
  auto it = pinned_.find(digest);
  if (it != pinned_.end() && --it->second == 0) pinned_.erase(it);
}

absl::Status VersionStore::Commit(const std::vector<ComponentCommit>& components,
                                  const v1::SignedManifest& manifest) {
  absl::MutexLock commit_lock(&commit_mu_);
  rocksdb::WriteBatch batch;
  std::vector<std::string> freed;  // chunks of records this commit drops
  auto drop = [&](absl::string_view key, absl::string_view value) {
    v1::FileRecord old;
    if (old.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      for (const std::string& d : old.chunks()) freed.push_back(d);
    }
    batch.Delete(rocksdb::Slice(key.data(), key.size()));
  };
  for (const ComponentCommit& c : components) {
    if (std::find(c.retained.begin(), c.retained.end(), c.version) == c.retained.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("commit of ", c.component, " ", c.version, " does not retain itself"));
    }
    std::string fprefix = FullPrefix(c.component);
    absl::Status s = ScanPrefix(
        db_.get(), nullptr, fprefix, [&](absl::string_view key, absl::string_view value) {
          uint32_t v = ReadBe32(key.substr(fprefix.size()));
          bool keep = v != c.version &&
                      std::find(c.retained.begin(), c.retained.end(), v) != c.retained.end();
          if (!keep) drop(key, value);
        });
    if (!s.ok()) return s;
    s = ScanPrefix(db_.get(), nullptr, IncrPrefix(c.component), drop);
    if (!s.ok()) return s;
    batch.Put(FullKey(c.component, c.version), c.full.SerializeAsString());
    for (const auto& [v, record] : c.older_fulls) {
      batch.Put(FullKey(c.component, v), record.SerializeAsString());
    }
    for (const auto& [from, record] : c.incrementals) {
      batch.Put(IncrKey(c.component, from, c.version), record.SerializeAsString());
    }
  }
  batch.Put(kManifestKey, manifest.SerializeAsString());
  // A commit of files first makes their chunks durable (a re-signed
  // manifest alone names no new chunk).
  if (!components.empty()) {
    if (absl::Status durable = DurableChunks(); !durable.ok()) return durable;
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  BeforeWrite();
  absl::Status written = FromRocks(db_->Write(wo, &batch), "commit");
  if (!written.ok()) return written;

  auto current = std::make_shared<const v1::SignedManifest>(manifest);
  std::function<void(std::shared_ptr<const v1::SignedManifest>)> observer;
  {
    absl::MutexLock lock(&mu_);
    manifest_ = current;
    observer = observer_;
  }
  // The commit stands even if collection fails; the next Open retries it.
  absl::Status swept = SweepUnreferenced(freed);
  if (observer) observer(current);
  return swept;
}

absl::Status VersionStore::SweepUnreferenced(const std::vector<std::string>& candidates) {
  if (candidates.empty()) return absl::OkStatus();
  absl::flat_hash_set<std::string> referenced;
  auto mark = [&](absl::string_view, absl::string_view value) {
    v1::FileRecord record;
    if (record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      for (const std::string& d : record.chunks()) referenced.insert(d);
    }
  };
  absl::Status s = ScanPrefix(db_.get(), nullptr, "f/", mark);
  if (s.ok()) s = ScanPrefix(db_.get(), nullptr, "i/", mark);
  if (s.ok()) s = ScanPrefix(db_.get(), nullptr, kPartialPrefix, mark);
  if (!s.ok()) return s;
  rocksdb::WriteBatch batch;
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& d : candidates) {
      if (!referenced.contains(d) && !pinned_.contains(d)) {
        batch.Delete(ChunkKey(d));
        batch.Delete(ChunkIndexKey(d));
      }
    }
  }
  if (batch.Count() == 0) return absl::OkStatus();
  BeforeWrite();
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "collect chunks");
}

absl::Status VersionStore::DurableChunks() {
  return FromRocks(db_->Flush(rocksdb::FlushOptions()), "flush chunks");
}

absl::Status VersionStore::SavePartial(const std::string& name, const v1::FileRecord& partial) {
  BeforeWrite();
  return FromRocks(
      db_->Put(rocksdb::WriteOptions(), kPartialPrefix + name, partial.SerializeAsString()),
      "save partial download");
}

absl::StatusOr<std::optional<v1::FileRecord>> VersionStore::LoadPartial(const std::string& name) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), kPartialPrefix + name, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "load partial download");
  v1::FileRecord record;
  if (!record.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("partial download ", name, " is corrupt"));
  }
  return record;
}

absl::Status VersionStore::DropPartial(const std::string& name) {
  v1::FileRecord record;
  absl::StatusOr<std::optional<v1::FileRecord>> old = LoadPartial(name);
  BeforeWrite();
  absl::Status s = FromRocks(db_->Delete(rocksdb::WriteOptions(), kPartialPrefix + name),
                             "drop partial download");
  if (!s.ok() || !old.ok() || !old->has_value()) return s;
  std::vector<std::string> freed((*old)->chunks().begin(), (*old)->chunks().end());
  return SweepUnreferenced(freed);
}

absl::StatusOr<std::unique_ptr<VersionStore::FileWriter>> VersionStore::ResumeFileWriter(
    const v1::FileRecord& partial) {
  if (partial.chunk_size() != options_.chunk_size ||
      partial.size() != uint64_t{partial.chunk_size()} * partial.chunks_size()) {
    return absl::FailedPreconditionError(
        "partial download does not match this store's chunk size; starting over");
  }
  std::unique_ptr<FileWriter> writer = NewFileWriter(Resumable::kYes);
  auto view = Snapshot();
  for (int i = 0; i < partial.chunks_size(); ++i) {
    absl::StatusOr<std::string> chunk = view->ReadChunk(partial, i);
    if (!chunk.ok()) return chunk.status();
    Pin(partial.chunks(i));
    writer->record_.add_chunks(partial.chunks(i));
    writer->hash_->sha.Update(*chunk);
  }
  writer->record_.set_size(partial.size());
  return writer;
}

std::shared_ptr<const StoreView> VersionStore::Snapshot() const {
  std::shared_ptr<StoreView> view(new StoreView(db_.get(), db_->GetSnapshot(), cache_.get()));
  std::string value;
  rocksdb::ReadOptions ro;
  ro.snapshot = view->snapshot_;
  if (db_->Get(ro, kManifestKey, &value).ok()) {
    v1::SignedManifest m;
    if (m.ParseFromString(value)) view->manifest_ = std::move(m);
  }
  return view;
}

std::shared_ptr<const v1::SignedManifest> VersionStore::CurrentManifest() const {
  absl::MutexLock lock(&mu_);
  return manifest_;
}

void VersionStore::SetCommitObserver(
    std::function<void(std::shared_ptr<const v1::SignedManifest>)> observer) {
  absl::MutexLock lock(&mu_);
  observer_ = std::move(observer);
}

absl::StatusOr<uint64_t> VersionStore::ChunkCount() const {
  uint64_t n = 0;
  absl::Status s = ScanPrefix(db_.get(), nullptr, kChunkIndexPrefix,
                              [&](absl::string_view, absl::string_view) { ++n; });
  if (!s.ok()) return s;
  return n;
}

}  // namespace sigrelay
