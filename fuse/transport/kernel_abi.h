// The FUSE kernel interface this daemon negotiates beyond Debian 12's
// <linux/fuse.h> (protocol 7.38): passthrough (7.40: its INIT flag, the
// open reply's backing id, the /dev/fuse ioctls that register a backing
// file), FUSE over io_uring (7.42), and the 7.40 layout of the INIT reply.
// Flags are guarded, so a newer header wins.
// Layouts are the kernel's UAPI; static_asserts pin the sizes.
#pragma once

#include <linux/fuse.h>

#include <cstdint>

#include <sys/ioctl.h>

#ifndef FUSE_PASSTHROUGH
#define FUSE_PASSTHROUGH (1ULL << 37)
#endif
#ifndef FOPEN_PASSTHROUGH
#define FOPEN_PASSTHROUGH (1 << 7)
#endif
#ifndef FUSE_OVER_IO_URING
#define FUSE_OVER_IO_URING (1ULL << 41)
#endif

namespace lfs::abi {

// fuse_init_out as of 7.40: max_stack_depth took the first unused word.
struct InitOut {
  uint32_t major, minor, max_readahead, flags;
  uint16_t max_background, congestion_threshold;
  uint32_t max_write, time_gran;
  uint16_t max_pages, map_alignment;
  uint32_t flags2, max_stack_depth;
  uint32_t unused[6];
};
static_assert(sizeof(InitOut) == sizeof(fuse_init_out));

// fuse_open_out as of 7.40: the padding became the backing file's id.
struct OpenOut {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};
static_assert(sizeof(OpenOut) == sizeof(fuse_open_out));

// The open flags the kernel accepts with FOPEN_PASSTHROUGH.
constexpr uint32_t kPassthroughOpenFlags =
    FOPEN_PASSTHROUGH | FOPEN_DIRECT_IO | FOPEN_NOFLUSH;

// FUSE_DEV_IOC_BACKING_OPEN registers `fd` as a backing file and returns its
// id (CAP_SYS_ADMIN in the initial user namespace); BACKING_CLOSE drops it.
struct BackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kBackingOpen = _IOW(229, 1, BackingMap);
constexpr unsigned long kBackingClose = _IOW(229, 2, uint32_t);

// FUSE over io_uring: each ring entry is a header block and a payload
// buffer, registered with the kernel by an IORING_OP_URING_CMD.
constexpr unsigned kRingInOutSize = 128;  // fuse_in_header / fuse_out_header
constexpr unsigned kRingOpSize = 128;     // the opcode's own header

struct RingEntryInOut {
  uint64_t flags;
  uint64_t commit_id;    // echoed in the commit of this request's reply
  uint32_t payload_sz;   // bytes used in the payload buffer
  uint32_t padding;
  uint64_t reserved;
};

struct RingHeader {
  char in_out[kRingInOutSize];
  char op_in[kRingOpSize];
  RingEntryInOut ring_ent_in_out;
};

enum RingCmd : uint32_t {
  kRingRegister = 1,        // hand the kernel an entry to fill
  kRingCommitAndFetch = 2,  // reply to its request, and take the next
};

// In the SQE's 80-byte command area (IORING_SETUP_SQE128).
struct RingCmdReq {
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};
static_assert(sizeof(RingCmdReq) == 24);

}  // namespace lfs::abi
