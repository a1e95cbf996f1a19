/* The per-rank scenarios of the engine tests (engine_worker.h). */
#include "tests/engine/engine_worker.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/param_file.h"
#include "shardlab/data.h"
#include "tests/engine/engine_harness.h"
#include "tests/support/support.h"

static sl_status ew_compile(sl_session *s, const sl_model_desc *model, const char *flags, int steps,
                            sl_plan **out) {
    char text[2048];
    snprintf(text, sizeof text, "%s --num_processes %d --max_steps %d", flags,
             sl_session_world_size(s), steps);
    char storage[2048];
    char *argv[128];
    const int argc = sl_ts_split(text, storage, argv, 128);
    sl_config *cfg = NULL;
    SL_TRY(sl_config_create(&cfg));
    char *rest[128];
    int n_rest = 0;
    sl_status st = sl_config_parse_args(cfg, argc, argv, rest, &n_rest);
    if (st == SL_OK && n_rest) st = sl_error_set(SL_ERR_CONFIG, "unknown flag %s", rest[0]);
    if (st == SL_OK) st = sl_plan_compile(cfg, model, out);
    sl_config_destroy(cfg);
    return st;
}

static sl_status ew_steps(sl_engine *e, const sl_plan *plan, int rank, double *losses) {
    sl_dataset *ds = NULL;
    SL_TRY(sl_dataset_open("default", SL_SPLIT_TRAIN, &ds));
    sl_sampler_options so = sl_plan_sampler_options(plan);
    sl_sampler *sampler = NULL;
    sl_status st = sl_sampler_create(ds, &so, &sampler);
    const size_t bt = (size_t)plan->micro_batch_size * (size_t)plan->seq_len;
    int32_t *in = calloc(bt, sizeof *in), *tg = calloc(bt, sizeof *tg);
    if (st == SL_OK && (!in || !tg)) st = sl_error_set(SL_ERR_OOM, "worker: out of memory");
    for (int s = 0; st == SL_OK && s < plan->steps; s++) {
        int64_t tokens = 0; /* every rank counts the global batch's tokens itself */
        for (int r = 0; st == SL_OK && r < plan->world_size; r++) {
            for (int m = 0; st == SL_OK && m < plan->grad_accum_steps; m++) {
                st = sl_sampler_fill(sampler, s, r, m, in, tg, NULL, NULL);
                for (size_t i = 0; i < bt; i++)
                    tokens += tg[i] >= 0;
            }
        }
        if (st == SL_OK) st = sl_engine_step_begin(e, tokens);
        for (int m = 0; st == SL_OK && m < plan->grad_accum_steps; m++) {
            st = sl_sampler_fill(sampler, s, rank, m, in, tg, NULL, NULL);
            const sl_batch b = {
                .inputs = in, .targets = tg, .B = plan->micro_batch_size, .T = plan->seq_len};
            if (st == SL_OK) st = sl_engine_micro_step(e, m, &b, NULL);
        }
        sl_trajectory_step rec;
        if (st == SL_OK) st = sl_engine_optimizer_step(e, &rec);
        if (st == SL_OK && losses) losses[s] = rec.loss;
    }
    free(in);
    free(tg);
    sl_sampler_destroy(sampler);
    sl_dataset_destroy(ds);
    return st;
}

/* The kernel context's own scratch of the last ew_train (this rank), printed beside the
 * categories (the engine reports it apart from them: sl_engine_kernel_scratch_bytes). */
static int64_t ew_kernel_workspace;

sl_status ew_train(sl_session *s, const sl_model_desc *model, const char *flags, int steps,
                   double *losses, bool gather_final, float **final, sl_observation *obs,
                   sl_plan **plan_out) {
    sl_plan *plan = NULL;
    SL_TRY(ew_compile(s, model, flags, steps, &plan));
    sl_engine *e = NULL;
    sl_status st = sl_engine_create_gpt2(s, plan, model, NULL, &e);
    if (st == SL_OK) st = ew_steps(e, plan, sl_session_rank(s), losses);
    if (st == SL_OK && gather_final) st = sl_engine_gather_full(e, SL_ENGINE_MASTERS, 0, final);
    if (st == SL_OK && obs) st = sl_engine_observation(e, obs);
    if (st == SL_OK) ew_kernel_workspace = sl_engine_kernel_scratch_bytes(e);
    sl_engine_destroy(e);
    if (plan_out && st == SL_OK) {
        *plan_out = plan;
    } else {
        sl_plan_destroy(plan);
    }
    return st;
}

