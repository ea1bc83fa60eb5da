#ifndef CLAPACK_SHIM_H
#define CLAPACK_SHIM_H

// Debian: cblas.h lives in the multiarch directory /usr/include/x86_64-linux-gnu (an
// update-alternatives link to netlib's or OpenBLAS's header); lapacke.h lives in /usr/include.
// Both are on clang's default search path, so no -I flags are needed. CBLAS symbols come from
// libblas.so.3 (Debian has no separate libcblas), LAPACKE symbols from liblapacke.so.3.
#include <cblas.h>
#include <lapacke.h>

#endif
