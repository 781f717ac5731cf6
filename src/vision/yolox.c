/* YOLOX head, undecoded: [1, N, 5+nc] over the grids of strides 8, 16, 32. */
#include "vision/decode-impl.h"

#include <math.h>
#include <string.h>

static const int yolox_strides[] = {8, 16, 32};
#define N_STRIDES ((int)(sizeof yolox_strides / sizeof yolox_strides[0]))

/* exp() of a garbage regression value must stay finite so IoU never sees inf - inf. */
#define MAX_LOG_SIZE 20.0f

int sh_yolox_candidates(sh_allocator *a, const sh_ftensor *out, int in_w, int in_h, float thr, sh_candidates *c,
                        sh_err *err)
{
    if (!out || !out->data)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "yolox: output tensor is NULL");
    int64_t n, ch;
    if (out->ndim == 3 && out->shape[0] == 1) {
        n = out->shape[1];
        ch = out->shape[2];
    } else if (out->ndim == 2) {
        n = out->shape[0];
        ch = out->shape[1];
    } else {
        return sh_errf(err, SHOAL_ERR_SHAPE, "yolox: output must be [1, N, 5+nc], got rank %d", out->ndim);
    }
    if (ch <= 5 || ch > 65536)
        return sh_errf(err, SHOAL_ERR_SHAPE, "yolox: output rows have %lld values, need 5+nc", (long long)ch);
    int64_t expect = 0;
    for (int s = 0; s < N_STRIDES; s++) {
        if (in_w % yolox_strides[s] || in_h % yolox_strides[s])
            return sh_errf(err, SHOAL_ERR_SHAPE, "yolox: model input %dx%d is not a multiple of stride %d",
                           in_w, in_h, yolox_strides[s]);
        expect += (int64_t)(in_w / yolox_strides[s]) * (in_h / yolox_strides[s]);
    }
    if (n != expect)
        return sh_errf(err, SHOAL_ERR_SHAPE,
                       "yolox: output has %lld anchors, a %dx%d input with strides 8/16/32 gives %lld", (long long)n,
                       in_w, in_h, (long long)expect);
    int nc = (int)(ch - 5);
    const float *d = out->data;

    /* Count first so the candidate arrays are allocated once. */
    size_t m = 0;
    for (int64_t j = 0; j < n; j++) {
        const float *r = d + j * ch;
        float best = r[5];
        for (int k = 1; k < nc; k++)
            best = r[5 + k] > best ? r[5 + k] : best;
        m += r[4] * best >= thr;
    }
    int rc = sh_candidates_alloc(a, m, c, err);
    if (rc)
        return rc;
    size_t i = 0;
    int64_t j = 0;
    for (int s = 0; s < N_STRIDES; s++) {
        int st = yolox_strides[s], gw = in_w / st, gh = in_h / st;
        for (int gy = 0; gy < gh; gy++)
            for (int gx = 0; gx < gw; gx++, j++) {
                const float *r = d + j * ch;
                int bc = 0;
                for (int k = 1; k < nc; k++)
                    if (r[5 + k] > r[5 + bc])
                        bc = k;
                float score = r[4] * r[5 + bc];
                if (!(score >= thr) || i == m)
                    continue;
                float cx = (r[0] + gx) * st, cy = (r[1] + gy) * st;
                float w = expf(fminf(r[2], MAX_LOG_SIZE)) * st, h = expf(fminf(r[3], MAX_LOG_SIZE)) * st;
                c->boxes[4 * i] = cx - w / 2;
                c->boxes[4 * i + 1] = cy - h / 2;
                c->boxes[4 * i + 2] = cx + w / 2;
                c->boxes[4 * i + 3] = cy + h / 2;
                c->scores[i] = score;
                c->classes[i] = bc;
                c->anchors[i] = (int)j;
                i++;
            }
    }
    return 0;
}

int sh_decode_yolox(const sh_ftensor *out, const sh_transform *xf, const sh_decode_params *p,
                    sh_detections *dets, sh_err *err)
{
    int rc = sh_decode_check(xf, p, dets, "yolox", err);
    sh_candidates c = {0};
    if (rc || (rc = sh_yolox_candidates(dets->alloc, out, xf->dst_w, xf->dst_h, p->score_threshold, &c, err)))
        return rc;
    rc = sh_detections_finish(dets, xf, p, &c, err);
    sh_candidates_free(dets->alloc, &c);
    return rc;
}
