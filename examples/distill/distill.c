/* Knowledge distillation with two engines in one program, both configured by ONE Accelerate file
 * whose deepspeed_configs map names a plan per model (examples/configs/
 * distillation_multi_model.yaml): a ZeRO-3 bf16 teacher loaded from a safetensors file and used
 * for forward only, and a smaller ZeRO-2 student with fp32 masters trained on a mix of the data's
 * cross-entropy and the KL divergence to the teacher's softmax (distill_model.h).
 *
 *   shardlab train --steps 200 --out out/teacher                   # any GPT-2 run writes one
 *   shardlab launch --num_processes 2 \
 *       --config_file examples/configs/distillation_multi_model.yaml \
 *       build/examples/distill --teacher out/teacher/final.safetensors --max_steps 100
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "distill_model.h"
#include "shardlab/config_file.h"
#include "shardlab/data.h"

typedef struct distill_args {
    const char *teacher;       /* safetensors file with the teacher's parameters */
    const char *teacher_model; /* its GPT-2 size */
    int student_layers, student_embd, student_heads;
    distill_objective obj;
    const char *out;
    const char *student_plan, *teacher_plan; /* entries of deepspeed_configs */
} distill_args;

static const char *const distill_flags[] = {"teacher",
                                            "teacher_model",
                                            "student_layers",
                                            "student_embd",
                                            "student_heads",
                                            "alpha",
                                            "temperature",
                                            "out",
                                            "student_plan",
                                            "teacher_plan",
                                            NULL};

static sl_status distill_int(const char *flag, const char *v, int *out) {
    char *end = NULL;
    const long x = strtol(v, &end, 10);
    if (!*v || *end || x < 1 || x > 1 << 20)
        return sl_error_set(SL_ERR_CONFIG, "distill: --%s expects a positive integer, found '%s'",
                            flag, v);
    *out = (int)x;
    return SL_OK;
}

static sl_status distill_float(const char *flag, const char *v, float *out) {
    char *end = NULL;
    *out = strtof(v, &end);
    if (!*v || *end)
        return sl_error_set(SL_ERR_CONFIG, "distill: --%s expects a number, found '%s'", flag, v);
    return SL_OK;
}

/* The arguments sl_config_parse_args left: this program's own flags. */
static sl_status distill_parse(int argc, char **argv, distill_args *a) {
    *a = (distill_args){.teacher_model = "gpt-tiny",
                        .student_layers = 1,
                        .student_embd = 32,
                        .student_heads = 2,
                        .obj = {.alpha = 0.5f, .temperature = 2.0f},
                        .out = "out/distill",
                        .student_plan = "student",
                        .teacher_plan = "teacher"};
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        const char *name = strncmp(f, "--", 2) == 0 ? f + 2 : NULL;
        int k = 0;
        while (name && distill_flags[k] && strcmp(name, distill_flags[k]) != 0)
            k++;
        if (!name || !distill_flags[k]) return sl_config_unknown_arg("distill", f, distill_flags);
        if (i + 1 == argc) return sl_error_set(SL_ERR_CONFIG, "distill: %s needs a value", f);
        const char *v = argv[++i];
        if (!strcmp(name, "teacher"))
            a->teacher = v;
        else if (!strcmp(name, "teacher_model"))
            a->teacher_model = v;
        else if (!strcmp(name, "student_layers"))
            SL_TRY(distill_int(name, v, &a->student_layers));
        else if (!strcmp(name, "student_embd"))
            SL_TRY(distill_int(name, v, &a->student_embd));
        else if (!strcmp(name, "student_heads"))
            SL_TRY(distill_int(name, v, &a->student_heads));
        else if (!strcmp(name, "alpha"))
            SL_TRY(distill_float(name, v, &a->obj.alpha));
        else if (!strcmp(name, "temperature"))
            SL_TRY(distill_float(name, v, &a->obj.temperature));
        else if (!strcmp(name, "out"))
            a->out = v;
        else if (!strcmp(name, "student_plan"))
            a->student_plan = v;
        else
            a->teacher_plan = v;
    }
    if (!a->teacher) {
        return sl_error_set(SL_ERR_CONFIG,
                            "distill: --teacher FILE is required: the teacher's parameters as "
                            "safetensors with GPT-2 names (`shardlab train --out DIR` writes "
                            "DIR/final.safetensors)");
    }
    return SL_OK;
}

/* The configuration of one named plan: what the user said on the command line or through the
 * launcher's environment (FLAG and ENV entries of the session's configuration), over the entry
 * `plan_name` of the config file's deepspeed_configs. */
