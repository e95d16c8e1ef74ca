// damp.h — GPTQ's damping schedule, shared by the CPU factorization (quant/gptq.c) and the GPU one
// (kernels/gptq_factor.cu): first opts.damp of mean(diag H), then x10 (from 1e-3 when damp is 0)
// after each failed Cholesky, at most QS_GPTQ_DAMP_RAISES times; then QS_ERR_NUMERIC naming the module.
#ifndef QS_DAMP_H
#define QS_DAMP_H

#define QS_GPTQ_DAMP_RAISES 3
static inline float qs_gptq_damp_next(float frac) { return (frac > 0.0f ? frac : 1e-3f) * 10.0f; }

#endif
