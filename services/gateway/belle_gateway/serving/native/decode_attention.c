/* Attention of every decoding row of a packed batch in one call (see ../native_attention.py).

   Row r holds one new query token per head and attends to the first lengths[r] cached tokens of slot r:
       out[r, h] = softmax(scale * q[r, h] . K[r, h / groups, :len]) @ V[r, h / groups, :len]
   q, out: [rows, heads, dim]; keys, values: [slots >= rows, kv_heads, capacity, dim]; float32, contiguous.

   Plain C with GCC/Clang vector extensions (16 floats): the compiler turns them into the widest
   instructions of the CPU it is built for (-march=native). The cost is reading each row's keys and values
   once, so the loops stream through them in order. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

static inline v16 load16(const float *p) {
    v16 x;
    memcpy(&x, p, sizeof x); /* unaligned load */
    return x;
}

/* e^x for x <= 0 (every input is a score minus its row's maximum), 16 lanes at once: x = n ln2 + r with
   |r| <= ln2 / 2, e^r from Cephes' degree-6 polynomial (about 1 ulp), times 2^n written into the
   exponent bits. Below -87.3, where float e^x is denormal or zero, the result is 0. */
static inline v16 vexp(v16 x) {
    const v16 lowest = (v16){0} - 87.3f;
    const vi16 tiny = x < lowest;
    x = (v16)(((vi16)x & ~tiny) | ((vi16)lowest & tiny));
    const v16 n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f; /* round to nearest: 1.5 * 2^23 */
    const v16 r = x - n * 0.693359375f + n * 2.12194440e-4f;
    v16 p = 1.9875691500e-4f * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.f;
    const vi16 two_to_n = (__builtin_convertvector(n, vi16) + 127) << 23;
    return (v16)((vi16)(p * (v16)two_to_n) & ~tiny);
}

/* The sum of 16 lanes as a tree (halves added), not a chain of 15 dependent additions. */
static inline float hsum(v16 x) {
    v8 lo8, hi8;
    memcpy(&lo8, &x, sizeof lo8);
    memcpy(&hi8, (char *)&x + sizeof lo8, sizeof hi8);
    const v8 s8 = lo8 + hi8;
    v4 lo4, hi4;
    memcpy(&lo4, &s8, sizeof lo4);
    memcpy(&hi4, (const char *)&s8 + sizeof lo4, sizeof hi4);
    const v4 s4 = lo4 + hi4;
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

static inline float dot(const float *a, const float *b, int64_t n) {
    int64_t d = 0;
    float s = 0.f;
    if (n >= 16) {
        v16 acc = load16(a) * load16(b);
        for (d = 16; d + 16 <= n; d += 16) acc += load16(a + d) * load16(b + d);
        s = hsum(acc);
    }
    for (; d < n; d++) s += a[d] * b[d];
    return s;
}

/* Turns scores[0:len] into e^(score - max) in place; returns their sum. */
static float exp_and_sum(float *scores, int64_t len, float max) {
    int64_t j = 0;
    float sum = 0.f;
    if (len >= 16) {
        v16 acc = (v16){0};
        for (; j + 16 <= len; j += 16) {
            const v16 e = vexp(load16(scores + j) - max);
            memcpy(scores + j, &e, sizeof e);
            acc += e;
        }
        sum = hsum(acc);
    }
    for (; j < len; j++) {
        scores[j] = expf(scores[j] - max);
        sum += scores[j];
    }
    return sum;
}

/* One row and head, for a head dim that is a multiple of 16 up to 256. Inlined with a constant `dim`
   (64, 128) the query and the output stay in registers: each cached token costs its loads and FMAs. */
static inline __attribute__((always_inline)) void attend_vectors(const float *qh, const float *k, const float *v,
                                                                 float *o, int64_t len, float scale, float *scores,
                                                                 const int64_t dim) {
    const int64_t lanes = dim / 16;
    v16 query[16], acc[16];
    for (int64_t i = 0; i < lanes; i++) {
        query[i] = load16(qh + 16 * i);
        acc[i] = (v16){0};
    }
    float max = -INFINITY;
    for (int64_t j = 0; j < len; j++) {
        const float *kj = k + j * dim;
        v16 products = query[0] * load16(kj);
        for (int64_t i = 1; i < lanes; i++) products += query[i] * load16(kj + 16 * i);
        const float s = hsum(products) * scale;
        scores[j] = s;
        if (s > max) max = s;
    }
    const float inverse_sum = 1.f / exp_and_sum(scores, len, max);
    for (int64_t j = 0; j < len; j++) {
        const float p = scores[j];
        const float *vj = v + j * dim;
        for (int64_t i = 0; i < lanes; i++) acc[i] += p * load16(vj + 16 * i);
    }
    for (int64_t i = 0; i < lanes; i++) {
        const v16 result = acc[i] * inverse_sum;
        memcpy(o + 16 * i, &result, sizeof result);
    }
}

/* One row and head, any head dim. */
static void attend_any(const float *qh, const float *k, const float *v, float *o, int64_t len, float scale,
                       float *scores, int64_t dim) {
    float max = -INFINITY;
    for (int64_t j = 0; j < len; j++) {
        const float s = dot(qh, k + j * dim, dim) * scale;
        scores[j] = s;
        if (s > max) max = s;
    }
    const float inverse_sum = 1.f / exp_and_sum(scores, len, max);
    for (int64_t d = 0; d < dim; d++) o[d] = 0.f;
    for (int64_t j = 0; j < len; j++) {
        const float p = scores[j];
        const float *vj = v + j * dim;
        for (int64_t d = 0; d < dim; d++) o[d] += p * vj[d];
    }
    for (int64_t d = 0; d < dim; d++) o[d] *= inverse_sum;
}

/* Returns 0, or -1 when an argument is out of range or memory for the scores cannot be had. */
int belle_decode_attention(const float *q, const float *keys, const float *values, float *out,
                           const int64_t *lengths, int64_t rows, int64_t heads, int64_t kv_heads,
                           int64_t capacity, int64_t dim, float scale) {
    if (rows < 0 || heads <= 0 || kv_heads <= 0 || heads % kv_heads || dim <= 0) return -1;
    int64_t longest = 1;
    for (int64_t r = 0; r < rows; r++) {
        if (lengths[r] < 1 || lengths[r] > capacity) return -1;
        if (lengths[r] > longest) longest = lengths[r];
    }
    float *scores = malloc((size_t)longest * sizeof *scores);
    if (!scores) return -1;
    const int64_t groups = heads / kv_heads;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t len = lengths[r];
        for (int64_t h = 0; h < heads; h++) {
            const float *qh = q + (r * heads + h) * dim;
            const int64_t start = (r * kv_heads + h / groups) * capacity * dim;
            const float *k = keys + start, *v = values + start;
            float *o = out + (r * heads + h) * dim;
            if (dim == 64)
                attend_vectors(qh, k, v, o, len, scale, scores, 64);
            else if (dim == 128)
                attend_vectors(qh, k, v, o, len, scale, scores, 128);
            else if (dim % 16 == 0 && dim <= 256)
                attend_vectors(qh, k, v, o, len, scale, scores, dim);
            else
                attend_any(qh, k, v, o, len, scale, scores, dim);
        }
    }
    free(scores);
    return 0;
}
