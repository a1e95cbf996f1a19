/* The buffers of an engine's GPT-2 forward/backward and their bytes (model.h, sl_gpt2_buf): one
 * list that the kernels carve, the plan predicts from and the reference accounts with. */
#include "shardlab/model.h"

int64_t sl_gpt2_buf_numel(const sl_gpt2_config *cfg, int B, int T, sl_gpt2_buf buf, int *is_f32) {
    const int64_t BT = (int64_t)B * T, C = cfg->n_embd, H = cfg->n_head, V = cfg->vocab_size;
    const int64_t L = cfg->n_layer;
    *is_f32 = 0;
    switch (buf) {
    case SL_GPT2_BUF_LN1_MEAN:
    case SL_GPT2_BUF_LN1_RSTD:
    case SL_GPT2_BUF_LN2_MEAN:
    case SL_GPT2_BUF_LN2_RSTD: *is_f32 = 1; return L * BT;
    case SL_GPT2_BUF_LNF_MEAN:
    case SL_GPT2_BUF_LNF_RSTD: *is_f32 = 1; return BT;
    case SL_GPT2_BUF_CE_STATS: *is_f32 = 1; return 2 * BT;
    case SL_GPT2_BUF_LN1:
    case SL_GPT2_BUF_ATTY:
    case SL_GPT2_BUF_RESIDUAL2:
    case SL_GPT2_BUF_LN2:
    case SL_GPT2_BUF_RESIDUAL3: return L * BT * C;
    case SL_GPT2_BUF_QKV: return L * BT * 3 * C;
    case SL_GPT2_BUF_ATT: return L * B * H * T * T;
    case SL_GPT2_BUF_FCH:
    case SL_GPT2_BUF_FCH_GELU: return L * BT * 4 * C;
    case SL_GPT2_BUF_LOGITS: return BT * V;
    case SL_GPT2_BUF_ENCODED:
    case SL_GPT2_BUF_LNF:
    case SL_GPT2_BUF_PROJ:
    case SL_GPT2_BUF_DRESIDUAL:
    case SL_GPT2_BUF_DRESIDUAL2:
    case SL_GPT2_BUF_DLN:
    case SL_GPT2_BUF_DX:
    case SL_GPT2_BUF_DATTY: return BT * C;
    case SL_GPT2_BUF_DQKV: return BT * 3 * C;
    case SL_GPT2_BUF_DFCH: return BT * 4 * C;
    case SL_GPT2_BUF_COUNT: break;
    }
    return 0;
}

int64_t sl_gpt2_buf_bytes(const sl_gpt2_config *cfg, int B, int T, sl_gpt2_buf buf,
                          sl_dtype act_dtype) {
    int is_f32 = 0;
    const int64_t n = sl_gpt2_buf_numel(cfg, B, T, buf, &is_f32);
    const int64_t size = (int64_t)(is_f32 ? sizeof(float) : sl_dtype_size(act_dtype));
    return (n * size + 63) / 64 * 64;
}

int64_t sl_gpt2_kept_activation_bytes(const sl_gpt2_config *cfg, int B, int T, sl_dtype act_dtype) {
    int64_t bytes = 0;
    for (int b = 0; b < SL_GPT2_BUF_FIRST_SCRATCH; b++)
        bytes += sl_gpt2_buf_bytes(cfg, B, T, (sl_gpt2_buf)b, act_dtype);
    return bytes;
}

int64_t sl_gpt2_scratch_bytes(const sl_gpt2_config *cfg, int B, int T, sl_dtype act_dtype) {
    int64_t bytes = 0;
    for (int b = SL_GPT2_BUF_FIRST_SCRATCH; b < SL_GPT2_BUF_COUNT; b++)
        bytes += sl_gpt2_buf_bytes(cfg, B, T, (sl_gpt2_buf)b, act_dtype);
    return bytes;
}
