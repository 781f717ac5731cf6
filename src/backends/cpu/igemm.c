/* Implicit-GEMM convolutions on NHWC tensors (igemm.h says what and why). */
#include "backends/cpu/igemm.h"

#include <string.h>

#define ROWS CPU_TILE_ROWS
#define PANEL CPU_TILE_PANEL
#define BLOCK CPU_IGEMM_PIXELS

_Static_assert(BLOCK % ROWS == 0, "a block is whole register tiles");

bool cpu_igemm_init(cpu_igemm *c, const cpu_igemm_geom *g, sh_act act, float act_a, float act_b)
{
    if (g->H < 1 || g->W < 1 || g->OH < 1 || g->OW < 1 || g->C < 1 || g->K < 8 || g->K % 8 ||
        g->C > (1 << 16) || g->K > (1 << 16) || g->kh < 1 || g->kw < 1 || g->kh * g->kw > CPU_IGEMM_MAX_TAPS ||
        g->sh < 1 || g->sw < 1 || g->dh < 1 || g->dw < 1 || g->pad_top < 0 || g->pad_left < 0)
        return false;
    *c = (cpu_igemm){.g = *g, .taps = (int)(g->kh * g->kw), .P = g->OH * g->OW, .act = act, .act_a = act_a,
                     .act_b = act_b};
    return true;
}

size_t cpu_igemm_weight_bytes(const cpu_igemm *c)
{
    return (size_t)c->taps * (size_t)c->g.C * (size_t)c->g.K * sizeof(float);
}

/* A thread's scratch: the block's per-tap row table, its per-kernel-row table, the zero row
 * (one kernel row of channels) and the edge tile. */
static size_t tap_table_bytes(const cpu_igemm *c)
{
    return (size_t)(c->taps + c->g.kh) * BLOCK * sizeof(const float *);
}

static size_t thread_bytes(const cpu_igemm *c)
{
    size_t b = tap_table_bytes(c) + ((size_t)(c->g.kw * c->g.C) + ROWS * PANEL) * sizeof(float);
    return (b + 63) / 64 * 64;
}

size_t cpu_igemm_scratch_bytes(const cpu_igemm *c, int n_threads)
{
    return (size_t)(n_threads > 0 ? n_threads : 1) * thread_bytes(c);
}

void cpu_igemm_pack(const float *oihw, const cpu_igemm *c, float *packed)
{
    const int64_t C = c->g.C, K = c->g.K, taps = c->taps;
    for (int64_t n0 = 0; n0 < K; n0 += PANEL) {
        int64_t width = K - n0 >= PANEL ? PANEL : 8;
        float *panel = packed + n0 * taps * C;
        for (int64_t n = 0; n < width; n++)
            for (int64_t ci = 0; ci < C; ci++)
                for (int64_t t = 0; t < taps; t++)
                    panel[(t * C + ci) * width + n] = oihw[((n0 + n) * C + ci) * taps + t];
    }
}

typedef struct igemm_job {
    const cpu_igemm *c;
    const float *x, *packed, *bias;
    float *y;
    char *scratch;
} igemm_job;

/* The block's GEMM rows. Per tap, rows[t * BLOCK + i] is where output pixel p0 + i reads under
 * tap t (the zero row in the padding). Per kernel row, krows[ki * BLOCK + i] is where it reads
 * the whole row: in NHWC the kw taps of one kernel row are kw * C contiguous floats when they
 * are adjacent (dilation 1) and none falls in the left or right padding, so such a tile sums
 * over kh pointers of depth kw * C instead of kh * kw of depth C: fewer, longer inner loops,
 * which is what keeps the RGB layer (C = 3) and other shallow convs fed. The packed weights
 * serve both, their taps being in (ki, kj, c) order. whole[i / ROWS] says whether every pixel
 * of a tile has its rows whole. Past the last pixel, the last pixel's rows again, so every
 * tile has six. */
typedef struct block_rows {
    const float **rows, **krows;
    bool whole[BLOCK / ROWS];
} block_rows;

static bool row_whole(const cpu_igemm_geom *g, int64_t p)
{
    int64_t ix0 = p % g->OW * g->sw - g->pad_left;
    return g->kw > 1 && g->dw == 1 && ix0 >= 0 && ix0 + g->kw <= g->W;
}

/* One pixel's rows: per kernel row when its tile is whole, else per tap (only the table its
 * tile reads is written). */
