#include "core/client/tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/base/digest.h"
#include "core/base/file_util.h"
#include "core/base/mapped_file.h"
#include "core/client/manifest_check.h"
#include "core/client/rebuild.h"
#include "core/client/tree_http.h"

namespace sigrelay {
namespace {

constexpr size_t kReadPiece = 256 << 10;

// A tree in a directory: file:///media/usb/sigrelay.
class FileTreeSource final : public UpdateSource {
 public:
  FileTreeSource(std::string url, std::string dir) : url_(std::move(url)), dir_(std::move(dir)) {}
  std::string Describe() const override { return url_; }

 protected:
  absl::Status ReadManifest(TransferControl* control, ByteSink* out) override {
    absl::StatusOr<std::string> format = ReadFileToString(dir_ + "/" + kTreeFormatFile);
    if (!format.ok()) {
      return absl::NotFoundError(
          absl::StrCat(url_, " holds no sigrelay tree (", format.status().message(),
                       "); export one with `sigrelayctl export` or give the directory that holds ",
                       kTreeFormatFile));
    }
    if (absl::Status s = CheckTreeFormat(url_, *format); !s.ok()) return s;
    return ReadFile(dir_ + "/" + kTreeManifest, 0, control, out);
  }
  absl::Status ReadBody(const ExpectedBody& want, uint64_t offset, TransferControl* control,
                        ByteSink* out) override {
    return ReadFile(dir_ + "/" + TreeBlobName(want.sha256), offset, control, out);
  }

 private:
  absl::Status ReadFile(const std::string& path, uint64_t offset, TransferControl* control,
                        ByteSink* out) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int e = errno;
      const std::string what = absl::StrCat(url_, ": cannot open ", path, ": ", strerror(e));
      return e == ENOENT ? absl::NotFoundError(
                               absl::StrCat(what,
                                            " (the manifest names a file the tree lacks: an "
                                            "incomplete copy? export it again)"))
                         : absl::UnavailableError(what);
    }
    std::string buf(kReadPiece, '\0');
    absl::Status s;
    while (s.ok() && !control->cut()) {
      ssize_t n = pread(fd, buf.data(), buf.size(), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        s = absl::UnavailableError(
            absl::StrCat(url_, ": cannot read ", path, ": ", strerror(errno)));
        break;
      }
      if (n == 0) break;
      offset += static_cast<uint64_t>(n);
      s = out->Write(absl::string_view(buf.data(), static_cast<size_t>(n)));
    }
    close(fd);
    return s;
  }

  const std::string url_;
  const std::string dir_;
};

// Appends to a staged blob, verified by the VerifyingWriter in front.
class AppendSink final : public ByteSink {
 public:
  explicit AppendSink(int fd) : fd_(fd) {}
  absl::Status Write(absl::string_view data) override {
    while (!data.empty()) {
      ssize_t n = write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return absl::ResourceExhaustedError(absl::StrCat("write: ", strerror(errno)));
      data.remove_prefix(static_cast<size_t>(n));
      written_ += static_cast<uint64_t>(n);
    }
    return absl::OkStatus();
  }
  uint64_t written() const { return written_; }

 private:
  const int fd_;
  uint64_t written_ = 0;
};

// One blob into the tree: resumed from a staged part when one is there.
absl::Status ExportBlob(UpdateSource* source, const ExpectedBody& want, const std::string& dir,
                        const TransferLimits& limits, uint64_t* bytes) {
  const std::string final_path = dir + "/" + TreeBlobName(want.sha256);
  const std::string part = final_path + ".part";
  int fd = open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", part);
  struct stat st {};
  fstat(fd, &st);
  // Resume on a signed chunk boundary (what lies before was verified as it
  // was written); anything else starts over.
  uint64_t offset = 0;
  if (want.signed_chunks() && static_cast<uint64_t>(st.st_size) <= want.size) {
    offset = static_cast<uint64_t>(st.st_size) / want.chunk_size * want.chunk_size;
  }
  if (ftruncate(fd, static_cast<off_t>(offset)) != 0 ||
      lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
    absl::Status s = ErrnoError("cannot truncate", part);
    close(fd);
    return s;
  }
  AppendSink sink(fd);
  absl::Status s = source->Fetch(want, offset, limits, &sink);
  *bytes += sink.written();
  if (s.ok() && fsync(fd) != 0) s = ErrnoError("cannot sync", part);
  close(fd);
  if (!s.ok()) return s;
  if (offset > 0) {
    // Chunks were verified one by one; the whole is checked once more.
    absl::StatusOr<std::unique_ptr<MappedFile>> written = MappedFile::Open(part);
    if (!written.ok()) return written.status();
    if (HashMapped(**written) != want.sha256) {
      unlink(part.c_str());
      return absl::DataLossError(absl::StrCat(want.Describe(),
                                              ": the resumed file does not match its signed "
                                              "digest; discarded, export again"));
    }
  }
  if (rename(part.c_str(), final_path.c_str()) != 0) return ErrnoError("cannot rename", part);
  return absl::OkStatus();
}

