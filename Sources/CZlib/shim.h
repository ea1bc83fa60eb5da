// zlib from Debian's zlib1g-dev: gzip reading and writing of recordings.
#include <zlib.h>
