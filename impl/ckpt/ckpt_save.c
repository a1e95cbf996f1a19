/* Saving the engine's state (include/shardlab/checkpoint.h): every writing rank puts its files
 * into "<dir>.tmp", rank 0 checksums them, writes the manifest, renames the directory into place
 * and then updates `latest`. Each phase ends with every rank agreeing that it succeeded. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "common/param_file.h"
#include "impl/ckpt/ckpt_internal.h"
#include "shardlab/log.h"
#include "shardlab/safetensors.h"

sl_ckpt_save_options sl_ckpt_save_options_default(void) {
    return (sl_ckpt_save_options){.type = SL_STATE_DICT_SHARDED};
}

typedef struct sl_ckpt_save {
    sl_engine *e;
    const sl_ckpt_save_options *opt;
    char dir[4096], tmp[4160], parent[4096], base[256];
    int files_written; /* by this rank, for the fault hook */
} sl_ckpt_save;

static sl_status sl_ckpt_save_paths(sl_ckpt_save *s, const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n == 0 || n >= sizeof s->dir)
        return sl_error_set(SL_ERR_INVALID_ARG, "checkpoint directory '%s': empty or too long",
                            dir);
    memcpy(s->dir, dir, n);
    s->dir[n] = '\0';
    snprintf(s->tmp, sizeof s->tmp, "%s.tmp", s->dir);
    const char *slash = strrchr(s->dir, '/');
    const char *base = slash ? slash + 1 : s->dir;
    if (strlen(base) >= sizeof s->base)
        return sl_error_set(SL_ERR_INVALID_ARG, "checkpoint directory name '%s' is too long", base);
    memcpy(s->base, base, strlen(base) + 1);
    if (!slash) {
        strcpy(s->parent, ".");
    } else {
        snprintf(s->parent, sizeof s->parent, "%.*s", slash == s->dir ? 1 : (int)(slash - s->dir),
                 s->dir);
    }
    return SL_OK;
}

/* mkdir -p */
static sl_status sl_ckpt_mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        const bool end = *p == '\0';
        if (*p != '/' && !end) continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return sl_error_set(SL_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        if (end) break;
        *p = '/';
    }
    return SL_OK;
}

static sl_status sl_ckpt_prepare(sl_ckpt_save *s) {
    SL_TRY(sl_ckpt_mkdirs(s->parent));
    SL_TRY(sl_ckpt_dir_remove(s->tmp)); /* left by a save that was killed */
    if (mkdir(s->tmp, 0777) != 0)
        return sl_error_set(SL_ERR_IO, "cannot create %s: %s", s->tmp, strerror(errno));
    return SL_OK;
}

static sl_status sl_ckpt_write_file(sl_ckpt_save *s, sl_safetensors_writer *w, const char *name) {
    char path[4416];
    snprintf(path, sizeof path, "%s/%s", s->tmp, name);
    SL_TRY(sl_safetensors_writer_set_metadata(w, "format", "shardlab-checkpoint"));
    SL_TRY(sl_safetensors_writer_write(w, path));
    sl_ckpt_fault("after_file", ++s->files_written, s->e->steps_done, s->e->rank);
    return SL_OK;
}

/* This rank's params and optim files: each owned piece as NAME@[start,end), stored in the
 * master / optimizer-state dtype. */
static sl_status sl_ckpt_write_shards(sl_ckpt_save *s) {
    sl_engine *e = s->e;
    const sl_plan *plan = e->plan;
    for (int optim = 0; optim < 2; optim++) {
        sl_safetensors_writer *w = NULL;
        SL_TRY(sl_safetensors_writer_create(&w));
        sl_status st = SL_OK;
        for (int b = 0; st == SL_OK && b < plan->n_buffers; b++) {
            for (int i = 0; st == SL_OK && i < e->n_pieces[b]; i++) {
                const sl_shard_piece *pc = &e->pieces[b][i];
                const int64_t n = pc->end - pc->start, at = e->shard_off[b] + pc->shard_offset;
                if (n <= 0) continue;
                const char *pname = e->desc->params[pc->param].name;
                for (int k = optim ? 1 : 0; st == SL_OK && k < (optim ? 3 : 1); k++) {
                    const sl_dtype dt = optim ? e->od : e->md;
                    const void *src = k == 0 ? e->master : k == 1 ? e->m : e->v;
                    char name[256];
                    sl_ckpt_tensor_name((sl_ckpt_state)k, pname, pc->start, pc->end, false, name,
                                        sizeof name);
                    st = sl_safetensors_writer_add(
                        w, name, dt, &n, 1, (const char *)src + (size_t)at * sl_dtype_size(dt));
                }
            }
        }
        char fname[128];
        sl_ckpt_file_name(SL_STATE_DICT_SHARDED, optim, e->rank, e->world, fname, sizeof fname);
        if (st == SL_OK) st = sl_ckpt_write_file(s, w, fname);
        sl_safetensors_writer_destroy(w);
        SL_TRY(st);
    }
    return SL_OK;
}

