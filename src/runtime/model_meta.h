/* A model's own metadata as the config's defaults (ultralytics exports carry names, imgsz,
 * task and stride in metadata_props), and the checks that a written config value agrees with
 * what a static model fixes. Called while a model is imported, before and after the passes. */
#ifndef SHOAL_RUNTIME_MODEL_META_H
#define SHOAL_RUNTIME_MODEL_META_H

#include "core/error.h"
#include "graph/graph.h"
#include "import/onnx_import.h"
#include "runtime/config.h"
#include "vision/preprocess.h"

/* Before shape inference, on the imported graph (one [1,3,H,W] input, H/W -1 when symbolic):
 *  - classes: the metadata's names when the config gives neither classes nor classes_file
 *    (c->classes then points into `meta`, which must outlive c's use);
 *  - task (and the decoder that follows from it) from the metadata when the config gives none;
 *    a config task that names another of detect/segment/classify than the metadata is an error;
 *  - input size: a static input fixes it (a different input_size in the config is an error
 *    naming both); a symbolic one takes input_size, else the metadata's imgsz, else 640, and
 *    must be a multiple of the metadata's stride.
 * `meta` may be NULL (the defaults stay as the config has them). */
int sh_rt_meta_defaults(sh_model_config *c, const sh_graph *g, const sh_model_meta *meta, sh_err *err);

/* After the passes (output shapes known), for a config that names no decoder: a detect model
 * whose output 0 is [1, N, 6], or a segment model whose output 0 is [1, N, 6 + nm] beside
 * prototypes [1, nm, H, W], gets the end2end decoder. */
void sh_rt_meta_pick_decoder(sh_model_config *c, const sh_graph *g);

/* The preprocessing config c asks for (letterbox, colour order, scale, mean/std, pad 114), at a
 * model input of in_w x in_h: what a run feeds the model, and what `shoal quantize`
 * calibrates on. */
sh_preprocess_params sh_rt_preprocess_params(const sh_model_config *c, int in_w, int in_h);

/* Classes named by the config (classes or classes_file) against the metadata's names: a
 * different count is an error naming both. */
int sh_rt_meta_check_classes(const sh_model_config *c, const sh_model_meta *meta, sh_err *err);

#endif
