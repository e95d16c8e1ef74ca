// device.h — choosing the compute device of a run (`--device cuda|cpu|auto`). No CUDA types here:
// the CPU-only build compiles it too (and sees no devices).
#ifndef QS_DEVICE_H
#define QS_DEVICE_H

#include "base/qs_common.h"

struct qs_comm;

enum qs_device_kind { QS_DEVICE_KIND_AUTO = 0, QS_DEVICE_KIND_CPU, QS_DEVICE_KIND_CUDA };

// "cuda", "cpu" or "auto" -> kind; -1 on anything else.
int qs_device_parse(const char *s);
// Number of CUDA devices this process sees (0 in a build without CUDA or when the driver has none).
int qs_device_cuda_count(void);
// Collective: AUTO takes the environment variable QS_DEVICE (cuda|cpu|auto) when set; then AUTO becomes CUDA when every rank sees a device (and the build has CUDA), else CPU;
// CUDA without a device on some rank is QS_ERR_ARG. Then a CUDA run binds each rank to device
// local_rank % count (one rank per GPU is the intended layout) and logs the choice.
qs_status qs_device_resolve(struct qs_comm *world, int *kind);

#endif