/* ---- observe: what the engine allocated and issued equals what the plan predicted ---------- */

static int ew_same_collective(const sl_collective_record *a, const sl_collective_record *b) {
    return a->op == b->op && a->group == b->group && a->group_size == b->group_size &&
           a->phase == b->phase && a->micro_step == b->micro_step && a->unit == b->unit &&
           a->dtype == b->dtype && a->elements == b->elements &&
           a->bytes_sent_per_rank == b->bytes_sent_per_rank;
}

static void ew_print_collective(const char *who, const sl_collective_record *c) {
    printf("    %s: %s %s(%d) %s micro %d unit %d %s elements %lld\n", who, sl_coll_op_name(c->op),
           sl_coll_group_name(c->group), c->group_size, sl_phase_name(c->phase), c->micro_step,
           c->unit, sl_dtype_name(c->dtype), (long long)c->elements);
}

/* Compares on rank 0; returns the number of mismatches (each printed). Every memory category
 * must equal the prediction byte for byte. */
static int ew_compare(const char *flags, const sl_plan *plan, const sl_observation *obs) {
    const sl_observation *pred = &plan->predicted;
    int bad = 0;
    for (int s = 0; s < SL_STAGE_COUNT; s++) {
        if (pred->dtype_table[s] == obs->dtype_table[s]) continue;
        printf("%s: dtype of %s: predicted %s, observed %s\n", flags, sl_stage_key((sl_stage)s),
               sl_dtype_name(pred->dtype_table[s]),
               obs->dtype_table[s] < SL_DTYPE_COUNT ? sl_dtype_name(obs->dtype_table[s])
                                                    : "(none)");
        bad++;
    }
    const int n =
        pred->n_collectives > obs->n_collectives ? pred->n_collectives : obs->n_collectives;
    for (int i = 0; i < n; i++) {
        const sl_collective_record *p = i < pred->n_collectives ? &pred->collectives[i] : NULL;
        const sl_collective_record *o = i < obs->n_collectives ? &obs->collectives[i] : NULL;
        if (p && o && ew_same_collective(p, o)) continue;
        printf("%s: collective %d differs (%d predicted, %d observed):\n", flags, i,
               pred->n_collectives, obs->n_collectives);
        if (p) ew_print_collective("predicted", p);
        if (o) ew_print_collective("observed ", o);
        bad++;
        break;
    }
    for (int r = 0; r < obs->world_size; r++) {
        for (int sp = 0; sp < SL_SPACE_COUNT; sp++) {
            for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++) {
                const int64_t want = pred->memory[r].peak[sp][c];
                const int64_t got = obs->memory[r].peak[sp][c];
                if (want == got) continue;
                printf("%s: rank %d %s %s peak: predicted %lld, observed %lld bytes\n", flags, r,
                       sl_mem_space_name((sl_mem_space)sp),
                       sl_mem_category_name((sl_mem_category)c), (long long)want, (long long)got);
                bad++;
            }
        }
    }
    return bad;
}

/* The strategies of a set: "all"; "zero3" (DeepSpeed ZeRO-3 alone); or "sharded" (one of each
 * sharding family, for the larger model). */
static bool ew_in_set(const char *set, const char *strategy) {
    if (!strcmp(set, "all")) return true;
    if (!strcmp(set, "zero3")) return !strcmp(strategy, "--use_deepspeed --zero_stage 3");
    return !strcmp(strategy, "--use_fsdp --fsdp_sharding_strategy FULL_SHARD") ||
           !strcmp(strategy, "--use_fsdp --fsdp_version 2 --fsdp_reshard_after_forward true") ||
           !strcmp(strategy, "--use_deepspeed --zero_stage 1") ||
           !strcmp(strategy, "--use_deepspeed --zero_stage 2") ||
           !strcmp(strategy, "--use_deepspeed --zero_stage 3");
}

/* observe: every strategy of `set` × every precision of `precisions` ("all" or one flag string
 * such as "bf16"), one step of micro-batch 2 × 16 tokens with `accum` micro-steps, on `model`. */