// The tree's manifest, when it has one that parses.
std::optional<v1::SignedManifest> HeldManifest(const std::string& dir) {
  absl::StatusOr<std::string> bytes = ReadFileToString(dir + "/" + kTreeManifest);
  v1::SignedManifest m;
  if (!bytes.ok() || !m.ParseFromString(*bytes)) return std::nullopt;
  return m;
}

// current/NAME of the tree at `dir` made `entry`'s full file (a copy of its
// blob, replaced by rename) unless it already is. Its mtime is now rounded
// up to the next second: HTTP dates have whole seconds, and a client that
// took the previous file earlier in this same second sends an
// If-Modified-Since equal to it, which a publish-time stamp would answer
// with 304 (a version missed until the next publish; seen with freshclam).
// Rounded up, such a client at worst takes the new file twice.
absl::Status WriteCurrent(const std::string& dir, const v1::ComponentEntry& entry,
                          const std::string& name) {
  const std::string path = dir + "/current/" + name;
  if (absl::StatusOr<std::unique_ptr<MappedFile>> held = MappedFile::Open(path);
      held.ok() && HashMapped(**held) == entry.sha256()) {
    return absl::OkStatus();
  }
  const std::string blob = dir + "/" + TreeBlobName(entry.sha256());
  absl::StatusOr<std::unique_ptr<MappedFile>> from = MappedFile::Open(blob);
  if (!from.ok()) return from.status();
  if (absl::Status s = MakeDirs(dir + "/current"); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<StagedFile>> out = StagedFile::Create(path);
  if (!out.ok()) return out.status();
  MappedFile* blob_file = from->get();
  if (absl::Status s =
          WriteInPieces(blob_file->view(), out->get(), 1 << 20, IncrementalCodec::kTrimEvery,
                        [blob_file] { blob_file->Trim(); });
      !s.ok()) {
    return s;
  }
  const int64_t stamp = absl::ToUnixSeconds(absl::Now()) + 1;
  const timespec times[2] = {{stamp, 0}, {stamp, 0}};
  if (futimens((*out)->fd(), times) != 0) return ErrnoError("cannot set the time of", path);
  return (*out)->Commit();
}

}  // namespace

absl::Status CheckTreeFormat(absl::string_view where, absl::string_view text) {
  int format = 0;
  absl::string_view rest = absl::StripAsciiWhitespace(text);
  if (!absl::ConsumePrefix(&rest, "sigrelay-tree ") || !absl::SimpleAtoi(rest, &format)) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " is not a sigrelay tree (its ", kTreeFormatFile,
                     " file does not say \"sigrelay-tree N\"); point at the directory that "
                     "holds manifest.binpb"));
  }
  if (format > kTreeFormat) {
    return absl::FailedPreconditionError(absl::StrCat(where, " is a tree of layout ", format,
                                                      ", newer than this sigrelay reads (",
                                                      kTreeFormat, "); upgrade sigrelay"));
  }
  return absl::OkStatus();
}

std::string TreeBlobName(const std::string& sha256) {
  return absl::StrCat("blobs/sha256/", ToHex(sha256));
}

std::set<std::string> TreeBlobsOf(const v1::Manifest& manifest) {
  std::set<std::string> out;
  for (const v1::ComponentEntry& e : manifest.components()) {
    out.insert(e.sha256());
    for (const v1::IncrementalEntry& ie : e.incrementals()) out.insert(ie.sha256());
    // Rings not admitted to a staged version take the previous one whole.
    if (e.has_rollout() && e.rollout().previous().version() != 0) {
      out.insert(e.rollout().previous().sha256());
    }
  }
  return out;
}

bool IsTreeUrl(const std::string& upstream) {
  return absl::StartsWith(upstream, "http://") || absl::StartsWith(upstream, "https://") ||
         absl::StartsWith(upstream, "file://");
}

absl::StatusOr<std::unique_ptr<UpdateSource>> OpenTreeSource(const std::string& url,
                                                             TreeSourceOptions options) {
  absl::string_view path = url;
  if (absl::ConsumePrefix(&path, "file://")) {
    if (!absl::StartsWith(path, "/")) {
      return absl::InvalidArgumentError(
          absl::StrCat(url, ": a file URL names an absolute path: file:///media/usb/sigrelay"));
    }
    return std::unique_ptr<UpdateSource>(
        new FileTreeSource(url, std::string(absl::StripSuffix(path, "/"))));
  }
  if (absl::StartsWith(url, "http://") || absl::StartsWith(url, "https://")) {
    return MakeHttpTreeSource(url, std::move(options));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      url, " is not a tree URL: file:///PATH, http://HOST/PATH/ or https://HOST/PATH/"));
}

