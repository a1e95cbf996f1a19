/* Element-wise tolerances of the attention comparison in test_cpu_kernels.c. */
#ifndef SHARDLAB_TESTS_ATTENTION_BOUNDS_H
#define SHARDLAB_TESTS_ATTENTION_BOUNDS_H

#include "shardlab/dtype.h"

typedef struct attn_case {
    int B, T, C, H;
} attn_case;

/* Bounds for preatt, att (B,H,T,T) and out (B,T,C) of a forward on qkv (B,T,3C), from the
 * reference's outputs. */
void attention_forward_tolerance(const attn_case *a, sl_dtype cd, const float *qkv,
                                 const float *preatt, const float *att, const float *out,
                                 double *tol_pre, double *tol_att, double *tol_out);
/* Bounds for dqkv (B,T,3C) of a backward from dout (B,T,C), given qkv and att. */
void attention_backward_tolerance(const attn_case *a, sl_dtype cd, const float *qkv,
                                  const float *att, const float *dout, const float *dqkv,
                                  double *tol);

#endif
