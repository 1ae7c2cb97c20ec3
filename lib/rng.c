/* rng.c: splitmix64 and xoshiro256** (mm/rng.h). Not for cryptography.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>

#include "mm/defs.h"
#include "mm/rng.h"

uint64_t mm_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void mm_rng_seed(mm_rng *g, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) g->s[i] = mm_splitmix64(&x);
}

uint64_t mm_rng_next(mm_rng *g)
{
    uint64_t *s = g->s;
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

uint64_t mm_rng_below(mm_rng *g, uint64_t m)
{
    MM_ASSERT(m >= 1);
    uint64_t t = (0 - m) % m, x;  /* 2^64 mod m: the biased low end */
    do x = mm_rng_next(g); while (x < t);
    return x % m;
}

double mm_rng_uniform(mm_rng *g)
{
    return (double)(mm_rng_next(g) >> 11) * 0x1p-53;
}

void mm_rng_normal2(mm_rng *g, double z[2])
{
    const double pi = 3.14159265358979323846;
    double u1 = 1 - mm_rng_uniform(g), u2 = mm_rng_uniform(g);
    double r = sqrt(-2 * log(u1)), th = 2 * pi * u2;
    z[0] = r * cos(th);
    z[1] = r * sin(th);
}
