// device_cuda.c — the CUDA half of device.h: device count and the rank -> GPU binding.
#include <cuda_runtime_api.h>

#include "comm.h"
#include "model/device.h"
#include "qs_cuda.h"

int qs_device_cuda_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError(); // no driver / no device: a CPU run, not an error
    return 0;
  }
  return n;
}

qs_status qs_device_cuda_bind(struct qs_comm *world, int count);
qs_status qs_device_cuda_bind(struct qs_comm *world, int count) {
  qs_status status = QS_OK;
  int local = qs_comm_local_rank(world), dev = local % count;
  struct cudaDeviceProp prop;
  if (qs_comm_local_size(world) > count && local == 0)
    qs_log(QS_LOG_WARN, "%d ranks on this node share %d GPU(s); use one rank per GPU", qs_comm_local_size(world), count);
  QS_CUDA_CHECK(cudaSetDevice(dev));
  QS_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  qs_log(QS_LOG_INFO, "device: CUDA %d of %d (%s, %.1f GiB, sm_%d%d)", dev, count, prop.name,
         (double)prop.totalGlobalMem / (1 << 30), prop.major, prop.minor);
fail:
  return status;
}
