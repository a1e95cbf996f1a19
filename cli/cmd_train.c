/* shardlab train — the built-in GPT-2 training program on the engine: one process per rank
 * under `shardlab launch` (or alone, W = 1), the same run flags and output files as `shardlab
 * ref`, plus held-out loss with gather_for_metrics semantics, a progress line, metrics.jsonl and
 * the peak memory table. Rank 0 writes every file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/run_args.h"
#include "cli/train_report.h"
#include "common/param_file.h"
#include "shardlab/checkpoint.h"
#include "shardlab/engine.h"
#include "shardlab/log.h"
#include "shardlab/safetensors.h"

static const char *const sl_train_usage =
    "usage: [shardlab launch --num_processes W [plan flags]] shardlab train [plan flags] "
    "[model flags] [run flags]\n"
    "Trains GPT-2 with the sharded engine, one process per rank. Writes, with --out DIR, the\n"
    "files `shardlab ref` writes (trajectory.json, init/final/grads_step1/batch_step1\n"
    ".safetensors) and metrics.jsonl. With --checkpointing_steps it saves the training state,\n"
    "which --resume_from_checkpoint continues under any W and any layout.\n";

typedef struct sl_train {
    sl_session *session;
    sl_run_args args;
    sl_model_desc *desc;
    sl_plan *plan;
    sl_engine *engine;
    sl_dataset *train, *heldout;
    sl_sampler *sampler;
    int rank, W, k;
    int64_t bt;
    int32_t *inputs, *targets; /* (W, k, b, T) of the current step */
    sl_ckpt_args ckpt;
    sl_state_dict_type sd_type;
    int start_step;      /* optimizer steps done before this process started (a resume) */
    sl_ckpt_info resume; /* what the checkpoint resumed from said; step 0 when none */
} sl_train;

static sl_status sl_train_path(const sl_train *t, const char *name, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s/%s", t->args.out_dir, name);
    if (n < 0 || (size_t)n >= cap) {
        return sl_error_set(SL_ERR_INVALID_ARG, "--out path '%s' is too long", t->args.out_dir);
    }
    return SL_OK;
}

static sl_status sl_train_open_data(sl_train *t) {
    const sl_plan *plan = t->plan;
    SL_TRY(sl_dataset_open(t->args.data, SL_SPLIT_TRAIN, &t->train));
    SL_TRY(sl_dataset_check_vocab(t->train, t->desc->gpt2.vocab_size));
    if (t->args.eval_every > 0) {
        SL_TRY(sl_dataset_open(t->args.data, SL_SPLIT_HELDOUT, &t->heldout));
        SL_TRY(sl_dataset_check_vocab(t->heldout, t->desc->gpt2.vocab_size));
    }
    sl_sampler_options so = sl_plan_sampler_options(plan);
    so.mode = t->args.sampling;
    if (t->resume.has_data) { /* the position in samples: G may have changed */
        so.start_epoch = t->resume.data.epoch;
        so.start_sample = t->resume.data.sample_in_epoch;
    } else {
        so.skip_first_batches = t->start_step;
    }
    SL_TRY(sl_sampler_create(t->train, &so, &t->sampler));
    const size_t n = (size_t)t->W * (size_t)t->k * (size_t)t->bt;
    t->inputs = calloc(n, sizeof(int32_t));
    t->targets = calloc(n, sizeof(int32_t));
    if (!t->inputs || !t->targets) return sl_error_set(SL_ERR_OOM, "out of memory (batches)");
    return SL_OK;
}

static size_t sl_train_offset(const sl_train *t, int r, int m) {
    return ((size_t)r * (size_t)t->k + (size_t)m) * (size_t)t->bt; /* (W, k, b, T) */
}

/* Every rank's batches of the step: the sampler is a pure function, so each rank counts the
 * global batch's tokens itself (the loss normalisation needs them) without a collective. */