static int ew_observe(sl_session *s, int accum, const char *model_name, const char *set,
                      const char *precisions) {
    sl_gpt2_config cfg;
    sl_model_desc *model = NULL;
    if (sl_gpt2_config_from_name(model_name, &cfg) != SL_OK ||
        sl_model_desc_create_gpt2(&cfg, &model) != SL_OK) {
        printf("observe: %s\n", sl_error_message());
        return 2;
    }
    int bad = 0, runs = 0;
    for (size_t i = 0; i < sl_ts_n_strategies; i++) {
        /* hybrid sharding's two groups need an even world */
        if (strstr(sl_ts_strategies[i], "num_machines") && sl_session_world_size(s) % 2) continue;
        if (!ew_in_set(set, sl_ts_strategies[i])) continue;
        for (size_t j = 0; j < sl_ts_n_precisions; j++) {
            if (strcmp(precisions, "all") && !strstr(sl_ts_precisions[j], precisions)) continue;
            const bool ds_fp16 =
                strstr(sl_ts_strategies[i], "deepspeed") && strstr(sl_ts_precisions[j], "fp16");
            char flags[512];
            snprintf(flags, sizeof flags,
                     "%s %s%s --gradient_accumulation_steps %d --micro_batch_size 2 --seq_len 16 "
                     "--seed 5 --deterministic true",
                     sl_ts_strategies[i], sl_ts_precisions[j],
                     ds_fp16 ? " --initial_scale_power 8" : "", accum);
            sl_observation obs = {0};
            sl_plan *plan = NULL;
            if (ew_train(s, model, flags, 1, NULL, false, NULL, &obs, &plan) != SL_OK) {
                printf("%s: %s\n", flags, sl_error_message());
                sl_model_desc_destroy(model);
                return 1;
            }
            if (sl_session_rank(s) == 0) {
                bad += ew_compare(flags, plan, &obs);
                const sl_mem_usage *m = &obs.memory[0];
                int64_t total = 0;
                for (int sp = 0; sp < SL_SPACE_COUNT; sp++) {
                    for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++)
                        total += m->peak[sp][c];
                }
                printf("%s %s W=%d: rank 0 peak sum %lld bytes, params_master %lld, "
                       "grads_sharded %lld, optim_states %lld, params_gathered %lld, kernel "
                       "workspace %lld\n",
                       model_name, flags, obs.world_size, (long long)total,
                       (long long)m->peak[SL_SPACE_DEVICE][SL_MEM_PARAMS_MASTER],
                       (long long)m->peak[SL_SPACE_DEVICE][SL_MEM_GRADS_SHARDED],
                       (long long)m->peak[SL_SPACE_DEVICE][SL_MEM_OPTIM_STATES],
                       (long long)m->peak[SL_SPACE_DEVICE][SL_MEM_PARAMS_GATHERED],
                       (long long)ew_kernel_workspace);
            }
            runs++;
            sl_observation_free(&obs);
            sl_plan_destroy(plan);
        }
    }
    if (sl_session_rank(s) == 0) printf("observe: %d runs, %d mismatches\n", runs, bad);
    sl_model_desc_destroy(model);
    return bad || runs == 0 ? 1 : 0;
}

/* ---- determinism: two runs bit-identical, native reduction order within tolerance ----------- */

static int ew_determinism(sl_session *s) {
    static const char *const plans[] = {
        "--use_fsdp --fsdp_sharding_strategy FULL_SHARD --mixed_precision bf16",
        "--use_deepspeed --zero_stage 3",
        "--use_deepspeed --zero_stage 2 --mixed_precision fp16 --initial_scale_power 8",
        "--use_fsdp --fsdp_version 2 --gradient_accumulation_steps 2",
    };
    sl_model_desc *model = eh_model();
    const bool root = sl_session_rank(s) == 0;
    int bad = 0;
    for (size_t i = 0; i < sizeof plans / sizeof *plans && !bad; i++) {
        enum { STEPS = 3 };
        double la[STEPS], lb[STEPS];
        float **fa = root ? sl_param_arrays_alloc(model) : NULL;
        float **fb = root ? sl_param_arrays_alloc(model) : NULL;
        char flags[512];
        snprintf(flags, sizeof flags,
                 "%s --micro_batch_size 2 --seq_len 16 --seed 7 --deterministic true", plans[i]);
        sl_status st = ew_train(s, model, flags, STEPS, la, true, fa, NULL, NULL);
        if (st == SL_OK) st = ew_train(s, model, flags, STEPS, lb, true, fb, NULL, NULL);
        if (st != SL_OK) {
            printf("%s: %s\n", flags, sl_error_message());
            bad++;
        } else if (root) {
            if (memcmp(la, lb, sizeof la) != 0) {
                printf("%s: losses differ between two deterministic runs\n", flags);
                bad++;
            }
            for (int p = 0; p < model->n_params; p++) {
                if (memcmp(fa[p], fb[p], (size_t)model->params[p].numel * sizeof(float)) != 0) {
                    printf("%s: final '%s' differs between two deterministic runs\n", flags,
                           model->params[p].name);
                    bad++;
                    break;
                }
            }
        }
        sl_param_arrays_free(model, fa);
        sl_param_arrays_free(model, fb);
    }
    sl_model_desc_destroy(model);
    if (root) printf("determinism: %d mismatches\n", bad);
    return bad ? 1 : 0;
}

