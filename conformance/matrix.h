/* What each tier checks: the cases of the conformance matrix, each two runs and the check that
 * compares them (DESIGN.md §9; issue "The conformance suite"). */
#ifndef SHARDLAB_CONFORMANCE_MATRIX_H
#define SHARDLAB_CONFORMANCE_MATRIX_H

#include "conformance/check.h"
#include "conformance/runner.h"

typedef enum sl_conf_tier { SL_CONF_TIER_QUICK, SL_CONF_TIER_FULL } sl_conf_tier;

typedef enum sl_conf_case_kind {
    SL_CONF_CASE_OBSERVE,    /* T1: a = the run, b = explain of the same plan */
    SL_CONF_CASE_BITWISE,    /* T2: a and b the same run twice */
    SL_CONF_CASE_TOLERANCE,  /* T3: a within the floor's tolerance of b */
    SL_CONF_CASE_DOCUMENTED, /* T4: a beyond the floor of b */
    SL_CONF_CASE_RESUME      /* T2 / T3: a uninterrupted; b saves a checkpoint half-way; c
                                resumes from it (its --output_dir is b's) and finishes */
} sl_conf_case_kind;

typedef struct sl_conf_case {
    sl_conf_case_kind kind;
    char tier[4];
    char check[32];
    char plan[256];           /* the row label */
    char floor_key[32];       /* precision label of the noise floor (T3, T4) */
    sl_conf_run_spec a, b, c; /* out_dir: empty, or a salt making an identical run distinct */
} sl_conf_case;

typedef struct sl_conf_matrix {
    int n, cap;
    sl_conf_case *cases;
} sl_conf_matrix;

/* The precision labels floors are kept per: "fp32", "bf16", "fp16", "bf16-load". */
extern const char *const sl_conf_precisions[4];

/* The plan flags of a precision label for a plan (DeepSpeed fp16 starts its scale at 2^8 so that
 * a few-step run takes steps; `overflow` keeps DeepSpeed's 2^16, which overflows at first). */
void sl_conf_precision_flags(const char *label, const char *plan_flags, bool overflow, char *buf,
                             size_t cap);

/* The run flags every case shares (micro-batch, sequence, seed), steps and model. */
#define SL_CONF_RUN_FLAGS "--micro_batch_size 2 --seq_len 32 --seed 11"
#define SL_CONF_STEPS 4
/* The largest W of any case (the floors are measured at each W a tier uses). */
#define SL_CONF_MAX_WORLD 4

/* The cases of a tier whose "tier check plan" text contains `filter` (NULL: all). */
sl_status sl_conf_matrix_build(sl_conf_tier tier, const char *filter, sl_conf_matrix *out);
void sl_conf_matrix_free(sl_conf_matrix *m);

#endif
