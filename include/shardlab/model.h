/* Model description: the ordered parameters (name, shape, init rule, owning unit) and the
 * sharding units in execution order (DESIGN.md §3). Built-in: the GPT-2 family with Hugging Face
 * GPT-2 parameter names and Conv1D (in, out) weight layout, LM head tied to wte. */
#ifndef SHARDLAB_MODEL_H
#define SHARDLAB_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "shardlab/dtype.h"
#include "shardlab/status.h"

#define SL_MAX_NAME 96
#define SL_MAX_DIMS 4

typedef struct sl_gpt2_config {
    int n_layer;    /* L */
    int n_embd;     /* C */
    int n_head;     /* H; C % H == 0 */
    int block_size; /* T_max: rows of wpe */
    int vocab_size; /* V: rows of wte */
} sl_gpt2_config;

/* Named sizes: "gpt-tiny" (L2 C64 H4 T64 V256), "gpt-small" (L6 C384 H6 T256 V256),
 * "gpt2-124m" (L12 C768 H12 T1024 V50257). */
sl_status sl_gpt2_config_from_name(const char *name, sl_gpt2_config *out);
/* Checks every field is positive and C divisible by H; the message names the offending field. */
sl_status sl_gpt2_config_validate(const sl_gpt2_config *cfg);

typedef enum sl_init_rule {
    SL_INIT_NORMAL, /* N(0, std) from the counter-based RNG */
    SL_INIT_ZEROS,
    SL_INIT_ONES
} sl_init_rule;

typedef struct sl_param_desc {
    char name[SL_MAX_NAME]; /* Hugging Face name, e.g. "transformer.h.0.attn.c_attn.weight" */
    int ndim;
    int64_t shape[SL_MAX_DIMS]; /* export layout; dim 0 is what FSDP2 shards */
    int64_t numel;
    sl_init_rule init;
    double init_std; /* SL_INIT_NORMAL only */
    int unit;        /* index into units[] of the unit that owns it */
} sl_param_desc;

typedef struct sl_unit_desc {
    char name[SL_MAX_NAME]; /* "root", "transformer.h.0", ... */
    int n_params;
    int *params; /* indices into sl_model_desc.params, in the unit's flattening order */
    int is_root; /* the root unit is never resharded after forward (FSDP2) */
} sl_unit_desc;

typedef struct sl_model_desc {
    char kind[32]; /* "gpt2" */
    sl_gpt2_config gpt2;
    int n_params;
    sl_param_desc *params; /* registration order (Hugging Face named_parameters order) */
    int n_units;
    sl_unit_desc *units; /* execution order of the forward pass; units[0] is the root */
    int64_t total_numel;
} sl_model_desc;

/* Parameters in HF order: wte, wpe, then per block ln_1.{weight,bias}, attn.c_attn.{weight,bias},
 * attn.c_proj.{weight,bias}, ln_2.{weight,bias}, mlp.c_fc.{weight,bias}, mlp.c_proj.{weight,bias},
 * then ln_f.{weight,bias}. Units: root = {wte, wpe, ln_f.weight, ln_f.bias} (FSDP1 flattens the
 * root's own params in module pre-order: wte, wpe, ln_f), then one unit per block. */
sl_status sl_model_desc_create_gpt2(const sl_gpt2_config *cfg, sl_model_desc **out);
void sl_model_desc_destroy(sl_model_desc *desc);

int sl_model_find_param(const sl_model_desc *desc, const char *name);

/* Initial value of element `index` (row-major, export layout) of parameter p, in f32, from the
 * counter-based RNG: the same value whether computed alone or as part of the whole tensor. */
float sl_model_init_value(const sl_model_desc *desc, int p, uint64_t seed, int64_t index);
/* Fills out[0..n) with elements [start, start+n) of parameter p. */
void sl_model_init_range(const sl_model_desc *desc, int p, uint64_t seed, int64_t start, int64_t n,
                         float *out);

/* Numbers of floats in the activations the GPT-2 forward/backward keeps for a (B, T) batch; the
 * reference's activation buffers and the memory prediction both use it. */
int64_t sl_gpt2_activation_numel(const sl_gpt2_config *cfg, int B, int T);

