/* Hand landmark regressor (MediaPipe-style): 21 x (x, y, z), presence, handedness. */
#include "vision/decode.h"

#include <math.h>

/* MediaPipe's hand topology: thumb, index, middle, ring, pinky, and the palm base. */
const uint8_t sh_hand_edges[SH_HAND_EDGES][2] = {
    {0, 1},   {1, 2},   {2, 3},   {3, 4},   {0, 5},   {5, 6},   {6, 7},
    {7, 8},   {5, 9},   {9, 10},  {10, 11}, {11, 12}, {9, 13},  {13, 14},
    {14, 15}, {15, 16}, {13, 17}, {0, 17},  {17, 18}, {18, 19}, {19, 20},
};

static float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

int sh_decode_hand_landmarks(const sh_ftensor *out, const sh_transform *xf, const sh_landmark_params *p,
                             sh_hand_landmarks *hand, sh_err *err)
{
    if (!out || !out->data || !xf || !hand)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "landmarks: NULL output, transform or result");
    int64_t count = 1;
    for (int i = 0; i < out->ndim; i++)
        count *= out->shape[i];
    if (out->ndim < 1 || out->ndim > 4 || count != 3 * SH_HAND_POINTS + 2)
        return sh_errf(err, SHOAL_ERR_SHAPE, "landmarks: output has %lld values, expected %d (21 x 3 + presence + "
                       "handedness)", (long long)count, 3 * SH_HAND_POINTS + 2);
    if (!(xf->scale_x > 0) || !(xf->scale_y > 0))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "landmarks: transform is not set");
    const float *d = out->data;
    for (int i = 0; i < SH_HAND_POINTS; i++) {
        sh_transform_to_image(xf, d[3 * i], d[3 * i + 1], &hand->x[i], &hand->y[i]);
        /* z is in the units of x in MediaPipe's convention, so it scales with x. */
        hand->z[i] = d[3 * i + 2] / xf->scale_x;
    }
    float pres = d[3 * SH_HAND_POINTS], hnd = d[3 * SH_HAND_POINTS + 1];
    int logits = p ? p->logits : 1;
    hand->presence = logits ? sigmoid(pres) : pres;
    hand->handedness = logits ? sigmoid(hnd) : hnd;
    return 0;
}
