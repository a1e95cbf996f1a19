/* The matrix-product driver of the CPU kernels: C = op(A) op(B) in tiles, each tile split into
 * one block per OpenMP thread, each block one single-threaded OpenBLAS sgemm. Operands stored as
 * bf16/f16 are widened to f32 (exactly) tile by tile; f32 operands are read in place. Every
 * element of C is a complete f32 dot product over K — K tiles accumulate into the same f32 C —
 * so the result differs from the reference's index-order loop only in the order of its terms
 * (and in sgemm's use of FMA). */
#include "impl/cpu/cpu.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

/* A C tile is at most 16 MiB of f32, a widened operand tile at most 16 MiB. */
#define SL_GEMM_TILE_M 1024
#define SL_GEMM_TILE_N 4096
#define SL_GEMM_TILE_K 1024

static int64_t sl_gemm_min(int64_t a, int64_t b) {
    return a < b ? a : b;
}

size_t sl_cpu_gemm_workspace(int64_t M, int64_t N, int64_t K, const sl_cpu_mat *A,
                             const sl_cpu_mat *B, const sl_cpu_dest *dest) {
    const size_t mt = (size_t)sl_gemm_min(M, SL_GEMM_TILE_M);
    const size_t nt = (size_t)sl_gemm_min(N, SL_GEMM_TILE_N);
    const size_t kt = (size_t)sl_gemm_min(K, SL_GEMM_TILE_K);
    size_t bytes = dest->data ? 0 : sl_cpu_align(mt * nt * sizeof(float));
    if (A->dtype != SL_DTYPE_F32) bytes += sl_cpu_align(mt * kt * sizeof(float));
    if (B->dtype != SL_DTYPE_F32) bytes += sl_cpu_align(kt * nt * sizeof(float));
    return bytes;
}

/* The block rows [r0,r1) x cols [c0,c1) of op(X) as an f32 matrix with the same transposition:
 * X in place when it is F32, else widened into buf, the stored rows shared among the threads of
 * the enclosing parallel region (all of them must call it). */
static void sl_gemm_block_f32(const sl_cpu_mat *X, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                              float *buf, const float **p, int64_t *ld) {
    const int64_t sr0 = X->trans ? c0 : r0, sr1 = X->trans ? c1 : r1;
    const int64_t sc0 = X->trans ? r0 : c0, sc1 = X->trans ? r1 : c1;
    if (X->dtype == SL_DTYPE_F32) {
        *p = (const float *)X->data + sr0 * X->ld + sc0;
        *ld = X->ld;
        return;
    }
    const int64_t w = sc1 - sc0;
    const size_t size = sl_dtype_size(X->dtype);
#pragma omp for schedule(static)
    for (int64_t sr = sr0; sr < sr1; sr++) {
        const char *src = (const char *)X->data + (size_t)(sr * X->ld + sc0) * size;
        sl_cpu_to_f32(buf + (sr - sr0) * w, src, X->dtype, w);
    }
    *p = buf;
    *ld = w;
}

/* This thread's share of an mlen x nlen tile: rows when the tile is tall enough, else columns. */
static void sl_gemm_split(int64_t mlen, int64_t nlen, int tid, int nthr, int64_t *r0, int64_t *r1,
                          int64_t *c0, int64_t *c1) {
    *r0 = 0;
    *r1 = mlen;
    *c0 = 0;
    *c1 = nlen;
    if (nthr == 1) return;
    if (mlen >= 8 * (int64_t)nthr || mlen >= nlen) {
        *r0 = mlen * tid / nthr;
        *r1 = mlen * (tid + 1) / nthr;
    } else {
        *c0 = nlen * tid / nthr;
        *c1 = nlen * (tid + 1) / nthr;
    }
}

void sl_cpu_gemm(int64_t M, int64_t N, int64_t K, const sl_cpu_mat *A, const sl_cpu_mat *B,
                 const sl_cpu_dest *dest, void *ws, sl_cpu_epilogue epilogue, void *arg) {
    if (M == 0 || N == 0) return;
    const int64_t mt = sl_gemm_min(M, SL_GEMM_TILE_M), nt = sl_gemm_min(N, SL_GEMM_TILE_N);
    const int64_t kt = sl_gemm_min(K, SL_GEMM_TILE_K);
    char *cursor = ws;
    float *cbuf = dest->data ? NULL : sl_cpu_carve(&cursor, (size_t)(mt * nt) * sizeof(float));
    float *abuf =
        A->dtype != SL_DTYPE_F32 ? sl_cpu_carve(&cursor, (size_t)(mt * kt) * sizeof(float)) : NULL;
    float *bbuf =
        B->dtype != SL_DTYPE_F32 ? sl_cpu_carve(&cursor, (size_t)(kt * nt) * sizeof(float)) : NULL;
    const enum CBLAS_TRANSPOSE ta = A->trans ? CblasTrans : CblasNoTrans;
    const enum CBLAS_TRANSPOSE tb = B->trans ? CblasTrans : CblasNoTrans;

#pragma omp parallel num_threads(sl_cpu_threads())
    {
        const int tid = omp_get_thread_num(), nthr = omp_get_num_threads();
        for (int64_t m0 = 0; m0 < M; m0 += mt) {
            for (int64_t n0 = 0; n0 < N; n0 += nt) {
                const int64_t mlen = sl_gemm_min(mt, M - m0), nlen = sl_gemm_min(nt, N - n0);
                int64_t br0, br1, bc0, bc1;
                sl_gemm_split(mlen, nlen, tid, nthr, &br0, &br1, &bc0, &bc1);
                const int mine = br1 > br0 && bc1 > bc0;
                /* this thread's block of C: (br1-br0, bc1-bc0) with row stride ldc */
                const int64_t ldc = dest->data ? dest->ld : nlen;
                float *cblock =
                    dest->data ? dest->data + (m0 + br0) * ldc + n0 + bc0 : cbuf + br0 * ldc + bc0;
                if (K == 0) {
                    /* an empty sum is 0; wait until the previous tile's epilogues are done */
#pragma omp barrier
                    for (int64_t r = 0; mine && r < br1 - br0; r++)
                        memset(cblock + r * ldc, 0, (size_t)(bc1 - bc0) * sizeof(float));
                }
                for (int64_t k0 = 0; k0 < K; k0 += kt) {
                    const int64_t klen = sl_gemm_min(kt, K - k0);
                    /* the operand buffers and C were in use by other threads until here */
#pragma omp barrier
                    const float *ap, *bp;
                    int64_t lda, ldb;
                    sl_gemm_block_f32(A, m0, m0 + mlen, k0, k0 + klen, abuf, &ap, &lda);
                    sl_gemm_block_f32(B, k0, k0 + klen, n0, n0 + nlen, bbuf, &bp, &ldb);
                    if (!mine) continue;
                    const float *asub = ap + (A->trans ? br0 : br0 * lda);
                    const float *bsub = bp + (B->trans ? bc0 * ldb : bc0);
                    cblas_sgemm(CblasRowMajor, ta, tb, (int)(br1 - br0), (int)(bc1 - bc0),
                                (int)klen, 1.0f, asub, (int)lda, bsub, (int)ldb,
                                k0 == 0 ? 0.0f : 1.0f, cblock, (int)ldc);
                }
                if (mine) epilogue(arg, m0 + br0, m0 + br1, n0 + bc0, n0 + bc1, cblock, ldc);
            }
        }
    }
}
