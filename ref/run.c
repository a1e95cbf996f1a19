#include "ref/run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/hf_model.h"
#include "common/param_file.h"
#include "common/plan_internal.h"
#include "ref/reduce.h"

void sl_ref_record(sl_ref_run *run, sl_coll_op op, sl_coll_group group, sl_phase phase, int micro,
                   int unit, sl_dtype dt, int64_t elements) {
    const sl_plan *plan = run->plan;
    int n = group == SL_GROUP_WORLD   ? plan->world_size
            : group == SL_GROUP_SHARD ? plan->shard_group_size
                                      : plan->n_replicas;
    if (n < 2 || elements == 0) return; /* a group of one rank communicates nothing */
    /* Every rank stages its input in a communication buffer for the call: an all-gather sends
     * its shard, the reductions their whole input. */
    const int64_t staged =
        (op == SL_COLL_ALL_GATHER ? elements / n : elements) * (int64_t)sl_dtype_size(dt);
    /* An all-gather spanning several buffers then puts the shards in buffer order in place,
     * marking each element in a map (workspace). */
    const int64_t map =
        op == SL_COLL_ALL_GATHER ? sl_plan_gather_map_bytes(plan, unit, elements) : 0;
    for (int r = 0; r < plan->world_size; r++) {
        sl_observation_mem_alloc(run->obs, r, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, staged);
        sl_observation_mem_free(run->obs, r, SL_SPACE_DEVICE, SL_MEM_COMM_BUFFERS, staged);
        sl_observation_mem_alloc(run->obs, r, SL_SPACE_DEVICE, SL_MEM_WORKSPACE, map);
        sl_observation_mem_free(run->obs, r, SL_SPACE_DEVICE, SL_MEM_WORKSPACE, map);
    }
    if (!run->record) return;
    sl_collective_record rec = {.op = op,
                                .group = group,
                                .group_size = n,
                                .phase = phase,
                                .micro_step = micro,
                                .unit = unit,
                                .dtype = dt,
                                .elements = elements,
                                .bytes_sent_per_rank =
                                    sl_collective_bytes_sent(op, n, elements, dt)};
    sl_observation_add_collective(run->obs, &rec);
}

/* ---- loading the initial parameters ---------------------------------------------------- */

static sl_status sl_ref_initial_values(const sl_ref_run *run, float **full) {
    const sl_model_desc *model = run->model;
    const sl_dtype ld = run->plan->precision.load_dtype;
    if (run->opt->init_from) {
        /* a safetensors file or the Hugging Face layout, every name and shape checked first */
        sl_hf_model *hf = NULL;
        SL_TRY(sl_hf_model_open(run->opt->init_from, model, &hf));
        sl_status status = SL_OK;
        for (int p = 0; p < model->n_params && status == SL_OK; p++) {
            status = sl_hf_model_read(hf, p, full[p]);
        }
        sl_hf_model_close(hf);
        SL_TRY(status);
    } else {
        for (int p = 0; p < model->n_params; p++) {
            sl_model_init_range(model, p, run->plan->seed, 0, model->params[p].numel, full[p]);
        }
    }
    /* The model is created (or loaded) in load_dtype: PyTorch's torch_dtype. */
    for (int p = 0; p < model->n_params; p++)
        sl_round_array(full[p], (size_t)model->params[p].numel, ld);
    return SL_OK;
}

/* ---- create / destroy ------------------------------------------------------------------- */

int64_t sl_ref_unit_gather_numel(const sl_plan *plan, int unit, bool persistent) {
    int64_t n = 0;
    for (int b = 0; b < plan->n_buffers; b++) {
        if (plan->buffers[b].unit == unit && plan->buffers[b].persistent == persistent) {
            n += plan->buffers[b].numel_padded;
        }
    }
    return n;
}

bool sl_ref_layout_gathers_per_unit(const sl_plan *plan) {
    return plan->layout == SL_LAYOUT_FLAT_PER_UNIT || plan->layout == SL_LAYOUT_PER_PARAM_DIM0 ||
           plan->layout == SL_LAYOUT_PER_PARAM_FLAT;
}

static int64_t sl_ref_model_numel_padded(const sl_plan *plan) {
    int64_t n = 0;
    for (int b = 0; b < plan->n_buffers; b++)
        n += plan->buffers[b].numel_padded;
    return n;
}

/* Parameter copies every rank holds for the whole run: ZeRO-1/2's full low-precision module,
 * ZeRO-3's persistent parameters, and NO_SHARD's compute copy when it differs from the master. */
