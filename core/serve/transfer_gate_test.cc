#include "core/serve/transfer_gate.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sigrelay {
namespace {

TEST(TransferGateTest, AdmitsUpToTheCapQueuesInOrderAndRefusesPastTheQueue) {
  TransferGate gate(2, 2);
  std::vector<int> started;
  uint64_t t[5] = {};
  EXPECT_EQ(gate.Enter("p", &t[0], [&] { started.push_back(0); }), TransferGate::Admit::kNow);
  EXPECT_EQ(gate.Enter("p", &t[1], [&] { started.push_back(1); }), TransferGate::Admit::kNow);
  EXPECT_EQ(gate.Enter("p", &t[2], [&] { started.push_back(2); }), TransferGate::Admit::kQueued);
  EXPECT_EQ(gate.Enter("p", &t[3], [&] { started.push_back(3); }), TransferGate::Admit::kQueued);
  EXPECT_EQ(gate.Enter("p", &t[4], [&] { started.push_back(4); }), TransferGate::Admit::kRefused);
  EXPECT_EQ(gate.stats().active, 2u);
  gate.Leave("p");
  EXPECT_EQ(started, std::vector<int>({2}));
  EXPECT_EQ(gate.stats().active, 2u) << "the slot passes to the waiting transfer";
  gate.Leave("p");
  gate.Leave("p");
  gate.Leave("p");
  EXPECT_EQ(started, std::vector<int>({2, 3}));
  EXPECT_EQ(gate.stats().active, 0u);
  EXPECT_EQ(gate.stats().peak_active, 2u);
  EXPECT_EQ(gate.stats().peak_queued, 2u);
  EXPECT_EQ(gate.stats().refused, 1u);
}

TEST(TransferGateTest, CancelledWaitersNeverStart) {
  TransferGate gate(1, 10);
  bool started = false;
  uint64_t a = 0, b = 0;
  ASSERT_EQ(gate.Enter("p", &a, [] {}), TransferGate::Admit::kNow);
  ASSERT_EQ(gate.Enter("p", &b, [&] { started = true; }), TransferGate::Admit::kQueued);
  EXPECT_TRUE(gate.Cancel(b));
  EXPECT_FALSE(gate.Cancel(b));
  gate.Leave("p");
  EXPECT_FALSE(started);
  EXPECT_EQ(gate.stats().active, 0u);
}

// One peer that opens many transfers gets its share; freed slots go to the
// waiting peers in turn, so a greedy connection queued first does not
// starve a polite one queued after it.
TEST(TransferGateTest, SlotsAreSharedFairlyBetweenPeers) {
  TransferGate gate(/*max_active=*/4, /*max_queued=*/1000, /*max_per_peer=*/2);
  std::vector<std::string> started;
  uint64_t t = 0;
  for (int i = 0; i < 50; ++i) {
    TransferGate::Admit a = gate.Enter("greedy", &t, [&] { started.push_back("greedy"); });
    EXPECT_EQ(a, i < 2 ? TransferGate::Admit::kNow : TransferGate::Admit::kQueued) << i;
  }
  // The greedy peer holds its 2; another peer still runs at once.
  EXPECT_EQ(gate.Enter("polite", &t, [] {}), TransferGate::Admit::kNow);
  EXPECT_EQ(gate.Enter("polite", &t, [] {}), TransferGate::Admit::kNow);
  EXPECT_EQ(gate.stats().active, 4u);
  // A third polite transfer waits (all 4 busy) behind 48 greedy ones, but
  // when a polite slot frees, it is the polite one that starts: greedy is at
  // its share.
  EXPECT_EQ(gate.Enter("polite", &t, [&] { started.push_back("polite"); }),
            TransferGate::Admit::kQueued);
  gate.Leave("polite");
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started.back(), "polite");
  // A greedy slot frees: the next greedy one starts.
  gate.Leave("greedy");
  EXPECT_EQ(started.back(), "greedy");
  EXPECT_EQ(gate.stats().active, 4u);
}

}  // namespace
}  // namespace sigrelay
