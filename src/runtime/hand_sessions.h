/* MediaPipe's two hand models as sessions on one backend, behind the sh_hand_models callback
 * of vision/hand_landmarker.h, and the hand landmarker's parameters from a config entry with
 * task hand_landmarks.
 *
 *   sh_hand_sessions *hs;
 *   if (sh_hand_sessions_create(alloc, &backend, palm_path, landmark_path, &hs, &err)) ...
 *   sh_hand_models m = sh_hand_sessions_models(hs);
 *   sh_hand_landmarker_run(alloc, &params, &m, &tracker, &img, hands, 2, &n, NULL, NULL, &err);
 *   sh_hand_sessions_destroy(hs);
 *
 * Each model runs with the FrameCrop op in front of its input (graph/frame_ops.h), so a call
 * hands the session the 8-bit frame and the rect. The sessions bind their own memory
 * (session.h), for the frame size they ran last: a frame of another size rebuilds the session
 * (the model file is read again; a video keeps one size). They are not charged to a runtime's
 * budget. */
#ifndef SHOAL_RUNTIME_HAND_SESSIONS_H
#define SHOAL_RUNTIME_HAND_SESSIONS_H

#include "backends/backend.h"
#include "core/alloc.h"
#include "core/error.h"
#include "runtime/config.h"
#include "vision/hand_landmarker.h"

typedef struct sh_hand_sessions sh_hand_sessions;

/* Loads both models (.tflite, bundle.task#member, or ONNX with the same NHWC inputs and
 * outputs) and checks their inputs are [1,S,S,3] float32. `be` is borrowed and must outlive
 * the sessions; the paths are copied. On failure *out is NULL and nothing stays allocated. */
int sh_hand_sessions_create(sh_allocator *a, const sh_backend *be, const char *palm_path, const char *landmark_path,
                            sh_hand_sessions **out, sh_err *err);
void sh_hand_sessions_destroy(sh_hand_sessions *hs);                 /* accepts NULL */

/* The callback pair for sh_hand_landmarker_run; valid while hs lives. */
sh_hand_models sh_hand_sessions_models(sh_hand_sessions *hs);
/* How often each model ran (tells tracked frames from detected ones). */
long sh_hand_sessions_runs(const sh_hand_sessions *hs, sh_hand_model model);

/* num_hands, min_detection_confidence and min_tracking_confidence of a hand_landmarks entry
 * over the defaults, with the models' input sizes from hs (NULL: MediaPipe's 192 and 224). */
sh_hand_params sh_hand_params_from_config(const sh_model_config *c, const sh_hand_sessions *hs);

#endif