absl::StatusOr<TreeExportResult> ExportTree(UpdateSource* source, const ManifestVerifier& verifier,
                                            const std::string& dir,
                                            const TreeExportOptions& options) {
  if (!options.current_names.empty() && !options.full_files) {
    return absl::InvalidArgumentError(
        "--http-tree-name keeps current full files: it cannot go with --incrementals-only");
  }
  if (absl::Status s = MakeDirs(dir + "/blobs/sha256"); !s.ok()) return s;
  const std::string format_path = dir + "/" + kTreeFormatFile;
  if (absl::StatusOr<std::string> f = ReadFileToString(format_path); f.ok()) {
    if (absl::Status s = CheckTreeFormat(dir, *f); !s.ok()) return s;
  } else if (absl::Status s = WriteFileAtomically(
                 format_path, absl::StrCat("sigrelay-tree ", kTreeFormat, "\n"));
             !s.ok()) {
    return s;
  }
  absl::StatusOr<v1::SignedManifest> offered = source->Manifest(options.limits);
  if (!offered.ok()) return offered.status();
  const std::optional<v1::SignedManifest> held = HeldManifest(dir);
  absl::StatusOr<OfferedManifest> offer =
      CheckOfferedManifest(verifier, *offered, held ? &*held : nullptr, absl::Now());
  if (!offer.ok()) {
    return absl::Status(offer.status().code(),
                        absl::StrCat(source->Describe(), ": ", offer.status().message()));
  }
  TreeExportResult result;
  result.manifest = *offered;
  result.serial = offer->manifest.serial();
  for (const v1::ComponentEntry& e : offer->manifest.components()) {
    std::vector<ExpectedBody> wanted;
    if (options.full_files) wanted.push_back(ExpectedBody::Full(e));
    if (options.full_files && e.has_rollout() && e.rollout().previous().version() != 0) {
      wanted.push_back(ExpectedBody::Full(e.rollout().previous()));
    }
    if (options.incrementals) {
      for (const v1::IncrementalEntry& ie : e.incrementals()) {
        wanted.push_back(ExpectedBody::Incremental(e, ie));
      }
    }
    for (const ExpectedBody& want : wanted) {
      if (FileExists(dir + "/" + TreeBlobName(want.sha256))) {
        ++result.blobs_kept;
        continue;
      }
      if (absl::Status s = ExportBlob(source, want, dir, options.limits, &result.bytes_written);
          !s.ok()) {
        return absl::Status(s.code(), absl::StrCat(want.Describe(), " from ", source->Describe(),
                                                   ": ", s.message()));
      }
      ++result.blobs_written;
    }
  }
  // The manifest last: every blob it names (that this export carries) is in
  // place before a reader can see it.
  if (offer->newer || !held) {
    if (absl::Status s =
            WriteFileAtomically(dir + "/" + kTreeManifest, offered->SerializeAsString());
        !s.ok()) {
      return s;
    }
  }
  for (const auto& [component, name] : options.current_names) {
    const v1::ComponentEntry* e = FindEntry(offer->manifest, component);
    if (e == nullptr) continue;  // not published (yet)
    if (absl::Status s = WriteCurrent(dir, *e, name); !s.ok()) {
      return s;
    }
  }
  // The blobs this manifest names are stamped as named now; those no
  // manifest named for keep_unnamed go.
  std::set<std::string> keep;
  const std::string blobs = dir + "/blobs/sha256";
  for (const std::string& sha : TreeBlobsOf(offer->manifest)) {
    keep.insert(ToHex(sha));
    utimensat(AT_FDCWD, (dir + "/" + TreeBlobName(sha)).c_str(), nullptr, 0);
  }
  const absl::Time too_old = absl::Now() - options.keep_unnamed;
  if (DIR* d = opendir(blobs.c_str())) {
    while (dirent* ent = readdir(d)) {
      std::string name = ent->d_name;
      if (name[0] == '.') continue;
      const std::string hex(absl::StripSuffix(name, ".part"));
      struct stat st {};
      if (keep.count(hex) > 0 || stat((blobs + "/" + name).c_str(), &st) != 0 ||
          absl::TimeFromTimespec(st.st_mtim) > too_old) {
        continue;
      }
      if (unlink((blobs + "/" + name).c_str()) == 0) ++result.blobs_removed;
    }
    closedir(d);
  }
  return result;
}

}  // namespace sigrelay
