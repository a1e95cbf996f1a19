/* T5: the reference against PyTorch (peer.h). */
#include "conformance/peer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "conformance/matrix.h"
#include "conformance/peer_python.h"

/* The accumulation of each plan; W = 1 has nothing to accumulate across. */
static const struct {
    const char *label, *flags;
    int world_size, accumulation;
} sl_conf_peer_plans[SL_CONF_PEER_PLANS] = {
    {"fp32 W=1", "--use_fsdp --fsdp_sharding_strategy FULL_SHARD", 1, 1},
    {"fsdp1 FULL_SHARD fp32 W=2 k=2", "--use_fsdp --fsdp_sharding_strategy FULL_SHARD", 2, 2},
    {"deepspeed zero3 fp32 W=2 k=2", "--use_deepspeed --zero_stage 3", 2, 2},
};

void sl_conf_peer_plan(int i, char *label, size_t cap, sl_conf_run_spec *spec) {
    snprintf(label, cap, "ref vs PyTorch %s", sl_conf_peer_plans[i].label);
    *spec = sl_conf_run_spec_default();
    spec->tool = SL_CONF_TOOL_REF;
    spec->steps = 1;
    spec->world_size = sl_conf_peer_plans[i].world_size;
    snprintf(spec->plan_flags, sizeof spec->plan_flags,
             "%s --mixed_precision no " SL_CONF_RUN_FLAGS
             " --gradient_accumulation_steps %d --loss_normalization global_tokens",
             sl_conf_peer_plans[i].flags, sl_conf_peer_plans[i].accumulation);
}

void sl_conf_peer_env_find(sl_conf_peer_env *e) {
    memset(e, 0, sizeof *e);
    if (!sl_peer_script_find("peer_check.py", "SHARDLAB_PEER_CHECK", e->script, sizeof e->script)) {
        snprintf(e->why, sizeof e->why,
                 "the peer script %.300s is not there (run shardlab from its build tree, or set "
                 "SHARDLAB_PEER_CHECK to bench/peer/peer_check.py)",
                 e->script);
        return;
    }
    e->ok = sl_peer_python_find(e->python, sizeof e->python, e->why, sizeof e->why);
}

static int sl_conf_peer_find(const sl_conf_tensors *t, const char *name) {
    for (int i = 0; i < t->n; i++) {
        if (!strcmp(t->names[i], name)) return i;
    }
    return -1;
}

/* Tolerance. Every value compared is, at its deepest, an f32 sum of at most n terms, n the
 * longest reduction of the step: the global batch's tokens (weight gradients and the loss sum
 * over them), the vocabulary (the softmax normaliser, the gradient into the last hidden state)
 * or 4·n_embd (the MLP's projection). Summed in any order, such a sum is within
 * γ_n·Σ|terms| of the exact one, γ_n = n·u/(1 − n·u), u = 2^-24 (Higham, "Accuracy and
 * Stability of Numerical Algorithms", §4.2). Two implementations that each obey the bound differ
 * by at most 2·γ_n of Σ|terms|, which for a gradient tensor is of the order of its largest
 * element: the tolerance is 2·γ_n of each tensor's largest magnitude, and of the loss. A wrong
 * rule (a missed 1/k or 1/W, a gradient of the wrong loss, a dropped rank's batch) is off by a
 * factor, orders of magnitude beyond. */
double sl_conf_peer_tolerance(const sl_conf_result *run) {
    const int ln = sl_conf_peer_find(&run->grads, "transformer.ln_f.weight");
    const int wte = sl_conf_peer_find(&run->grads, "transformer.wte.weight");
    if (ln < 0 || wte < 0 || run->n_steps < 1 || run->grads.numel[ln] == 0) return NAN;
    const double C = (double)run->grads.numel[ln];
    const double V = (double)run->grads.numel[wte] / C;
    double n = (double)run->steps[0].tokens;
    if (V > n) n = V;
    if (4.0 * C > n) n = 4.0 * C;
    const double u = ldexp(1.0, -24);
    return 2.0 * (n * u / (1.0 - n * u));
}

/* max_e |a_e − b_e| / max_e |b_e| of one tensor (b the baseline; NaN-propagating). */
static double sl_conf_peer_rel(const float *a, const float *b, size_t n) {
    double diff = 0.0, scale = 0.0;
    for (size_t e = 0; e < n; e++) {
        const double d = fabs((double)a[e] - (double)b[e]);
        if (!(d <= diff)) diff = d;
        if (fabs((double)b[e]) > scale) scale = fabs((double)b[e]);
    }
    return scale > 0.0 ? diff / scale : diff;
}

