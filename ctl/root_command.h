// `sigrelayctl root ...`: making, signing and rotating the origin's trust
// root chain (a RootChain file, see Root in update.proto). Works on files
// only; no daemon is involved.
//
//   sigrelayctl root keygen offline          # offline.key, offline.pub
//   sigrelayctl root create root.binpb --key origin.pub --key offline.pub --threshold 2
//   sigrelayctl root sign root.binpb --signing-key origin.key
//   sigrelayctl root show root.binpb
#ifndef SIGRELAY_CTL_ROOT_COMMAND_H_
#define SIGRELAY_CTL_ROOT_COMMAND_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace sigrelay {

struct RootFlags {
  std::vector<std::string> keys;  // --key: PEM public key files
  uint32_t threshold = 0;         // --threshold; 0: 1
  std::string signing_key;        // --signing-key: PEM private key file
};

// `args` is what follows "root": keygen PREFIX | create FILE | rotate FILE |
// sign FILE | show FILE.
absl::Status RootCommand(const RootFlags& flags, const std::vector<std::string>& args,
                         std::ostream& out);

}  // namespace sigrelay

#endif  // SIGRELAY_CTL_ROOT_COMMAND_H_
