// The type of the file system a descriptor's file is on (statfs's f_type: TMPFS_MAGIC, ...), or
// -1 when it cannot be told. Swift's Glibc module does not bring sys/vfs.h.
#include <sys/vfs.h>

static inline long flatline_filesystem_type(int descriptor) {
    struct statfs info;
    if (fstatfs(descriptor, &info) != 0) return -1;
    return (long)info.f_type;
}
