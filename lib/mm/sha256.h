/* mm/sha256.h: SHA-256 (FIPS 180-4) of bytes and files, for the digests
 * stream headers record (weights files, slides OpenSlide does not hash,
 * checkpoints). Ours, so that the library needs no GLib or OpenSSL for it
 * (the device build links neither).
 * SPDX-License-Identifier: MIT */
#ifndef MM_SHA256_H
#define MM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "mm/defs.h"

typedef struct {
    uint32_t h[8];
    uint64_t len;      /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} mm_sha256;

void mm_sha256_init(mm_sha256 *s);
void mm_sha256_update(mm_sha256 *s, const void *data, size_t n);
/* The digest as 32 bytes, and as 64 lowercase hex digits + NUL in HEX (may
 * be NULL). S must be initialised again before reuse. */
void mm_sha256_final(mm_sha256 *s, uint8_t out[32], char hex[65]);

/* "sha256:HEX" of the file at PATH into OUT (at least 72 bytes).
 * @return 0, or -1 with the reason in mm_strerror(). */
int mm_sha256_file(const char *path, char *out, size_t n) MM_RESULT_USED;

#endif
