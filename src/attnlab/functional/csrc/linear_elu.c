/*
 * Fused elu linear attention for float32 on the CPU: the feature map, the products and the
 * normalisation in one pass over each block of rows, with the blocks small enough to stay in
 * a core's caches. attnlab.functional.compiled builds this file with the machine's C compiler
 * (-O3 -march=native) and calls it through ctypes, one work item per thread; the eager path in
 * attnlab.functional.linear is the reference it is tested against.
 *
 *   φ(x) = elu(x) + 1 = x + 1 for x > 0, exp(x) otherwise  (Katharopoulos et al., 2020)
 *   non-causal: S = Σ_j φ(k_j) v_jᵀ, z = Σ_j φ(k_j), out_i = φ(q_i)ᵀS / φ(q_i)ᵀz
 *   causal, by chunks of C tokens: out_c = φ(Q_c) S + tril(φ(Q_c) φ(K_c)ᵀ) V_c, then
 *   S += φ(K_c)ᵀ V_c (and z alike), S being the state before the chunk.
 *
 * Every entry returns a set of flags instead of failing: FLAG_NONFINITE when an input holds
 * NaN or ±inf, FLAG_NORMALISER when a normaliser is not a finite number above eps. The caller
 * then runs the eager, checked path, which names the argument and the position.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FLAG_NONFINITE 1
#define FLAG_NORMALISER 2

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t vi16 __attribute__((vector_size(64)));

#define LD(p) (*(const v16u *)(p))
#define ST(p, x) (*(v16u *)(p) = (x))

static inline v16 splat(float x) { return (v16){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }

/* exp(x) for x ≤ 0: 2^n · p(r), n = round(x / ln 2), r = x − n ln 2 in two parts (Cody and
 * Waite), p(r) = 1 + r + r² · (Cephes' degree-5 expf polynomial). 0 below −86, where exp(x)
 * < 5e-38: the next results would be subnormal numbers, which cost this kind of CPU 100×. */
static inline v16 exp_nonpositive(v16 x)
{
    const vi16 keep = x >= splat(-86.0f);
    x = (v16)((vi16)x & keep); /* out-of-range lanes compute exp(0), then masked to 0 */
    const v16 magic = splat(12582912.0f); /* 1.5 · 2²³: adding it rounds to an integer */
    v16 t = x * splat(1.44269504088896341f) + magic;
    v16 n = t - magic;
    vi16 ni = (vi16)t - (vi16)magic;
    v16 r = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
    v16 p = splat(1.9875691500e-4f);
    p = p * r + splat(1.3981999507e-3f);
    p = p * r + splat(8.3334519073e-3f);
    p = p * r + splat(4.1665795894e-2f);
    p = p * r + splat(1.6666665459e-1f);
    p = p * r + splat(5.0000001201e-1f);
    p = p * r * r + r + splat(1.0f);
    v16 scale = (v16)((ni + 127) << 23);
    return (v16)((vi16)(p * scale) & keep);
}

static inline float elu1(float x) { return x > 0.0f ? x + 1.0f : x >= -86.0f ? expf(x) : 0.0f; }

/* out[i] = φ(x[i]) for count elements; *bad collects x − x, NaN for every non-finite x.
 * ahead > 0: also asks for the cache line `ahead` floats further on (the next block's), so
 * that memory delivers it while the products of this block run. */
static void features(const float *x, long count, float *out, v16 *bad, long ahead)
{
    long i = 0;
    v16 acc = *bad;
    for (; i + 16 <= count; i += 16) {
        if (ahead)
            __builtin_prefetch(x + i + ahead, 0, 3);
        v16 a = LD(x + i);
        acc += a - a;
        const vi16 neg = a < splat(0.0f);
        v16 low = (v16)((vi16)a & neg); /* min(x, 0) */
        v16 pos = (v16)((vi16)a & ~neg); /* max(x, 0) */
        ST(out + i, exp_nonpositive(low) + pos);
    }
    float tail = 0.0f;
    for (; i < count; i++) {
        tail += x[i] - x[i];
        out[i] = elu1(x[i]);
    }
    acc[0] += tail;
    *bad = acc;
}

