#include "core/serve/agent_registry.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/base/digest.h"
#include "core/model/component.h"

namespace sigrelay {

AgentRegistry::AgentRegistry(AgentRegistryOptions options)
    : options_(options), epoch_(options.clock->Now()) {}

absl::StatusOr<AgentKey> AgentRegistry::KeyOf(const std::string& agent_id) {
  if (agent_id.empty() || agent_id.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent_id must be 1..", kMaxIdBytes, " bytes, got ", agent_id.size()));
  }
  const std::string digest = Sha256::Of(agent_id);
  AgentKey key;
  std::memcpy(key.data(), digest.data(), key.size());
  return key;
}

uint32_t AgentRegistry::NowLocked() const {
  return static_cast<uint32_t>(
      std::max<int64_t>(0, absl::ToInt64Seconds(options_.clock->Now() - epoch_)));
}

AgentRegistry::List* AgentRegistry::ListOf(State s) {
  return s == State::kStale ? &stale_ : s == State::kDisconnected ? &disconnected_ : nullptr;
}

void AgentRegistry::Unlink(uint32_t i) {
  Entry& e = entries_[i];
  List* list = ListOf(e.state);
  if (list == nullptr) return;
  (e.prev == kNone ? list->head : entries_[e.prev].next) = e.next;
  (e.next == kNone ? list->tail : entries_[e.next].prev) = e.prev;
  e.prev = e.next = kNone;
  --list->size;
}

void AgentRegistry::PushFront(uint32_t i, State s) {
  Entry& e = entries_[i];
  e.state = s;
  List* list = ListOf(s);
  if (list == nullptr) return;
  e.prev = kNone;
  e.next = list->head;
  (list->head == kNone ? list->tail : entries_[list->head].prev) = i;
  list->head = i;
  ++list->size;
}

void AgentRegistry::SetState(uint32_t i, State s) {
  Entry& e = entries_[i];
  const bool was_stale = e.state == State::kStale;
  const bool stale = s == State::kStale;
  if (was_stale != stale && e.set != kNone) {
    CountLocked(e.set, was_stale, -1);
    CountLocked(e.set, stale, +1);
  }
  if (e.state == State::kConnected) --connected_;
  Unlink(i);
  PushFront(i, s);
  if (s == State::kConnected) ++connected_;
}

uint32_t AgentRegistry::TakeSlotLocked() {
  if (!free_.empty()) {
    const uint32_t i = free_.back();
    free_.pop_back();
    return i;
  }
  if (entries_.size() < options_.max_agents) {
    entries_.emplace_back();
    return static_cast<uint32_t>(entries_.size() - 1);
  }
  // Full: forget the longest-stale agent, else the longest disconnected.
  const uint32_t victim = stale_.tail != kNone ? stale_.tail : disconnected_.tail;
  if (victim == kNone) return kNone;  // every agent has an open stream
  FreeLocked(victim);
  const uint32_t i = free_.back();
  free_.pop_back();
  return i;
}

void AgentRegistry::FreeLocked(uint32_t i) {
  Entry& e = entries_[i];
  if (e.set != kNone) {
    CountLocked(e.set, e.state == State::kStale, -1);
    ReleaseSetLocked(e.set);
  }
  if (e.state == State::kConnected) --connected_;
  Unlink(i);
  index_.erase(e.key);
  e = Entry();
  free_.push_back(i);
}

uint32_t AgentRegistry::InternLocked(VersionSet versions) {
  auto it = set_index_.find(versions);
  if (it != set_index_.end()) {
    ++sets_[it->second].refs;
    return it->second;
  }
  uint32_t id;
  if (!free_sets_.empty()) {
    id = free_sets_.back();
    free_sets_.pop_back();
  } else {
    sets_.emplace_back();
    id = static_cast<uint32_t>(sets_.size() - 1);
  }
  sets_[id].versions = versions;
  sets_[id].refs = 1;
  set_index_.emplace(std::move(versions), id);
  return id;
}

void AgentRegistry::ReleaseSetLocked(uint32_t set) {
  SetInfo& info = sets_[set];
  if (--info.refs > 0) return;
  set_index_.erase(info.versions);
  info.versions.clear();
  info.versions.shrink_to_fit();
  free_sets_.push_back(set);
}

void AgentRegistry::CountLocked(uint32_t set, bool stale, int64_t delta) {
  auto& counts = stale ? stale_counts_ : live_;
  const VersionSet& versions = sets_[set].versions;
  // Sorted: a component's ring entry (kRing) comes before its others.
  auto ring_of = [&](ComponentId id) -> uint16_t {
    for (const auto& [c, v] : versions) {
      if (c == ((id & ~kFlags) | kRing)) return static_cast<uint16_t>(v);
    }
    return 0;
  };
  for (const auto& [c, v] : versions) {
    if ((c & kFlags) == kRing) continue;
    const CountKey key(c, v, ring_of(c));
    uint64_t& n = counts[key];
    n += delta;
    if (n == 0) counts.erase(key);
  }
}

absl::Status AgentRegistry::Report(const v1::ReportStatusRequest& report) {
  absl::StatusOr<AgentKey> key = KeyOf(report.agent_id());
  if (!key.ok()) return key.status();
  return Report(*key, report.versions(), Via::kCall);
}

absl::Status AgentRegistry::Report(
    const AgentKey& key, const google::protobuf::RepeatedPtrField<v1::ComponentVersion>& versions,
    Via via) {
  if (static_cast<size_t>(versions.size()) > kMaxComponents) {
    return absl::InvalidArgumentError(
        absl::StrCat("a report lists ", versions.size(), " components; at most ", kMaxComponents));
  }
  for (const v1::ComponentVersion& cv : versions) {
    if (absl::Status s = ValidateComponentName(cv.component()); !s.ok()) return s;
  }
  absl::MutexLock lock(&mu_);
  VersionSet fresh;
  for (const v1::ComponentVersion& cv : versions) {
    if (cv.version() == 0 && cv.refused_version() == 0) continue;  // holds nothing of it
    auto id = component_ids_.find(cv.component());
    if (id == component_ids_.end()) {
      if (component_names_.size() >= kMaxComponents) continue;  // not counted
      id = component_ids_.emplace(cv.component(), component_names_.size()).first;
      component_names_.push_back(cv.component());
    }
    // Version 0: not an agent "at 0".
    if (cv.version() != 0) {
      fresh.emplace_back(id->second, cv.version());
      const ComponentId health = cv.health() == v1::HEALTH_HEALTHY     ? kHealthy
                                 : cv.health() == v1::HEALTH_UNHEALTHY ? kUnhealthy
                                                                       : 0;
      if (health != 0) fresh.emplace_back(id->second | health, cv.version());
    }
    if (!cv.ring().empty() && cv.ring().size() <= 32) {
      auto ring = ring_ids_.find(cv.ring());
      if (ring == ring_ids_.end() && ring_names_.size() <= kMaxRings) {
        ring = ring_ids_.emplace(cv.ring(), ring_names_.size()).first;
        ring_names_.push_back(cv.ring());
      }
      if (ring != ring_ids_.end()) fresh.emplace_back(id->second | kRing, ring->second);
    }
    if (cv.refused_version() != 0) {
      const std::pair<ComponentId, uint32_t> refused(id->second | kRefused, cv.refused_version());
      fresh.push_back(refused);
      auto reason = reasons_.find(refused);
      if (reason == reasons_.end() && reasons_.size() < kMaxReasons) {
        reason = reasons_.emplace(refused, std::string()).first;
      }
      if (reason != reasons_.end()) reason->second = cv.refused_reason().substr(0, kMaxReasonBytes);
    }
  }
  std::sort(fresh.begin(), fresh.end());
  fresh.erase(std::unique(fresh.begin(), fresh.end(),
                          [](const auto& a, const auto& b) { return a.first == b.first; }),
              fresh.end());
  auto it = index_.find(key);
  uint32_t i;
  if (it != index_.end()) {
    i = it->second;
    Entry& e = entries_[i];
    if (e.set != kNone) {
      CountLocked(e.set, e.state == State::kStale, -1);
      ReleaseSetLocked(e.set);
    }
    e.set = kNone;
  } else {
    i = TakeSlotLocked();
    if (i == kNone) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the agent registry holds ", options_.max_agents,
          " agents with open streams; this report is not recorded (raise --max-agents)"));
    }
    entries_[i].key = key;
    entries_[i].state = State::kFree;
    index_[key] = i;
  }
  Entry& e = entries_[i];
  e.set = InternLocked(std::move(fresh));
  e.heard = NowLocked();
  if (via == Via::kStreamOpened) ++e.streams;
  // Counted where the entry is now; SetState moves the counts from stale to
  // live when it comes back.
  CountLocked(e.set, e.state == State::kStale, +1);
  SetState(i, e.streams > 0 ? State::kConnected : State::kDisconnected);
  return absl::OkStatus();
}