/* ---- coexist: a forward-only ZeRO-3 bf16 teacher beside a ZeRO-2 fp32 student --------------- */

static int ew_coexist(sl_session *s) {
    sl_model_desc *model = eh_model();
    const char *student_flags = "--use_deepspeed --zero_stage 2 --micro_batch_size 2 --seq_len 16 "
                                "--seed 7 --deterministic true";
    const char *teacher_flags = "--use_deepspeed --zero_stage 3 --mixed_precision bf16 "
                                "--micro_batch_size 2 --seq_len 16 --seed 9";
    enum { STEPS = 3 };
    double alone[STEPS], beside[STEPS];
    int bad = 0;
    sl_plan *splan = NULL, *tplan = NULL;
    sl_engine *student = NULL, *teacher = NULL;
    sl_status st = ew_train(s, model, student_flags, STEPS, alone, false, NULL, NULL, NULL);
    if (st == SL_OK) st = ew_compile(s, model, student_flags, STEPS, &splan);
    if (st == SL_OK) st = ew_compile(s, model, teacher_flags, STEPS, &tplan);
    sl_engine_options to = sl_engine_options_default();
    to.inference_only = true;
    if (st == SL_OK) st = sl_engine_create_gpt2(s, tplan, model, &to, &teacher);
    if (st == SL_OK) st = sl_engine_create_gpt2(s, splan, model, NULL, &student);
    /* the teacher runs a forward before every student step, on its own communicators */
    int32_t in[32], tg[32];
    float losses[32];
    for (int i = 0; i < 32; i++) {
        in[i] = (i * 7) % 256;
        tg[i] = (i * 11) % 256;
    }
    const sl_batch tb = {.inputs = in, .targets = tg, .B = 2, .T = 16};
    if (st == SL_OK) st = sl_engine_forward(teacher, &tb, losses);
    if (st == SL_OK) st = ew_steps(student, splan, sl_session_rank(s), beside);
    if (st == SL_OK) st = sl_engine_forward(teacher, &tb, losses);
    if (st == SL_OK && sl_engine_step_begin(teacher, 1) == SL_OK) {
        printf("coexist: an inference-only engine accepted a training step\n");
        bad++;
    }
    if (st != SL_OK) {
        printf("coexist: %s\n", sl_error_message());
        bad++;
    } else if (memcmp(alone, beside, sizeof alone) != 0) {
        printf("coexist: the student's losses change when a teacher engine runs beside it\n");
        bad++;
    }
    for (int i = 0; st == SL_OK && i < 32; i++) {
        if (!isfinite(losses[i])) {
            printf("coexist: teacher loss %d is %g\n", i, losses[i]);
            bad++;
            break;
        }
    }
    sl_engine_destroy(student);
    sl_engine_destroy(teacher);
    sl_plan_destroy(splan);
    sl_plan_destroy(tplan);
    sl_model_desc_destroy(model);
    if (sl_session_rank(s) == 0) printf("coexist: %d mismatches\n", bad);
    return bad ? 1 : 0;
}

int ew_main(int argc, char **argv) {
    sl_session *s = NULL;
    if (sl_session_create_from_env(&s) != SL_OK) {
        printf("worker: %s\n", sl_error_message());
        return 2;
    }
    int rc = 2;
    if (argc >= 1 && !strcmp(argv[0], "observe")) {
        rc = ew_observe(s, argc >= 2 ? atoi(argv[1]) : 1, argc >= 3 ? argv[2] : "gpt-tiny",
                        argc >= 4 ? argv[3] : "all", argc >= 5 ? argv[4] : "all");
    }
    if (argc >= 1 && !strcmp(argv[0], "determinism")) rc = ew_determinism(s);
    if (argc >= 1 && !strcmp(argv[0], "coexist")) rc = ew_coexist(s);
    fflush(stdout);
    sl_session_destroy(s);
    return rc;
}
