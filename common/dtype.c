/* Element types and the f32 <-> bf16/f16 conversions, done on the bit patterns so that the result
 * does not depend on the compiler or on hardware half-precision support. */
#include "shardlab/dtype.h"

#include "shardlab/log.h"

#include <string.h>

static uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

size_t sl_dtype_size(sl_dtype dt) {
    switch (dt) {
    case SL_DTYPE_F32: return 4;
    case SL_DTYPE_BF16: return 2;
    case SL_DTYPE_F16: return 2;
    case SL_DTYPE_F64: return 8;
    case SL_DTYPE_I32: return 4;
    case SL_DTYPE_I64: return 8;
    case SL_DTYPE_COUNT: break;
    }
    return 0;
}

const char *sl_dtype_name(sl_dtype dt) {
    switch (dt) {
    case SL_DTYPE_F32: return "fp32";
    case SL_DTYPE_BF16: return "bf16";
    case SL_DTYPE_F16: return "fp16";
    case SL_DTYPE_F64: return "fp64";
    case SL_DTYPE_I32: return "int32";
    case SL_DTYPE_I64: return "int64";
    case SL_DTYPE_COUNT: break;
    }
    return "unknown";
}

const char *sl_dtype_safetensors_name(sl_dtype dt) {
    switch (dt) {
    case SL_DTYPE_F32: return "F32";
    case SL_DTYPE_BF16: return "BF16";
    case SL_DTYPE_F16: return "F16";
    case SL_DTYPE_F64: return "F64";
    case SL_DTYPE_I32: return "I32";
    case SL_DTYPE_I64: return "I64";
    case SL_DTYPE_COUNT: break;
    }
    return "unknown";
}

int sl_dtype_is_float(sl_dtype dt) {
    return dt == SL_DTYPE_F32 || dt == SL_DTYPE_BF16 || dt == SL_DTYPE_F16 || dt == SL_DTYPE_F64;
}

static int ascii_equal_nocase(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char ca = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
        if (ca != *b) return 0;
    }
    return *a == *b;
}

static const struct {
    const char *spelling; /* lower case */
    sl_dtype dtype;
} dtype_spellings[] = {
    {"fp32", SL_DTYPE_F32},   {"float32", SL_DTYPE_F32}, {"f32", SL_DTYPE_F32},
    {"float", SL_DTYPE_F32},  {"bf16", SL_DTYPE_BF16},   {"bfloat16", SL_DTYPE_BF16},
    {"fp16", SL_DTYPE_F16},   {"float16", SL_DTYPE_F16}, {"f16", SL_DTYPE_F16},
    {"half", SL_DTYPE_F16},   {"fp64", SL_DTYPE_F64},    {"float64", SL_DTYPE_F64},
    {"double", SL_DTYPE_F64},
};

sl_status sl_dtype_parse(const char *text, const char *what, sl_dtype *out) {
    const size_t n = sizeof dtype_spellings / sizeof dtype_spellings[0];
    if (text) {
        for (size_t i = 0; i < n; i++) {
            if (ascii_equal_nocase(text, dtype_spellings[i].spelling)) {
                *out = dtype_spellings[i].dtype;
                return SL_OK;
            }
        }
    }
    return sl_error_set(
        SL_ERR_CONFIG,
        "%s: unknown dtype \"%s\"; expected one of fp32, float32, f32, float, bf16, "
        "bfloat16, fp16, float16, f16, half, fp64, float64, double (any case)",
        what ? what : "dtype", text ? text : "(missing)");
}

sl_status sl_dtype_from_safetensors_name(const char *text, sl_dtype *out) {
    for (int i = 0; i < SL_DTYPE_COUNT; i++) {
        if (text && strcmp(text, sl_dtype_safetensors_name((sl_dtype)i)) == 0) {
            *out = (sl_dtype)i;
            return SL_OK;
        }
    }
    return sl_error_set(
        SL_ERR_FORMAT,
        "unsupported safetensors dtype \"%s\"; expected one of F32, BF16, F16, F64, "
        "I32, I64",
        text ? text : "(missing)");
}

/* bf16 is the top half of an f32. Adding 0x7fff plus the lowest kept bit rounds the dropped half to
 * nearest, ties to even; a carry out of the mantissa moves the exponent up, which turns values at
 * or above the bf16 overflow threshold into Inf. NaNs skip the addition (it could carry a NaN into
 * Inf) and get the quiet bit. */
static inline uint16_t bf16_from_bits(uint32_t u) {
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline uint32_t bits_from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u;
    return u;
}

