/* Winograd F(2x2, 3x3) on NHWC tensors (winograd.h says what and why).
 *
 * Transforms (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015):
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   input patch d (4x4): V = B^T d B
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1] kernel g (3x3):      U = G g G^T
 *   A^T = [1 1 1 0; 0 1 -1 -1]                       product m (4x4):     y = A^T m A
 * The input and output transforms run 8 channels at a time in AVX2 registers. The 16 GEMMs use
 * the own 6x16 FMA tiles (fma_tiles.h) on weights packed once into 16-column panels, because a BLAS call per
 * (block, plane) would pack the same weights again each time: at 32 tiles a block that packing
 * costs about as much as the multiply. */
#include "backends/cpu/winograd.h"

#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#define PLANES 16
#define ROWS CPU_TILE_ROWS     /* tiles per register block of the GEMM kernel */
#define PANEL CPU_TILE_PANEL   /* output channels per packed weight panel (two AVX2 vectors) */

bool cpu_wino_init(cpu_wino *w, int64_t H, int64_t W, int64_t C, int64_t K, sh_act act, float act_a,
                   float act_b)
{
#ifdef __AVX2__
    if (H < 1 || W < 1 || C < 8 || K < 8 || C % 8 || K % 8 || C > (1 << 16) || K > (1 << 16))
        return false;
    *w = (cpu_wino){.H = H, .W = W, .C = C, .K = K, .tiles_w = (W + 1) / 2, .act = act, .act_a = act_a,
                    .act_b = act_b};
    w->n_tiles = ((H + 1) / 2) * w->tiles_w;
    return true;
#else
    (void)w, (void)H, (void)W, (void)C, (void)K, (void)act, (void)act_a, (void)act_b;
    return false;
#endif
}

size_t cpu_wino_weight_bytes(const cpu_wino *w)
{
    return (size_t)PLANES * (size_t)w->C * (size_t)w->K * sizeof(float);
}

static size_t block_floats(const cpu_wino *w)
{
    return (size_t)PLANES * CPU_WINO_TILES * (size_t)(w->C + w->K);
}

size_t cpu_wino_scratch_bytes(const cpu_wino *w, int n_threads)
{
    return (size_t)(n_threads > 0 ? n_threads : 1) * block_floats(w) * sizeof(float);
}

/* Where element (c, k) of plane xi lives in the packed weights: panels of PANEL columns (the
 * last may be 8 wide), each [C][width]. */
static size_t packed_index(const cpu_wino *w, int xi, int64_t c, int64_t k)
{
    int64_t n0 = k / PANEL * PANEL, width = w->K - n0 < PANEL ? w->K - n0 : PANEL;
    return (size_t)xi * (size_t)(w->C * w->K) + (size_t)(n0 * w->C + c * width + (k - n0));
}

void cpu_wino_pack(const float *oihw, const cpu_wino *w, float *packed)
{
    static const float G[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
    for (int64_t k = 0; k < w->K; k++)
        for (int64_t c = 0; c < w->C; c++) {
            const float *g = oihw + (k * w->C + c) * 9;
            float t[4][3];   /* G g */
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 3; j++)
                    t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    packed[packed_index(w, i * 4 + j, c, k)] = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
        }
}

#ifdef __AVX2__
/* V[xi][t][c] for the block's tiles: B^T d B of each tile's 4x4 input patch, zero outside. */
static void transform_input(const cpu_wino *w, const float *x, int64_t t0, int nt, float *V)
{
    const float *rows[16];
    const int64_t C = w->C;
    for (int t = 0; t < nt; t++) {
        int64_t ty = (t0 + t) / w->tiles_w, tx = (t0 + t) % w->tiles_w;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                int64_t iy = 2 * ty - 1 + i, ix = 2 * tx - 1 + j;
                rows[i * 4 + j] = iy >= 0 && iy < w->H && ix >= 0 && ix < w->W ? x + (iy * w->W + ix) * C : NULL;
            }
        float *out = V + (size_t)t * C;
        const size_t plane = (size_t)CPU_WINO_TILES * C;
        for (int64_t c = 0; c < C; c += 8) {
            __m256 d[16];
            for (int q = 0; q < 16; q++)
                d[q] = rows[q] ? _mm256_loadu_ps(rows[q] + c) : _mm256_setzero_ps();
            __m256 r[16];   /* B^T d, row by row */
            for (int j = 0; j < 4; j++) {
                r[0 * 4 + j] = _mm256_sub_ps(d[0 * 4 + j], d[2 * 4 + j]);
                r[1 * 4 + j] = _mm256_add_ps(d[1 * 4 + j], d[2 * 4 + j]);
                r[2 * 4 + j] = _mm256_sub_ps(d[2 * 4 + j], d[1 * 4 + j]);
                r[3 * 4 + j] = _mm256_sub_ps(d[1 * 4 + j], d[3 * 4 + j]);
            }
            for (int i = 0; i < 4; i++) {
                const __m256 *ri = r + i * 4;
                _mm256_storeu_ps(out + (size_t)(i * 4 + 0) * plane + c, _mm256_sub_ps(ri[0], ri[2]));
                _mm256_storeu_ps(out + (size_t)(i * 4 + 1) * plane + c, _mm256_add_ps(ri[1], ri[2]));
                _mm256_storeu_ps(out + (size_t)(i * 4 + 2) * plane + c, _mm256_sub_ps(ri[2], ri[1]));
                _mm256_storeu_ps(out + (size_t)(i * 4 + 3) * plane + c, _mm256_sub_ps(ri[1], ri[3]));
            }
        }
    }
}