static sl_status distill_plan_config(const sl_config *session, const char *plan_name,
                                     sl_config **out) {
    const char *file = sl_config_get(session, "config_file", NULL);
    if (!file) {
        return sl_error_set(SL_ERR_CONFIG,
                            "distill: no config file: the teacher and the student take their "
                            "plans from one Accelerate file with a deepspeed_configs map naming "
                            "'%s'; pass --config_file "
                            "examples/configs/distillation_multi_model.yaml to shardlab launch",
                            plan_name);
    }
    SL_TRY(sl_config_create(out));
    sl_status st = SL_OK;
    for (size_t i = 0; st == SL_OK && i < sl_config_size(session); i++) {
        const char *value = NULL;
        const sl_source *src = NULL;
        const char *key = sl_config_entry(session, i, &value, &src);
        if (!strcmp(key, "plan_name") || src->kind == SL_SOURCE_FILE ||
            src->kind == SL_SOURCE_DEFAULT)
            continue;
        st = sl_config_set(*out, key, value, src);
    }
    if (st == SL_OK) st = sl_config_load_file(*out, file, plan_name);
    if (st != SL_OK) {
        sl_config_destroy(*out);
        *out = NULL;
        return sl_error_prefix(st, "distill: plan '%s': ", plan_name);
    }
    return SL_OK;
}

typedef struct distill_run {
    distill_args args;
    sl_session *s;
    sl_config *cfg[2]; /* teacher, student */
    sl_model_desc *desc[2];
    sl_plan *plan[2];
    sl_engine *engine[2];
    distill_link *link;
    sl_dataset *data;
    sl_sampler *sampler;
    int32_t *inputs, *targets;
    float *teacher_losses;
} distill_run;

enum { TEACHER = 0, STUDENT = 1 };

static sl_status distill_setup(distill_run *r) {
    const distill_args *a = &r->args;
    sl_gpt2_config g[2];
    SL_TRY(sl_gpt2_config_from_name(a->teacher_model, &g[TEACHER]));
    g[STUDENT] = g[TEACHER];
    g[STUDENT].n_layer = a->student_layers;
    g[STUDENT].n_embd = a->student_embd;
    g[STUDENT].n_head = a->student_heads;
    sl_status st = sl_gpt2_config_validate(&g[STUDENT]);
    if (st != SL_OK) return sl_error_prefix(st, "distill: student (--student_*): ");
    const char *names[2] = {a->teacher_plan, a->student_plan};
    for (int m = 0; m < 2; m++) {
        SL_TRY(distill_plan_config(sl_session_config(r->s), names[m], &r->cfg[m]));
        SL_TRY(sl_model_desc_create_gpt2(&g[m], &r->desc[m]));
        st = sl_plan_compile(r->cfg[m], r->desc[m], &r->plan[m]);
        if (st != SL_OK) return sl_error_prefix(st, "distill: plan '%s': ", names[m]);
    }
    const sl_plan *tp = r->plan[TEACHER], *sp = r->plan[STUDENT];
    if (tp->micro_batch_size != sp->micro_batch_size || tp->seq_len != sp->seq_len) {
        return sl_error_set(SL_ERR_CONFIG,
                            "distill: the teacher's plan '%s' has micro_batch_size %d, seq_len "
                            "%d but the student's '%s' has %d, %d: both read the same batch; set "
                            "them equal in the config file or with --micro_batch_size/--seq_len",
                            a->teacher_plan, tp->micro_batch_size, tp->seq_len, a->student_plan,
                            sp->micro_batch_size, sp->seq_len);
    }
    SL_TRY(distill_link_create(sp->micro_batch_size, sp->seq_len, g[STUDENT].vocab_size, a->obj,
                               &r->link));

    sl_engine_model model;
    sl_engine_options topt = sl_engine_options_default();
    topt.init_from = a->teacher;
    topt.inference_only = true;
    SL_TRY(distill_teacher_model(r->desc[TEACHER], tp, r->link, &model));
    st = sl_engine_create(r->s, tp, &model, &topt, &r->engine[TEACHER]);
    if (st != SL_OK) return sl_error_prefix(st, "distill: teacher from %s: ", a->teacher);
    SL_TRY(distill_student_model(r->desc[STUDENT], sp, r->link, &model));
    SL_TRY(sl_engine_create(r->s, sp, &model, NULL, &r->engine[STUDENT]));

    SL_TRY(sl_dataset_open("default", SL_SPLIT_TRAIN, &r->data));
    SL_TRY(sl_dataset_check_vocab(r->data, g[STUDENT].vocab_size));
    sl_sampler_options so = sl_plan_sampler_options(sp);
    SL_TRY(sl_sampler_create(r->data, &so, &r->sampler));
    const size_t bt = (size_t)sp->micro_batch_size * (size_t)sp->seq_len;
    r->inputs = calloc(bt, sizeof *r->inputs);
    r->targets = calloc(bt, sizeof *r->targets);
    r->teacher_losses = calloc(bt, sizeof *r->teacher_losses);
    if (!r->inputs || !r->targets || !r->teacher_losses)
        return sl_error_set(SL_ERR_OOM, "distill: out of memory for a batch of %zu tokens", bt);
    return SL_OK;
}

