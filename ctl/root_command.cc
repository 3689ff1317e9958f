#include "ctl/root_command.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/base/file_util.h"
#include "core/model/manifest.h"
#include "core/model/trust_root.h"

namespace sigrelay {
namespace {

absl::Status WriteChain(const std::string& path, const v1::RootChain& chain) {
  return WriteFileAtomically(path, chain.SerializeAsString(), 0644);
}

// A Root from --key and --threshold, signed by nobody yet.
absl::StatusOr<v1::SignedRoot> NewRoot(const RootFlags& flags, uint64_t version) {
  if (flags.keys.empty()) {
    return absl::InvalidArgumentError("give the root's keys: --key FILE.pub (repeatable)");
  }
  v1::Root root;
  root.set_version(version);
  root.set_threshold(std::max<uint32_t>(flags.threshold, 1));
  root.set_issued_unix(absl::ToUnixSeconds(absl::Now()));
  for (const std::string& path : flags.keys) {
    absl::StatusOr<std::string> pem = ReadFileToString(path);
    if (!pem.ok()) return pem.status();
    absl::StatusOr<std::string> key = RawPublicKeyFromPem(*pem);
    if (!key.ok())
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", key.status().message()));
    root.add_keys(*key);
  }
  v1::SignedRoot out;
  out.set_root(root.SerializeAsString());
  if (absl::StatusOr<TrustRoot> checked = ParseRoot(out); !checked.ok()) return checked.status();
  return out;
}

// What signs the newest root still lacks: "" when complete.
std::string Missing(const v1::RootChain& chain, int i) {
  absl::StatusOr<TrustRoot> root = ParseRoot(chain.roots(i));
  if (!root.ok()) return std::string(root.status().message());
  std::vector<std::string> lacks;
  int own = CountSignatures(*root, chain.roots(i));
  if (own < static_cast<int>(root->threshold)) {
    lacks.push_back(absl::StrCat(root->threshold - own, " more of its own keys"));
  }
  if (i > 0) {
    absl::StatusOr<TrustRoot> prev = ParseRoot(chain.roots(i - 1));
    if (!prev.ok()) return std::string(prev.status().message());
    int by_prev = CountSignatures(*prev, chain.roots(i));
    if (by_prev < static_cast<int>(prev->threshold)) {
      lacks.push_back(absl::StrCat(prev->threshold - by_prev, " more keys of v", prev->version));
    }
  }
  return absl::StrJoin(lacks, " and ");
}

absl::Status Keygen(const std::string& prefix, std::ostream& out) {
  if (FileExists(prefix + ".key")) {
    return absl::AlreadyExistsError(absl::StrCat(prefix, ".key exists; choose another name"));
  }
  absl::StatusOr<std::unique_ptr<ManifestSigner>> signer =
      ManifestSigner::LoadOrCreate(prefix + ".key", prefix + ".pub");
  if (!signer.ok()) return signer.status();
  out << "wrote " << prefix << ".key and " << prefix << ".pub ("
      << KeyFingerprint((*signer)->RawPublicKey()) << ")\n";
  return absl::OkStatus();
}

absl::Status Create(const RootFlags& flags, const std::string& path, std::ostream& out) {
  if (FileExists(path)) {
    return absl::AlreadyExistsError(
        absl::StrCat(path, " exists; `sigrelayctl root rotate` adds the next root to it"));
  }
  absl::StatusOr<v1::SignedRoot> root = NewRoot(flags, 1);
  if (!root.ok()) return root.status();
  v1::RootChain chain;
  *chain.add_roots() = std::move(*root);
  if (absl::Status s = WriteChain(path, chain); !s.ok()) return s;
  out << "wrote trust root v1 to " << path << "; it needs " << Missing(chain, 0)
      << ": `sigrelayctl root sign " << path << " --signing-key KEY`\n";
  return absl::OkStatus();
}

absl::Status Rotate(const RootFlags& flags, const std::string& path, std::ostream& out) {
  absl::StatusOr<v1::RootChain> chain = ReadRootChainFile(path);
  if (!chain.ok()) return chain.status();
  const int last = chain->roots_size() - 1;
  if (std::string lacks = Missing(*chain, last); !lacks.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the newest root in ", path, " still needs ", lacks, "; sign it first"));
  }
  absl::StatusOr<TrustRoot> newest = ParseRoot(chain->roots(last));
  if (!newest.ok()) return newest.status();
  absl::StatusOr<v1::SignedRoot> next = NewRoot(flags, newest->version + 1);
  if (!next.ok()) return next.status();
  *chain->add_roots() = std::move(*next);
  if (absl::Status s = WriteChain(path, *chain); !s.ok()) return s;
  out << "added trust root v" << newest->version + 1 << " to " << path << "; it needs "
      << Missing(*chain, last + 1) << "\n";
  return absl::OkStatus();
}

absl::Status Sign(const RootFlags& flags, const std::string& path, std::ostream& out) {
  if (flags.signing_key.empty()) {
    return absl::InvalidArgumentError("give --signing-key FILE.key");
  }
  absl::StatusOr<v1::RootChain> chain = ReadRootChainFile(path);
  if (!chain.ok()) return chain.status();
  absl::StatusOr<std::unique_ptr<ManifestSigner>> signer = ManifestSigner::Load(flags.signing_key);
  if (!signer.ok()) return signer.status();
  const std::string key = (*signer)->RawPublicKey();
  const int last = chain->roots_size() - 1;
  v1::SignedRoot* target = chain->mutable_roots(last);
  absl::StatusOr<TrustRoot> root = ParseRoot(*target);
  if (!root.ok()) return root.status();
  auto holds = [&](const TrustRoot& r) {
    return std::find(r.keys.begin(), r.keys.end(), key) != r.keys.end();
  };
  bool in_prev = false;
  if (last > 0) {
    absl::StatusOr<TrustRoot> prev = ParseRoot(chain->roots(last - 1));
    if (!prev.ok()) return prev.status();
    in_prev = holds(*prev);
  }
  // The first root may also be signed by the key nodes pin today
  // (origin.pub, root v0), so they move to it.
  if (!holds(*root) && !in_prev && last > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("key ", KeyFingerprint(key), " is in neither trust root v", root->version,
                     " nor v", root->version - 1, "; its signature would not count"));
  }
  absl::StatusOr<std::string> sig = (*signer)->SignBytes(target->root());
  if (!sig.ok()) return sig.status();
  auto* sigs = target->mutable_signatures();
  sigs->erase(std::remove_if(sigs->begin(), sigs->end(),
                             [&](const v1::RootSignature& s) { return s.key() == key; }),
              sigs->end());
  v1::RootSignature* added = target->add_signatures();
  added->set_key(key);
  added->set_signature(std::move(*sig));
  if (absl::Status s = WriteChain(path, *chain); !s.ok()) return s;
  std::string lacks = Missing(*chain, last);
  out << "signed trust root v" << root->version << " with " << KeyFingerprint(key)
      << (holds(*root) || in_prev ? "" : " (pinned as root v0 by nodes on --origin-pubkey)")
      << (lacks.empty() ? "; complete\n" : absl::StrCat("; it still needs ", lacks, "\n"));
  return absl::OkStatus();
}

absl::Status Show(const std::string& path, std::ostream& out) {
  absl::StatusOr<v1::RootChain> chain = ReadRootChainFile(path);
  if (!chain.ok()) return chain.status();
  for (int i = 0; i < chain->roots_size(); ++i) {
    absl::StatusOr<TrustRoot> root = ParseRoot(chain->roots(i));
    if (!root.ok()) return root.status();
    std::vector<std::string> keys, signers;
    for (const std::string& k : root->keys) keys.push_back(KeyFingerprint(k));
    for (const v1::RootSignature& s : chain->roots(i).signatures()) {
      signers.push_back(KeyFingerprint(s.key()));
    }
    std::string lacks = Missing(*chain, i);
    out << "root v" << root->version << ": threshold " << root->threshold << " of keys "
        << absl::StrJoin(keys, " ") << "; signed by " << absl::StrJoin(signers, " ") << "; "
        << (lacks.empty() ? "complete" : absl::StrCat("needs ", lacks)) << "\n";
  }
  TrustRoot newest;
  absl::StatusOr<v1::RootChain> verified = ReadRootChain(path, &newest);
  if (!verified.ok()) return verified.status();
  out << "the chain verifies up to root v" << newest.version << "\n";
  return absl::OkStatus();
}

}  // namespace

absl::Status RootCommand(const RootFlags& flags, const std::vector<std::string>& args,
                         std::ostream& out) {
  if (args.size() != 2) {
    return absl::InvalidArgumentError(
        "usage: sigrelayctl root keygen PREFIX | create FILE --key PUB... [--threshold N] | "
        "rotate FILE --key PUB... [--threshold N] | sign FILE --signing-key KEY | show FILE");
  }
  const std::string& sub = args[0];
  if (sub == "keygen") return Keygen(args[1], out);
  if (sub == "create") return Create(flags, args[1], out);
  if (sub == "rotate") return Rotate(flags, args[1], out);
  if (sub == "sign") return Sign(flags, args[1], out);
  if (sub == "show") return Show(args[1], out);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown root command \"", sub, "\"; keygen, create, rotate, sign or show"));
}

}  // namespace sigrelay
