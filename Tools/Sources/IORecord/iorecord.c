// iorecord: an LD_PRELOAD shim (built as libIORecord.so) that records what a process writes to one file and when it
// flushes it, so that the states a power cut could leave can be rebuilt afterwards.
//
//   IORECORD_LOG=/tmp/run.log IORECORD_MATCH=/data.mdb LD_PRELOAD=libiorecord.so program
//
// It records every write to a file whose path ends with IORECORD_MATCH (pwrite, pwritev,
// write and writev at the descriptor's offset), every flush of it (fsync, fdatasync,
// sync_file_range with WAIT_AFTER, msync of a mapping of it is not followed: LMDB without
// MDB_WRITEMAP writes through descriptors), writes through descriptors opened with
// O_DSYNC or O_SYNC (durable when they return), and truncations. The program marks the
// points where it saw a write acknowledged with iorecord_mark(text), looked up with dlsym.
//
// Each record is written to the log with the real write under one lock, so the log's order
// is the order in which the calls completed. Record format (little-endian):
//   u8 kind ('W' write, 'S' flush, 'T' truncate, 'A' mark), u8 durable (W: O_DSYNC),
//   u64 offset (W, T: new size), u64 length, then `length` bytes (W: data, A: text).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 4096

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = -1;
static const char *match;
static size_t match_length;
// Per descriptor: 0 not tracked, 1 tracked, 2 tracked and O_DSYNC/O_SYNC.
static unsigned char tracked[MAX_FDS];

static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);

static void resolve(void) {
    if (real_write) return;
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_write = dlsym(RTLD_NEXT, "write");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_pwritev = dlsym(RTLD_NEXT, "pwritev");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_close = dlsym(RTLD_NEXT, "close");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_openat64 = dlsym(RTLD_NEXT, "openat64");
}