/* model.safetensors and optimizer.safetensors with the parameters' names and shapes. Every rank
 * takes part in the gathers; rank 0 writes. The first failure is kept, but every gather still
 * runs so that no rank is left waiting in one. */
static sl_status sl_ckpt_write_full(sl_ckpt_save *s) {
    sl_engine *e = s->e;
    const sl_model_desc *d = e->desc;
    float **arrays[3] = {NULL, NULL, NULL};
    sl_status st = SL_OK;
    for (int k = 0; k < 3; k++) {
        if (e->rank == 0 && st == SL_OK && !(arrays[k] = sl_param_arrays_alloc(d)))
            st = sl_error_set(SL_ERR_OOM, "out of memory gathering the full state");
        static const sl_engine_state which[3] = {SL_ENGINE_MASTERS, SL_ENGINE_EXP_AVG,
                                                 SL_ENGINE_EXP_AVG_SQ};
        const sl_status g = sl_engine_gather_full(e, which[k], 0, arrays[k]);
        if (st == SL_OK) st = g;
    }
    for (int optim = 0; st == SL_OK && e->rank == 0 && optim < 2; optim++) {
        sl_safetensors_writer *w = NULL;
        st = sl_safetensors_writer_create(&w);
        for (int k = optim ? 1 : 0; st == SL_OK && k < (optim ? 3 : 1); k++) {
            for (int p = 0; st == SL_OK && p < d->n_params; p++) {
                char name[256];
                sl_ckpt_tensor_name((sl_ckpt_state)k, d->params[p].name, 0, d->params[p].numel,
                                    true, name, sizeof name);
                st = sl_safetensors_writer_add_f32(w, name, optim ? e->od : e->md,
                                                   d->params[p].shape, d->params[p].ndim,
                                                   arrays[k][p]);
            }
        }
        char fname[128];
        sl_ckpt_file_name(SL_STATE_DICT_FULL, optim, 0, e->world, fname, sizeof fname);
        if (st == SL_OK) st = sl_ckpt_write_file(s, w, fname);
        sl_safetensors_writer_destroy(w);
    }
    for (int k = 0; k < 3; k++)
        sl_param_arrays_free(d, arrays[k]);
    return st;
}

static void sl_ckpt_manifest_fill(const sl_ckpt_save *s, sl_ckpt_manifest *m) {
    const sl_engine *e = s->e;
    const sl_plan *plan = e->plan;
    *m = (sl_ckpt_manifest){.format_version = SL_CKPT_FORMAT_VERSION,
                            .type = s->opt->type,
                            .step = e->steps_done,
                            .applied_steps = e->applied_steps,
                            .world_size = e->world,
                            .shard_group_size = plan->shard_group_size,
                            .grad_accum_steps = plan->grad_accum_steps,
                            .micro_batch_size = plan->micro_batch_size,
                            .seq_len = plan->seq_len,
                            .total_steps = plan->steps,
                            .seed = plan->seed,
                            .deterministic = e->reduce_opts.deterministic,
                            .master_dtype = e->md,
                            .optim_dtype = e->od,
                            .optim = plan->optim,
                            .gpt2 = e->desc->gpt2,
                            .scaler = e->scaler,
                            .has_data = s->opt->has_data,
                            .data = s->opt->data,
                            .consumed_samples = s->opt->consumed_samples};
    snprintf(m->dialect, sizeof m->dialect, "%s", sl_dialect_name(plan->dialect));
    snprintf(m->strategy, sizeof m->strategy, "%s", sl_strategy_name(plan->strategy));
    snprintf(m->layout, sizeof m->layout, "%s", sl_layout_name(plan->layout));
    snprintf(m->model_kind, sizeof m->model_kind, "%s", e->desc->kind);
}