void AgentRegistry::StreamEnded(const AgentKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return;
  Entry& e = entries_[it->second];
  if (e.streams == 0) return;
  if (--e.streams > 0) return;
  e.heard = NowLocked();
  SetState(it->second, State::kDisconnected);
}

void AgentRegistry::Sweep() {
  absl::MutexLock lock(&mu_);
  const uint32_t now = NowLocked();
  const int64_t after = absl::ToInt64Seconds(options_.stale_after);
  while (disconnected_.tail != kNone &&
         static_cast<int64_t>(entries_[disconnected_.tail].heard) + after <= now) {
    SetState(disconnected_.tail, State::kStale);
  }
}

size_t AgentRegistry::AgentCount() const {
  absl::MutexLock lock(&mu_);
  return connected_ + disconnected_.size;
}

size_t AgentRegistry::StaleCount() const {
  absl::MutexLock lock(&mu_);
  return stale_.size;
}

std::map<std::string, std::map<uint32_t, uint64_t>> AgentRegistry::CountsLocked(
    bool stale, ComponentId flag) const {
  std::map<std::string, std::map<uint32_t, uint64_t>> out;
  for (const auto& [key, n] : stale ? stale_counts_ : live_) {
    const auto& [c, v, ring] = key;
    if ((c & kFlags) != flag) continue;
    out[component_names_[c & ~kFlags]][v] += n;
  }
  return out;
}

