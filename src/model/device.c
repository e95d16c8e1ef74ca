// device.c — see device.h. The CUDA half (device count, binding) is device_cuda.c.
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "model/device.h"

int qs_device_parse(const char *s) {
  if (!strcmp(s, "cuda") || !strcmp(s, "gpu")) return QS_DEVICE_KIND_CUDA;
  if (!strcmp(s, "cpu")) return QS_DEVICE_KIND_CPU;
  if (!strcmp(s, "auto")) return QS_DEVICE_KIND_AUTO;
  return -1;
}

#ifdef QS_USE_CUDA
qs_status qs_device_cuda_bind(struct qs_comm *world, int count); // device_cuda.c
#else
int qs_device_cuda_count(void) { return 0; } // a build without CUDA sees no device
#endif

qs_status qs_device_resolve(struct qs_comm *world, int *kind) {
  qs_status status = QS_OK;
  int count = qs_device_cuda_count(), all_have = count > 0;
  const char *env = getenv("QS_DEVICE"); // what "auto" means, e.g. QS_DEVICE=cpu on a GPU node
  if (*kind == QS_DEVICE_KIND_AUTO && env && *env) {
    int k = qs_device_parse(env);
    if (k < 0) QS_FAIL(QS_ERR_ARG, "QS_DEVICE='%s': expected cuda, cpu or auto", env);
    *kind = k;
  }
  QS_TRY(qs_comm_allreduce_and(world, &all_have));
  if (*kind == QS_DEVICE_KIND_AUTO) *kind = all_have ? QS_DEVICE_KIND_CUDA : QS_DEVICE_KIND_CPU;
  if (*kind == QS_DEVICE_KIND_CPU) return QS_OK;
#ifdef QS_USE_CUDA
  if (!all_have)
    QS_FAIL(QS_ERR_ARG, "--device cuda: %s", count ? "another rank sees no CUDA device" : "no CUDA device visible");
  QS_TRY(qs_device_cuda_bind(world, count));
#else
  QS_FAIL(QS_ERR_ARG, "--device cuda: this qshard was built without CUDA (QS_WITH_CUDA=OFF); use --device cpu");
#endif
fail:
  return status;
}