/* *bad collects x − x over count elements (reads only); ahead as in features(). */
static void finite_scan(const float *x, long count, v16 *bad, long ahead)
{
    long i = 0;
    v16 acc = *bad;
    for (; i + 16 <= count; i += 16) {
        if (ahead)
            __builtin_prefetch(x + i + ahead, 0, 3);
        v16 a = LD(x + i);
        acc += a - a;
    }
    float tail = 0.0f;
    for (; i < count; i++)
        tail += x[i] - x[i];
    acc[0] += tail;
    *bad = acc;
}

static int any_nan(v16 acc)
{
    for (int i = 0; i < 16; i++)
        if (acc[i] != acc[i])
            return 1;
    return 0;
}

/*
 * C[i][j] (+)= Σ_k A(i, k) B[k][j] for i < M, j < N, k < K, with A(i, k) = A[i·ars + k·acs]
 * (a row-major A, or the transpose of one) and row-major B and C. Four rows of C by 64 columns
 * are held in 16 vector registers while k runs; narrower and shorter edges take smaller tiles.
 */
static void gemm(long M, long N, long K, const float *A, long ars, long acs, const float *B,
                 long ldb, float *C, long ldc, int accumulate)
{
    long i = 0;
    for (; i + 4 <= M; i += 4) {
        const float *a0 = A + i * ars, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars;
        float *c0 = C + i * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
        long j = 0;
        for (; j + 64 <= N; j += 64) {
            v16 x00, x01, x02, x03, x10, x11, x12, x13, x20, x21, x22, x23, x30, x31, x32, x33;
            if (accumulate) {
                x00 = LD(c0 + j), x01 = LD(c0 + j + 16), x02 = LD(c0 + j + 32), x03 = LD(c0 + j + 48);
                x10 = LD(c1 + j), x11 = LD(c1 + j + 16), x12 = LD(c1 + j + 32), x13 = LD(c1 + j + 48);
                x20 = LD(c2 + j), x21 = LD(c2 + j + 16), x22 = LD(c2 + j + 32), x23 = LD(c2 + j + 48);
                x30 = LD(c3 + j), x31 = LD(c3 + j + 16), x32 = LD(c3 + j + 32), x33 = LD(c3 + j + 48);
            } else {
                x00 = x01 = x02 = x03 = x10 = x11 = x12 = x13 = splat(0.0f);
                x20 = x21 = x22 = x23 = x30 = x31 = x32 = x33 = splat(0.0f);
            }
            for (long k = 0; k < K; k++) {
                const float *b = B + k * ldb + j;
                v16 b0 = LD(b), b1 = LD(b + 16), b2 = LD(b + 32), b3 = LD(b + 48);
                float s0 = a0[k * acs], s1 = a1[k * acs], s2 = a2[k * acs], s3 = a3[k * acs];
                x00 += s0 * b0, x01 += s0 * b1, x02 += s0 * b2, x03 += s0 * b3;
                x10 += s1 * b0, x11 += s1 * b1, x12 += s1 * b2, x13 += s1 * b3;
                x20 += s2 * b0, x21 += s2 * b1, x22 += s2 * b2, x23 += s2 * b3;
                x30 += s3 * b0, x31 += s3 * b1, x32 += s3 * b2, x33 += s3 * b3;
            }
            ST(c0 + j, x00), ST(c0 + j + 16, x01), ST(c0 + j + 32, x02), ST(c0 + j + 48, x03);
            ST(c1 + j, x10), ST(c1 + j + 16, x11), ST(c1 + j + 32, x12), ST(c1 + j + 48, x13);
            ST(c2 + j, x20), ST(c2 + j + 16, x21), ST(c2 + j + 32, x22), ST(c2 + j + 48, x23);
            ST(c3 + j, x30), ST(c3 + j + 16, x31), ST(c3 + j + 32, x32), ST(c3 + j + 48, x33);
        }
        for (; j + 16 <= N; j += 16) {
            v16 x0 = splat(0.0f), x1 = x0, x2 = x0, x3 = x0;
            if (accumulate)
                x0 = LD(c0 + j), x1 = LD(c1 + j), x2 = LD(c2 + j), x3 = LD(c3 + j);
            for (long k = 0; k < K; k++) {
                v16 b = LD(B + k * ldb + j);
                x0 += a0[k * acs] * b, x1 += a1[k * acs] * b;
                x2 += a2[k * acs] * b, x3 += a3[k * acs] * b;
            }
            ST(c0 + j, x0), ST(c1 + j, x1), ST(c2 + j, x2), ST(c3 + j, x3);
        }
        for (; j < N; j++) {
            float x0 = 0.0f, x1 = 0.0f, x2 = 0.0f, x3 = 0.0f;
            if (accumulate)
                x0 = c0[j], x1 = c1[j], x2 = c2[j], x3 = c3[j];
            for (long k = 0; k < K; k++) {
                float b = B[k * ldb + j];
                x0 += a0[k * acs] * b, x1 += a1[k * acs] * b;
                x2 += a2[k * acs] * b, x3 += a3[k * acs] * b;
            }
            c0[j] = x0, c1[j] = x1, c2[j] = x2, c3[j] = x3;
        }
    }
    for (; i < M; i++) {
        const float *a = A + i * ars;
        float *c = C + i * ldc;
        long j = 0;
        for (; j + 16 <= N; j += 16) {
            v16 x = splat(0.0f);
            if (accumulate)
                x = LD(c + j);
            for (long k = 0; k < K; k++)
                x += a[k * acs] * LD(B + k * ldb + j);
            ST(c + j, x);
        }
        for (; j < N; j++) {
            float x = accumulate ? c[j] : 0.0f;
            for (long k = 0; k < K; k++)
                x += a[k * acs] * B[k * ldb + j];
            c[j] = x;
        }
    }
}

typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

/* The sum of the 16 lanes, by halving. */
static inline float hsum(v16 x)
{
    v8 a = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7) +
           __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
    v4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
}

/* y[i] (+)= Σ_k A[i][k] x[k] for M rows of K (row-major, lda). */
static void gemv(long M, long K, const float *A, long lda, const float *x, float *y, int accumulate)
{
    for (long i = 0; i < M; i++) {
        const float *a = A + i * lda;
        long k = 0;
        v16 acc = splat(0.0f);
        for (; k + 16 <= K; k += 16)
            acc += LD(a + k) * LD(x + k);
        float s = hsum(acc);
        for (; k < K; k++)
            s += a[k] * x[k];
        y[i] = accumulate ? y[i] + s : s;
    }
}

/* z[k] += Σ_i F[i][k] over M rows of K. */
static void colsum(long M, long K, const float *F, float *z)
{
    for (long i = 0; i < M; i++) {
        const float *f = F + i * K;
        long k = 0;
        for (; k + 16 <= K; k += 16)
            ST(z + k, LD(z + k) + LD(f + k));
        for (; k < K; k++)
            z[k] += f[k];
    }
}

/* out[i][:] *= 1 / norm[i] for M rows; FLAG_NORMALISER unless every norm[i] is finite and > eps. */
static int normalise(long M, long dv, float *out, long ldo, const float *norm, float eps)
{
    int flags = 0;
    for (long i = 0; i < M; i++) {
        float n = norm[i];
        if (!(n > eps && n <= 3.40282347e38f))
            flags |= FLAG_NORMALISER;
        float *o = out + i * ldo, inverse = 1.0f / n; /* a product, not dv divisions */
        const v16 nv = splat(inverse);
        long j = 0;
        for (; j + 16 <= dv; j += 16)
            ST(o + j, LD(o + j) * nv);
        for (; j < dv; j++)
            o[j] *= inverse;
    }
    return flags;
}

