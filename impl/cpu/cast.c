/* f32 <-> bf16/f16 conversions, bit for bit as common/dtype.c, with AVX-512F and AVX2+F16C paths
 * chosen at run time (cpu_features.c). Each vector function carries its own target attribute, so
 * the file builds without -march flags.
 *
 * bf16: round to nearest even on the bit pattern (u + 0x7fff + lsb, then the top half), NaNs
 * keep their top half with the quiet bit set — dtype.c's integer formula in vector form.
 * f16: VCVTPS2PH / VCVTPH2PS with round-to-nearest-even: IEEE conversions that keep subnormals
 * and quieten NaNs the way dtype.c does (the tests compare every pattern). */
#include "impl/cpu/cpu.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#define SL_CPU_CAST_CHUNK 4096

/* ---- AVX-512F ---- */

__attribute__((target("avx512f"))) static void
sl_cpu_bf16_narrow_avx512(uint16_t *dst, const float *src, int64_t n) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
    const __m512i inf = _mm512_set1_epi32(0x7f800000);
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i half = _mm512_set1_epi32(0x7fff);
    const __m512i quiet = _mm512_set1_epi32(0x40);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i u = _mm512_loadu_si512((const void *)(src + i));
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
        const __m512i top = _mm512_srli_epi32(u, 16);
        const __m512i lsb = _mm512_and_si512(top, one);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(half, lsb)), 16);
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(top, quiet));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm512_cvtepi32_epi16(r));
    }
    for (; i < n; i++)
        dst[i] = sl_f32_to_bf16(src[i]);
}

__attribute__((target("avx512f"))) static void
sl_cpu_bf16_widen_avx512(float *dst, const uint16_t *src, int64_t n) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
    const __m512i inf = _mm512_set1_epi32(0x7f800000);
    const __m512i quiet = _mm512_set1_epi32(0x00400000);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        __m512i u = _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
        u = _mm512_mask_or_epi32(u, nan, u, quiet);
        _mm512_storeu_si512((void *)(dst + i), u);
    }
    for (; i < n; i++)
        dst[i] = sl_bf16_to_f32(src[i]);
}

__attribute__((target("avx512f"))) static void
sl_cpu_f16_narrow_avx512(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(src + i),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), h);
    }
    for (; i < n; i++)
        dst[i] = sl_f32_to_f16(src[i]);
}

__attribute__((target("avx512f"))) static void
sl_cpu_f16_widen_avx512(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(h));
    }
    for (; i < n; i++)
        dst[i] = sl_f16_to_f32(src[i]);
}

/* ---- AVX2 + F16C ---- */

__attribute__((target("avx2"))) static __m256i sl_cpu_bf16_bits_avx2(__m256i u) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    const __m256i inf = _mm256_set1_epi32(0x7f800000);
    /* |u| <= 0x7fffffff, so the signed compare is the unsigned one */
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
    const __m256i top = _mm256_srli_epi32(u, 16);
    const __m256i lsb = _mm256_and_si256(top, _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
    return _mm256_blendv_epi8(r, _mm256_or_si256(top, _mm256_set1_epi32(0x40)), nan);
}

__attribute__((target("avx2"))) static void sl_cpu_bf16_narrow_avx2(uint16_t *dst, const float *src,
                                                                    int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i r0 =
            sl_cpu_bf16_bits_avx2(_mm256_loadu_si256((const __m256i *)(const void *)(src + i)));
        const __m256i r1 =
            sl_cpu_bf16_bits_avx2(_mm256_loadu_si256((const __m256i *)(const void *)(src + i + 8)));
        /* packus interleaves 128-bit lanes: [r0 0-3, r1 0-3, r0 4-7, r1 4-7]; 0xD8 restores order
         */
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r0, r1), 0xD8);
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), packed);
    }
    for (; i < n; i++)
        dst[i] = sl_f32_to_bf16(src[i]);
}

__attribute__((target("avx2"))) static void sl_cpu_bf16_widen_avx2(float *dst, const uint16_t *src,
                                                                   int64_t n) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    const __m256i inf = _mm256_set1_epi32(0x7f800000);
    const __m256i quiet = _mm256_set1_epi32(0x00400000);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        const __m256i u = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
        const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
        _mm256_storeu_si256((__m256i *)(void *)(dst + i),
                            _mm256_or_si256(u, _mm256_and_si256(nan, quiet)));
    }
    for (; i < n; i++)
        dst[i] = sl_bf16_to_f32(src[i]);
}

__attribute__((target("avx2,f16c"))) static void
sl_cpu_f16_narrow_avx2(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(void *)(dst + i), h);
    }
    for (; i < n; i++)
        dst[i] = sl_f32_to_f16(src[i]);
}

__attribute__((target("avx2,f16c"))) static void
sl_cpu_f16_widen_avx2(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++)
        dst[i] = sl_f16_to_f32(src[i]);
}

/* ---- dispatch ---- */