static sl_status sl_train_load_batch(sl_train *t, int step, int64_t *global_tokens) {
    *global_tokens = 0;
    for (int r = 0; r < t->W; r++) {
        for (int m = 0; m < t->k; m++) {
            const size_t off = sl_train_offset(t, r, m);
            SL_TRY(sl_sampler_fill(t->sampler, step - t->start_step, r, m, t->inputs + off,
                                   t->targets + off, NULL, NULL));
            for (int64_t i = 0; i < t->bt; i++)
                *global_tokens += t->targets[off + (size_t)i] >= 0;
        }
    }
    return SL_OK;
}

static sl_status sl_train_step(sl_train *t, int step, sl_trajectory_step *rec) {
    int64_t global_tokens = 0;
    SL_TRY(sl_train_load_batch(t, step, &global_tokens));
    SL_TRY(sl_engine_step_begin(t->engine, global_tokens));
    for (int m = 0; m < t->k; m++) {
        const size_t off = sl_train_offset(t, t->rank, m);
        const sl_batch batch = {.inputs = t->inputs + off,
                                .targets = t->targets + off,
                                .B = t->plan->micro_batch_size,
                                .T = t->plan->seq_len};
        SL_TRY(sl_engine_micro_step(t->engine, m, &batch, NULL));
    }
    return sl_engine_optimizer_step(t->engine, rec);
}

/* Held-out loss over eval_batches global batches: each rank its share, even_batches fillers
 * dropped (gather_for_metrics), sums over ranks in f64. */
static sl_status sl_train_eval(sl_train *t, double *loss) {
    const sl_plan *plan = t->plan;
    sl_sampler_options so = sl_plan_sampler_options(plan); /* one pass, in order */
    so.grad_accum_steps = 1;
    so.shuffle = false;
    so.mode = t->args.sampling;
    sl_sampler *sampler = NULL;
    SL_TRY(sl_sampler_create(t->heldout, &so, &sampler));
    const int b = plan->micro_batch_size;
    int32_t *inputs = calloc((size_t)t->bt, sizeof(int32_t));
    int32_t *targets = calloc((size_t)t->bt, sizeof(int32_t));
    float *losses = calloc((size_t)t->bt, sizeof(float));
    uint8_t *dup = calloc((size_t)b, 1);
    sl_status st = inputs && targets && losses && dup
                       ? SL_OK
                       : sl_error_set(SL_ERR_OOM, "out of memory in eval");
    int64_t batches = sl_sampler_steps_per_epoch(sampler);
    if (batches > t->args.eval_batches) batches = t->args.eval_batches;
    double acc[2] = {0.0, 0.0}; /* Σ loss, token count */
    for (int64_t s = 0; st == SL_OK && s < batches; s++) {
        st = sl_sampler_fill(sampler, s, t->rank, 0, inputs, targets, NULL, dup);
        for (int i = 0; st == SL_OK && i < b; i++) {
            if (!dup[i]) continue;
            for (int j = 0; j < plan->seq_len; j++)
                targets[(size_t)i * (size_t)plan->seq_len + (size_t)j] = -1;
        }
        const sl_batch batch = {.inputs = inputs, .targets = targets, .B = b, .T = plan->seq_len};
        if (st == SL_OK) st = sl_engine_forward(t->engine, &batch, losses);
        for (int64_t i = 0; st == SL_OK && i < t->bt; i++) {
            if (targets[i] < 0) continue;
            acc[0] += losses[i];
            acc[1] += 1.0;
        }
    }
    if (st == SL_OK) st = sl_session_sum_f64(t->session, acc, 2);
    *loss = acc[1] > 0 ? acc[0] / acc[1] : NAN;
    free(inputs);
    free(targets);
    free(losses);
    free(dup);
    sl_sampler_destroy(sampler);
    return st;
}

