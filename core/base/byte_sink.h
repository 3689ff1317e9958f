// Where a transfer's bytes go, in order: a store file writer, a staged file
// beside its final name, memory. Every download of sigrelay writes through
// one, so bounds and verification wrap any destination the same way.
//
//   std::string bytes;
//   StringSink sink(&bytes);
//   absl::Status s = source->Fetch(want, 0, limits, &sink);
#ifndef SIGRELAY_CORE_BASE_BYTE_SINK_H_
#define SIGRELAY_CORE_BASE_BYTE_SINK_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace sigrelay {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Takes the next bytes. An error ends the transfer; what was taken before
  // it stays taken.
  virtual absl::Status Write(absl::string_view data) = 0;
};

// Appends to a string the caller owns (small bodies, tests).
class StringSink final : public ByteSink {
 public:
  explicit StringSink(std::string* out) : out_(out) {}
  absl::Status Write(absl::string_view data) override {
    out_->append(data.data(), data.size());
    return absl::OkStatus();
  }

 private:
  std::string* const out_;
};

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_BASE_BYTE_SINK_H_