/* The 16 products of the block: M[xi] = V[xi] x U[xi], [nt x C] x [C x K], six tiles at a
 * time (the last group padded with its last tile and copied out through `edge`). */
static void multiply(const cpu_wino *w, const float *V, const float *packed, int nt, float *M)
{
    const int64_t C = w->C, K = w->K;
    float edge[ROWS * PANEL];
    for (int xi = 0; xi < PLANES; xi++) {
        const float *Vx = V + (size_t)xi * CPU_WINO_TILES * C, *Ux = packed + (size_t)xi * C * K;
        float *Mx = M + (size_t)xi * CPU_WINO_TILES * K;
        for (int64_t n0 = 0; n0 < K; n0 += PANEL) {
            int width = K - n0 >= PANEL ? PANEL : 8;
            for (int t = 0; t < nt; t += ROWS) {
                int R = nt - t < ROWS ? nt - t : ROWS;
                const float *rows[ROWS];
                for (int i = 0; i < ROWS; i++)
                    rows[i] = Vx + (size_t)(t + (i < R ? i : R - 1)) * C;
                float *m = Mx + (size_t)t * K + n0;
                float *dst = R == ROWS ? m : edge;
                size_t ldd = R == ROWS ? (size_t)K : PANEL;
                if (width == PANEL)
                    cpu_tile_6x16(rows, ROWS, 1, C, Ux + n0 * C, NULL, CPU_TILE_ACT_NONE, dst, ldd);
                else
                    cpu_tile_6x8(rows, ROWS, 1, C, Ux + n0 * C, NULL, CPU_TILE_ACT_NONE, dst, ldd);
                for (int i = 0; R < ROWS && i < R; i++)
                    memcpy(m + (size_t)i * K, edge + i * PANEL, (size_t)width * sizeof(float));
            }
        }
    }
}

/* y = A^T m A of each tile, plus the bias, then the activation on the pixels written. */
static void transform_output(const cpu_wino *w, const float *M, const float *bias, int64_t t0, int nt, float *y)
{
    const int64_t K = w->K;
    const size_t plane = (size_t)CPU_WINO_TILES * K;
    for (int t = 0; t < nt; t++) {
        int64_t ty = (t0 + t) / w->tiles_w, tx = (t0 + t) % w->tiles_w;
        int64_t oy = 2 * ty, ox = 2 * tx;
        bool right = ox + 1 < w->W, below = oy + 1 < w->H;
        float *y00 = y + (oy * w->W + ox) * K, *y01 = y00 + K, *y10 = y00 + w->W * K, *y11 = y10 + K;
        const float *m = M + (size_t)t * K;
        for (int64_t k = 0; k < K; k += 8) {
            __m256 v[16];
            for (int q = 0; q < 16; q++)
                v[q] = _mm256_loadu_ps(m + (size_t)q * plane + k);
            __m256 s0[4], s1[4];   /* A^T m: two rows */
            for (int j = 0; j < 4; j++) {
                s0[j] = _mm256_add_ps(_mm256_add_ps(v[0 * 4 + j], v[1 * 4 + j]), v[2 * 4 + j]);
                s1[j] = _mm256_sub_ps(_mm256_sub_ps(v[1 * 4 + j], v[2 * 4 + j]), v[3 * 4 + j]);
            }
            __m256 b = bias ? _mm256_loadu_ps(bias + k) : _mm256_setzero_ps();
            _mm256_storeu_ps(y00 + k, _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0[0], s0[1]), s0[2]), b));
            if (right)
                _mm256_storeu_ps(y01 + k, _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s0[1], s0[2]), s0[3]), b));
            if (below) {
                _mm256_storeu_ps(y10 + k, _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s1[0], s1[1]), s1[2]), b));
                if (right)
                    _mm256_storeu_ps(y11 + k, _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s1[1], s1[2]), s1[3]), b));
            }
        }
        if (w->act != SH_ACT_NONE) {
            cpu_apply_act(y00, right ? 2 * K : K, w->act, w->act_a, w->act_b);
            if (below)
                cpu_apply_act(y10, right ? 2 * K : K, w->act, w->act_a, w->act_b);
        }
    }
}

typedef struct wino_job {
    const cpu_wino *w;
    const float *x, *packed, *bias;
    float *y;
    char *scratch;
} wino_job;

static void block_range(void *arg, int64_t b0, int64_t b1, int tid)
{
    const wino_job *j = arg;
    const cpu_wino *w = j->w;
    float *V = (float *)j->scratch + (size_t)tid * block_floats(w);
    float *M = V + (size_t)PLANES * CPU_WINO_TILES * w->C;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t0 = b * CPU_WINO_TILES;
        int nt = (int)(w->n_tiles - t0 < CPU_WINO_TILES ? w->n_tiles - t0 : CPU_WINO_TILES);
        transform_input(w, j->x, t0, nt, V);
        multiply(w, V, j->packed, nt, M);
        transform_output(w, M, j->bias, t0, nt, j->y);
    }
}

void cpu_wino_run(const cpu_wino *w, cpu_pool *pool, const float *x, const float *packed, const float *bias,
                  float *y, char *scratch)
{
    wino_job j = {.w = w, .x = x, .packed = packed, .bias = bias, .y = y, .scratch = scratch};
    int64_t blocks = (w->n_tiles + CPU_WINO_TILES - 1) / CPU_WINO_TILES;
    cpu_parallel_for_chunks(pool, blocks, 1, block_range, &j);
}
#else
void cpu_wino_run(const cpu_wino *w, cpu_pool *pool, const float *x, const float *packed, const float *bias,
                  float *y, char *scratch)
{
    (void)w, (void)pool, (void)x, (void)packed, (void)bias, (void)y, (void)scratch;
}
#endif
