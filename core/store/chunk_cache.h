// Recently read chunks, already checked against their digests, kept in
// memory up to a byte budget (least recently used out first). When ten
// thousand agents fetch the same incremental, the store reads and hashes it
// once, not ten thousand times. Chunks are addressed by their content
// digest, so a cached chunk is right for every reader. Thread-safe.
#ifndef SIGRELAY_CORE_STORE_CHUNK_CACHE_H_
#define SIGRELAY_CORE_STORE_CHUNK_CACHE_H_

#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace sigrelay {

class ChunkCache {
 public:
  explicit ChunkCache(size_t budget_bytes) : budget_(budget_bytes) {}

  // The chunk with this digest, or nullptr.
  std::shared_ptr<const std::string> Find(const std::string& digest) {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(digest);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->second;
  }

  // Keeps `bytes`, which the caller has checked against `digest`.
  void Insert(const std::string& digest, std::shared_ptr<const std::string> bytes) {
    if (bytes->size() > budget_) return;
    absl::MutexLock lock(&mu_);
    if (index_.contains(digest)) return;
    used_ += bytes->size();
    order_.emplace_front(digest, std::move(bytes));
    index_[digest] = order_.begin();
    while (used_ > budget_) {
      used_ -= order_.back().second->size();
      index_.erase(order_.back().first);
      order_.pop_back();
    }
  }

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const std::string>>;
  const size_t budget_;
  absl::Mutex mu_;
  std::list<Entry> order_ ABSL_GUARDED_BY(mu_);  // most recent first
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
  size_t used_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_STORE_CHUNK_CACHE_H_
