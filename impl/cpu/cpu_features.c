/* Which instruction sets the CPU and the OS support, and which cast path runs (cpu.h). Detected
 * at run time with __builtin_cpu_supports (it checks that the OS saves the AVX/AVX-512 state),
 * so the library needs no -march flag and runs on any x86-64.
 *
 * Measured on the development machine (Xeon with AVX-512 BF16, bench/NOTES.md): VDPBF16PS
 * retires 57 GMAC/s per core against 117 GMAC/s for VFMADD231PS on f32, and OpenBLAS sgemm reaches
 * 80 GMAC/s, so matrix products widen bf16 tiles to f32 and call sgemm rather than using BF16 dot
 * products. VCVTNEPS2BF16 treats f32 subnormals as zero (DAZ), which common/dtype.c does not, so
 * the bf16 casts use integer AVX-512F/AVX2 arithmetic instead; the avx512_bf16 flag is reported,
 * not used. */
#include "impl/cpu/cpu.h"

#include <stdatomic.h>

/* -1: no override, the best path runs. */
static _Atomic int sl_cpu_isa_override = -1;

void sl_cpu_features_detect(sl_cpu_features *out) {
    __builtin_cpu_init();
    *out = (sl_cpu_features){
        .avx2 = __builtin_cpu_supports("avx2") != 0,
        .f16c = __builtin_cpu_supports("f16c") != 0,
        .fma = __builtin_cpu_supports("fma") != 0,
        .avx512f = __builtin_cpu_supports("avx512f") != 0,
        .avx512bw = __builtin_cpu_supports("avx512bw") != 0,
        .avx512_bf16 = __builtin_cpu_supports("avx512bf16") != 0,
        .avx512_fp16 = __builtin_cpu_supports("avx512fp16") != 0,
    };
}

const char *sl_cpu_isa_name(sl_cpu_isa isa) {
    switch (isa) {
    case SL_CPU_ISA_PORTABLE: return "portable";
    case SL_CPU_ISA_AVX2: return "avx2";
    case SL_CPU_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

static int sl_cpu_isa_supported(sl_cpu_isa isa) {
    sl_cpu_features f;
    sl_cpu_features_detect(&f);
    switch (isa) {
    case SL_CPU_ISA_PORTABLE: return 1;
    case SL_CPU_ISA_AVX2: return f.avx2 && f.f16c;
    case SL_CPU_ISA_AVX512: return f.avx512f;
    }
    return 0;
}

/* Casts ask for the path once per row; the detection is done once. */
static _Atomic int sl_cpu_isa_detected = -1;

sl_cpu_isa sl_cpu_isa_best(void) {
    int best = atomic_load(&sl_cpu_isa_detected);
    if (best < 0) {
        best = sl_cpu_isa_supported(SL_CPU_ISA_AVX512) ? SL_CPU_ISA_AVX512
               : sl_cpu_isa_supported(SL_CPU_ISA_AVX2) ? SL_CPU_ISA_AVX2
                                                       : SL_CPU_ISA_PORTABLE;
        atomic_store(&sl_cpu_isa_detected, best);
    }
    return (sl_cpu_isa)best;
}

sl_cpu_isa sl_cpu_isa_active(void) {
    const int forced = atomic_load(&sl_cpu_isa_override);
    return forced >= 0 ? (sl_cpu_isa)forced : sl_cpu_isa_best();
}

sl_status sl_cpu_isa_set(sl_cpu_isa isa) {
    if (isa != SL_CPU_ISA_PORTABLE && isa != SL_CPU_ISA_AVX2 && isa != SL_CPU_ISA_AVX512) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sl_cpu_isa_set: unknown path %d; expected SL_CPU_ISA_PORTABLE, "
                            "SL_CPU_ISA_AVX2 or SL_CPU_ISA_AVX512",
                            (int)isa);
    }
    if (!sl_cpu_isa_supported(isa)) {
        return sl_error_set(SL_ERR_INVALID_ARG,
                            "sl_cpu_isa_set: this CPU does not support the %s path (best: %s); "
                            "choose a path at or below the best",
                            sl_cpu_isa_name(isa), sl_cpu_isa_name(sl_cpu_isa_best()));
    }
    atomic_store(&sl_cpu_isa_override, (int)isa);
    return SL_OK;
}
