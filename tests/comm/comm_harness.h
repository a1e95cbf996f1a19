/* Helpers of the comm tests: reproducible per-rank inputs, the sequential reference of one
 * reduced element written out plainly from DESIGN.md §4.4–§4.5 (independently of impl/comm). The
 * runner of `shardlab launch` is tests/support's. */
#ifndef SHARDLAB_TESTS_COMM_HARNESS_H
#define SHARDLAB_TESTS_COMM_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shardlab/comm.h"

/* Element i of rank `rank`'s input of test case `case_id`: a value of dt (returned widened),
 * the same on every process, spread over [-8, 8) × 2^[-4, 4] so that sums round. */
float sl_test_input(uint64_t seed, int rank, int case_id, size_t i, sl_dtype dt);
/* buf (storage dtype) [i] = sl_test_input(seed, rank, case_id, first + i, dt) for i < n. */
void sl_test_fill(void *buf, size_t n, sl_dtype dt, uint64_t seed, int rank, int case_id,
                  size_t first);
/* Element i of a storage buffer, widened. */
float sl_test_get(const void *buf, size_t i, sl_dtype dt);

/* The reduced value of one element: x[r] is rank r's value (r < n, in rank order); pre divide,
 * sequential sum with every addition rounded to dt, post operation — divide_world, divide and the
 * skip flags of o as sl_comm_opts define them. */
float sl_test_reduce_ref(const float *x, int n, sl_dtype dt, const sl_comm_opts *o);

/* Hybrid sharding's order (DESIGN.md §4.4; ranks = replica·g + shard_rank): each group of g
 * consecutive ranks sums in order after the pre divide, the groups' sums are added in replica
 * order, then the post operation; every step rounded to dt. */
float sl_test_reduce_hybrid_ref(const float *x, int n, int g, sl_dtype dt, const sl_comm_opts *o);

/* comm_worker.c: the per-rank program of the multi-process tests; argv[0] names the scenario
 * (collectives SEED, hybrid SEED, mismatch, sigkill, watchdog, env). Returns the exit status. */
int sl_test_comm_worker(int argc, char **argv);

#endif