/* f16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. f32 biased exponent e maps to e - 112. */
static inline uint16_t f16_from_bits(uint32_t u) {
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x03ffu));
    /* 65520 = 0x477ff000 is halfway between 65504 (largest f16, odd mantissa) and 2^16: it and
     * everything above rounds to Inf. */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) { /* >= 2^-14: f16 normal; a carry out of the mantissa is correct */
        uint32_t r = a - (112u << 23);
        r += 0x0fffu + ((r >> 13) & 1u);
        return (uint16_t)(sign | (r >> 13));
    }
    /* Below 2^-14 the result is a multiple of 2^-24. Up to 2^-25 (a tie with 0, and 0 is even)
     * everything rounds to zero, including all f32 subnormals. */
    if (a <= 0x33000000u) return sign;
    const uint32_t e = a >> 23;                         /* 102..112 */
    const uint32_t m = (a & 0x007fffffu) | 0x00800000u; /* value = m * 2^(e - 150) */
    const uint32_t shift = 126u - e;                    /* value / 2^-24 = m >> shift, 14..24 */
    uint32_t q = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (q & 1u))) q++; /* q == 0x400 is the smallest normal */
    return (uint16_t)(sign | q);
}

static inline uint32_t bits_from_f16(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x03ffu;
    if (e == 0x1fu) return sign | 0x7f800000u | (m << 13) | (m ? 0x00400000u : 0u);
    if (e != 0) return sign | ((e + 112u) << 23) | (m << 13);
    if (m == 0) return sign;
    /* Subnormal m * 2^-24: normalise so that bit 10 is the implicit one. */
    uint32_t fe = 113;
    while (!(m & 0x0400u)) {
        m <<= 1;
        fe--;
    }
    return sign | (fe << 23) | ((m & 0x03ffu) << 13);
}

uint16_t sl_f32_to_bf16(float x) {
    return bf16_from_bits(f32_bits(x));
}
float sl_bf16_to_f32(uint16_t h) {
    return f32_from_bits(bits_from_bf16(h));
}
uint16_t sl_f32_to_f16(float x) {
    return f16_from_bits(f32_bits(x));
}
float sl_f16_to_f32(uint16_t h) {
    return f32_from_bits(bits_from_f16(h));
}

float sl_round_to(float x, sl_dtype dt) {
    switch (dt) {
    case SL_DTYPE_BF16: return f32_from_bits(bits_from_bf16(bf16_from_bits(f32_bits(x))));
    case SL_DTYPE_F16: return f32_from_bits(bits_from_f16(f16_from_bits(f32_bits(x))));
    default: return x;
    }
}

void sl_round_array(float *x, size_t n, sl_dtype dt) {
    switch (dt) {
    case SL_DTYPE_BF16:
        for (size_t i = 0; i < n; i++)
            x[i] = f32_from_bits(bits_from_bf16(bf16_from_bits(f32_bits(x[i]))));
        break;
    case SL_DTYPE_F16:
        for (size_t i = 0; i < n; i++)
            x[i] = f32_from_bits(bits_from_f16(f16_from_bits(f32_bits(x[i]))));
        break;
    default: break;
    }
}

/* Storage arrays are accessed with memcpy per element so that `dst`/`src` need no alignment. */
void sl_convert_from_f32(void *dst, sl_dtype dt, const float *src, size_t n) {
    unsigned char *d = dst;
    switch (dt) {
    case SL_DTYPE_F32: memcpy(dst, src, n * sizeof(float)); break;
    case SL_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = bf16_from_bits(f32_bits(src[i]));
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    case SL_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = f16_from_bits(f32_bits(src[i]));
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    case SL_DTYPE_F64:
        for (size_t i = 0; i < n; i++) {
            double v = (double)src[i];
            memcpy(d + 8 * i, &v, 8);
        }
        break;
    default:
        SL_LOG_ERROR("sl_convert_from_f32: %s is not a float dtype; nothing converted",
                     sl_dtype_name(dt));
        break;
    }
}

/* F64 and the integer types narrow with C's conversion, which rounds to nearest even under the
 * default floating-point environment. */
void sl_convert_to_f32(float *dst, const void *src, sl_dtype dt, size_t n) {
    const unsigned char *s = src;
    switch (dt) {
    case SL_DTYPE_F32: memcpy(dst, src, n * sizeof(float)); break;
    case SL_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = f32_from_bits(bits_from_bf16(h));
        }
        break;
    case SL_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = f32_from_bits(bits_from_f16(h));
        }
        break;
    case SL_DTYPE_F64:
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, s + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case SL_DTYPE_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, s + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case SL_DTYPE_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, s + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case SL_DTYPE_COUNT: break;
    }
}
