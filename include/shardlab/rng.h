/* A counter-based random number generator: element `index` of stream `stream` under `seed` is a
 * pure function of the three, so any rank can generate exactly its shard of a parameter and get
 * the values a full initialisation would produce. */
#ifndef SHARDLAB_RNG_H
#define SHARDLAB_RNG_H

#include <stdint.h>

/* 64 well-mixed bits for (seed, stream, counter). */
uint64_t sl_rng_bits(uint64_t seed, uint64_t stream, uint64_t counter);

/* Uniform in [0, 1) with 53 random bits. */
double sl_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);

/* Standard normal (Box–Muller on two uniforms drawn from counter `index`), computed in double. */
double sl_rng_normal(uint64_t seed, uint64_t stream, uint64_t index);

/* A stream id from a name (FNV-1a 64), so streams do not shift when parameters are added. */
uint64_t sl_rng_stream_from_name(const char *name);

#endif
