/* mm/rng.h: the one random-number generator of libmmpath: xoshiro256**
 * whose four state words are the first four outputs of splitmix64 started
 * at the seed. seq-mask's views, the initialisers and dropout all draw from
 * it, so "same seed, same bits" means the same thing everywhere. The state
 * is a plain struct: copy it to save or fork a stream.
 * SPDX-License-Identifier: MIT */
#ifndef MM_RNG_H
#define MM_RNG_H

#include <stdint.h>

typedef struct { uint64_t s[4]; } mm_rng;

/* splitmix64: add 0x9E3779B97F4A7C15 to *X and mix it. */
uint64_t mm_splitmix64(uint64_t *x);
void mm_rng_seed(mm_rng *g, uint64_t seed);
uint64_t mm_rng_next(mm_rng *g);
/* Uniform integer in [0, M), M >= 1: draw x until x >= 2^64 mod M, then
 * return x mod M (unbiased). */
uint64_t mm_rng_below(mm_rng *g, uint64_t m);
/* Uniform double in [0, 1): the top 53 bits of one draw. */
double mm_rng_uniform(mm_rng *g);
/* Two standard normals by Box-Muller from u1 = 1 - U, u2 = U (two draws). */
void mm_rng_normal2(mm_rng *g, double z[2]);

#endif