static void *scratch(size_t floats)
{
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

/* φ(x) for count elements; FLAG_NONFINITE if an x is NaN or ±inf. */
int attnlab_elu_features(const float *x, long count, float *out)
{
    v16 bad = splat(0.0f);
    features(x, count, out, &bad, 0);
    return any_nan(bad) ? FLAG_NONFINITE : 0;
}

/* Rows per block: a block of features and of values stays within a core's L2 cache. */
#define ROWS 128

/*
 * Non-causal, keys: sums[:, :dv] += Σ_j φ(k_j) v_jᵀ and sums[:, dv] += Σ_j φ(k_j) over the
 * given rows of one key/value head. sums is (d, dv + 1), row-major. Returns flags.
 */
int attnlab_elu_key_sums(const float *k, const float *v, long rows, long d, long dv, float *sums)
{
    float *f = scratch(ROWS * d), *s = scratch(d * dv), *z = scratch(d);
    if (!f || !s || !z) {
        free(f), free(s), free(z);
        return -1;
    }
    for (long a = 0; a < d; a++) {
        memcpy(s + a * dv, sums + a * (dv + 1), dv * sizeof(float));
        z[a] = sums[a * (dv + 1) + dv];
    }
    v16 bad = splat(0.0f);
    for (long r0 = 0; r0 < rows; r0 += ROWS) {
        long m = rows - r0 < ROWS ? rows - r0 : ROWS;
        features(k + r0 * d, m * d, f, &bad, r0 + 2 * ROWS <= rows ? ROWS * d : 0);
        finite_scan(v + r0 * dv, m * dv, &bad, r0 + 2 * ROWS <= rows ? ROWS * dv : 0);
        gemm(d, dv, m, f, 1, d, v + r0 * dv, dv, s, dv, 1); /* S += φ(K)ᵀ V */
        colsum(m, d, f, z);
    }
    for (long a = 0; a < d; a++) {
        memcpy(sums + a * (dv + 1), s + a * dv, dv * sizeof(float));
        sums[a * (dv + 1) + dv] = z[a];
    }
    free(f), free(s), free(z);
    return any_nan(bad) ? FLAG_NONFINITE : 0;
}

/*
 * Non-causal, queries: out_i = φ(q_i)ᵀS / φ(q_i)ᵀz for the given rows of one query head, with
 * sums = [S | z] as above. out is (rows, dv), row-major. Returns flags.
 */
int attnlab_elu_query_out(const float *q, long rows, long d, long dv, const float *sums,
                          float eps, float *out)
{
    float *f = scratch(ROWS * d), *s = scratch(d * dv), *z = scratch(d), *norm = scratch(ROWS);
    if (!f || !s || !z || !norm) {
        free(f), free(s), free(z), free(norm);
        return -1;
    }
    for (long a = 0; a < d; a++) {
        memcpy(s + a * dv, sums + a * (dv + 1), dv * sizeof(float));
        z[a] = sums[a * (dv + 1) + dv];
    }
    v16 bad = splat(0.0f);
    int flags = 0;
    for (long r0 = 0; r0 < rows; r0 += ROWS) {
        long m = rows - r0 < ROWS ? rows - r0 : ROWS;
        features(q + r0 * d, m * d, f, &bad, r0 + 2 * ROWS <= rows ? ROWS * d : 0);
        gemm(m, dv, d, f, d, 1, s, dv, out + r0 * dv, dv, 0);
        gemv(m, d, f, d, z, norm, 0);
        flags |= normalise(m, dv, out + r0 * dv, dv, norm, eps);
    }
    free(f), free(s), free(z), free(norm);
    return flags | (any_nan(bad) ? FLAG_NONFINITE : 0);
}

/*
 * Causal, one key/value head and `groups` query heads that share it: q is (groups, rows, d)
 * with the heads `qstride` floats apart, k (rows, d), v (rows, dv), out (groups, rows, dv)
 * with heads `ostride` apart. sums = [S | z], (d, dv + 1), is the state before the first row
 * on entry and after the last on return. chunk: tokens per chunk. Returns flags.
 */
int attnlab_elu_causal(const float *q, long qstride, long groups, const float *k, const float *v,
                       long rows, long d, long dv, long chunk, float *sums, float eps, float *out,
                       long ostride)
{
    const long C = chunk;
    float *fk = scratch(C * d), *fkt = scratch(d * C), *fq = scratch(C * d);
    float *sc = scratch(C * C), *s = scratch(d * dv), *z = scratch(d), *norm = scratch(C);
    if (!fk || !fkt || !fq || !sc || !s || !z || !norm) {
        free(fk), free(fkt), free(fq), free(sc), free(s), free(z), free(norm);
        return -1;
    }
    for (long a = 0; a < d; a++) {
        memcpy(s + a * dv, sums + a * (dv + 1), dv * sizeof(float));
        z[a] = sums[a * (dv + 1) + dv];
    }
    v16 bad = splat(0.0f);
    int flags = 0;
    for (long r0 = 0; r0 < rows; r0 += C) {
        const long m = rows - r0 < C ? rows - r0 : C;
        const float *vc = v + r0 * dv;
        const int next = r0 + 2 * C <= rows;
        features(k + r0 * d, m * d, fk, &bad, next ? C * d : 0);
        finite_scan(vc, m * dv, &bad, next ? C * dv : 0);
        for (long j = 0; j < m; j++) /* φ(K_c)ᵀ, (d, m) */
            for (long a = 0; a < d; a++)
                fkt[a * m + j] = fk[j * d + a];
        for (long g = 0; g < groups; g++) {
            float *o = out + g * ostride + r0 * dv;
            features(q + g * qstride + r0 * d, m * d, fq, &bad, next ? C * d : 0);
            gemm(m, dv, d, fq, d, 1, s, dv, o, dv, 0); /* φ(Q_c) S */
            gemv(m, d, fq, d, z, norm, 0);             /* φ(Q_c) z */
            gemm(m, m, d, fq, d, 1, fkt, m, sc, m, 0); /* φ(Q_c) φ(K_c)ᵀ */
            for (long i = 0; i < m; i++) {
                float *row = sc + i * m, t = 0.0f;
                for (long j = 0; j <= i; j++)
                    t += row[j];
                for (long j = i + 1; j < m; j++)
                    row[j] = 0.0f;
                norm[i] += t;
            }
            /* + tril(·) V_c, four rows at a time over the keys j ≤ i they can see */
            for (long i = 0; i < m; i += 4) {
                long rows4 = m - i < 4 ? m - i : 4, seen = i + rows4;
                gemm(rows4, dv, seen, sc + i * m, m, 1, vc, dv, o + i * dv, dv, 1);
            }
            flags |= normalise(m, dv, o, dv, norm, eps);
        }
        gemm(d, dv, m, fk, 1, d, vc, dv, s, dv, 1); /* S += φ(K_c)ᵀ V_c */
        colsum(m, d, fk, z);
    }
    for (long a = 0; a < d; a++) {
        memcpy(sums + a * (dv + 1), s + a * dv, dv * sizeof(float));
        sums[a * (dv + 1) + dv] = z[a];
    }
    free(fk), free(fkt), free(fq), free(sc), free(s), free(z), free(norm);
    return flags | (any_nan(bad) ? FLAG_NONFINITE : 0);
}

/*
 * Writes to every 4096th byte of [p, p + bytes) without changing it: on a fresh output the
 * kernel maps and zeroes each page then, in a work item of its own beside the key sums, rather
 * than one page at a time in the middle of the products. The write is an atomic add of 0, so
 * that it may run while other threads already write results there. Returns 0.
 */
int attnlab_touch(char *p, long bytes)
{
    for (long i = 0; i < bytes; i += 4096)
        __atomic_fetch_add((volatile char *)(p + i), 0, __ATOMIC_RELAXED);
    return 0;
}