static void sl_ref_account_resident_params(sl_ref_run *run) {
    const sl_plan *plan = run->plan;
    const int64_t psize = (int64_t)sl_dtype_size(plan->precision.param_dtype);
    int64_t numel = 0;
    if (plan->layout == SL_LAYOUT_FLAT_GLOBAL) {
        numel = sl_ref_model_numel_padded(plan);
    } else if (plan->layout == SL_LAYOUT_REPLICATED) {
        if (plan->precision.param_dtype != plan->precision.master_dtype) {
            numel = sl_ref_model_numel_padded(plan);
        }
    } else {
        for (int u = 0; u < run->model->n_units; u++)
            numel += sl_ref_unit_gather_numel(plan, u, true);
    }
    for (int r = 0; r < plan->world_size; r++) {
        sl_observation_mem_alloc(run->obs, r, SL_SPACE_DEVICE, SL_MEM_PARAMS_GATHERED,
                                 numel * psize);
    }
}

static void sl_ref_account_sharded_grads(sl_ref_run *run) {
    const sl_plan *plan = run->plan;
    const sl_dtype gd = plan->accum_mode == SL_ACCUM_REDUCED_SHARD ? plan->precision.accum_dtype
                                                                   : plan->precision.master_dtype;
    int64_t shard = 0;
    for (int b = 0; b < plan->n_buffers; b++)
        shard += plan->buffers[b].shard_numel;
    /* CPU offload of the optimizer keeps the sharded gradients with the optimizer states. */
    const sl_mem_space space = plan->offload_optimizer ? SL_SPACE_HOST : SL_SPACE_DEVICE;
    for (int r = 0; r < plan->world_size; r++) {
        sl_observation_mem_alloc(run->obs, r, space, SL_MEM_GRADS_SHARDED,
                                 shard * (int64_t)sl_dtype_size(gd));
    }
}

static sl_status sl_ref_open_data(sl_ref_run *run) {
    const sl_plan *plan = run->plan;
    SL_TRY(sl_dataset_open(run->opt->data, SL_SPLIT_TRAIN, &run->train));
    SL_TRY(sl_dataset_check_vocab(run->train, run->model->gpt2.vocab_size));
    if (run->opt->eval_every > 0) {
        SL_TRY(sl_dataset_open(run->opt->data, SL_SPLIT_HELDOUT, &run->heldout));
        SL_TRY(sl_dataset_check_vocab(run->heldout, run->model->gpt2.vocab_size));
    }
    sl_sampler_options so = sl_plan_sampler_options(plan);
    so.mode = run->opt->sampling;
    return sl_sampler_create(run->train, &so, &run->sampler);
}

sl_status sl_ref_run_create(const sl_plan *plan, const sl_model_desc *model,
                            const sl_ref_options *opt, sl_observation *obs, sl_ref_run **out) {
    if (plan->seq_len > model->gpt2.block_size) {
        return sl_error_set(SL_ERR_CONFIG,
                            "seq_len %d exceeds the model's block_size %d; lower --seq_len or "
                            "raise --block_size",
                            plan->seq_len, model->gpt2.block_size);
    }
    sl_ref_run *run = calloc(1, sizeof *run);
    if (!run) return sl_error_set(SL_ERR_OOM, "out of memory creating the reference run");
    run->plan = plan;
    run->model = model;
    run->opt = opt;
    run->obs = obs;
    sl_status st = SL_OK;
    const int W = plan->world_size;
    const int64_t bt = (int64_t)plan->micro_batch_size * plan->seq_len;
    const size_t batch = (size_t)W * (size_t)plan->grad_accum_steps * (size_t)bt;

    float **initial = run->initial = sl_param_arrays_alloc(model);
    run->params = sl_param_arrays_alloc(model);
    run->step1_grads = sl_param_arrays_alloc(model);
    run->grads = calloc((size_t)W, sizeof *run->grads);
    run->local = calloc((size_t)W, sizeof *run->local);
    run->gathered = calloc((size_t)W, sizeof *run->gathered);
    run->acts = calloc((size_t)W, sizeof *run->acts);
    run->dlosses = calloc((size_t)W, sizeof *run->dlosses);
    run->losses = calloc((size_t)bt, sizeof(float));
    run->inputs = calloc(batch, sizeof(int32_t));
    run->targets = calloc(batch, sizeof(int32_t));
    run->step1_inputs = calloc(batch, sizeof(int32_t));
    run->step1_targets = calloc(batch, sizeof(int32_t));
    bool ok = initial && run->params && run->grads && run->step1_grads && run->local &&
              run->gathered && run->acts && run->losses && run->dlosses && run->inputs &&
              run->targets && run->step1_inputs && run->step1_targets;
    const bool no_sync = plan->accum_mode == SL_ACCUM_LOCAL_UNSHARDED;
    for (int r = 0; ok && r < W; r++) {
        run->grads[r] = sl_param_arrays_alloc(model);
        run->local[r] = no_sync ? sl_param_arrays_alloc(model) : NULL;
        run->gathered[r] = calloc((size_t)model->n_units, sizeof(bool));
        run->dlosses[r] = calloc((size_t)bt, sizeof(float));
        ok = run->grads[r] && (run->local[r] || !no_sync) && run->gathered[r] && run->dlosses[r] &&
             sl_ref_gpt2_acts_create(model, plan->micro_batch_size, plan->seq_len, &run->acts[r]) ==
                 SL_OK;
    }
    if (!ok) {
        st = sl_error_set(SL_ERR_OOM, "out of memory allocating the reference run's buffers");
        goto done;
    }
    if ((st = sl_ref_initial_values(run, initial)) != SL_OK) goto done;
    if ((st = sl_ref_shards_create(plan, model, initial, obs, &run->shards)) != SL_OK) goto done;
    run->shards->reverse_reduction_order = opt->reverse_reduction_order;
    if ((st = sl_loss_scaler_init(&run->scaler, plan->precision.loss_scale, &plan->scaler)) !=
        SL_OK)
        goto done;
    if ((st = sl_ref_open_data(run)) != SL_OK) goto done;
    sl_ref_account_resident_params(run);
    sl_ref_account_sharded_grads(run);
    for (int s = 0; s < SL_STAGE_COUNT; s++)
        obs->dtype_table[s] = SL_DTYPE_COUNT; /* unobserved */
done:
    if (st != SL_OK) {
        sl_ref_run_destroy(run);
        return st;
    }
    *out = run;
    return SL_OK;
}

