// outdir.h — an output checkpoint directory that appears only when complete.
// Work happens in "<out>.tmp.<pid>"; commit renames it to <out> (replacing an old one only with
// force); abort removes it. A failed or killed run never leaves a half-written <out>.
#ifndef QS_OUTDIR_H
#define QS_OUTDIR_H

#include <jansson.h>

#include "base/qs_common.h"

// Checks that <out> can be created (absent, or force) and creates the temporary directory.
// *tmp receives its malloc'ed path.
qs_status qs_outdir_begin(const char *out, int force, char **tmp);
qs_status qs_outdir_commit(const char *tmp, const char *out, int force);
void qs_outdir_abort(const char *tmp);

// Copies the files of an HF model directory that loaders need beside the weights (tokenizer,
// generation config, chat template, license/readme) into dir; weights, indexes, config.json and
// quantization configs are not copied.
qs_status qs_outdir_copy_aux(const char *model_dir, const char *dir);

// Writes dir/config.json: the model's config.json with `key` set to `value` (e.g.
// "quantization_config"); value NULL writes it unchanged. Key order of the original is kept.
qs_status qs_outdir_write_config(const char *model_dir, const char *dir, const char *key, json_t *value);
// Writes `value` serialized with jansson `flags` plus a trailing newline to `path` (tmp + rename).
qs_status qs_json_write_file(const char *path, json_t *value, size_t flags);
// Writes a JSON value (2-space indent, keys in insertion order, 15 significant digits, trailing
// newline) to dir/name via tmp + rename.
qs_status qs_outdir_write_json(const char *dir, const char *name, json_t *value);

#endif
