/*
 * I/O fault injection for tests (LD_PRELOAD): makes pwrite64(), write(), fsync(), fdatasync()
 * and ftruncate64() on files under one directory fail with EIO while a control file says so,
 * the way a failing disk answers. better-sqlite3 has no VFS hook from JavaScript; SQLite's unix
 * VFS calls these libc functions through the dynamic linker, so a preloaded library sees every
 * call it makes.
 *
 *   SEALFLOW_EIO_DIR      absolute directory whose files are affected (a prefix of the path)
 *   SEALFLOW_EIO_CONTROL  control file: absent or empty = no fault; otherwise its first line
 *                         names the calls that fail: "write", "sync" or "all"
 *   SEALFLOW_EIO_COUNT    a file this library appends one byte to per injected fault
 *
 * Test-only: built by test/integration/spool-eio.test.ts with cc into a temporary directory.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

enum { FAULT_NONE = 0, FAULT_WRITE = 1, FAULT_SYNC = 2 };

static int mode(void) {
  const char *control = getenv("SEALFLOW_EIO_CONTROL");
  if (control == NULL) return FAULT_NONE;
  char buf[16] = {0};
  int fd = open(control, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FAULT_NONE;
  ssize_t (*real_read)(int, void *, size_t) = dlsym(RTLD_NEXT, "read");
  ssize_t n = real_read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return FAULT_NONE;
  if (strncmp(buf, "all", 3) == 0) return FAULT_WRITE | FAULT_SYNC;
  if (strncmp(buf, "write", 5) == 0) return FAULT_WRITE;
  if (strncmp(buf, "sync", 4) == 0) return FAULT_SYNC;
  return FAULT_NONE;
}

/* Whether fd is a file under SEALFLOW_EIO_DIR. */
static int targeted(int fd) {
  const char *dir = getenv("SEALFLOW_EIO_DIR");
  if (dir == NULL || dir[0] == '\0') return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = '\0';
  return strncmp(path, dir, strlen(dir)) == 0;
}

static int inject(int fd, int kind) {
  if (!(mode() & kind) || !targeted(fd)) return 0;
  const char *count = getenv("SEALFLOW_EIO_COUNT");
  if (count != NULL) {
    ssize_t (*real_write)(int, const void *, size_t) = dlsym(RTLD_NEXT, "write");
    int c = open(count, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (c >= 0) {
      real_write(c, kind == FAULT_WRITE ? "w" : "s", 1);
      close(c);
    }
  }
  errno = EIO;
  return 1;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t offset) {
  static ssize_t (*real)(int, const void *, size_t, off_t);
  if (real == NULL) real = dlsym(RTLD_NEXT, "pwrite64");
  if (inject(fd, FAULT_WRITE)) return -1;
  return real(fd, buf, n, offset);
}

ssize_t write(int fd, const void *buf, size_t n) {
  static ssize_t (*real)(int, const void *, size_t);
  if (real == NULL) real = dlsym(RTLD_NEXT, "write");
  if (fd > 2 && inject(fd, FAULT_WRITE)) return -1;
  return real(fd, buf, n);
}

int ftruncate64(int fd, off_t length) {
  static int (*real)(int, off_t);
  if (real == NULL) real = dlsym(RTLD_NEXT, "ftruncate64");
  if (inject(fd, FAULT_WRITE)) return -1;
  return real(fd, length);
}

int fsync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = dlsym(RTLD_NEXT, "fsync");
  if (inject(fd, FAULT_SYNC)) return -1;
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = dlsym(RTLD_NEXT, "fdatasync");
  if (inject(fd, FAULT_SYNC)) return -1;
  return real(fd);
}
