#include "core/serve/transfer_gate.h"

#include <algorithm>

namespace sigrelay {

TransferGate::Admit TransferGate::Enter(const std::string& peer, uint64_t* ticket,
                                        std::function<void()> start) {
  absl::MutexLock lock(&mu_);
  Peer& p = peers_[peer];
  if (stats_.active < max_active_ && p.active < max_per_peer_ && p.waiting.empty()) {
    ++p.active;
    ++stats_.active;
    ++stats_.admitted;
    stats_.peak_active = std::max(stats_.peak_active, stats_.active);
    return Admit::kNow;
  }
  if (queued_ >= max_queued_) {
    ++stats_.refused;
    ForgetIfIdleLocked(peer);
    return Admit::kRefused;
  }
  *ticket = next_ticket_++;
  if (p.waiting.empty()) turn_.push_back(peer);
  p.waiting.push_back({*ticket, std::move(start)});
  ticket_peer_[*ticket] = peer;
  ++queued_;
  stats_.queued = queued_;
  stats_.peak_queued = std::max<uint64_t>(stats_.peak_queued, queued_);
  return Admit::kQueued;
}

bool TransferGate::TakeNextLocked(std::string* peer, Waiting* next) {
  // Each waiting peer in turn; one that is at its share waits its next turn.
  for (size_t tries = turn_.size(); tries > 0; --tries) {
    std::string candidate = std::move(turn_.front());
    turn_.pop_front();
    Peer& p = peers_[candidate];
    if (p.active >= max_per_peer_) {
      turn_.push_back(std::move(candidate));
      continue;
    }
    *next = std::move(p.waiting.front());
    p.waiting.pop_front();
    ticket_peer_.erase(next->ticket);
    if (!p.waiting.empty()) turn_.push_back(candidate);
    ++p.active;
    *peer = std::move(candidate);
    return true;
  }
  return false;
}

void TransferGate::Leave(const std::string& peer) {
  std::function<void()> start;
  {
    absl::MutexLock lock(&mu_);
    Peer& p = peers_[peer];
    if (p.active > 0) --p.active;
    --stats_.active;
    ForgetIfIdleLocked(peer);
    std::string next_peer;
    Waiting next;
    if (stats_.active < max_active_ && TakeNextLocked(&next_peer, &next)) {
      // The freed slot passes to the next peer in turn.
      ++stats_.active;
      ++stats_.admitted;
      --queued_;
      stats_.queued = queued_;
      start = std::move(next.start);
    }
  }
  if (start) start();
}

bool TransferGate::Cancel(uint64_t ticket) {
  absl::MutexLock lock(&mu_);
  auto owner = ticket_peer_.find(ticket);
  if (owner == ticket_peer_.end()) return false;
  const std::string peer = owner->second;
  ticket_peer_.erase(owner);
  Peer& p = peers_[peer];
  auto it = std::find_if(p.waiting.begin(), p.waiting.end(),
                         [&](const Waiting& w) { return w.ticket == ticket; });
  if (it != p.waiting.end()) p.waiting.erase(it);
  if (p.waiting.empty()) turn_.remove(peer);
  --queued_;
  stats_.queued = queued_;
  ForgetIfIdleLocked(peer);
  return true;
}

void TransferGate::ForgetIfIdleLocked(const std::string& peer) {
  auto it = peers_.find(peer);
  if (it != peers_.end() && it->second.active == 0 && it->second.waiting.empty()) {
    peers_.erase(it);
  }
}

TransferGate::Stats TransferGate::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace sigrelay