static void fill_pixel(const cpu_igemm *c, const float *x, const float *zero, int64_t p, int i, bool whole,
                       block_rows *br)
{
    const cpu_igemm_geom *g = &c->g;
    int64_t oy = p / g->OW, ix0 = p % g->OW * g->sw - g->pad_left;
    for (int64_t ki = 0; ki < g->kh; ki++) {
        int64_t iy = oy * g->sh - g->pad_top + ki * g->dh;
        bool row_in = iy >= 0 && iy < g->H;
        if (whole) {
            br->krows[ki * BLOCK + i] = row_in ? x + (iy * g->W + ix0) * g->C : zero;
            continue;
        }
        for (int64_t kj = 0; kj < g->kw; kj++) {
            int64_t ix = ix0 + kj * g->dw;
            bool in = row_in && ix >= 0 && ix < g->W;
            br->rows[(ki * g->kw + kj) * BLOCK + i] = in ? x + (iy * g->W + ix) * g->C : zero;
        }
    }
}

static void fill_rows(const cpu_igemm *c, const float *x, const float *zero, int64_t p0, int n, block_rows *br)
{
    for (int i0 = 0; i0 < n; i0 += ROWS) {
        bool whole = true;
        for (int i = i0; i < i0 + ROWS; i++)
            whole &= row_whole(&c->g, p0 + (i < n ? i : n - 1));
        br->whole[i0 / ROWS] = whole;
        for (int i = i0; i < i0 + ROWS; i++)
            fill_pixel(c, x, zero, p0 + (i < n ? i : n - 1), i, whole, br);
    }
}

/* The activation the tiles apply in registers, or NONE for one they leave to a pass. */
static cpu_tile_act tile_act_of(sh_act act)
{
    switch (act) {
    case SH_ACT_RELU: return CPU_TILE_ACT_RELU;
    case SH_ACT_SIGMOID: return CPU_TILE_ACT_SIGMOID;
    case SH_ACT_SILU: return CPU_TILE_ACT_SILU;
    default: return CPU_TILE_ACT_NONE;
    }
}

/* One block: every panel over the block's tiles, the activation in the tiles where they have
 * it, else a pass over what the block wrote. */
static void run_block(const igemm_job *j, const block_rows *br, float *edge, int64_t p0, int n)
{
    const cpu_igemm *c = j->c;
    const cpu_tile_act tile_act = tile_act_of(c->act);
    const int64_t C = c->g.C, K = c->g.K;
    float *yb = j->y + p0 * K;
    for (int64_t n0 = 0; n0 < K; n0 += PANEL) {
        int width = K - n0 >= PANEL ? PANEL : 8;
        const float *B = j->packed + n0 * c->taps * C, *init = j->bias ? j->bias + n0 : NULL;
        for (int i0 = 0; i0 < n; i0 += ROWS) {
            int R = n - i0 < ROWS ? n - i0 : ROWS;
            float *dst = R == ROWS ? yb + i0 * K + n0 : edge;
            size_t ldd = R == ROWS ? (size_t)K : PANEL;
            bool whole = br->whole[i0 / ROWS];
            const float *const *rows = (whole ? br->krows : br->rows) + i0;
            int taps = whole ? (int)c->g.kh : c->taps;
            int64_t depth = whole ? c->g.kw * C : C;
            if (width == PANEL)
                cpu_tile_6x16(rows, BLOCK, taps, depth, B, init, tile_act, dst, ldd);
            else
                cpu_tile_6x8(rows, BLOCK, taps, depth, B, init, tile_act, dst, ldd);
            for (int i = 0; R < ROWS && i < R; i++)
                memcpy(yb + (i0 + i) * K + n0, edge + i * PANEL, (size_t)width * sizeof(float));
        }
    }
    if (tile_act == CPU_TILE_ACT_NONE && c->act != SH_ACT_NONE)
        cpu_apply_act(yb, n * K, c->act, c->act_a, c->act_b);
}

static void block_range(void *arg, int64_t b0, int64_t b1, int tid)
{
    const igemm_job *j = arg;
    const cpu_igemm *c = j->c;
    char *mine = j->scratch + (size_t)tid * thread_bytes(c);
    block_rows br = {.rows = (const float **)(void *)mine};
    br.krows = br.rows + (size_t)c->taps * BLOCK;
    float *zero = (float *)(void *)(mine + tap_table_bytes(c)), *edge = zero + c->g.kw * c->g.C;
    memset(zero, 0, (size_t)(c->g.kw * c->g.C) * sizeof(float));
    for (int64_t b = b0; b < b1; b++) {
        int64_t p0 = b * BLOCK;
        int n = (int)(c->P - p0 < BLOCK ? c->P - p0 : BLOCK);
        fill_rows(c, j->x, zero, p0, n, &br);
        run_block(j, &br, edge, p0, n);
    }
}

void cpu_igemm_run(const cpu_igemm *c, cpu_pool *pool, const float *x, const float *packed, const float *bias,
                   float *y, char *scratch)
{
    igemm_job j = {.c = c, .x = x, .packed = packed, .bias = bias, .y = y, .scratch = scratch};
    cpu_parallel_for_chunks(pool, (c->P + BLOCK - 1) / BLOCK, 1, block_range, &j);
}
