// manifest.h — the SHA-256 manifest of an output directory, and its check (`qshard verify`).
//
// DIR/qshard_manifest.json, written last (before OUT.partial becomes OUT), lists every regular file
// under DIR (subdirectories included; names beginning with "." — the resume state, temporary files —
// and the manifest itself excepted), sorted by path:
//   {"format": "qshard-manifest-1", "algorithm": "sha256",
//    "files": [{"path": "model.safetensors", "bytes": 123, "sha256": "<64 hex digits>"}, ...]}
// so that a copy of a 200 GB checkpoint between filesystems can be checked file for file. SHA-256
// through OpenSSL's libcrypto (EVP); files are hashed on the host's threads (base/parallel.h).
// Builds without OpenSSL write no manifest (a warning) and cannot verify (QS_ERR_UNSUPPORTED).
#ifndef QS_MANIFEST_H
#define QS_MANIFEST_H

#include <stdint.h>

#include "base/qs_common.h"

#define QS_MANIFEST_NAME "qshard_manifest.json"

// 1 when this build can hash (OpenSSL).
int qs_manifest_available(void);
// hex[65] = the SHA-256 of the file's bytes, *bytes = its size.
qs_status qs_sha256_file(const char *path, char hex[65], uint64_t *bytes);
// Writes DIR/qshard_manifest.json (temporary name, then renamed).
qs_status qs_manifest_write(const char *dir);
// Checks DIR against its manifest: every listed file present with its size and hash, no unlisted
// file. Prints one line per problem (rank-less: a command's output) and, unless quiet, one per file
// checked; *n_bad = the problems found. QS_ERR_IO / QS_ERR_FORMAT when the manifest itself is
// missing or malformed; QS_OK otherwise (even with problems: see *n_bad).
qs_status qs_manifest_verify(const char *dir, int quiet, int *n_bad);

#endif
