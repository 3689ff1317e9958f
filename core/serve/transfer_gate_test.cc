#include "core/serve/transfer_gate.h"

#include <vector>

#include "gtest/gtest.h"

namespace sigrelay {
namespace {

TEST(TransferGateTest, AdmitsUpToTheCapQueuesInOrderAndRefusesPastTheQueue) {
  TransferGate gate(2, 2);
  std::vector<int> started;
  uint64_t t[5] = {};
  EXPECT_EQ(gate.Enter(&t[0], [&] { started.push_back(0); }), TransferGate::Admit::kNow);
  EXPECT_EQ(gate.Enter(&t[1], [&] { started.push_back(1); }), TransferGate::Admit::kNow);
  EXPECT_EQ(gate.Enter(&t[2], [&] { started.push_back(2); }), TransferGate::Admit::kQueued);
  EXPECT_EQ(gate.Enter(&t[3], [&] { started.push_back(3); }), TransferGate::Admit::kQueued);
  EXPECT_EQ(gate.Enter(&t[4], [&] { started.push_back(4); }), TransferGate::Admit::kRefused);
  EXPECT_EQ(gate.stats().active, 2u);
  gate.Leave();
  EXPECT_EQ(started, std::vector<int>({2}));
  EXPECT_EQ(gate.stats().active, 2u) << "the slot passes to the waiting transfer";
  gate.Leave();
  gate.Leave();
  gate.Leave();
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
  ASSERT_EQ(gate.Enter(&a, [] {}), TransferGate::Admit::kNow);
  ASSERT_EQ(gate.Enter(&b, [&] { started = true; }), TransferGate::Admit::kQueued);
  EXPECT_TRUE(gate.Cancel(b));
  EXPECT_FALSE(gate.Cancel(b));
  gate.Leave();
  EXPECT_FALSE(started);
  EXPECT_EQ(gate.stats().active, 0u);
}

}  // namespace
}  // namespace sigrelay
