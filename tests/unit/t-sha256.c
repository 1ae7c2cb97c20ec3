/* t-sha256: FIPS 180-4's SHA-256 test vectors (the NIST examples "abc",
 * the two-block message, a million 'a'), the empty string, every split
 * of a message across update calls, and mm_sha256_file against the same
 * bytes in a file.
 * SPDX-License-Identifier: MIT */
#include "config.h" /* _GNU_SOURCE: mkstemp under -std=c11 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm/sha256.h"
#include "../tap.h"

static const char *hash(const void *p, size_t n)
{
    static char hex[65];
    uint8_t d[32];
    mm_sha256 s;
    mm_sha256_init(&s);
    mm_sha256_update(&s, p, n);
    mm_sha256_final(&s, d, hex);
    return hex;
}

int main(void)
{
    is_str(hash("", 0),
           "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
           "empty message");
    is_str(hash("abc", 3),
           "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "\"abc\" (FIPS 180-4 example)");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    is_str(hash(two, strlen(two)),
           "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
           "448-bit message (two blocks)");
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    is_str(hash(a, 1000000),
           "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
           "a million 'a'");

    /* every split point of a 130-byte message gives the same digest */
    uint8_t msg[130];
    for (int i = 0; i < 130; i++) msg[i] = (uint8_t)(i * 7 + 3);
    char whole[65];
    strcpy(whole, hash(msg, sizeof msg));
    int bad = 0;
    for (size_t k = 0; k <= sizeof msg; k++) {
        mm_sha256 s;
        uint8_t d[32];
        char hex[65];
        mm_sha256_init(&s);
        mm_sha256_update(&s, msg, k);
        mm_sha256_update(&s, msg + k, sizeof msg - k);
        mm_sha256_final(&s, d, hex);
        bad += strcmp(hex, whole) != 0;
    }
    is_int(bad, 0, "any split across two updates gives the same digest");

    char path[] = "/tmp/t-sha256.XXXXXX";
    int fd = mkstemp(path);
    ok(fd >= 0 && write(fd, a, 1000000) == 1000000, "write a temporary file");
    close(fd);
    char out[80];
    ok(mm_sha256_file(path, out, sizeof out) == 0, "mm_sha256_file");
    is_str(out, "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
           "the file's digest, prefixed");
    unlink(path);
    ok(mm_sha256_file(path, out, sizeof out) == -1, "a missing file fails");
    like(mm_strerror(), path, "and names the file");
    free(a);
    return done_testing();
}
