/* The conformance runner: one training run (reference, engine or explain) of the shardlab
 * binary as a subprocess with a time limit and its output captured to a log in its directory;
 * the files it wrote loaded back into memory; and a pool that runs independent runs
 * concurrently.
 *
 *   sl_conf_run_spec s = sl_conf_run_spec_default();
 *   s.tool = SL_CONF_TOOL_TRAIN; s.world_size = 4;
 *   snprintf(s.plan_flags, sizeof s.plan_flags, "--use_deepspeed --zero_stage 3");
 *   snprintf(s.out_dir, sizeof s.out_dir, "%s/z3", root);
 *   sl_conf_result r;
 *   sl_conf_run(&s, &r);          (or sl_conf_run_all over many specs, N at a time)
 *   ... r.steps[i].loss, r.final, r.observed ...
 *   sl_conf_result_free(&r);
 */
#ifndef SHARDLAB_CONFORMANCE_RUNNER_H
#define SHARDLAB_CONFORMANCE_RUNNER_H

#include <stdbool.h>
#include <stddef.h>

#include "shardlab/dtype.h"
#include "shardlab/observe.h"
#include "shardlab/status.h"
#include "shardlab/trajectory.h"

#define SL_CONF_PATH_MAX 512
#define SL_CONF_FLAGS_MAX 1024

typedef enum sl_conf_tool {
    SL_CONF_TOOL_REF,    /* `shardlab ref`: one process simulating W ranks */
    SL_CONF_TOOL_TRAIN,  /* `shardlab train`, under `shardlab launch --num_processes W` */
    SL_CONF_TOOL_EXPLAIN /* `shardlab explain --json`: the plan's prediction, no training */
} sl_conf_tool;

const char *sl_conf_tool_name(sl_conf_tool t); /* "ref", "train", "explain" */

/* One run. Flag strings are split at spaces (no quoting: paths must not contain spaces). */
typedef struct sl_conf_run_spec {
    sl_conf_tool tool;
    int world_size;                      /* W (--num_processes) */
    bool via_launch;                     /* train at W = 1 under launch too (W > 1 always is) */
    char plan_flags[SL_CONF_FLAGS_MAX];  /* Accelerate launch flags, e.g. "--use_fsdp ..." */
    char config_file[SL_CONF_PATH_MAX];  /* --config_file, "" for none */
    char model_flags[256];               /* "--model gpt-tiny" or --n_layer ... */
    int steps;                           /* optimizer steps */
    char data[SL_CONF_PATH_MAX];         /* "default" or a path */
    char extra_flags[SL_CONF_FLAGS_MAX]; /* any further run flags (--sampling documents, ...) */
    bool deterministic;                  /* --deterministic true (bit-reproducible reductions) */
    bool reverse_reduction_order;        /* ref only: every reduction summed in descending rank
                                            order (the noise floor's legal reordering) */
    char init_from[SL_CONF_PATH_MAX];    /* --init_from FILE, "" for the model's init rules */
    char out_dir[SL_CONF_PATH_MAX];      /* created if missing; receives run.log and the files */
    double timeout_s;                    /* the process group is killed after this */
} sl_conf_run_spec;

/* tool ref, W 1, "--model gpt-tiny", 4 steps, default data, deterministic, 300 s. */
sl_conf_run_spec sl_conf_run_spec_default(void);

/* The command line of a spec, for logs and reports ("shardlab launch --num_processes 4 shardlab
 * train ..."), into buf. */
void sl_conf_run_spec_describe(const sl_conf_run_spec *s, char *buf, size_t cap);

/* The tensors of one safetensors file, widened to f32, in the file's order. */
typedef struct sl_conf_tensors {
    int n;
    char **names;
    size_t *numel;
    float **data;
} sl_conf_tensors;

sl_status sl_conf_tensors_read(const char *path, sl_conf_tensors *out);
void sl_conf_tensors_free(sl_conf_tensors *t);

/* What a run produced. `status` is SL_OK when the process exited 0 and every file loaded;
 * otherwise `error` says what went wrong and where to look (the log). */
typedef struct sl_conf_result {
    sl_status status;
    char error[1024];
    int exit_status; /* the process's status; 128 + signal when killed */
    bool timed_out;
    double seconds;                  /* wall time of the subprocess */
    char log_path[SL_CONF_PATH_MAX]; /* OUT/run.log: stdout and stderr of the run */

    /* ref / train: DIR/trajectory.json steps, final.safetensors, grads_step1.safetensors */
    int n_steps;
    sl_trajectory_step *steps;
    sl_conf_tensors final;
    sl_conf_tensors grads;
    /* The plan's prediction (explain, and the "plan" of trajectory.json) and what the run
     * observed ("observed" of trajectory.json; empty for explain). */
    sl_observation predicted;
    sl_observation observed;
    sl_dtype param_dtype;  /* the plan's precision.param_dtype */
    sl_dtype master_dtype; /* the plan's precision.master_dtype */
    char *layout_json;     /* the plan's "layout" member, re-serialised compactly, for equality */
} sl_conf_result;

void sl_conf_result_free(sl_conf_result *r);

/* Runs one spec synchronously and loads its output into *out (always initialised, even on
 * failure; free it with sl_conf_result_free). Returns out->status. */
sl_status sl_conf_run(const sl_conf_run_spec *spec, sl_conf_result *out);

/* Loads an existing run directory as sl_conf_run would after the process ended. */
sl_status sl_conf_result_load(sl_conf_tool tool, const char *dir, sl_conf_result *out);

/* Called after each run of sl_conf_run_all finishes (from the calling thread). */
typedef void (*sl_conf_progress_fn)(int done, int total, const sl_conf_run_spec *spec,
                                    const sl_conf_result *result, void *ctx);

/* Runs the n specs, at most `jobs` processes at once, into results[0..n) (each initialised;
 * the caller frees them). The runs must be independent (distinct out_dir). Every run is waited
 * for; a run that could not start, failed or timed out has its reason in results[i].status and
 * .error. Returns SL_OK, SL_ERR_OOM when the pool itself cannot be allocated, or SL_ERR_IO
 * after sl_conf_request_stop (runs not finished then have "interrupted" as their error). */
sl_status sl_conf_run_all(const sl_conf_run_spec *specs, int n, int jobs, sl_conf_result *results,
                          sl_conf_progress_fn progress, void *ctx);

/* Asks a running sl_conf_run_all to stop: it kills the process groups of the runs in flight,
 * starts no more, and returns SL_ERR_IO ("interrupted"). Async-signal-safe: call it from a
 * SIGINT/SIGTERM handler. */
void sl_conf_request_stop(void);

/* The shardlab binary runs are made with: $SHARDLAB_BIN when set, else the binary set by
 * sl_conf_set_shardlab_bin (the shardlab CLI sets itself at start), else "shardlab" next to the
 * current executable. */
const char *sl_conf_shardlab_bin(void);
/* Overrides the binary (tests); NULL restores the default rule. */
void sl_conf_set_shardlab_bin(const char *path);

#endif