void sl_conf_peer_compare(const sl_conf_result *run, const char *peer_path, sl_conf_check *c) {
    c->tolerance = sl_conf_peer_tolerance(run);
    if (isnan(c->tolerance)) {
        c->verdict = SL_CONF_FAIL;
        snprintf(c->detail, sizeof c->detail,
                 "the run has no step 1 or no grads_step1 transformer.ln_f.weight / "
                 "transformer.wte.weight to size the tolerance by (see %.400s)",
                 run->log_path);
        return;
    }
    sl_conf_tensors peer = {0};
    if (sl_conf_tensors_read(peer_path, &peer) != SL_OK) {
        c->verdict = SL_CONF_FAIL;
        snprintf(c->detail, sizeof c->detail, "%.700s", sl_error_message());
        return;
    }
    const int li = sl_conf_peer_find(&peer, "loss");
    if (li < 0 || peer.numel[li] != 1) {
        c->verdict = SL_CONF_FAIL;
        snprintf(c->detail, sizeof c->detail,
                 "%.500s: expected a tensor 'loss' of 1 element (peer_check.py's output), found "
                 "%s",
                 peer_path, li < 0 ? "none" : "another shape");
        sl_conf_tensors_free(&peer);
        return;
    }
    const double peer_loss = peer.data[li][0];
    double worst = fabs(run->steps[0].loss - peer_loss) / fabs(peer_loss);
    snprintf(c->quantity, sizeof c->quantity, "loss");
    char worst_name[160] = "loss";
    const char *missing = run->grads.n == 0 ? "grads_step1 (the run wrote no gradients)" : NULL;
    for (int t = 0; t < run->grads.n && !missing; t++) {
        const int p = sl_conf_peer_find(&peer, run->grads.names[t]);
        if (p < 0 || peer.numel[p] != run->grads.numel[t]) {
            missing = run->grads.names[t];
            break;
        }
        const double d = sl_conf_peer_rel(run->grads.data[t], peer.data[p], peer.numel[p]);
        if (!(d <= worst)) {
            worst = d;
            snprintf(c->quantity, sizeof c->quantity, "grads_step1");
            snprintf(worst_name, sizeof worst_name, "%s", run->grads.names[t]);
        }
    }
    if (missing) {
        c->verdict = SL_CONF_FAIL;
        snprintf(c->detail, sizeof c->detail,
                 "%.300s: tensor %.200s is missing or has another element count than the run's "
                 "grads_step1; the peer must write one gradient per parameter",
                 peer_path, missing);
        sl_conf_tensors_free(&peer);
        return;
    }
    c->measured = worst;
    c->verdict = worst <= c->tolerance ? SL_CONF_PASS : SL_CONF_FAIL;
    snprintf(
        c->detail, sizeof c->detail,
        "largest difference %.3g (%s) relative to PyTorch's largest magnitude, tolerance "
        "%.3g = 2*gamma_n for the longest f32 sum; loss %.9g vs PyTorch %.9g; peer output %.300s",
        worst, worst_name, c->tolerance, run->steps[0].loss, peer_loss, peer_path);
    sl_conf_tensors_free(&peer);
}

void sl_conf_peer_check(const sl_conf_peer_env *e, const char *run_dir, const sl_conf_result *run,
                        double timeout_s, sl_conf_check *c) {
    if (!e->ok) {
        c->verdict = SL_CONF_SKIP;
        snprintf(c->detail, sizeof c->detail, "%s", e->why);
        return;
    }
    if (run->status != SL_OK) {
        sl_conf_check_run_failed(c, run);
        return;
    }
    char out[SL_CONF_PATH_MAX + 32], log[SL_CONF_PATH_MAX + 32];
    snprintf(out, sizeof out, "%s/peer_step1.safetensors", run_dir);
    snprintf(log, sizeof log, "%s/peer.log", run_dir);
    char *argv[] = {(char *)e->python, (char *)e->script, (char *)run_dir, "--out", out, NULL};
    bool timed_out = false;
    const int st = sl_peer_spawn(argv, log, timeout_s, &timed_out);
    if (st != 0) {
        c->verdict = SL_CONF_FAIL;
        if (timed_out) {
            snprintf(c->detail, sizeof c->detail,
                     "%.200s %.200s did not finish within %.0f s and was killed; its output is in "
                     "%.200s",
                     e->python, e->script, timeout_s, log);
        } else {
            snprintf(c->detail, sizeof c->detail,
                     "%.200s %.200s exited with status %d (-1: it could not start); its output "
                     "is in %.200s",
                     e->python, e->script, st, log);
        }
        return;
    }
    sl_conf_peer_compare(run, out, c);
}
