/* The per-rank side of the engine tests: the test executable started by `shardlab launch` with
 * --worker runs engines through the public API and checks what only a rank can see. */
#ifndef SHARDLAB_TESTS_ENGINE_WORKER_H
#define SHARDLAB_TESTS_ENGINE_WORKER_H

#include <stdbool.h>

#include "shardlab/engine.h"

/* One training run of `steps` steps of eh_model() under plan `flags` (num_processes is the
 * session's size): losses (steps) on every rank; with gather_final (the same on every rank) the
 * final masters into `final` on rank 0; the observation into obs (may be NULL). */
sl_status ew_train(sl_session *s, const sl_model_desc *model, const char *flags, int steps,
                   double *losses, bool gather_final, float **final, sl_observation *obs,
                   sl_plan **plan_out);

/* argv[0] names the scenario: "observe K [MODEL [SET [PRECISION]]]" (observed == predicted with
 * K micro-steps on MODEL, default gpt-tiny, for the strategies of SET — "all" (default),
 * "sharded" or "zero3" — and every precision, or those whose flags contain PRECISION),
 * "determinism" (two deterministic runs bit-identical), "coexist" (a forward-only teacher engine
 * beside a training student leaves the student's results unchanged). Returns the process exit
 * status. */
int ew_main(int argc, char **argv);

#endif