static sl_status sl_train_write_params(sl_train *t, sl_engine_state which, const char *name) {
    float **arrays = NULL;
    if (t->rank == 0 && !(arrays = sl_param_arrays_alloc(t->desc))) {
        return sl_error_set(SL_ERR_OOM, "out of memory writing %s", name);
    }
    sl_status st = sl_engine_gather_full(t->engine, which, 0, arrays);
    char path[4096];
    if (st == SL_OK && t->rank == 0) st = sl_train_path(t, name, path, sizeof path);
    if (st == SL_OK && t->rank == 0)
        st = sl_param_file_write(t->desc, arrays, "shardlab impl", path);
    sl_param_arrays_free(t->desc, arrays);
    return st;
}

static sl_status sl_train_write_initial(sl_train *t) {
    if (t->rank != 0) return SL_OK;
    float **arrays = sl_param_arrays_alloc(t->desc);
    if (!arrays) return sl_error_set(SL_ERR_OOM, "out of memory writing init.safetensors");
    char path[4096];
    sl_status st = sl_engine_initial_values(t->engine, arrays);
    if (st == SL_OK) st = sl_train_path(t, "init.safetensors", path, sizeof path);
    if (st == SL_OK) st = sl_param_file_write(t->desc, arrays, "shardlab impl", path);
    sl_param_arrays_free(t->desc, arrays);
    return st;
}

/* The step-1 batch of every rank, (W, k, b, T), and the step-1 gradients. */
static sl_status sl_train_write_step1(sl_train *t) {
    SL_TRY(sl_train_write_params(t, SL_ENGINE_STEP1_GRADS, "grads_step1.safetensors"));
    if (t->rank != 0) return SL_OK;
    char path[4096];
    SL_TRY(sl_train_path(t, "batch_step1.safetensors", path, sizeof path));
    const int64_t shape[4] = {t->W, t->k, t->plan->micro_batch_size, t->plan->seq_len};
    sl_safetensors_writer *w = NULL;
    SL_TRY(sl_safetensors_writer_create(&w));
    sl_status st = sl_safetensors_writer_add(w, "inputs", SL_DTYPE_I32, shape, 4, t->inputs);
    if (st == SL_OK)
        st = sl_safetensors_writer_add(w, "targets", SL_DTYPE_I32, shape, 4, t->targets);
    if (st == SL_OK) st = sl_safetensors_writer_write(w, path);
    sl_safetensors_writer_destroy(w);
    return st;
}

static sl_status sl_train_finish(sl_train *t, sl_trajectory *traj) {
    sl_observation obs = {0};
    SL_TRY(sl_engine_observation(t->engine, &obs));
    sl_status st = SL_OK;
    if (t->args.out_dir) {
        st = sl_train_write_params(t, SL_ENGINE_MASTERS, "final.safetensors");
        char path[4096];
        if (st == SL_OK && t->rank == 0)
            st = sl_train_path(t, "trajectory.json", path, sizeof path);
        if (st == SL_OK && t->rank == 0) {
            st = sl_trajectory_write_json(traj, t->plan, t->desc, &obs, path);
        }
    }
    if (st == SL_OK && t->rank == 0) {
        int64_t tokens = 0;
        for (int i = 0; i < traj->n_steps; i++)
            tokens += traj->steps[i].tokens;
        printf("train: %d steps in %.2f s (%.2f steps/s, %.0f tokens/s), final loss %.4f\n",
               traj->n_steps, traj->seconds, traj->n_steps / traj->seconds,
               (double)tokens / traj->seconds,
               traj->n_steps ? traj->steps[traj->n_steps - 1].loss : 0.0);
        sl_train_print_memory(stdout, &obs, sl_engine_comm_scratch_peak(t->engine),
                              sl_engine_kernel_scratch_bytes(t->engine));
    }
    sl_observation_free(&obs);
    return st;
}

/* After optimizer step `step` (1-based, as rec.step): the state, with where the data sampler
 * continues, into output_dir/checkpoints/checkpoint_{step}. */
