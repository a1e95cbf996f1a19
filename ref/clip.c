/* Global gradient norm, clipping and GradScaler unscaling over the shards of all ranks
 * (optim.h). */
#include "ref/optim.h"

#include <math.h>

/* Runs of at most this many elements are summed sequentially; longer ranges split in halves. */
#define SL_PAIRWISE_BLOCK 32

/* Σ x² in f32: each square rounded to f32, pairwise summation. */
static float sumsq_f32(const float *x, int64_t n) {
    if (n <= SL_PAIRWISE_BLOCK) {
        float s = 0.0f;
        for (int64_t i = 0; i < n; i++)
            s += x[i] * x[i];
        return s;
    }
    int64_t half = n / 2;
    return sumsq_f32(x, half) + sumsq_f32(x + half, n - half);
}

/* Σ x² in f64 (torch.linalg.vector_norm(g.double())), pairwise like sumsq_f32. */
static double sumsq_f64(const float *x, int64_t n) {
    if (n <= SL_PAIRWISE_BLOCK) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++)
            s += (double)x[i] * (double)x[i];
        return s;
    }
    int64_t half = n / 2;
    return sumsq_f64(x, half) + sumsq_f64(x + half, n - half);
}

/* FSDP1: local = vector_norm(stack(per-piece f32 norms)) on each rank, then
 * (Σ_r local_r ** 2) ** 0.5 over the shard group, all in f32. */
static float norm_fsdp_f32(const sl_rank_grads *ranks, int n_ranks) {
    float total_sq = 0.0f;
    for (int r = 0; r < n_ranks; r++) {
        float local_sq = 0.0f;
        for (int i = 0; i < ranks[r].n_pieces; i++) {
            const sl_grad_piece *piece = &ranks[r].pieces[i];
            float piece_norm = sqrtf(sumsq_f32(piece->data, piece->numel));
            local_sq += piece_norm * piece_norm;
        }
        float local = sqrtf(local_sq);
        total_sq += local * local;
    }
    return sqrtf(total_sq);
}

/* DeepSpeed: per-piece f64 norms, stack(...).square().sum().float() on each rank, all-reduce SUM
 * in f32, .pow(1/2); non-finite -> -1 (mask_nan_or_inf_with_val_inplace). */
static float norm_deepspeed_f64(const sl_rank_grads *ranks, int n_ranks) {
    float total_sq = 0.0f;
    for (int r = 0; r < n_ranks; r++) {
        double local_sq = 0.0;
        for (int i = 0; i < ranks[r].n_pieces; i++) {
            const sl_grad_piece *piece = &ranks[r].pieces[i];
            double piece_norm = sqrt(sumsq_f64(piece->data, piece->numel));
            local_sq += piece_norm * piece_norm;
        }
        total_sq += (float)local_sq;
    }
    float total = sqrtf(total_sq);
    return isfinite(total) ? total : -1.0f;
}

double sl_ref_grad_norm(sl_norm_precision precision, const sl_rank_grads *ranks, int n_ranks) {
    if (precision == SL_NORM_F64) return norm_deepspeed_f64(ranks, n_ranks);
    return norm_fsdp_f32(ranks, n_ranks);
}

float sl_ref_clip_coef(sl_clip_rule rule, double norm, double max_norm, double loss_scale) {
    if (rule == SL_CLIP_TORCH) {
        if (max_norm <= 0.0) return 1.0f;
        float shifted = (float)norm + (float)1e-6;
        float coef = (1.0f / shifted) * (float)max_norm;
        return coef > 1.0f ? 1.0f : coef; /* torch.clamp keeps a NaN */
    }
    if (max_norm <= 0.0) return (float)(1.0 / loss_scale);
    float scale = (float)loss_scale;
    float clip = (((float)norm / scale) + (float)1e-6) / (float)max_norm;
    if (clip < 1.0f) /* torch.clamp(min=1.0); a NaN stays NaN */
        clip = 1.0f;
    float combined = clip * scale;
    return 1.0f / combined;
}

void sl_ref_clip_apply(sl_clip_rule rule, float coef, float *grad, int64_t n, sl_dtype grad_dtype) {
    float k = rule == SL_CLIP_TORCH ? sl_round_to(coef, grad_dtype) : coef;
    for (int64_t i = 0; i < n; i++)
        grad[i] = sl_round_to(grad[i] * k, grad_dtype);
}

float sl_ref_torch_inv_scale(double loss_scale) {
    return (float)(1.0 / loss_scale);
}

bool sl_ref_grads_unscale(float *grad, int64_t n, float inv_scale, sl_dtype grad_dtype) {
    bool found_inf = false;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(grad[i])) found_inf = true;
        grad[i] = sl_round_to(grad[i] * inv_scale, grad_dtype);
    }
    return found_inf;
}