/* The files every writer produced, with their ranges, sizes and checksums (rank 0). */
static sl_status sl_ckpt_list_files(const sl_ckpt_save *s, sl_ckpt_manifest *m) {
    const sl_engine *e = s->e;
    const sl_model_desc *d = e->desc;
    m->files = calloc(2 * (size_t)e->world, sizeof *m->files);
    if (!m->files) return sl_error_set(SL_ERR_OOM, "out of memory writing the manifest");
    for (int r = 0; r < e->world; r++) {
        const bool full = m->type == SL_STATE_DICT_FULL;
        if (full ? r != 0 : !sl_ckpt_rank_writes(e->plan, r)) continue;
        sl_ckpt_range *ranges = NULL;
        int n = 0;
        if (full) {
            if (!(ranges = calloc((size_t)d->n_params, sizeof *ranges)))
                return sl_error_set(SL_ERR_OOM, "out of memory writing the manifest");
            for (int p = 0; p < d->n_params; p++)
                ranges[n++] = (sl_ckpt_range){.param = p, .start = 0, .end = d->params[p].numel};
        } else {
            SL_TRY(sl_ckpt_rank_ranges(e->plan, sl_plan_shard_rank(e->plan, r), &ranges, &n));
        }
        for (int optim = 0; optim < 2; optim++) {
            sl_ckpt_file *f = &m->files[m->n_files++];
            f->rank = r;
            f->optim = optim;
            f->n_ranges = n;
            f->ranges = ranges;
            if (optim) { /* the two files share one list; the params file owns it */
                f->ranges = malloc(((size_t)n + 1) * sizeof *ranges);
                if (!f->ranges) return sl_error_set(SL_ERR_OOM, "out of memory (manifest)");
                memcpy(f->ranges, ranges, (size_t)n * sizeof *ranges);
            }
            sl_ckpt_file_name(m->type, optim, r, e->world, f->name, sizeof f->name);
            char path[4416];
            snprintf(path, sizeof path, "%s/%s", s->tmp, f->name);
            SL_TRY(sl_ckpt_file_checksum(path, &f->bytes, &f->fnv1a64));
        }
    }
    return SL_OK;
}

/* Rank 0: manifest, rename into place, `latest`, limit. */
static sl_status sl_ckpt_commit(sl_ckpt_save *s) {
    sl_engine *e = s->e;
    sl_ckpt_manifest m;
    sl_ckpt_manifest_fill(s, &m);
    sl_status st = sl_ckpt_list_files(s, &m);
    char path[4416];
    snprintf(path, sizeof path, "%s/%s", s->tmp, SL_CKPT_MANIFEST);
    if (st == SL_OK) sl_ckpt_fault("before_manifest", 0, e->steps_done, e->rank);
    if (st == SL_OK) st = sl_ckpt_manifest_write(&m, e->desc, path);
    sl_ckpt_manifest_free(&m);
    if (st == SL_OK) st = sl_dir_fsync(s->tmp);
    if (st == SL_OK) sl_ckpt_fault("before_rename", 0, e->steps_done, e->rank);
    /* an existing checkpoint of the same name is replaced: moved aside, then removed */
    char old[4160];
    snprintf(old, sizeof old, "%s.old", s->dir);
    if (st == SL_OK) st = sl_ckpt_dir_remove(old);
    if (st == SL_OK && rename(s->dir, old) != 0 && errno != ENOENT)
        st = sl_error_set(SL_ERR_IO, "cannot move %s aside: %s", s->dir, strerror(errno));
    if (st == SL_OK && rename(s->tmp, s->dir) != 0)
        st = sl_error_set(SL_ERR_IO, "cannot rename %s to %s: %s", s->tmp, s->dir, strerror(errno));
    if (st == SL_OK) st = sl_dir_fsync(s->parent);
    if (st == SL_OK) st = sl_ckpt_dir_remove(old);
    if (st == SL_OK) sl_ckpt_fault("before_latest", 0, e->steps_done, e->rank);
    if (st == SL_OK && s->opt->update_latest) st = sl_ckpt_latest_write(s->parent, s->base);
    if (st == SL_OK && s->opt->total_limit > 0) st = sl_ckpt_prune(s->parent, s->opt->total_limit);
    return st;
}

sl_status sl_engine_save_state(sl_engine *e, const char *dir, const sl_ckpt_save_options *opt) {
    const sl_ckpt_save_options dflt = sl_ckpt_save_options_default();
    sl_ckpt_save s = {.e = e, .opt = opt ? opt : &dflt};
    if (e->opt.inference_only) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "checkpoint %s: an inference-only engine has no training state to "
                            "save; save its weights with sl_engine_save_model",
                            dir);
    }
    sl_status st = sl_ckpt_save_paths(&s, dir);
    if (st == SL_OK && e->rank == 0) st = sl_ckpt_prepare(&s);
    SL_TRY(sl_ckpt_agree(e, st, "preparing the checkpoint directory"));
    if (s.opt->type == SL_STATE_DICT_FULL) {
        st = sl_ckpt_write_full(&s);
    } else {
        st = sl_ckpt_rank_writes(e->plan, e->rank) ? sl_ckpt_write_shards(&s) : SL_OK;
    }
    SL_TRY(sl_ckpt_agree(e, st, "writing the checkpoint files"));
    st = e->rank == 0 ? sl_ckpt_commit(&s) : SL_OK;
    if (st != SL_OK) sl_error_prefix(st, "checkpoint %s: ", s.dir);
    SL_TRY(sl_ckpt_agree(e, st, "committing the checkpoint"));
    if (e->rank == 0)
        SL_LOG_INFO("saved checkpoint %s (step %d, %s)", s.dir, e->steps_done,
                    sl_state_dict_type_name(s.opt->type));
    return SL_OK;
}
