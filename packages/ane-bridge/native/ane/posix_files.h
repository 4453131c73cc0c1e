// POSIX file operations for staging the model directory (§1.3 step 6) and the load-retry pause.
// Shared by the macOS platform and the fake one, so the fake stages real files a test can read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ane::posix {

// mkdir -p `path` (mode 0700: staged programs are the user's own).
bool makeDirectories(const std::string& path, std::string* error);
// Creates or truncates `path` (mode 0600) and writes all `size` bytes.
bool writeFile(const std::string& path, const uint8_t* bytes, size_t size, std::string* error);
// rm -r `path` without following symbolic links; a missing path is success.
bool removeTree(const std::string& path, std::string* error);
void sleepMilliseconds(unsigned int milliseconds);

}  // namespace ane::posix
