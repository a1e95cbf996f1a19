#include "shardlab/rng.h"

#include <math.h>

/* SplitMix64's finaliser: a bijective avalanche of 64 bits. */
static uint64_t sl_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t sl_rng_bits(uint64_t seed, uint64_t stream, uint64_t counter) {
    /* Nesting the mixes keeps (seed, stream, counter) triples from colliding through simple sums.
     */
    uint64_t h = sl_mix64(counter + 0x9e3779b97f4a7c15ULL);
    h = sl_mix64(h ^ (stream * 0xd1b54a32d192ed03ULL + 0x8cb92ba72f3d8dd7ULL));
    return sl_mix64(h ^ (seed * 0xaef17502108ef2d9ULL + 0x9e3779b97f4a7c15ULL));
}

double sl_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
    return (double)(sl_rng_bits(seed, stream, counter) >> 11) * 0x1.0p-53;
}

double sl_rng_normal(uint64_t seed, uint64_t stream, uint64_t index) {
    /* Box–Muller, cosine branch only, so element `index` needs nothing but its own two draws.
     * 1 - u1 lies in (0, 1], keeping the logarithm finite. */
    double u1 = sl_rng_uniform(seed, stream, 2 * index);
    double u2 = sl_rng_uniform(seed, stream, 2 * index + 1);
    const double two_pi = 6.283185307179586476925286766559;
    return sqrt(-2.0 * log(1.0 - u1)) * cos(two_pi * u2);
}

uint64_t sl_rng_stream_from_name(const char *name) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}