static sl_status sl_train_checkpoint(sl_train *t, int step) {
    char dir[4096];
    const int n =
        snprintf(dir, sizeof dir, "%s/checkpoints/checkpoint_%d", t->ckpt.output_dir, step);
    if (n < 0 || (size_t)n >= sizeof dir) {
        return sl_error_set(SL_ERR_INVALID_ARG, "--output_dir path '%s' is too long",
                            t->ckpt.output_dir);
    }
    const int64_t ran = step - t->start_step;
    sl_ckpt_save_options o = sl_ckpt_save_options_default();
    o.type = t->sd_type;
    o.has_data = true;
    o.data = sl_sampler_position_of(t->sampler, ran);
    o.consumed_samples = t->resume.consumed_samples + ran * sl_sampler_global_batch(t->sampler);
    o.update_latest = true;
    o.total_limit = t->ckpt.checkpoints_total_limit;
    return sl_engine_save_state(t->engine, dir, &o);
}

static sl_status sl_train_loop(sl_train *t) {
    sl_trajectory traj;
    sl_trajectory_init(&traj, "impl");
    /* Open MPI hands its ranks a pseudo-terminal whatever mpirun's own output is, so under
     * `shardlab launch` the progress stays plain lines. */
    const bool tty = isatty(STDOUT_FILENO) && !getenv("OMPI_COMM_WORLD_SIZE");
    sl_train_progress prog = {.total_steps = t->plan->steps, .tty = tty};
    sl_status st = SL_OK;
    if (t->args.out_dir) st = sl_train_write_initial(t);
    if (st == SL_OK && t->args.out_dir && t->rank == 0) {
        char path[4096];
        st = sl_train_path(t, "metrics.jsonl", path, sizeof path);
        if (st == SL_OK && !(prog.metrics = fopen(path, t->start_step > 0 ? "a" : "w"))) {
            st = sl_error_set(SL_ERR_IO, "%s: cannot create the metrics file", path);
        }
    }
    const bool quiet = t->args.quiet || t->rank != 0;
    prog.t0 = sl_train_now();
    for (int s = t->start_step; st == SL_OK && s < t->plan->steps; s++) {
        sl_trajectory_step rec;
        st = sl_train_step(t, s, &rec);
        if (st == SL_OK && t->args.eval_every > 0 && (s + 1) % t->args.eval_every == 0) {
            st = sl_train_eval(t, &rec.eval_loss);
        }
        if (st == SL_OK && s == 0 && t->args.out_dir) st = sl_train_write_step1(t);
        if (st == SL_OK) st = sl_trajectory_append(&traj, &rec);
        if (st == SL_OK && t->rank == 0) sl_train_progress_step(&prog, &rec, quiet);
        if (st == SL_OK && t->ckpt.checkpointing_steps > 0 &&
            (s + 1) % t->ckpt.checkpointing_steps == 0) {
            st = sl_train_checkpoint(t, s + 1);
        }
    }
    traj.seconds = sl_train_now() - prog.t0;
    sl_train_progress_end(&prog, quiet);
    if (prog.metrics) fclose(prog.metrics);
    if (st == SL_OK) st = sl_train_finish(t, &traj);
    if (st == SL_OK && t->args.save_model)
        st = sl_engine_save_model_hf(t->engine, t->args.save_model, &t->args.save_opts);
    sl_trajectory_free(&traj);
    return st;
}

/* The checkpoint flags against the plan, and the resume: --resume_from_checkpoint latest with no
 * checkpoint yet (a first start under `launch --max_restarts`) starts from scratch. */