/* One optimizer step of the student; the teacher runs forward on every micro-batch first. */
static sl_status distill_step(distill_run *r, int step) {
    const sl_plan *sp = r->plan[STUDENT];
    const int rank = sl_session_rank(r->s);
    const int64_t bt = (int64_t)sp->micro_batch_size * sp->seq_len;
    /* packed samples: every position of the global batch is a target */
    SL_TRY(sl_engine_step_begin(r->engine[STUDENT],
                                (int64_t)sp->world_size * sp->grad_accum_steps * bt));
    double sums[3] = {0, 0, 0}; /* Σ student CE, Σ KL, Σ teacher CE over this rank's tokens */
    for (int m = 0; m < sp->grad_accum_steps; m++) {
        SL_TRY(sl_sampler_fill(r->sampler, step, rank, m, r->inputs, r->targets, NULL, NULL));
        const sl_batch b = {.inputs = r->inputs,
                            .targets = r->targets,
                            .B = sp->micro_batch_size,
                            .T = sp->seq_len};
        SL_TRY(sl_engine_forward(r->engine[TEACHER], &b, r->teacher_losses));
        for (int64_t i = 0; i < bt; i++)
            sums[2] += r->teacher_losses[i];
        SL_TRY(sl_engine_micro_step(r->engine[STUDENT], m, &b, NULL));
        double ce, kl;
        distill_link_take_sums(r->link, &ce, &kl);
        sums[0] += ce;
        sums[1] += kl;
    }
    sl_trajectory_step rec;
    SL_TRY(sl_engine_optimizer_step(r->engine[STUDENT], &rec));
    SL_TRY(sl_session_sum_f64(r->s, sums, 3));
    if (rank == 0) {
        const double n = (double)rec.tokens;
        printf("step %d loss %.6f ce %.6f kl %.6f teacher_ce %.6f lr %.3g\n", rec.step, rec.loss,
               sums[0] / n, sums[1] / n, sums[2] / n, rec.lr);
        fflush(stdout);
    }
    return SL_OK;
}

static sl_status distill_save(distill_run *r) {
    const char *dir = r->args.out;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        return sl_error_set(SL_ERR_IO, "distill: cannot create --out directory '%s': %s", dir,
                            strerror(errno));
    }
    const char *files[2] = {"teacher.safetensors", "student.safetensors"};
    for (int m = 0; m < 2; m++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, files[m]);
        SL_TRY(sl_engine_save_model(r->engine[m], path));
    }
    return SL_OK;
}

static void distill_free(distill_run *r) {
    free(r->inputs);
    free(r->targets);
    free(r->teacher_losses);
    sl_sampler_destroy(r->sampler);
    sl_dataset_destroy(r->data);
    for (int m = 0; m < 2; m++) {
        sl_engine_destroy(r->engine[m]); /* releases its model */
        sl_plan_destroy(r->plan[m]);
        sl_model_desc_destroy(r->desc[m]);
        sl_config_destroy(r->cfg[m]);
    }
    distill_link_destroy(r->link);
    sl_session_destroy(r->s);
}

static sl_status distill_main(int argc, char **argv) {
    distill_run r = {0};
    sl_status st = sl_session_create_from_env(&r.s);
    char **rest = st == SL_OK ? calloc((size_t)argc + 1, sizeof *rest) : NULL;
    int n_rest = 0;
    if (st == SL_OK && !rest) st = sl_error_set(SL_ERR_OOM, "out of memory");
    if (st == SL_OK) st = sl_config_parse_args(sl_session_config(r.s), argc, argv, rest, &n_rest);
    if (st == SL_OK) st = distill_parse(n_rest, rest, &r.args);
    free(rest);
    if (st == SL_OK) st = distill_setup(&r);
    for (int step = 0; st == SL_OK && step < r.plan[STUDENT]->steps; step++)
        st = distill_step(&r, step);
    if (st == SL_OK) st = distill_save(&r);
    distill_free(&r);
    return st;
}

int main(int argc, char **argv) {
    const sl_status st = distill_main(argc - 1, argv + 1);
    if (st != SL_OK) fprintf(stderr, "error: %s\n", sl_error_message());
    return st == SL_OK ? 0 : 1;
}
