/* Learning-rate schedules (lr_schedule.h). */
#include "shardlab/lr_schedule.h"

#include <math.h>

/* Python's math.pi: the double nearest π. */
static const double sl_pi = 3.14159265358979323846;

const char *sl_lr_schedule_name(sl_lr_schedule s) {
    switch (s) {
    case SL_LR_CONSTANT: return "constant";
    case SL_LR_WARMUP_COSINE: return "warmup_cosine";
    case SL_LR_WARMUP_LINEAR: return "warmup_linear";
    }
    return "unknown";
}

static double at_least_one(int x) {
    return x > 1 ? (double)x : 1.0;
}

static double lr_factor(const sl_optim_config *cfg, int step, int total_steps) {
    int warmup = cfg->warmup_steps;
    if (step < warmup) return (double)step / at_least_one(warmup);
    double floor_ratio = cfg->min_lr_ratio;
    double factor;
    switch (cfg->schedule) {
    case SL_LR_WARMUP_LINEAR:
        factor = fmax(0.0, (double)(total_steps - step) / at_least_one(total_steps - warmup));
        break;
    case SL_LR_WARMUP_COSINE: {
        double progress = fmin(1.0, (double)(step - warmup) / at_least_one(total_steps - warmup));
        factor = 0.5 * (1.0 + cos(sl_pi * progress));
        break;
    }
    case SL_LR_CONSTANT:
    default: return 1.0;
    }
    return fmax(0.0, factor * (1.0 - floor_ratio) + floor_ratio);
}

double sl_lr_at(const sl_optim_config *cfg, int step, int total_steps) {
    return cfg->lr * lr_factor(cfg, step, total_steps);
}
