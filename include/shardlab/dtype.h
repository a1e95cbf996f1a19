/* Element types and the conversions between them.
 *
 * Every narrowing conversion (f32 -> bf16, f32 -> f16) rounds to nearest, ties to even; NaN stays
 * NaN (quiet), ±Inf and ±0 are kept, f16 subnormals are produced and read exactly. Widening is
 * exact. These are the only rounding primitives ref/ and impl/ use. */
#ifndef SHARDLAB_DTYPE_H
#define SHARDLAB_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "shardlab/status.h"

typedef enum sl_dtype {
    SL_DTYPE_F32 = 0,
    SL_DTYPE_BF16,
    SL_DTYPE_F16,
    SL_DTYPE_F64,
    SL_DTYPE_I32,
    SL_DTYPE_I64,
    SL_DTYPE_COUNT
} sl_dtype;

size_t sl_dtype_size(sl_dtype dt);

/* "fp32", "bf16", "fp16", "fp64", "int32", "int64": the spelling used in plans, tables, JSON. */
const char *sl_dtype_name(sl_dtype dt);

/* safetensors' spelling: "F32", "BF16", "F16", "F64", "I32", "I64". */
const char *sl_dtype_safetensors_name(sl_dtype dt);

/* Accepts the spellings users write: fp32/float32/f32/float, bf16/bfloat16, fp16/float16/f16/half,
 * fp64/float64/double. Sets an error naming `what` (a key or flag) otherwise. */
sl_status sl_dtype_parse(const char *text, const char *what, sl_dtype *out);
sl_status sl_dtype_from_safetensors_name(const char *text, sl_dtype *out);

int sl_dtype_is_float(sl_dtype dt);

uint16_t sl_f32_to_bf16(float x);
float sl_bf16_to_f32(uint16_t h);
uint16_t sl_f32_to_f16(float x);
float sl_f16_to_f32(uint16_t h);

/* x rounded to `dt` and widened back to f32: the value a `dt` buffer would hold. F32 (and F64)
 * return x unchanged. */
float sl_round_to(float x, sl_dtype dt);
void sl_round_array(float *x, size_t n, sl_dtype dt);

/* Bulk conversions between an f32 array and a storage array of `dt` (F32, BF16, F16). */
void sl_convert_from_f32(void *dst, sl_dtype dt, const float *src, size_t n);
void sl_convert_to_f32(float *dst, const void *src, sl_dtype dt, size_t n);

#endif