/* The buffers an engine's GPT-2 forward/backward holds for a (B, T) micro-batch — fewer than the
 * reference keeps (sl_gpt2_activation_numel): not preatt (backward never reads it), attproj and
 * fcproj (the residual join consumes them at once) nor the (B,T,V) probabilities (recomputed
 * from the logits and two f32 numbers per row). The memory prediction (plan.h), the engine's
 * kernels (which carve exactly these buffers, in this order) and the reference's logical
 * accounting all count from this list. Shapes with C = n_embd, H = n_head, V = vocab_size. */
typedef enum sl_gpt2_buf {
    /* kept from forward to backward: category `activations` */
    SL_GPT2_BUF_ENCODED,   /* (B,T,C) */
    SL_GPT2_BUF_LN1,       /* (L,B,T,C) */
    SL_GPT2_BUF_LN1_MEAN,  /* (L,B,T) f32 */
    SL_GPT2_BUF_LN1_RSTD,  /* (L,B,T) f32 */
    SL_GPT2_BUF_QKV,       /* (L,B,T,3C) */
    SL_GPT2_BUF_ATTY,      /* (L,B,T,C) */
    SL_GPT2_BUF_ATT,       /* (L,B,H,T,T) */
    SL_GPT2_BUF_RESIDUAL2, /* (L,B,T,C) */
    SL_GPT2_BUF_LN2,       /* (L,B,T,C) */
    SL_GPT2_BUF_LN2_MEAN,  /* (L,B,T) f32 */
    SL_GPT2_BUF_LN2_RSTD,  /* (L,B,T) f32 */
    SL_GPT2_BUF_FCH,       /* (L,B,T,4C) */
    SL_GPT2_BUF_FCH_GELU,  /* (L,B,T,4C) */
    SL_GPT2_BUF_RESIDUAL3, /* (L,B,T,C) */
    SL_GPT2_BUF_LNF,       /* (B,T,C) */
    SL_GPT2_BUF_LNF_MEAN,  /* (B,T) f32 */
    SL_GPT2_BUF_LNF_RSTD,  /* (B,T) f32 */
    SL_GPT2_BUF_LOGITS,    /* (B,T,V); the head's backward overwrites it with dlogits */
    SL_GPT2_BUF_CE_STATS,  /* (B,T,2) f32: the classifier's row max and sum of exp */
    /* one layer's worth, live through the micro-step: category `workspace` */
    SL_GPT2_BUF_PROJ,       /* (B,T,C) attproj or fcproj before its residual join */
    SL_GPT2_BUF_DRESIDUAL,  /* (B,T,C) */
    SL_GPT2_BUF_DRESIDUAL2, /* (B,T,C) */
    SL_GPT2_BUF_DLN,        /* (B,T,C) */
    SL_GPT2_BUF_DX,         /* (B,T,C) */
    SL_GPT2_BUF_DATTY,      /* (B,T,C) */
    SL_GPT2_BUF_DQKV,       /* (B,T,3C) */
    SL_GPT2_BUF_DFCH,       /* (B,T,4C) */
    SL_GPT2_BUF_COUNT
} sl_gpt2_buf;

#define SL_GPT2_BUF_FIRST_SCRATCH SL_GPT2_BUF_PROJ

/* Elements of buffer `buf`; *is_f32 says whether it is stored in F32 whatever the activation
 * dtype (the LayerNorm and classifier statistics). */
int64_t sl_gpt2_buf_numel(const sl_gpt2_config *cfg, int B, int T, sl_gpt2_buf buf, int *is_f32);
/* Bytes of buffer `buf` with activations stored in `act_dtype`, rounded up to a multiple of 64
 * (every buffer starts on a 64-byte boundary). */
int64_t sl_gpt2_buf_bytes(const sl_gpt2_config *cfg, int B, int T, sl_gpt2_buf buf,
                          sl_dtype act_dtype);
/* Σ sl_gpt2_buf_bytes over the kept buffers: what the activations category holds. */
int64_t sl_gpt2_kept_activation_bytes(const sl_gpt2_config *cfg, int B, int T, sl_dtype act_dtype);
/* Σ sl_gpt2_buf_bytes over the one-layer buffers: the model's share of the workspace category. */
int64_t sl_gpt2_scratch_bytes(const sl_gpt2_config *cfg, int B, int T, sl_dtype act_dtype);

#endif