void sl_ref_run_destroy(sl_ref_run *run) {
    if (!run) return;
    const sl_model_desc *model = run->model;
    for (int r = 0; r < run->plan->world_size; r++) {
        if (run->grads) sl_param_arrays_free(model, run->grads[r]);
        if (run->local) sl_param_arrays_free(model, run->local[r]);
        if (run->gathered) free(run->gathered[r]);
        if (run->acts) sl_ref_gpt2_acts_destroy(run->acts[r]);
        if (run->dlosses) free(run->dlosses[r]);
    }
    free(run->grads);
    free(run->local);
    free(run->gathered);
    free(run->acts);
    free(run->dlosses);
    sl_param_arrays_free(model, run->initial);
    sl_param_arrays_free(model, run->params);
    sl_param_arrays_free(model, run->step1_grads);
    sl_ref_shards_destroy(run->shards);
    sl_sampler_destroy(run->sampler);
    sl_dataset_destroy(run->train);
    sl_dataset_destroy(run->heldout);
    free(run->losses);
    free(run->inputs);
    free(run->targets);
    free(run->step1_inputs);
    free(run->step1_targets);
    free(run);
}

/* ---- batches ---------------------------------------------------------------------------- */

static size_t sl_ref_batch_offset(const sl_ref_run *run, int r, int m) {
    const sl_plan *plan = run->plan;
    const size_t bt = (size_t)plan->micro_batch_size * (size_t)plan->seq_len;
    return ((size_t)r * (size_t)plan->grad_accum_steps + (size_t)m) * bt; /* (W, k, b, T) */
}

sl_status sl_ref_run_load_batch(sl_ref_run *run, int step) {
    for (int r = 0; r < run->plan->world_size; r++) {
        for (int m = 0; m < run->plan->grad_accum_steps; m++) {
            size_t off = sl_ref_batch_offset(run, r, m);
            SL_TRY(sl_sampler_fill(run->sampler, step, r, m, run->inputs + off, run->targets + off,
                                   NULL, NULL));
        }
    }
    return SL_OK;
}

const int32_t *sl_ref_run_inputs(const sl_ref_run *run, int r, int m) {
    return run->inputs + sl_ref_batch_offset(run, r, m);
}

const int32_t *sl_ref_run_targets(const sl_ref_run *run, int r, int m) {
    return run->targets + sl_ref_batch_offset(run, r, m);
}

int64_t sl_ref_run_count_tokens(const sl_ref_run *run, int r, int m) {
    const int32_t *t = sl_ref_run_targets(run, r, m);
    const int64_t bt = (int64_t)run->plan->micro_batch_size * run->plan->seq_len;
    int64_t n = 0;
    for (int64_t i = 0; i < bt; i++)
        n += t[i] >= 0;
    return n;
}