void sl_cpu_f32_to_bf16(uint16_t *dst, const float *src, int64_t n) {
    switch (sl_cpu_isa_active()) {
    case SL_CPU_ISA_AVX512: sl_cpu_bf16_narrow_avx512(dst, src, n); return;
    case SL_CPU_ISA_AVX2: sl_cpu_bf16_narrow_avx2(dst, src, n); return;
    case SL_CPU_ISA_PORTABLE: break;
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = sl_f32_to_bf16(src[i]);
}

void sl_cpu_bf16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    switch (sl_cpu_isa_active()) {
    case SL_CPU_ISA_AVX512: sl_cpu_bf16_widen_avx512(dst, src, n); return;
    case SL_CPU_ISA_AVX2: sl_cpu_bf16_widen_avx2(dst, src, n); return;
    case SL_CPU_ISA_PORTABLE: break;
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = sl_bf16_to_f32(src[i]);
}

void sl_cpu_f32_to_f16(uint16_t *dst, const float *src, int64_t n) {
    switch (sl_cpu_isa_active()) {
    case SL_CPU_ISA_AVX512: sl_cpu_f16_narrow_avx512(dst, src, n); return;
    case SL_CPU_ISA_AVX2: sl_cpu_f16_narrow_avx2(dst, src, n); return;
    case SL_CPU_ISA_PORTABLE: break;
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = sl_f32_to_f16(src[i]);
}

void sl_cpu_f16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    switch (sl_cpu_isa_active()) {
    case SL_CPU_ISA_AVX512: sl_cpu_f16_widen_avx512(dst, src, n); return;
    case SL_CPU_ISA_AVX2: sl_cpu_f16_widen_avx2(dst, src, n); return;
    case SL_CPU_ISA_PORTABLE: break;
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = sl_f16_to_f32(src[i]);
}

void sl_cpu_to_f32(float *dst, const void *src, sl_dtype dt, int64_t n) {
    switch (dt) {
    case SL_DTYPE_BF16: sl_cpu_bf16_to_f32(dst, src, n); break;
    case SL_DTYPE_F16: sl_cpu_f16_to_f32(dst, src, n); break;
    default: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    }
}

/* Through a 16-bit buffer in blocks: narrowing then widening is the rounding. */
void sl_cpu_round_f32(float *dst, const float *src, int64_t n, sl_dtype cd) {
    if (cd != SL_DTYPE_BF16 && cd != SL_DTYPE_F16) {
        if (dst != src) memmove(dst, src, (size_t)n * sizeof(float));
        return;
    }
    uint16_t bits[512];
    for (int64_t i = 0; i < n; i += 512) {
        const int64_t len = n - i < 512 ? n - i : 512;
        if (cd == SL_DTYPE_BF16) {
            sl_cpu_f32_to_bf16(bits, src + i, len);
            sl_cpu_bf16_to_f32(dst + i, bits, len);
        } else {
            sl_cpu_f32_to_f16(bits, src + i, len);
            sl_cpu_f16_to_f32(dst + i, bits, len);
        }
    }
}

void sl_cpu_from_f32(void *dst, sl_dtype dt, const float *src, int64_t n, sl_dtype cd) {
    switch (dt) {
    case SL_DTYPE_BF16: sl_cpu_f32_to_bf16(dst, src, n); break;
    case SL_DTYPE_F16: sl_cpu_f32_to_f16(dst, src, n); break;
    default: sl_cpu_round_f32(dst, src, n, cd); break;
    }
}

void sl_cpu_grad_add(void *g, sl_dtype g_dtype, float *contrib, int64_t n, sl_dtype cd) {
    sl_cpu_round_f32(contrib, contrib, n, cd);
    const size_t size = sl_dtype_size(g_dtype);
    float sum[256];
    for (int64_t i = 0; i < n; i += 256) {
        const int64_t len = n - i < 256 ? n - i : 256;
        void *gi = (char *)g + (size_t)i * size;
        sl_cpu_to_f32(sum, gi, g_dtype, len);
        for (int64_t j = 0; j < len; j++)
            sum[j] = sum[j] + contrib[i + j];
        sl_cpu_from_f32(gi, g_dtype, sum, len, cd);
    }
}

sl_status sl_cpu_cast(sl_kctx *ctx, const sl_tensor *dst, const sl_tensor *src) {
    (void)ctx;
    static const char op[] = "cast";
    SL_TRY(sl_cpu_check_float(op, "dst", dst));
    SL_TRY(sl_cpu_check_float(op, "src", src));
    const int64_t n = sl_tensor_numel(src);
    SL_TRY(sl_cpu_check_numel(op, "dst", dst, n));
    const int64_t chunks = (n + SL_CPU_CAST_CHUNK - 1) / SL_CPU_CAST_CHUNK;
#pragma omp parallel for num_threads(sl_cpu_threads()) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i = c * SL_CPU_CAST_CHUNK;
        const int64_t len = n - i < SL_CPU_CAST_CHUNK ? n - i : SL_CPU_CAST_CHUNK;
        if (src->dtype == SL_DTYPE_F32) {
            sl_cpu_from_f32(sl_cpu_at(dst, i), dst->dtype, sl_cpu_at(src, i), len, dst->dtype);
        } else {
            float buf[SL_CPU_CAST_CHUNK];
            sl_cpu_to_f32(buf, sl_cpu_at(src, i), src->dtype, len);
            sl_cpu_from_f32(sl_cpu_at(dst, i), dst->dtype, buf, len, dst->dtype);
        }
    }
    return SL_OK;
}
