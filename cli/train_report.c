/* Progress, metrics and the memory table of `shardlab train` (train_report.h). */
#include "cli/train_report.h"

#include <math.h>
#include <time.h>

double sl_train_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sl_train_json_number(FILE *f, const char *key, double v) {
    if (isfinite(v)) {
        fprintf(f, ",\"%s\":%.17g", key, v);
    } else {
        fprintf(f, ",\"%s\":null", key);
    }
}

void sl_train_progress_step(sl_train_progress *p, const sl_trajectory_step *rec, bool quiet) {
    p->tokens += rec->tokens;
    const double elapsed = sl_train_now() - p->t0;
    const double tps = elapsed > 0.0 ? (double)p->tokens / elapsed : 0.0;
    const double eta = rec->step > 0 ? elapsed / rec->step * (p->total_steps - rec->step) : 0.0;
    if (p->metrics) {
        fprintf(p->metrics, "{\"step\":%d", rec->step);
        sl_train_json_number(p->metrics, "loss", rec->loss);
        sl_train_json_number(p->metrics, "grad_norm", rec->grad_norm);
        sl_train_json_number(p->metrics, "lr", rec->lr);
        sl_train_json_number(p->metrics, "loss_scale", rec->loss_scale);
        fprintf(p->metrics, ",\"skipped\":%s,\"tokens\":%lld", rec->skipped ? "true" : "false",
                (long long)rec->tokens);
        sl_train_json_number(p->metrics, "tokens_per_s", tps);
        sl_train_json_number(p->metrics, "elapsed_s", elapsed);
        if (!isnan(rec->eval_loss)) sl_train_json_number(p->metrics, "eval_loss", rec->eval_loss);
        fprintf(p->metrics, "}\n");
        fflush(p->metrics);
    }
    if (quiet) return;
    char eval[48] = "";
    if (!isnan(rec->eval_loss)) snprintf(eval, sizeof eval, " eval %.4f", rec->eval_loss);
    printf("%sstep %d/%d loss %.4f%s norm %.4f lr %.3e %.0f tok/s ETA %.0fs%s%s",
           p->tty ? "\r" : "", rec->step, p->total_steps, rec->loss, eval, rec->grad_norm, rec->lr,
           tps, eta, rec->skipped ? " (skipped: overflow)" : "", p->tty ? "\033[K" : "\n");
    fflush(stdout);
}

void sl_train_progress_end(sl_train_progress *p, bool quiet) {
    if (p->tty && !quiet) printf("\n");
}

void sl_train_print_memory(FILE *f, const sl_observation *obs, int64_t comm_scratch_peak,
                           int64_t kernel_scratch) {
    const double mib = 1024.0 * 1024.0;
    fprintf(f, "peak memory per rank (MiB):\n  %-16s %-6s", "category", "space");
    for (int r = 0; r < obs->world_size; r++)
        fprintf(f, " %9s%-3d", "rank ", r);
    fprintf(f, "\n");
    for (int sp = 0; sp < SL_SPACE_COUNT; sp++) {
        for (int c = 0; c < SL_MEM_CATEGORY_COUNT; c++) {
            bool any = false;
            for (int r = 0; r < obs->world_size; r++)
                any |= obs->memory[r].peak[sp][c] != 0;
            if (!any && sp == SL_SPACE_HOST) continue;
            fprintf(f, "  %-16s %-6s", sl_mem_category_name((sl_mem_category)c),
                    sl_mem_space_name((sl_mem_space)sp));
            for (int r = 0; r < obs->world_size; r++) {
                fprintf(f, " %12.3f", (double)obs->memory[r].peak[sp][c] / mib);
            }
            fprintf(f, "\n");
        }
    }
    fprintf(f,
            "  (beside the plan's categories, rank 0: comm layer's staging %.3f MiB, kernels' "
            "scratch %.3f MiB)\n",
            (double)comm_scratch_peak / mib, (double)kernel_scratch / mib);
}