static sl_status sl_train_checkpoint_setup(sl_train *t) {
    const sl_ckpt_args *c = &t->ckpt;
    if ((c->checkpointing_steps > 0 || c->checkpoints_total_limit > 0) && !c->output_dir) {
        return sl_error_set(SL_ERR_CONFIG,
                            "--%s needs --output_dir DIR (checkpoints go to "
                            "DIR/checkpoints/checkpoint_{step})",
                            c->checkpointing_steps > 0 ? "checkpointing_steps"
                                                       : "checkpoints_total_limit");
    }
    const char *sd = c->state_dict_type;
    if (!sd && t->plan->dialect != SL_DIALECT_DEEPSPEED)
        sd = sl_config_get(t->plan->config, "fsdp_state_dict_type", NULL);
    if (!sd) sd = t->plan->dialect == SL_DIALECT_DDP ? "FULL_STATE_DICT" : "SHARDED_STATE_DICT";
    if (sl_state_dict_type_parse(sd, &t->sd_type) != SL_OK)
        return sl_error_prefix(SL_ERR_CONFIG, "--state_dict_type: ");
    if (!c->resume_from_checkpoint) return SL_OK;
    char path[4096];
    bool found = false;
    SL_TRY(sl_ckpt_resolve(c->resume_from_checkpoint, c->output_dir, path, sizeof path, &found));
    if (!found) {
        if (t->rank == 0)
            SL_LOG_INFO("--resume_from_checkpoint latest: no checkpoint in %s/checkpoints yet; "
                        "starting from scratch",
                        c->output_dir);
        return SL_OK;
    }
    SL_TRY(sl_engine_load_state(t->engine, path, &t->resume));
    if (t->resume.step > t->plan->steps) {
        return sl_error_set(SL_ERR_CONFIG,
                            "%s is at step %lld, past this run's --steps %d; raise --steps to "
                            "continue it",
                            path, (long long)t->resume.step, t->plan->steps);
    }
    t->start_step = (int)t->resume.step;
    if (t->rank == 0) SL_LOG_INFO("resuming from %s at step %d", path, t->start_step);
    return SL_OK;
}

static sl_status sl_train_run(sl_train *t, int argc, char **argv) {
    SL_TRY(sl_ckpt_args_extract(&argc, argv, &t->ckpt));
    SL_TRY(sl_session_create_from_env(&t->session));
    t->rank = sl_session_rank(t->session);
    t->W = sl_session_world_size(t->session);
    SL_TRY(sl_run_args_parse(sl_session_config(t->session), argc, argv, sl_train_usage, &t->args));
    sl_gpt2_config gcfg;
    SL_TRY(sl_model_args_resolve(&t->args.model, &gcfg));
    SL_TRY(sl_model_desc_create_gpt2(&gcfg, &t->desc));
    SL_TRY(sl_session_compile_plan(t->session, t->desc, &t->plan));
    if (t->plan->seq_len > gcfg.block_size) {
        return sl_error_set(SL_ERR_CONFIG,
                            "seq_len %d exceeds the model's block_size %d; lower --seq_len or "
                            "raise --block_size",
                            t->plan->seq_len, gcfg.block_size);
    }
    t->k = t->plan->grad_accum_steps;
    t->bt = (int64_t)t->plan->micro_batch_size * t->plan->seq_len;
    if (t->rank == 0) SL_TRY(sl_run_args_make_out_dir(&t->args));
    sl_engine_options eo = sl_engine_options_default();
    eo.init_from = t->args.init_from;
    eo.keep_step1_grads = t->args.out_dir != NULL;
    SL_TRY(sl_engine_create_gpt2(t->session, t->plan, t->desc, &eo, &t->engine));
    SL_TRY(sl_train_checkpoint_setup(t));
    SL_TRY(sl_train_open_data(t));
    return sl_train_loop(t);
}

int sl_cmd_train(int argc, char **argv) {
    if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        fputs(sl_train_usage, stdout);
        fputs(sl_run_args_usage, stdout);
        fputs(sl_ckpt_args_usage, stdout);
        return 0;
    }
    sl_train t = {0};
    const sl_status st = sl_train_run(&t, argc, argv);
    const int rc = sl_cli_report(st);
    /* a rank failing alone: the others may wait for it in a collective, and it for them in
     * MPI_Finalize (comm.h) */
    if (rc != 0 && t.session) sl_comm_abort(sl_session_comm(t.session), rc);
    free(t.inputs);
    free(t.targets);
    sl_sampler_destroy(t.sampler);
    sl_dataset_destroy(t.train);
    sl_dataset_destroy(t.heldout);
    sl_engine_destroy(t.engine);
    sl_plan_destroy(t.plan);
    sl_model_desc_destroy(t.desc);
    sl_session_destroy(t.session);
    return rc;
}
