#include "shardlab/trajectory.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/json.h"
#include "shardlab/plan.h"

void sl_trajectory_init(sl_trajectory *t, const char *producer) {
    memset(t, 0, sizeof *t);
    snprintf(t->producer, sizeof t->producer, "%s", producer);
}

void sl_trajectory_free(sl_trajectory *t) {
    free(t->steps);
    memset(t, 0, sizeof *t);
}

sl_status sl_trajectory_append(sl_trajectory *t, const sl_trajectory_step *s) {
    if (t->n_steps == t->cap_steps) {
        int cap = t->cap_steps ? 2 * t->cap_steps : 64;
        sl_trajectory_step *grown = realloc(t->steps, (size_t)cap * sizeof *grown);
        if (!grown) return sl_error_set(SL_ERR_OOM, "out of memory growing the trajectory");
        t->steps = grown;
        t->cap_steps = cap;
    }
    t->steps[t->n_steps++] = *s;
    return SL_OK;
}

static void sl_trajectory_write_steps(const sl_trajectory *t, sl_json_writer *w) {
    sl_json_writer_begin_array(w);
    for (int i = 0; i < t->n_steps; i++) {
        const sl_trajectory_step *s = &t->steps[i];
        sl_json_writer_begin_object(w);
        sl_json_writer_key(w, "step");
        sl_json_writer_int64(w, s->step);
        sl_json_writer_key(w, "loss");
        sl_json_writer_double(w, s->loss);
        sl_json_writer_key(w, "grad_norm");
        sl_json_writer_double(w, s->grad_norm);
        sl_json_writer_key(w, "loss_scale");
        sl_json_writer_double(w, s->loss_scale);
        sl_json_writer_key(w, "skipped");
        sl_json_writer_bool(w, s->skipped);
        sl_json_writer_key(w, "lr");
        sl_json_writer_double(w, s->lr);
        sl_json_writer_key(w, "tokens");
        sl_json_writer_int64(w, s->tokens);
        if (!isnan(s->eval_loss)) {
            sl_json_writer_key(w, "eval_loss");
            sl_json_writer_double(w, s->eval_loss);
        }
        sl_json_writer_end_object(w);
    }
    sl_json_writer_end_array(w);
}

typedef struct sl_trajectory_doc {
    const sl_trajectory *t;
    const sl_plan *plan;
    const sl_model_desc *model;
    const sl_observation *obs;
} sl_trajectory_doc;

static sl_status sl_trajectory_write_doc(FILE *f, void *ctx) {
    const sl_trajectory_doc *d = ctx;
    sl_json_writer w;
    sl_json_writer_init(&w, f, 2);
    sl_json_writer_begin_object(&w);
    sl_json_writer_key(&w, "producer");
    sl_json_writer_string(&w, d->t->producer);
    sl_json_writer_key(&w, "seconds");
    sl_json_writer_double(&w, d->t->seconds);
    if (d->plan) {
        sl_json_writer_key(&w, "plan");
        sl_json_writer_external_value(&w);
        sl_plan_explain_json(d->plan, d->model, f);
    }
    sl_json_writer_key(&w, "steps");
    sl_trajectory_write_steps(d->t, &w);
    if (d->obs) {
        sl_json_writer_key(&w, "observed");
        int level = sl_json_writer_external_value(&w);
        sl_observation_write_json(d->obs, f, level);
    }
    sl_json_writer_end_object(&w);
    return sl_json_writer_finish(&w);
}

sl_status sl_trajectory_write_json(const sl_trajectory *t, const sl_plan *plan,
                                   const sl_model_desc *model, const sl_observation *obs,
                                   const char *path) {
    sl_trajectory_doc doc = {.t = t, .plan = plan, .model = model, .obs = obs};
    return sl_file_write_atomic(path, sl_trajectory_write_doc, &doc);
}