std::vector<v1::FleetCount> AgentRegistry::Fleet() const {
  absl::MutexLock lock(&mu_);
  std::map<std::tuple<std::string, uint32_t, std::string>, v1::FleetCount> by_version;
  for (const auto& [key, n] : live_) {
    const auto& [id, version, ring] = key;
    const std::string& name = component_names_[id & ~kFlags];
    v1::FleetCount& c = by_version[{name, version, ring_names_[ring]}];
    c.set_component(name);
    c.set_version(version);
    c.set_ring(ring_names_[ring]);
    switch (id & kFlags) {
      case 0:
        c.set_agents(n);
        break;
      case kHealthy:
        c.set_healthy(n);
        break;
      case kUnhealthy:
        c.set_unhealthy(n);
        break;
      case kRefused:
        c.set_refused(n);
        break;
    }
  }
  std::vector<v1::FleetCount> out;
  for (auto& [key, c] : by_version) out.push_back(std::move(c));
  return out;
}

std::map<std::string, std::map<uint32_t, std::pair<uint64_t, std::string>>>
AgentRegistry::RefusedCounts() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::map<uint32_t, std::pair<uint64_t, std::string>>> out;
  for (const auto& [key, n] : live_) {
    const auto& [id, version, ring] = key;
    if ((id & kFlags) != kRefused) continue;
    auto reason = reasons_.find({id, version});
    auto& [count, why] = out[component_names_[id & ~kFlags]][version];
    count += n;
    why = reason == reasons_.end() ? "" : reason->second;
  }
  return out;
}

std::map<std::string, std::map<uint32_t, uint64_t>> AgentRegistry::VersionCounts() const {
  absl::MutexLock lock(&mu_);
  return CountsLocked(false);
}

std::map<std::string, std::map<uint32_t, uint64_t>> AgentRegistry::StaleVersionCounts() const {
  absl::MutexLock lock(&mu_);
  return CountsLocked(true);
}

size_t AgentRegistry::MemoryBytes() const {
  absl::MutexLock lock(&mu_);
  size_t bytes = entries_.capacity() * sizeof(Entry) + free_.capacity() * sizeof(uint32_t) +
                 index_.capacity() * (sizeof(std::pair<AgentKey, uint32_t>) + 1);
  for (const SetInfo& s : sets_) bytes += sizeof(SetInfo) + s.versions.capacity() * 8;
  return bytes;
}

}  // namespace sigrelay
