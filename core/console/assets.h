// The console's static files, compiled into the binary (embed_assets.cmake
// generates the definitions at build time): one binary, nothing to install
// beside it.
#ifndef SIGRELAY_CORE_CONSOLE_ASSETS_H_
#define SIGRELAY_CORE_CONSOLE_ASSETS_H_

#include <cstddef>
#include <string>

namespace sigrelay {

struct ConsoleAsset {
  const char* type;  // Content-Type
  const unsigned char* data;
  size_t size;
};

// The file served at "/NAME" ("" for index.html), or nullptr.
const ConsoleAsset* FindConsoleAsset(const std::string& name);

}  // namespace sigrelay

#endif  // SIGRELAY_CORE_CONSOLE_ASSETS_H_
