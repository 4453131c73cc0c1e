#include "posix_files.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

namespace ane::posix {

namespace {

std::string describe(const char* what, const std::string& path, int error) {
  return std::string(what) + " " + path + ": " + std::strerror(error);
}

int removeEntry(const char* path, const struct stat*, int, struct FTW*) {
  return ::remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

}  // namespace

bool makeDirectories(const std::string& path, std::string* error) {
  if (path.empty()) {
    *error = "mkdir: empty path";
    return false;
  }
  // Create each prefix ending before a '/', then the path itself.
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix = slash == std::string::npos ? path : path.substr(0, slash);
    if (!prefix.empty() && ::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      *error = describe("mkdir", prefix, errno);
      return false;
    }
    if (slash == std::string::npos) break;
  }
  struct stat info;
  if (::stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    *error = "mkdir " + path + ": exists and is not a directory";
    return false;
  }
  return true;
}

bool writeFile(const std::string& path, const uint8_t* bytes, size_t size, std::string* error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = describe("open", path, errno);
    return false;
  }
  size_t written = 0;
  while (written < size) {
    const ssize_t n = ::write(fd, bytes + written, size - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = describe("write", path, n < 0 ? errno : EIO);
      ::close(fd);
      return false;
    }
    written += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    *error = describe("close", path, errno);
    return false;
  }
  return true;
}

bool removeTree(const std::string& path, std::string* error) {
  struct stat info;
  if (::lstat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return true;
    *error = describe("stat", path, errno);
    return false;
  }
  if (::nftw(path.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
    *error = describe("remove", path, errno);
    return false;
  }
  return true;
}

void sleepMilliseconds(unsigned int milliseconds) {
  struct timespec remaining = {static_cast<time_t>(milliseconds / 1000),
                               static_cast<long>(milliseconds % 1000) * 1000000L};
  while (::nanosleep(&remaining, &remaining) != 0 && errno == EINTR) {
  }
}

}  // namespace ane::posix