__attribute__((constructor)) static void start(void) {
    resolve();
    const char *path = getenv("IORECORD_LOG");
    match = getenv("IORECORD_MATCH");
    if (!match) match = "/data.mdb";
    match_length = strlen(match);
    if (path) log_fd = real_open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void write_fully(const void *bytes, size_t length) {
    const char *p = bytes;
    while (length > 0) {
        ssize_t n = real_write(log_fd, p, length);
        if (n < 0) {
            if (errno == EINTR) continue;
            abort();  // a recording with a hole would prove nothing
        }
        p += n;
        length -= (size_t)n;
    }
}

static void record(char kind, int durable, uint64_t offset, const void *bytes, uint64_t length) {
    unsigned char header[18];
    header[0] = (unsigned char)kind;
    header[1] = (unsigned char)durable;
    memcpy(header + 2, &offset, 8);
    memcpy(header + 10, &length, 8);
    write_fully(header, sizeof header);
    if (length > 0 && bytes) write_fully(bytes, length);
}

static void record_vector(int durable, uint64_t offset, const struct iovec *iov, int count, ssize_t written) {
    // The bytes actually written, which may be fewer than the vectors hold.
    uint64_t remaining = (uint64_t)written;
    unsigned char header[18];
    header[0] = 'W';
    header[1] = (unsigned char)durable;
    memcpy(header + 2, &offset, 8);
    memcpy(header + 10, &remaining, 8);
    write_fully(header, sizeof header);
    for (int i = 0; i < count && remaining > 0; i++) {
        size_t take = iov[i].iov_len < remaining ? iov[i].iov_len : remaining;
        write_fully(iov[i].iov_base, take);
        remaining -= take;
    }
}

static int is_tracked(int fd) { return log_fd >= 0 && fd >= 0 && fd < MAX_FDS && tracked[fd]; }

static void track(int fd, const char *path, int flags) {
    if (log_fd < 0 || fd < 0 || fd >= MAX_FDS || !path) return;
    size_t length = strlen(path);
    int matches = length >= match_length && strcmp(path + length - match_length, match) == 0;
    pthread_mutex_lock(&lock);
    tracked[fd] = matches ? ((flags & (O_DSYNC | O_SYNC)) ? 2 : 1) : 0;
    pthread_mutex_unlock(&lock);
}

#define OPEN_MODE(flags, mode) \
    mode_t mode = 0; \
    if ((flags) & (O_CREAT | O_TMPFILE)) { \
        va_list args; \
        va_start(args, flags); \
        mode = va_arg(args, mode_t); \
        va_end(args); \
    }

int open(const char *path, int flags, ...) {
    resolve();
    OPEN_MODE(flags, mode)
    int fd = real_open(path, flags, mode);
    track(fd, path, flags);
    return fd;
}

int open64(const char *path, int flags, ...) {
    resolve();
    OPEN_MODE(flags, mode)
    int fd = real_open64 ? real_open64(path, flags, mode) : real_open(path, flags, mode);
    track(fd, path, flags);
    return fd;
}

int openat(int dir, const char *path, int flags, ...) {
    resolve();
    OPEN_MODE(flags, mode)
    int fd = real_openat(dir, path, flags, mode);
    track(fd, path, flags);
    return fd;
}

int openat64(int dir, const char *path, int flags, ...) {
    resolve();
    OPEN_MODE(flags, mode)
    int fd = real_openat64 ? real_openat64(dir, path, flags, mode) : real_openat(dir, path, flags, mode);
    track(fd, path, flags);
    return fd;
}

int close(int fd) {
    resolve();
    if (fd >= 0 && fd < MAX_FDS && fd != log_fd) {
        pthread_mutex_lock(&lock);
        tracked[fd] = 0;
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}

static ssize_t positioned_write(ssize_t (*call)(int, const void *, size_t, off_t), int fd, const void *bytes, size_t length, off_t offset) {
    if (!is_tracked(fd)) return call(fd, bytes, length, offset);
    pthread_mutex_lock(&lock);
    ssize_t n = call(fd, bytes, length, offset);
    if (n > 0) record('W', tracked[fd] == 2, (uint64_t)offset, bytes, (uint64_t)n);
    pthread_mutex_unlock(&lock);
    return n;
}

ssize_t pwrite(int fd, const void *bytes, size_t length, off_t offset) {
    resolve();
    return positioned_write(real_pwrite, fd, bytes, length, offset);
}

ssize_t pwrite64(int fd, const void *bytes, size_t length, off_t offset) {
    resolve();
    return positioned_write(real_pwrite64 ? real_pwrite64 : real_pwrite, fd, bytes, length, offset);
}

ssize_t write(int fd, const void *bytes, size_t length) {
    resolve();
    if (!is_tracked(fd)) return real_write(fd, bytes, length);
    pthread_mutex_lock(&lock);
    off_t offset = lseek(fd, 0, SEEK_CUR);
    ssize_t n = real_write(fd, bytes, length);
    if (n > 0) record('W', tracked[fd] == 2, (uint64_t)offset, bytes, (uint64_t)n);
    pthread_mutex_unlock(&lock);
    return n;
}

ssize_t writev(int fd, const struct iovec *iov, int count) {
    resolve();
    if (!is_tracked(fd)) return real_writev(fd, iov, count);
    pthread_mutex_lock(&lock);
    off_t offset = lseek(fd, 0, SEEK_CUR);
    ssize_t n = real_writev(fd, iov, count);
    if (n > 0) record_vector(tracked[fd] == 2, (uint64_t)offset, iov, count, n);
    pthread_mutex_unlock(&lock);
    return n;
}

ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t offset) {
    resolve();
    if (!is_tracked(fd)) return real_pwritev(fd, iov, count, offset);
    pthread_mutex_lock(&lock);
    ssize_t n = real_pwritev(fd, iov, count, offset);
    if (n > 0) record_vector(tracked[fd] == 2, (uint64_t)offset, iov, count, n);
    pthread_mutex_unlock(&lock);
    return n;
}

static int flush(int (*call)(int), int fd) {
    if (!is_tracked(fd)) return call(fd);
    pthread_mutex_lock(&lock);
    int rc = call(fd);
    if (rc == 0) record('S', 0, 0, NULL, 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

int fsync(int fd) {
    resolve();
    return flush(real_fsync, fd);
}

int fdatasync(int fd) {
    resolve();
    return flush(real_fdatasync, fd);
}

int ftruncate(int fd, off_t size) {
    resolve();
    if (!is_tracked(fd)) return real_ftruncate(fd, size);
    pthread_mutex_lock(&lock);
    int rc = real_ftruncate(fd, size);
    if (rc == 0) record('T', 0, (uint64_t)size, NULL, 0);
    pthread_mutex_unlock(&lock);
    return rc;
}

// Called by the program (found with dlsym) when it has seen a write acknowledged.
void iorecord_mark(const char *text) {
    if (log_fd < 0) return;
    pthread_mutex_lock(&lock);
    record('A', 0, 0, text, strlen(text));
    pthread_mutex_unlock(&lock);
}
